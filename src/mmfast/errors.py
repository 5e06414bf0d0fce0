"""Exceptions and warnings mmfast raises: each names the problem (and the column)."""

__all__ = [
    "MmfastError",
    "FormulaError",
    "DataError",
    "ArgumentError",
    "ModelSpecError",
    "FitError",
    "SingularFitWarning",
    "ConvergenceWarning",
    "RankDeficiencyWarning",
]


class MmfastError(ValueError):
    """Base class of mmfast's errors about a model or its data."""


class FormulaError(MmfastError):
    """The formula cannot be parsed or refers to something that does not exist."""


class DataError(MmfastError):
    """The data cannot be used as given (missing column, wrong type, non-finite values...)."""


class ArgumentError(MmfastError, TypeError):
    """A keyword argument is unknown, misspelled, of the wrong type or has an unknown value
    (also a TypeError, as Python's own "unexpected keyword argument")."""


class ModelSpecError(MmfastError):
    """The model is not identifiable as specified (lme4's checks on levels and observations)."""


class FitError(MmfastError):
    """The criterion cannot be evaluated (numerically degenerate data, e.g. extreme scales)."""


class SingularFitWarning(UserWarning):
    """The fit lies on the boundary: a variance is zero or a correlation is +-1."""


class ConvergenceWarning(UserWarning):
    """The optimiser stopped without meeting its convergence criteria."""


class RankDeficiencyWarning(UserWarning):
    """The fixed-effects model matrix is rank deficient; aliased columns were dropped."""

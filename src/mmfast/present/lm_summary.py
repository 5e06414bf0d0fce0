"""R's ``summary.lm`` for a fitted linear model (``mmfast.lm``): coefficients, residual
standard error, R²."""
from __future__ import annotations

from ..arguments import validated

__all__ = ["LMSummary", "LinearModelPresentation"]


class LMSummary:
    """R's ``summary.lm``: coefficient table, residual standard error, R², overall F."""

    def __init__(self, model):
        self.model = model
        self.coefficients = model.coefficients()

    def __str__(self) -> str:
        from .summary import format_table
        m = self.model
        lines = [f"Call: lm({m.frame.parsed.formula})", "", "Coefficients:",
                 format_table(self.coefficients), "",
                 f"Residual standard error: {m.sigma:.4g} on {m.df_residual} degrees of freedom",
                 f"Multiple R-squared: {m.r_squared:.4g}"]
        return "\n".join(lines)

    __repr__ = __str__


class LinearModelPresentation:
    """``summary()`` of a linear model (mixed into ``mmfast.api.LinearModel``)."""

    @validated(name="summary")
    def summary(self) -> LMSummary:
        """R's ``summary(lm(...))``.

        Returns
        -------
        LMSummary
            ``.coefficients``: ``Estimate``, ``Std. Error``, ``t value``, ``Pr(>|t|)``.
        """
        return LMSummary(self)

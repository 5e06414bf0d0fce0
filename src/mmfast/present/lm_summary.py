"""R's ``summary.lm`` for a fitted linear model (``mmfast.lm``): coefficients, residual
standard error, R²."""

from __future__ import annotations

from ..arguments import validated
from ..rformat import coefmat_lines, format_num

__all__ = ["LMSummary", "LinearModelPresentation"]


class LMSummary:
    """R's ``summary.lm``: coefficient table, residual standard error, R², overall F."""

    def __init__(self, model):
        self.model = model
        self.coefficients = model.coefficients()

    def __str__(self) -> str:
        m = self.model
        lines = [
            f"Call: lm({m.frame.parsed.formula})",
            "",
            "Coefficients:",
            *coefmat_lines(self.coefficients, digits=4),
            "",
            (f"Residual standard error: {format_num([m.sigma], 4)[0]} on {m.df_residual} degrees of freedom"),
            f"Multiple R-squared: {format_num([m.r_squared], 4)[0]}",
        ]
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

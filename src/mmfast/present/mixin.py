"""Presentation methods of a fitted mixed model (mixed into ``mmfast.api``'s LMM and GLMM):
``summary()``, statsmodels' accessors, broom.mixed's tidy/glance/augment, to_dict/to_json."""

from __future__ import annotations

from ..arguments import validated
from .summary import Summary
from .results_api import StatsmodelsAPI  # params, bse, pvalues, get_prediction, ...
from .serialize import SerializeMixin  # to_dict, to_json, _repr_html_
from .tidy import TidyMixin  # broom.mixed's tidy, glance, augment

__all__ = ["PresentationMixin"]


class PresentationMixin(StatsmodelsAPI, TidyMixin, SerializeMixin):
    """``summary`` plus the statsmodels, broom.mixed and serialisation accessors."""

    @validated(extra=("ddf", "print_out", "correlation"), name="summary")
    def summary(self, **kwargs) -> Summary:
        """lme4's ``summary()`` (with lmerTest's df for LMMs).

        Parameters
        ----------
        **kwargs
            ``ddf``: the t tests' degrees of freedom for LMMs, ``"satterthwaite"`` (default),
            ``"kenward-roger"``, ``"between-within"``, ``"residual"`` or None (z tests).
            ``print_out``: also print it (default False).

        Returns
        -------
        Summary
            Prints as R does; ``.coefficients`` is the fixed-effects table as a DataFrame.

        Examples
        --------
        >>> import mmfast
        >>> m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", mmfast.datasets.load("sleepstudy"))
        >>> print(round(m.summary(ddf="kenward-roger").coefficients.loc["Days", "df"], 6))
        17.0
        """
        from .summary import Summary

        return Summary(self, **kwargs)

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
        """lme4's ``summary()``: prints and returns the summary object."""
        from .summary import Summary
        return Summary(self, **kwargs)

"""What users get: ``lmer``, ``glmer`` and ``lm`` and the classes of their fits, each a fit-layer
model (``mmfast.model``) with the inference, resampling and presentation methods mixed in.

The fitting classes in ``mmfast.model`` know nothing of the layers above them; this module,
the top of the package, composes them.  Each class here keeps its fit-layer name and is a
subclass of it, so ``isinstance(m, mmfast.model.lmm.LinearMixedModel)`` holds for what
``lmer`` returns; refits (``refit``, ``refit_formula``, ``with_response``) build
``type(self)``, so they stay in these classes.
"""
from __future__ import annotations

import pandas as pd

from .arguments import NOBS_CHECKS, OPTIMIZER_KEYWORDS, boolean, integer, number, one_of, validated
from .callnames import call_labels
from .diagnostics.mixin import DiagnosticsMixin
from .inference.mixin import InferenceMixin, LikelihoodRatioMixin
from .inference.sequential import SequentialAnovaMixin
from .model import glmm as _glmm
from .model.control import GlmmControl, LmmControl
from .model import lm as _lm
from .model import lmm as _lmm
from .present.lm_summary import LinearModelPresentation
from .present.mixin import PresentationMixin
from .resample.mixin import ResampleMixin

__all__ = ["LinearMixedModel", "GeneralizedLinearMixedModel", "LinearModel", "lmer", "glmer", "lm"]


class LinearMixedModel(_lmm.LinearMixedModel, InferenceMixin, ResampleMixin, DiagnosticsMixin,
                       PresentationMixin):
    """A fitted LMM (``lmer``): lme4's accessors, lmerTest's inference, simulate/bootstrap,
    R² and simulated residuals, summary, tidy and serialisation."""


class GeneralizedLinearMixedModel(_glmm.GeneralizedLinearMixedModel, LikelihoodRatioMixin,
                                  ResampleMixin, DiagnosticsMixin, PresentationMixin):
    """A fitted GLMM (``glmer``): lme4's accessors, LR tests, simulate/bootstrap, R² and
    simulated residuals, summary, tidy and serialisation."""


class LinearModel(_lm.LinearModel, SequentialAnovaMixin, LinearModelPresentation):
    """A fitted linear model (``lm``): R's ``summary.lm`` and ``anova.lm``."""


@validated(extra=OPTIMIZER_KEYWORDS, reml=boolean, check_nobs_vs_nre=one_of(*NOBS_CHECKS),
           maxeval=integer(1), ftol_abs=number, xtol_abs=number)
def lmer(formula: str, data: pd.DataFrame, reml: bool = True, weights=None, offset=None,
         check_nobs_vs_nre: str = "stop", start=None, control: LmmControl | None = None,
         **optctrl) -> LinearMixedModel:
    """Fit a linear mixed model as ``lme4::lmer`` does (REML by default).

    ``formula`` is lme4's syntax, pasted unchanged; ``weights``/``offset`` take a column name
    or an array; ``check_nobs_vs_nre`` mirrors ``lmerControl(check.nobs.vs.nRE=)``;
    ``control``: a ``mmfast.LmmControl`` (kernel and optimiser choice).
    """
    fitted = _lmm.fit_lmm(LinearMixedModel, formula, data, reml=reml, weights=weights, offset=offset,
                          check_nobs_vs_nre=check_nobs_vs_nre, start=start, control=control,
                          **optctrl)
    fitted.call_labels = call_labels(data, weights, offset)  # summary's Data:/Weights: lines
    return fitted


@validated(check_nobs_vs_nre=one_of(*NOBS_CHECKS))  # n_agq: agq.check_agq
def glmer(formula: str, data: pd.DataFrame, family="binomial", n_agq: int = 1, weights=None,
          offset=None, start=None, check_nobs_vs_nre: str = "ignore",
          check_nobs_vs_nlev: str = "ignore", check_nlev_gtr_1: str = "stop",
          control: GlmmControl | None = None) -> GeneralizedLinearMixedModel:
    """Fit a generalized linear mixed model as ``lme4::glmer`` does.

    ``family``: ``"binomial"``, ``"poisson"``, ``"gamma"`` (canonical links) or an object from
    ``mmfast.families`` (``Binomial(link="probit")``).  ``n_agq``: 1 = Laplace, > 1 = adaptive
    Gauss-Hermite (a single scalar random-effects term), 0 = fast mode (β inside PIRLS).
    ``weights``/``offset``: a column name or an array (``offset(log(t))`` in the formula works too).
    The response as R reads it: 0/1 (or a two-level factor, first level = failure), ``s/n``
    with ``weights = n``, or ``cbind(s, f)``.  ``start``: starting θ (lme4's ``start$theta``).
    ``check_*``: ``glmerControl``'s checks ("ignore", "warning", "stop"; lme4's defaults, so
    observation-level random effects ``(1 | obs)`` are allowed).  ``control``: a
    ``mmfast.GlmmControl`` (tolerances and steps of the fit; default ``GlmmControl()``).
    Results: ``fixef``, ``vcov``, ``theta``, ``loglik``, ``aic``, ``bic``, ``deviance``,
    ``varcorr``, ``ranef``, ``fitted``, ``predict(type=...)``, ``odds_ratios()``, ``summary()``,
    ``anova(other)``, ``drop1()``; how the fit went in ``optinfo``.
    """
    fitted = _glmm.fit_glmm(GeneralizedLinearMixedModel, formula, data, family=family, n_agq=n_agq,
                            weights=weights, offset=offset, start=start,
                            check_nobs_vs_nre=check_nobs_vs_nre,
                            check_nobs_vs_nlev=check_nobs_vs_nlev, check_nlev_gtr_1=check_nlev_gtr_1,
                            control=control)
    fitted.call_labels = call_labels(data, weights, offset)  # summary's Data:/Weights: lines
    return fitted


@validated()
def lm(formula: str, data: pd.DataFrame, weights=None, offset=None) -> LinearModel:
    """Fit a linear model by least squares, as R's ``lm`` (R formula syntax, no random effects)."""
    return _lm.fit_lm(LinearModel, formula, data, weights=weights, offset=offset)

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
from .families import NegativeBinomial
from .inference.mixin import InferenceMixin, LikelihoodRatioMixin, ProfileMixin
from .inference.sequential import SequentialAnovaMixin
from .model import glmm as _glmm
from .model.control import GlmmControl, LmmControl
from .model import lm as _lm
from .model import lmm as _lmm
from .model import residual_fit as _residual_fit
from .present.lm_summary import LinearModelPresentation
from .present.mixin import PresentationMixin
from .resample.mixin import ResampleMixin

__all__ = [
    "LinearMixedModel",
    "ResidualLinearMixedModel",
    "GeneralizedLinearMixedModel",
    "LinearModel",
    "lmer",
    "glmer",
    "lm",
]


class LinearMixedModel(_lmm.LinearMixedModel, InferenceMixin, ResampleMixin, DiagnosticsMixin, PresentationMixin):
    """A fitted LMM (``lmer``): lme4's accessors, lmerTest's inference, simulate/bootstrap,
    R² and simulated residuals, summary, tidy and serialisation.

    Attributes
    ----------
    theta : ndarray
        The relative covariance parameters θ in lme4's order (``theta_names``).
    sigma : float
        The residual standard deviation.
    converged : bool
        Whether the optimizer met its criteria.
    optsummary : OptSummary
        The optimizer runs: optimizer, evaluations, start and final θ, restarts, seconds.
    reml : bool
        Fitted by REML (True) or maximum likelihood.
    """


class ResidualLinearMixedModel(_residual_fit.ResidualFit, LinearMixedModel):
    """A fitted LMM with a residual correlation or variance structure (``lmer(residual=)``,
    ``lme(correlation=, weights=)``), in nlme's parametrisation: ``phi`` holds the structures'
    unconstrained parameters.  simulate draws correlated/heteroscedastic residuals; refit,
    bootstrap re-estimate θ and φ on the same rows."""


class GeneralizedLinearMixedModel(
    _glmm.GeneralizedLinearMixedModel,
    LikelihoodRatioMixin,
    ProfileMixin,
    ResampleMixin,
    DiagnosticsMixin,
    PresentationMixin,
):
    """A fitted GLMM (``glmer``): lme4's accessors, LR tests, simulate/bootstrap, R² and
    simulated residuals, summary, tidy and serialisation.

    Attributes
    ----------
    theta : ndarray
        The relative covariance parameters θ in lme4's order.
    family : Family
        The response family and its link.
    converged : bool
        Whether the optimizer and the gradient check at the optimum succeeded.
    optsummary : OptSummary
        The optimizer stages, evaluations and seconds.
    """


class LinearModel(_lm.LinearModel, SequentialAnovaMixin, LinearModelPresentation):
    """A fitted linear model (``lm``): R's ``summary.lm`` and ``anova.lm``."""


@validated(
    extra=OPTIMIZER_KEYWORDS,
    reml=boolean,
    check_nobs_vs_nre=one_of(*NOBS_CHECKS),
    maxeval=integer(1),
    ftol_abs=number,
    xtol_abs=number,
)
def lmer(
    formula: str,
    data: pd.DataFrame,
    reml: bool = True,
    weights=None,
    offset=None,
    check_nobs_vs_nre: str = "stop",
    start=None,
    control: LmmControl | None = None,
    residual=None,
    **optctrl,
) -> LinearMixedModel:
    """Fit a linear mixed model as ``lme4::lmer`` does (REML by default).

    Parameters
    ----------
    formula : str
        lme4's syntax, pasted unchanged from R: ``"y ~ x + (x | g)"``, ``(x || g)``,
        ``(1 | a/b)``, ``factor(x)``, ``poly(x, 2)``, ``offset(log(t))``, ...
    data : DataFrame or dict
        pandas or polars DataFrame, pyarrow Table or a dict of columns.  Rows with missing
        values in the columns the model uses are dropped.
    reml : bool, default True
        True fits by REML, False by maximum likelihood (R's ``REML = FALSE``).
    weights : str or array-like, optional
        Prior weights: a column name or one value per row.
    offset : str or array-like, optional
        A known term added to the linear predictor: a column name or one value per row.
    check_nobs_vs_nre : {"stop", "warning", "ignore"}, default "stop"
        ``lmerControl(check.nobs.vs.nRE=)``: what to do when a term has as many random
        effects as observations.
    start : array-like or dict, optional
        Starting θ in lme4's order (``m.theta_names``), or lme4's ``{"theta": [...]}``.  By
        default the fit starts from a method-of-moments estimate.
    control : LmmControl, optional
        How the fit runs: kernel and optimiser thresholds (``mmfast.LmmControl``); kept by
        every refit.  Default ``LmmControl()``.
    residual : structure or list of structures, optional
        A residual correlation and/or variance structure, nlme's objects and parametrisation:
        ``mmfast.corAR1(form="~ Days | Subject")``, ``[mmfast.corCAR1(...), mmfast.varIdent(...)]``
        (correlation groups must nest in every grouping factor; without ``| g`` in the form, the
        model's one grouping factor).  The fit then runs BOBYQA over (θ, φ); the result is a
        ``ResidualLinearMixedModel`` (no prior ``weights``, no optimizer controls but
        ``maxeval``/``ftol_abs``/``xtol_abs``).
    **optctrl
        Optimizer controls (``lmerControl(optCtrl=...)``).  Giving any of them runs BOBYQA
        (nlopt, lme4's optimizer) from lme4's start, also for large models that would
        otherwise take gradient-based Newton steps.

        * ``maxeval`` (int, default 100000): most criterion evaluations (lme4's ``maxfun``);
          a BOBYQA run that does not converge is continued by Nelder-Mead with twice as many.
        * ``ftol_abs`` (float, default 1e-10): stop when the criterion changes by less.
        * ``xtol_abs`` (float, default 1e-9): stop when every element of θ moves by less.
        * ``step`` (array-like): BOBYQA's initial step per element of θ.

    Returns
    -------
    LinearMixedModel
        The fitted model: ``summary()``, ``fixef``, ``vcov``, ``ranef``, ``varcorr``,
        ``anova()``, ``confint()``, ``predict()``, ... (see the class).

    Raises
    ------
    FormulaError, DataError, ModelSpecError, ArgumentError
        Subclasses of ``MmfastError`` naming the bad formula term, column or argument.

    Examples
    --------
    >>> import mmfast
    >>> sleep = mmfast.datasets.load("sleepstudy")
    >>> m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    >>> print(round(m.fixef["Days"], 4))
    10.4673
    >>> ml = mmfast.lmer("Reaction ~ Days + (Days | Subject)", sleep, reml=False,
    ...                  maxeval=5000, ftol_abs=1e-12)
    >>> ml.optsummary.optimizer
    'bobyqa'
    """
    if residual is not None:
        if weights is not None or start is not None:
            from .errors import ArgumentError

            raise ArgumentError("residual= cannot be combined with weights= or start=")
        return _residual_fit.fit_residual_lmm(
            ResidualLinearMixedModel,
            formula,
            data,
            residual,
            reml=reml,
            offset=offset,
            check_nobs_vs_nre=check_nobs_vs_nre,
            control=control,
            call_labels=call_labels(data, None, offset),
        )
    labels = call_labels(data, weights, offset)  # summary's Data:/Weights: lines
    frame_args = {"weights": weights, "offset": offset, "check_nobs_vs_nre": check_nobs_vs_nre}
    return _lmm.fit_lmm(LinearMixedModel, formula, data, reml, frame_args, start, control, labels, **optctrl)


@validated(check_nobs_vs_nre=one_of(*NOBS_CHECKS))  # n_agq: agq.check_agq
def glmer(
    formula: str,
    data: pd.DataFrame,
    family="binomial",
    n_agq: int = 1,
    weights=None,
    offset=None,
    start=None,
    check_nobs_vs_nre: str = "ignore",
    check_nobs_vs_nlev: str = "ignore",
    check_nlev_gtr_1: str = "stop",
    control: GlmmControl | None = None,
) -> GeneralizedLinearMixedModel:
    """Fit a generalized linear mixed model as ``lme4::glmer`` does.

    Parameters
    ----------
    formula : str
        lme4's syntax.  The response as R reads it: 0/1 (or a two-level factor, first level =
        failure), a proportion with ``weights`` = trials, or ``cbind(successes, failures)``.
    data : DataFrame or dict
        pandas or polars DataFrame, pyarrow Table or a dict of columns.
    family : str or Family, default "binomial"
        ``"binomial"``, ``"poisson"``, ``"gamma"`` (canonical links) or an object from
        ``mmfast.families``, e.g. ``Binomial(link="probit")``.
    n_agq : int, default 1
        1: Laplace approximation; > 1: adaptive Gauss-Hermite quadrature with that many points
        (one scalar random-effects term); 0: the fast mode (β estimated inside PIRLS).
    weights : str or array-like, optional
        Prior weights (binomial: the number of trials): a column name or one value per row.
    offset : str or array-like, optional
        A column name or one value per row (``offset(log(t))`` in the formula works too).
    start : array-like or dict, optional
        Starting θ in lme4's order, or ``{"theta": [...]}``.
    check_nobs_vs_nre : {"ignore", "warning", "stop"}, default "ignore"
        ``glmerControl(check.nobs.vs.nRE=)``: as many random effects as observations.
    check_nobs_vs_nlev : {"ignore", "warning", "stop"}, default "ignore"
        ``glmerControl(check.nobs.vs.nlev=)``: a grouping factor with one level per row, as
        observation-level random effects ``(1 | obs)`` have.
    check_nlev_gtr_1 : {"stop", "warning", "ignore"}, default "stop"
        ``glmerControl(check.nlev.gtr.1=)``: a grouping factor with a single level.
    control : GlmmControl, optional
        Tolerances and steps of the fit (``mmfast.GlmmControl``); kept by every refit.
        Default ``GlmmControl()``.

    Returns
    -------
    GeneralizedLinearMixedModel
        The fitted model: ``summary()``, ``fixef``, ``vcov``, ``ranef``, ``predict(type=)``,
        ``odds_ratios()``, ``anova(other)``, ``drop1()``; how the fit went in ``optinfo``.

    Examples
    --------
    >>> import mmfast
    >>> cbpp = mmfast.datasets.load("cbpp")
    >>> cbpp["period"] = cbpp["period"].astype(str)          # R: a factor
    >>> g = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
    ...                  family="binomial")
    >>> g.fixef.round(3).tolist()
    [-1.399, -0.992, -1.129, -1.58]
    >>> print(round(g.loglik, 2))
    -92.03
    """
    levels = {"check_nobs_vs_nlev": check_nobs_vs_nlev, "check_nlev_gtr_1": check_nlev_gtr_1}
    labels = call_labels(data, weights, offset)  # summary's Data:/Weights: lines
    frame_args = {"weights": weights, "offset": offset, "check_nobs_vs_nre": check_nobs_vs_nre}
    return _glmm.fit_glmm(
        GeneralizedLinearMixedModel, formula, data, family, n_agq, frame_args, levels, start, control, labels
    )


@validated(check_nobs_vs_nre=one_of(*NOBS_CHECKS))
def glmer_nb(
    formula: str,
    data: pd.DataFrame,
    n_agq: int = 1,
    weights=None,
    offset=None,
    start=None,
    check_nobs_vs_nre: str = "ignore",
    check_nobs_vs_nlev: str = "ignore",
    check_nlev_gtr_1: str = "stop",
    control: GlmmControl | None = None,
) -> GeneralizedLinearMixedModel:
    """Fit a negative binomial GLMM (log link, var = mu + mu²/θ) as ``lme4::glmer.nb`` does.

    θ is estimated by maximum likelihood beside the variance components and β: the Laplace
    likelihood maximised jointly (an outer search over log θ), where ``glmer.nb`` alternates
    glmer fits at fixed θ with ``theta.ml`` and stops near, not at, that optimum (its logLik is
    at most ours).  As lme4, the Laplace approximation uses the expected information (Fisher
    weights); ``glmer(..., family="negative_binomial")`` is glmmTMB's ``nbinom2`` (observed
    information, the exact Laplace).  To hold θ fixed: ``family=NegativeBinomial(theta=...)``.

    Parameters
    ----------
    formula : str
        lme4's syntax; the response must be non-negative integer counts.
    data : DataFrame or dict
        pandas or polars DataFrame, pyarrow Table or a dict of columns.
    n_agq : int, default 1
        1: Laplace; > 1: adaptive Gauss-Hermite (one scalar random-effects term); 0: β in PIRLS.
    weights : str or array-like, optional
        Prior weights: a column name or one value per row.
    offset : str or array-like, optional
        A column name or one value per row (``offset(log(t))`` in the formula works too).
    start : array-like or dict, optional
        Starting θ (the relative covariance parameters) in lme4's order.
    check_nobs_vs_nre : {"ignore", "warning", "stop"}, default "ignore"
        As for ``glmer``.
    check_nobs_vs_nlev : {"ignore", "warning", "stop"}, default "ignore"
        As for ``glmer``.
    check_nlev_gtr_1 : {"stop", "warning", "ignore"}, default "stop"
        As for ``glmer``.
    control : GlmmControl, optional
        Tolerances and steps of each GLMM fit (``mmfast.GlmmControl``).

    Returns
    -------
    GeneralizedLinearMixedModel
        The fitted model; ``dispersion`` is θ̂ and ``dispersion_se`` its standard error (from
        the curvature of the profiled deviance in log θ); the summary prints
        ``Family: Negative Binomial(θ)``.  θ -> ∞ (no overdispersion: the Poisson limit)
        stops at 1e8 with a ``ConvergenceWarning``.

    Examples
    --------
    >>> import mmfast
    >>> ticks = mmfast.datasets.load("grouseticks")
    >>> ticks["YEAR"] = ticks["YEAR"].astype(str)
    >>> m = mmfast.glmer_nb("TICKS ~ YEAR + cHEIGHT + (1 | LOCATION)", ticks)
    >>> round(m.dispersion, 3), round(m.loglik, 2)
    (2.052, -905.86)
    """
    family = NegativeBinomial(hessian="expected")  # lme4's Laplace: Fisher weights
    checks = (check_nobs_vs_nre, check_nobs_vs_nlev, check_nlev_gtr_1)
    return glmer(formula, data, family, n_agq, weights, offset, start, *checks, control)


@validated()
def lm(formula: str, data: pd.DataFrame, weights=None, offset=None) -> LinearModel:
    """Fit a linear model by least squares, as R's ``lm`` (R formula syntax, no random effects).

    The "familiar" analysis that treats every row as independent; beside a mixed model it
    shows what ignoring the clusters does to the p-values.

    Parameters
    ----------
    formula : str
        R's formula, e.g. ``"res ~ treatment_idx"``.
    data : DataFrame or dict
        pandas or polars DataFrame, pyarrow Table or a dict of columns.
    weights : str or array-like, optional
        Prior weights: a column name or one value per row.
    offset : str or array-like, optional
        A column name or one value per row.

    Returns
    -------
    LinearModel
        ``summary()``, ``anova()``, ``fixef``, ``vcov``, ``loglik``, ``r_squared``.

    Examples
    --------
    >>> import mmfast
    >>> fit = mmfast.lm("Reaction ~ Days", mmfast.datasets.load("sleepstudy"))
    >>> fit.fixef.round(4).tolist()
    [251.4051, 10.4673]
    """
    return _lm.fit_lm(LinearModel, formula, data, weights=weights, offset=offset)

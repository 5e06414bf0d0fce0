"""A GLMM family's dispersion parameter (negative binomial θ, nbinom1/beta φ) estimated by ML.

The dispersion is an outer parameter of the Laplace objective, on the log scale: for each value
the GLMM is fitted (``glmm_fit``: variance components and β at that dispersion) and the outer
search minimises that profiled deviance over log θ (Brent's method in a bracket found by
doubling steps).  The optimum is the joint maximum of the Laplace likelihood over (θ, β, log θ);
it is what glmmTMB's ``nbinom2`` finds by joint optimisation.  lme4's ``glmer.nb`` alternates
instead (glmer at fixed θ, then ``theta.ml`` on the conditional fitted values, until θ stops
moving), which ends at a nearby point that is not quite the joint optimum.

Its standard error (on the log scale) comes from the curvature of the profiled deviance
(``dispersion_se``); ``profile_interval`` gives its profile-likelihood interval.
θ beyond ``DISP_MAX`` is the Poisson limit: the fit stops there with a ``ConvergenceWarning``
(finite, the Poisson GLMM's answer to ~mu/θ).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.optimize import minimize_scalar

from ..errors import ArgumentError, ConvergenceWarning, ModelSpecError
from . import glmm_fit
from .glmm_fit import warn_at_caller
from .pirls import make_response

__all__ = ["fit", "profiled_deviance", "profile_interval", "DISP_MIN", "DISP_MAX"]

DISP_MIN, DISP_MAX = 1e-8, 1e8  # the search's range for the dispersion (NB θ -> ∞: Poisson)
LOG_TOL = 1e-7  # Brent's (relative) tolerance on log θ


def _set(model, value: float) -> None:
    """The model's family at dispersion ``value``, its PIRLS engine on the new response."""
    fam = model.family
    fam.value = float(value)
    model.engine.reset(make_response(fam, model.y, model.prior_weights, model.trials), model.eta_start)


def profiled_deviance(model, log_value: float, start=None) -> float:
    """The fitted Laplace deviance at dispersion exp(log_value) (the model is left fitted there)."""
    _set(model, math.exp(log_value))
    glmm_fit.fit(model, start)
    return float(model._objective)


def fit(model, start=None) -> None:
    """Fit ``model`` (a GLMM whose family has a dispersion parameter) with the dispersion fixed
    (the family's ``theta`` given) or estimated (see the module docstring)."""
    fam = model.family
    if not fam.estimated:
        glmm_fit.fit(model, start)
        model.dispersion_se = model.dispersion_log_se = None
        return
    lo, hi = math.log(DISP_MIN), math.log(DISP_MAX)
    cache: dict[float, tuple[float, np.ndarray]] = {}
    state = {"theta": start}

    def f(t: float) -> float:
        t = min(max(float(t), lo), hi)
        if t not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                val = profiled_deviance(model, t, state["theta"])
            cache[t] = (val, model.theta.copy())
            if np.isfinite(val):
                state["theta"] = model.theta.copy()
        return cache[t][0]

    # bracket: walk downhill from the start in doubling steps of log θ
    a = math.log(min(max(fam.value, DISP_MIN), DISP_MAX))
    step = 0.5
    b = min(a + step, hi)
    fa, fb = f(a), f(b)
    if fb > fa:
        a, b, fa, fb, step = b, a, fb, fa, -step
    c = b + 2.0 * step
    while True:
        c = min(max(c, lo), hi)
        fc = f(c)
        if fc >= fb or c in (lo, hi):
            break
        a, b, fa, fb = b, c, fb, fc
        step *= 2.0
        c = b + 2.0 * step
    at_limit = fc < fb and c in (lo, hi)
    if at_limit:
        t_hat = c
    else:
        br = (a, b, c) if a < c else (c, b, a)
        res = minimize_scalar(f, bracket=br, method="brent", tol=LOG_TOL)
        t_hat = float(res.x) if res.fun <= fb else b
    model.dispersion_se = None
    # the final fit at the estimate (warnings shown), then the curvature for the standard error
    best_theta = cache[min(cache, key=lambda k: cache[k][0])][1] if cache else start
    h = 1e-3
    if not at_limit:
        fp, fm = f(t_hat + h), f(t_hat - h)
    profiled_deviance(model, t_hat, best_theta)
    model.dispersion_log_se = None
    if not at_limit:
        curv = (fp - 2.0 * model._objective + fm) / (h * h)
        if curv > 0:
            model.dispersion_log_se = math.sqrt(2.0 / curv)  # deviance = -2 logLik
            model.dispersion_se = model.dispersion_log_se * fam.value
    model.dispersion_evaluations = len(cache) + 1
    if at_limit:
        up = t_hat == hi
        name = fam.dispersion_name
        where = "infinity" if up else "zero"
        msg = f"the {fam.name} family's {name} goes to {where}: stopped at {name} = {fam.value:.3g}"
        if fam.limit_direction == (1 if up else -1):
            msg += f" ({fam.limit_name}: no overdispersion beyond the random effects; a Poisson GLMM fits as well)"
        warn_at_caller(msg, ConvergenceWarning)


def profile_interval(model, level: float = 0.95) -> tuple[float, float]:
    """Profile-likelihood interval of the dispersion: where the profiled deviance (variance
    components and β re-estimated) exceeds its minimum by the χ²₁ quantile, found by Brent's
    root finder on log scale.  Works on a copy: the fitted model is unchanged.  A side that
    reaches the search range's end (``DISP_MIN``, ``DISP_MAX``) is reported as 0 or inf."""
    from scipy.optimize import brentq
    from scipy.stats import chi2

    fam = model.family
    if not (fam.dispersion_name and fam.estimated):
        raise ModelSpecError("the model's family has no estimated dispersion parameter")
    if not 0.0 < level < 1.0:
        raise ArgumentError(f"level must be in (0, 1), not {level!r}")
    work = model.with_frame(model.frame)
    t_hat, d_hat, cut = math.log(fam.value), float(model._objective), float(chi2.ppf(level, 1))
    lo, hi = math.log(DISP_MIN), math.log(DISP_MAX)
    step = 2.0 * (model.dispersion_log_se or 0.5)

    def excess(t: float) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return profiled_deviance(work, t, model.theta) - d_hat - cut

    ends = []
    for sign in (-1.0, 1.0):
        inner, outer = t_hat, t_hat + sign * step
        while True:
            outer = min(max(outer, lo), hi)
            if excess(outer) > 0:
                ends.append(math.exp(brentq(excess, min(inner, outer), max(inner, outer), xtol=1e-6)))
                break
            if outer in (lo, hi):
                ends.append(0.0 if sign < 0 else math.inf)
                break
            inner, outer = outer, outer + sign * step
            step *= 2.0
    return ends[0], ends[1]

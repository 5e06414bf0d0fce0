"""Nakagawa-Schielzeth R² of a mixed model: the share of variance explained by the fixed
effects (marginal) and by fixed plus random effects (conditional), as R's
``performance::r2_nakagawa`` (performance 0.10.2, insight 0.19.0) computes it.

    marginal    = var_fixed / (var_fixed + var_random + var_residual)
    conditional = (var_fixed + var_random) / (var_fixed + var_random + var_residual)

* ``var_fixed``: the sample variance (n - 1) of Xβ̂ (offset excluded);
* ``var_random``: Johnson's (2014) extension for random slopes, the mean over the rows of
  z_i' Σ z_i, with z_i a row of the fixed-effects model matrix restricted to the term's
  columns (a random-slope column absent from X is left out, as insight does); summed over
  the terms whose grouping factor does not have one level per row;
* ``var_residual`` = ``var_distribution`` + ``var_dispersion``, where ``var_dispersion`` is
  the variance of observation-level random effects (GLMMs; an LMM leaves them out) and the
  distribution-specific variance on the link scale is, per family and link (performance's
  defaults, Nakagawa, Johnson & Schielzeth 2017):

  - gaussian: σ̂²;
  - binomial: the latent-variable variance, π²/3 (logit), 1 (probit), π²/6 (cloglog);
  - Poisson, log link: the lognormal approximation log(1 + 1/μ), with μ = exp(β₀) of the
    null model (response ~ 1 + offset + the same random effects) refitted (a UserWarning,
    as performance's, when μ < 6); sqrt link: 0.25;
  - Gamma (inverse, identity or log link): σ̂², i.e. the dispersion φ, which is the delta
    approximation φ·V(μ)/μ² on the log scale (performance uses it for every Gamma link).

  The trigamma approximation is not performance's default for any of these and is not offered.

A singular fit (a diagonal θ below ``tolerance``) has no usable random-effect variance: as
performance, the conditional R² is NaN and the marginal one is var_fixed / (var_fixed +
var_residual).  Deviation from insight 0.19: with several terms on one grouping factor (e.g.
``(Days || Subject)``) insight keeps only the first term; every term is counted here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ModelSpecError, SingularFitWarning

__all__ = ["R2Nakagawa", "r2_nakagawa", "variance_components"]

BINOMIAL_LATENT = {"logit": np.pi**2 / 3, "probit": 1.0, "cloglog": np.pi**2 / 6}


@dataclass(frozen=True)
class R2Nakagawa:
    """Marginal and conditional R² with the variances they are made of."""

    marginal: float
    conditional: float
    var_fixed: float
    var_random: float
    var_residual: float
    var_distribution: float
    var_dispersion: float

    def to_series(self) -> pd.Series:
        """All fields as a Series (index: the field names)."""
        return pd.Series(self.__dict__, name="r2_nakagawa", dtype=float)

    def __repr__(self) -> str:
        return (
            f"# R2 for Mixed Models\n\n  Conditional R2: {self.conditional:.3f}\n     Marginal R2: {self.marginal:.3f}"
        )


def _johnson_variance(X: np.ndarray, names: list[str], term_names: list[str], Sigma: np.ndarray) -> float:
    """mean_i z_i' Σ z_i, z_i = row i of X on the term's columns present in X (an intercept
    column of ones if X has none)."""
    cols, keep = [], []
    for j, nm in enumerate(term_names):
        if nm in names:
            cols.append(X[:, names.index(nm)])
            keep.append(j)
        elif nm == "(Intercept)":
            cols.append(np.ones(X.shape[0]))
            keep.append(j)
    if not keep:
        return 0.0
    Z = np.column_stack(cols)
    S = Sigma[np.ix_(keep, keep)]
    return float(np.sum((Z @ S) * Z) / X.shape[0])


def _null_formula(model) -> str:
    """response ~ 1 (+ offsets) + the model's random-effect terms: insight's null model."""
    p = model.frame.parsed
    parts = ["1"] + [f"offset({o})" for o in p.offsets] + [f"({b})" for b in p.bars]
    return f"{p.response} ~ {' + '.join(parts)}"


def _distribution_variance(model, null_intercept: float | None = None) -> float:
    """The distribution-specific variance on the link scale (see the module docstring);
    ``null_intercept``: β₀ of the Poisson null model if known (else it is refitted)."""
    fam = model.family
    if fam == "gaussian":  # an LMM
        return float(model.sigma) ** 2
    name, link = fam.name, fam.link.name
    if name == "binomial" and link in BINOMIAL_LATENT:
        return BINOMIAL_LATENT[link]
    if name == "poisson" and link == "sqrt":
        return 0.25
    if name == "poisson" and link == "log":
        if null_intercept is None:
            null_intercept = float(model.refit_formula(_null_formula(model)).beta[0])
        mu = float(np.exp(null_intercept))
        if mu < 6:  # performance's caveat: the lognormal approximation needs a large mean
            warnings.warn(
                f"mean count of the null model {mu:.1f} is below 6: the lognormal "
                "approximation of the distribution variance, hence R², may be "
                "unreliable",
                UserWarning,
                stacklevel=3,
            )
        return float(np.log1p(1.0 / mu))  # log(1 + 1/mu), mu = exp(beta0)
    if name == "Gamma" and link in ("inverse", "identity", "log"):
        return float(model.sigma) ** 2
    raise ModelSpecError(
        f"Nakagawa's R² is not defined for the {name} family with the {link} "
        "link (performance supports binomial logit/probit/cloglog, Poisson "
        "log/sqrt, Gamma and Gaussian)"
    )


def model_variances(frame, beta, covariances, glmm: bool) -> tuple[float, float, float]:
    """(var_fixed, var_random, var_dispersion) of a model frame at fixed effects ``beta`` and
    per-term random-effect covariance matrices ``covariances``."""
    X, names, n = np.asarray(frame.X, dtype=float), list(frame.fixef_names), frame.nobs
    var_fixed = float(np.var(X @ np.asarray(beta, dtype=float), ddof=1)) if n > 1 else 0.0
    var_random = var_dispersion = 0.0
    for t, S in zip(frame.terms, covariances):
        v = _johnson_variance(X, names, list(t.names), np.asarray(S, dtype=float))
        if t.nlevels == n:  # observation-level: overdispersion of a GLMM, ignored for an LMM
            var_dispersion += v if glmm else 0.0
        else:
            var_random += v
    return var_fixed, var_random, var_dispersion


def variance_components(model, tolerance: float = 1e-5) -> dict[str, float]:
    """insight's ``get_variance``: var_fixed, var_random (NaN for a singular fit),
    var_residual, var_distribution, var_dispersion."""
    var_fixed, var_random, var_dispersion = model_variances(
        model.frame, model.beta, model.term_covariances(), glmm=model.family != "gaussian"
    )
    diag = np.isfinite(model.theta_lower)
    if np.any(np.abs(np.asarray(model.theta)[diag]) < tolerance):
        var_random = float("nan")
    var_distribution = _distribution_variance(model)
    return {
        "var_fixed": var_fixed,
        "var_random": var_random,
        "var_residual": var_distribution + var_dispersion,
        "var_distribution": var_distribution,
        "var_dispersion": var_dispersion,
    }


def r2_nakagawa(model, tolerance: float = 1e-5) -> R2Nakagawa:
    """Nakagawa-Schielzeth marginal and conditional R² (R's ``performance::r2_nakagawa``).

    Parameters
    ----------
    model : LinearMixedModel or GeneralizedLinearMixedModel
        A fitted model (binomial logit/probit/cloglog, Poisson log/sqrt, Gamma or Gaussian).
    tolerance : float
        A diagonal θ below this makes the fit singular: conditional R² is then NaN.

    Returns
    -------
    R2Nakagawa
        ``marginal``, ``conditional`` and the variance components behind them.

    Examples
    --------
    >>> m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)  # doctest: +SKIP
    >>> m.r2_nakagawa().conditional  # doctest: +SKIP
    0.7992...
    """
    v = variance_components(model, tolerance)
    vf, vr, vres = v["var_fixed"], v["var_random"], v["var_residual"]
    if np.isnan(vr):
        warnings.warn(
            "the fit is singular (a variance component is zero): the conditional R² "
            "is not available and the marginal R² ignores the random effects",
            SingularFitWarning,
            stacklevel=2,
        )
        marginal, conditional = vf / (vf + vres), float("nan")
    else:
        total = vf + vr + vres
        marginal, conditional = vf / total, (vf + vr) / total
    return R2Nakagawa(marginal=float(marginal), conditional=float(conditional), **v)

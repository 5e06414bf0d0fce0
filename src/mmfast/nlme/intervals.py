"""nlme's ``intervals()`` for an ``lme`` fit: fixed effects, random-effects SDs and correlations,
the residual structures' parameters and σ.

As ``intervals.lme``: fixed effects est ± t(fixDF) × SE from ``vcov`` (no ML adjustment); the
variance parameters on nlme's unconstrained scale (log SD, log((1+r)/(1-r)) for a random-effects
correlation, each structure's unconstrained parameter, log σ) as est ± z × SE, with SEs from the
inverse Hessian of -log L (REML or ML, β profiled, σ not) at the estimates (nlme's ``apVar``),
mapped back to the natural scale.  The Hessian is taken by central differences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import FitError, ModelSpecError

__all__ = ["Intervals", "lme_intervals"]

STEP = 1e-4  # central-difference step on the unconstrained scale


class Intervals(dict):
    """nlme's ``intervals.lme`` result: ``fixed``, ``reStruct`` (per level), ``corStruct``,
    ``varStruct`` and ``sigma``, each a DataFrame of lower, est., upper."""

    def __repr__(self) -> str:
        out = [f"Approximate {self.level:.0%} confidence intervals", ""]
        for key, title in (
            ("fixed", " Fixed effects:"),
            ("corStruct", " Correlation structure:"),
            ("varStruct", " Variance function:"),
        ):
            if self.get(key) is not None:
                out += [title, self[key].to_string(), ""]
        for lv, tab in self.get("reStruct", {}).items():
            out += [" Random Effects:", f"  Level: {lv} ", tab.to_string(), ""]
        out += [" Within-group standard error:", self["sigma"].to_string()]
        return "\n".join(out)

    __str__ = __repr__


def _frame(names, lo, est, hi) -> pd.DataFrame:
    return pd.DataFrame({"lower": lo, "est.": est, "upper": hi}, index=list(names))


def _re_natural(fit):
    """Per term: (names, log SDs and transformed correlations of σ²ΛΛ' at the fit)."""
    model = fit.model
    out = []
    for t, S in zip(model.frame.terms, model.term_covariances()):
        if not hasattr(t.param, "rows"):
            raise ModelSpecError("intervals(): random-effects structures other than general/diagonal are not supported")
        sd = np.sqrt(np.diag(S))
        iu = np.triu_indices(t.p, 1)
        r = (S / np.outer(sd, sd))[iu] if t.p > 1 else np.zeros(0)
        out.append((t, np.log(sd), np.log((1 + r) / (1 - r))))
    return out


def _theta_from(natural_terms, sigma: float) -> np.ndarray:
    """θ (lme4's order) from per-term log SDs and transformed correlations, and σ."""
    parts = []
    for t, lsd, zr in natural_terms:
        sd = np.exp(lsd) / sigma
        R = np.eye(t.p)
        if t.p > 1:
            iu = np.triu_indices(t.p, 1)
            r = np.tanh(zr / 2.0)
            R[iu] = r
            R[iu[1], iu[0]] = r
        L = np.linalg.cholesky(R * np.outer(sd, sd))
        parts.append(L[t.param.rows, t.param.cols])
    return np.concatenate(parts)


def _pack(natural_terms, phi, log_sigma):
    return np.concatenate([np.concatenate([np.r_[a, b] for _, a, b in natural_terms]), phi, [log_sigma]])


def _unpack(x, natural_terms, nphi):
    terms, k = [], 0
    for t, lsd, zr in natural_terms:
        terms.append((t, x[k : k + len(lsd)], x[k + len(lsd) : k + len(lsd) + len(zr)]))
        k += len(lsd) + len(zr)
    return terms, x[k : k + nphi], x[k + nphi]


def _deviance(model, x, natural_terms, nphi) -> float:
    """-2 log L at the packed parameters (β profiled, σ given)."""
    from ..inference.residual_derivatives import residual_deviance

    terms, phi, log_sigma = _unpack(x, natural_terms, nphi)
    try:
        theta = _theta_from(terms, float(np.exp(log_sigma)))
    except np.linalg.LinAlgError:
        return np.inf
    return residual_deviance(model, theta, float(np.exp(log_sigma)), phi)


def _hessian(f, x0, h=STEP) -> np.ndarray:
    k = len(x0)
    H = np.empty((k, k))
    f0 = f(x0)
    E = np.eye(k) * h
    for i in range(k):
        H[i, i] = (f(x0 + E[i]) - 2 * f0 + f(x0 - E[i])) / (h * h)
        for j in range(i):
            H[i, j] = H[j, i] = (
                f(x0 + E[i] + E[j]) - f(x0 + E[i] - E[j]) - f(x0 - E[i] + E[j]) + f(x0 - E[i] - E[j])
            ) / (4 * h * h)
    return H


def lme_intervals(fit, level: float = 0.95) -> Intervals:
    """nlme's ``intervals(fit, level, which = "all")``."""
    model = fit.model
    tt = fit.fixef
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    q = stats.t.ppf(0.5 + level / 2, fit.fixDF()["X"].to_numpy())
    out = Intervals(fixed=_frame(tt.index, tt - q * se, tt.to_numpy(), tt + q * se))
    out.level = level
    res = getattr(model, "residual", None)
    phi0 = np.zeros(0) if res is None else np.asarray(model.phi, dtype=float)
    nat = _re_natural(fit)
    x0 = _pack(nat, phi0, np.log(model.sigma))
    with model._reopened():  # φ moves through the whitening held on the model, then back
        try:
            H = _hessian(lambda x: 0.5 * _deviance(model, x, nat, len(phi0)), x0)
        finally:
            if res is not None:
                model._load(phi0)
            model.kernel.factor_at(model.templates(model.theta))
    try:
        V = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        raise FitError("intervals(): the approximate covariance of the variance parameters is singular") from None
    if not np.all(np.isfinite(V)) or np.any(np.diag(V) <= 0):
        raise FitError("intervals(): non-positive definite approximate variance-covariance of the variance parameters")
    z = stats.norm.ppf(0.5 + level / 2)
    out.apvar = V  # nlme's apVar: [random effects per term, φ, log σ]
    half = z * np.sqrt(np.diag(V))
    lo, hi = x0 - half, x0 + half
    k, re = 0, {}
    for (t, lsd, zr), lv in zip(nat, _level_of_terms(fit)):
        names = [f"sd({nm})" for nm in t.names]
        iu = np.triu_indices(t.p, 1)
        names += [f"cor({t.names[i]},{t.names[j]})" for i, j in zip(*iu)]
        m, ns = len(lsd) + len(zr), len(lsd)
        lo_t, est_t, hi_t = (_natural_re(v[k : k + m], ns) for v in (lo, x0, hi))
        tab = _frame(names, lo_t, est_t, hi_t)
        re[lv] = tab if lv not in re else pd.concat([re[lv], tab])
        k += m
    out["reStruct"] = re
    if res is not None:
        for key, s, sl in (
            ("corStruct", res.correlation, slice(k, k + res.ncor)),
            ("varStruct", res.variance, slice(k + res.ncor, k + res.npar)),
        ):
            if s is not None and s.npar:
                out[key] = _frame(s.names(), s.natural(lo[sl]), s.natural(x0[sl]), s.natural(hi[sl]))
    out["sigma"] = pd.Series({"lower": np.exp(lo[-1]), "est.": np.exp(x0[-1]), "upper": np.exp(hi[-1])})
    return out


def _natural_re(v, ns: int) -> np.ndarray:
    """SDs from log SDs, correlations from log((1+r)/(1-r))."""
    return np.r_[np.exp(v[:ns]), np.tanh(v[ns:] / 2.0)]


def _level_of_terms(fit) -> list[str]:
    """nlme's level name of each random-effects term (in the model's term order)."""
    label = {}
    for lv, idx in zip(fit.levels, fit._terms):
        for i in idx:
            label[i] = lv.label
    return [label[i] for i in range(len(fit.model.frame.terms))]

"""Satterthwaite's denominator df for t and F tests of an LMM (lmerTest's method).

For a contrast l, Var(l'β̂) = l'Φl with gradient ∇_φ = (l' ∂Φ/∂φ_k l)_k over the variance
parameters φ = (θ, σ) and Var(φ̂) = 2H⁻¹ (H the deviance Hessian, ``derivatives``):

    ν = 2 (l'Φl)² / (∇_φ' Var(φ̂) ∇_φ).

A q-row hypothesis L is rotated by the eigenvectors of LΦL' (eigenvalues d_m > 0) into q
independent t tests with ν_m; F = Σ t_m²/q and, with E = Σ ν_m/(ν_m - 2) (all ν_m > 2),
the F's denominator df is 2E/(E - q) (2 if some ν_m <= 2; their mean if all are equal).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from .derivatives import varpar_derivatives

__all__ = ["Satterthwaite", "f_denominator_df"]


def f_denominator_df(nu: np.ndarray, tol: float = 1e-8) -> float:
    """The df of an F statistic that is the mean of q independent t² with df ν_m."""
    nu = np.asarray(nu, dtype=float)
    if len(nu) == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - len(nu))


class Satterthwaite:
    """t and F tests with Satterthwaite's df for one fitted LMM."""

    title = "Satterthwaite's method"

    def __init__(self, model, method: str = "analytic"):
        self.derivatives = varpar_derivatives(model, method)
        self.beta = np.asarray(model.beta, dtype=float)
        self.vcov = self.derivatives.vcov_beta
        self.sigma = float(model.sigma)
        self.warnings = list(self.derivatives.warnings)

    def df(self, l: np.ndarray) -> float:
        """Satterthwaite's df of the contrast l'β."""
        d = self.derivatives
        var = float(l @ self.vcov @ l)
        grad = np.array([l @ J @ l for J in d.jacobian])
        denom = float(grad @ d.vcov_varpar @ grad)
        return 2 * var ** 2 / denom if denom > 0 else np.inf

    def t_test(self, l: np.ndarray) -> tuple[float, float, float]:
        l = np.asarray(l, dtype=float).ravel()
        return float(l @ self.beta), float(np.sqrt(l @ self.vcov @ l)), self.df(l)

    def f_test(self, L: np.ndarray, rhs: np.ndarray | float = 0.0) -> dict:
        """lmerTest's ``contestMD``: F over the positive-eigenvalue directions of LΦL'."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        rhs = np.broadcast_to(np.asarray(rhs, dtype=float), (L.shape[0],))
        beta = self.beta if not np.any(rhs) else self.beta - np.linalg.pinv(L) @ rhs
        d, P = np.linalg.eigh(L @ self.vcov @ L.T)
        d, P = d[::-1], P[:, ::-1]
        tol = max(np.sqrt(np.finfo(float).eps) * d[0], 0.0) if len(d) else 0.0
        pos = d > tol
        q = int(pos.sum())
        if q == 0:
            return _f_row(np.nan, 0, np.nan, self.sigma)
        PtL = (P.T @ L)[:q]
        t2 = (PtL @ beta) ** 2 / d[:q]
        F = float(np.sum(t2) / q)
        nu = np.array([self.df(PtL[m]) for m in range(q)])
        return _f_row(F, q, f_denominator_df(nu), self.sigma)


def _f_row(F: float, q: int, ddf: float, sigma: float) -> dict:
    ms = F * sigma ** 2
    p = float(stats.f.sf(F, q, ddf)) if q > 0 and np.isfinite(F) else np.nan
    return {"Sum Sq": ms * q, "Mean Sq": ms, "NumDF": q, "DenDF": ddf, "F value": F, "Pr(>F)": p}

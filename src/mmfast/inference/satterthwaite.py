"""Satterthwaite's denominator df for t and F tests of an LMM (lmerTest's method).

For a contrast l, Var(l'β̂) = l'Φl with gradient ∇_φ = (l' ∂Φ/∂φ_k l)_k over the variance
parameters φ = (θ, σ) and Var(φ̂) = 2H⁻¹ (H the deviance Hessian, ``derivatives``):

    ν = 2 (l'Φl)² / (∇_φ' Var(φ̂) ∇_φ).

A q-row hypothesis L is rotated by the eigenvectors of LΦL' (eigenvalues d_m > 0; the
shared ``wald.wald_test``) into q independent t tests with ν_m; F = Σ t_m²/q and, with
E = Σ ν_m/(ν_m - 2) (all ν_m > 2), the F's denominator df is 2E/(E - q) (2 if some
ν_m <= 2; their mean if all are equal).
"""

from __future__ import annotations

import numpy as np
from .derivatives import varpar_derivatives
from .wald import Directions, WaldTest, wald_test

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
    with np.errstate(invalid="ignore"):  # ν/(ν - 2) -> 1 as ν -> ∞
        E = float(np.sum(np.where(np.isinf(nu), 1.0, nu / (nu - 2))))
    return 2 * E / (E - len(nu)) if E > len(nu) else np.inf


class Satterthwaite:
    """t and F tests with Satterthwaite's df for one fitted LMM."""

    title = "Satterthwaite's method"

    def __init__(self, model, method: str = "analytic", derivatives=None):
        """``derivatives``: the model's (θ, σ) derivatives when the caller has them (a refit's
        dense algebra, ``resample.design_refit``); else computed by ``method``."""
        self.derivatives = varpar_derivatives(model, method) if derivatives is None else derivatives
        self.beta = np.asarray(model.beta, dtype=float)
        self.vcov = self.derivatives.vcov_beta
        self.sigma = float(model.sigma)
        self.warnings = list(self.derivatives.warnings)

    def nu(self, R: np.ndarray) -> np.ndarray:
        """Satterthwaite's df of each row's contrast R_m β (inf when Var(φ̂) gives it no spread)."""
        R, d = np.atleast_2d(np.asarray(R, dtype=float)), self.derivatives
        var = np.einsum("mi,ij,mj->m", R, self.vcov, R)
        grad = np.einsum("mi,kij,mj->mk", R, np.asarray(d.jacobian), R)
        denom = np.einsum("mk,kl,ml->m", grad, d.vcov_varpar, grad)
        return np.where(denom > 0, 2.0 * var**2 / np.where(denom > 0, denom, 1.0), np.inf)

    def df(self, l: np.ndarray) -> float:
        """Satterthwaite's df of the contrast l'β."""
        return float(self.nu(l)[0])

    def t_test(self, l: np.ndarray) -> tuple[float, float, float]:
        l = np.asarray(l, dtype=float).ravel()
        return float(l @ self.beta), float(np.sqrt(l @ self.vcov @ l)), self.df(l)

    def direction_df(self, dirs: Directions) -> float:
        """The F's denominator df from the per-direction t df ν_m."""
        return f_denominator_df(self.nu(dirs.rows))

    def wald(self, L: np.ndarray, rhs: np.ndarray | float = 0.0) -> WaldTest:
        """lmerTest's ``contestMD``: the shared Wald F with Satterthwaite's df."""
        return wald_test(self.beta, self.vcov, L, df=self.direction_df, rhs=rhs)

    def f_test(self, L: np.ndarray, rhs: np.ndarray | float = 0.0) -> dict:
        """lmerTest's anova/contest row for L β = rhs."""
        return self.wald(L, rhs).anova_row(self.sigma)

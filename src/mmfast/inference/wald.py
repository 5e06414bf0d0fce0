"""The Wald test of L β = rhs, once for every df method (lmerTest, pbkrtest, nlme, resampling).

F = (Lβ̂ - rhs)'(L V L')⁺(Lβ̂ - rhs)/q over the q directions of L V L' with eigenvalue above
√ε·(largest) (lmerTest's ``contestMD`` rank rule), so a rank-deficient L tests its row space
with q numerator df.  The caller supplies V (Satterthwaite's Φ, Kenward-Roger's Φ_A, ...)
and the denominator df: a number, None (asymptotic: χ²_q/q) or a function of the rotated
contrasts (``Directions``), as Satterthwaite's per-direction df.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import numpy as np
from scipy import special

__all__ = ["Directions", "WaldTest", "directions", "wald_test", "f_pvalue"]


@dataclass(frozen=True)
class Directions:
    """L rotated onto the eigenvectors of L V L' with positive eigenvalue, largest first."""

    rows: np.ndarray  # (q, p): P'L, independent contrasts of β̂
    var: np.ndarray  # (q,): Var(rows_m β̂), the eigenvalues of L V L'
    resid: np.ndarray  # (len(L),): Lβ̂ - rhs, in L's own rows

    @property
    def q(self) -> int:
        return len(self.var)

    def metric(self) -> np.ndarray:
        """L'(L V L')⁺L: the quadratic form's matrix on β (invariant to L -> M L, M non-singular)."""
        return (self.rows.T / self.var) @ self.rows


def _as_vcov(vcov) -> np.ndarray:
    return np.asarray(vcov() if callable(vcov) else vcov, dtype=float)


def directions(L, vcov, beta=None, rhs=0.0) -> Directions:
    """The eigen-directions of L V L' above the rank tolerance (and Lβ - rhs if β is given)."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    V = _as_vcov(vcov)
    d, P = np.linalg.eigh(L @ V @ L.T)
    d, P = d[::-1], P[:, ::-1]
    tol = max(np.sqrt(np.finfo(float).eps) * d[0], 0.0) if len(d) else 0.0
    q = int(np.sum(d > tol))
    resid = np.zeros(L.shape[0])
    if beta is not None:
        resid = L @ np.asarray(beta, dtype=float) - np.broadcast_to(np.asarray(rhs, dtype=float), (L.shape[0],))
    return Directions(rows=(P.T @ L)[:q], var=d[:q], resid=(P.T[:q] @ resid) if q else resid[:0])


DfProvider = Union[None, float, Callable[[Directions], float]]


@dataclass(frozen=True)
class WaldTest:
    """F (= t² for one row), numerator df q = rank, denominator df, p-value; t for a 1-row L."""

    F: float
    numdf: int
    dendf: float
    p: float
    t: float | None = None

    def anova_row(self, sigma: float, F_ms: float | None = None) -> dict:
        """lmerTest's row: Sum Sq = F σ² q, Mean Sq = F σ² (``F_ms``: the F they are built from)."""
        ms = (self.F if F_ms is None else F_ms) * sigma**2
        return {
            "Sum Sq": ms * self.numdf,
            "Mean Sq": ms,
            "NumDF": self.numdf,
            "DenDF": self.dendf,
            "F value": self.F,
            "Pr(>F)": self.p,
        }


def f_pvalue(F: float, q: int, ddf: float) -> float:
    """P(F_{q, ddf} > F); χ²_q/q for infinite ddf; NaN without a statistic."""
    if q <= 0 or not np.isfinite(F) or np.isnan(ddf):
        return np.nan
    if np.isfinite(ddf):
        return float(special.fdtrc(q, ddf, F))
    return float(special.chdtrc(q, F * q))


def wald_test(beta, vcov, L, df: DfProvider = None, rhs=0.0, scale: float = 1.0) -> WaldTest:
    """Wald F of L β = rhs with covariance ``vcov`` (an array or a callable returning one).

    ``df``: the denominator df (a number; None = asymptotic; or a function of the
    ``Directions``, called only when q > 0).  ``scale`` divides F (e.g. σ̂² for an unscaled V).
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    dirs = directions(L, vcov, beta, rhs)
    q = dirs.q
    if q == 0:
        F, ddf = np.nan, (np.nan if callable(df) else (np.inf if df is None else float(df)))
        return WaldTest(F, 0, ddf, np.nan, np.nan if L.shape[0] == 1 else None)
    F = float(np.sum(dirs.resid**2 / dirs.var) / q / scale)
    ddf = df(dirs) if callable(df) else (np.inf if df is None else float(df))
    t = None
    if L.shape[0] == 1:  # one row: the signed root of F (P is ±1)
        t = float(dirs.resid[0] * np.sign(dirs.rows[0] @ L[0]) / np.sqrt(dirs.var[0] * scale))
    return WaldTest(F, q, float(ddf), f_pvalue(F, q, ddf), t)

"""Data-dependent transforms of R formulas: ``poly(x, d)`` (orthogonal) and ``splines::ns``.

Each returns its basis and the state that reproduces it on new data (R's ``predict`` via
``makepredictcall``): poly's recurrence coefficients, ns's knots.  Numbers follow R: poly's
columns are the monic orthogonal polynomials (what R's QR of the centred powers gives)
normalised to unit length; ns is R's B-spline basis projected onto the null space of the
second derivatives at the boundary knots.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import BSpline
from scipy.linalg import qr

from ..errors import DataError

__all__ = ["poly_fit", "poly_apply", "ns_fit", "ns_apply"]


def poly_fit(x: np.ndarray, degree: int) -> dict:
    """R's ``poly(x, degree)`` coefficients (``alpha``, ``norm2``) from the training x."""
    if degree < 1 or degree != int(degree):
        raise DataError(f"poly(): degree must be a positive integer, got {degree}")
    degree = int(degree)
    if len(np.unique(x)) <= degree:
        raise DataError("poly(): 'degree' must be less than number of unique points")
    center = float(np.mean(x))
    xc = x - center
    alpha, norm2 = [], [1.0, float(len(x))]
    p_prev, p = np.zeros_like(xc), np.ones_like(xc)
    for k in range(degree):
        a = float(np.sum(xc * p * p) / norm2[-1])
        alpha.append(a)
        ratio = norm2[-1] / norm2[-2] if k > 0 else 0.0
        p_prev, p = p, (xc - a) * p - ratio * p_prev
        norm2.append(float(np.sum(p * p)))
    return {"center": center, "alpha": alpha, "norm2": norm2, "degree": degree}


def poly_apply(x: np.ndarray, st: dict) -> np.ndarray:
    """The basis at ``x`` from the training coefficients (R's three-term recurrence)."""
    xc = x - st["center"]
    alpha, norm2 = st["alpha"], st["norm2"]
    cols = []
    p_prev, p = np.zeros_like(xc), np.ones_like(xc)
    for k in range(st["degree"]):
        ratio = norm2[k + 1] / norm2[k] if k > 0 else 0.0
        p_prev, p = p, (xc - alpha[k]) * p - ratio * p_prev
        cols.append(p / np.sqrt(norm2[k + 2]))
    return np.column_stack(cols)


def _quantile7(x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    return np.quantile(x, probs)  # numpy's default "linear" is R's type 7


def ns_fit(x: np.ndarray, df=None, knots=None, intercept: bool = False, boundary=None) -> dict:
    """Knots of R's ``ns(x, df=, knots=, intercept=, Boundary.knots=)``."""
    b = np.array([np.min(x), np.max(x)] if boundary is None else boundary, dtype=float)
    if knots is None:
        if df is None:
            df = 1 + int(intercept)
        n_inner = int(df) - 1 - int(intercept)
        if n_inner < 0:
            raise DataError(f"ns(): 'df' was too small; have used {1 + int(intercept)}")
        inside = x[(x >= b[0]) & (x <= b[1])]
        probs = np.linspace(0, 1, n_inner + 2)[1:-1]
        knots = _quantile7(inside, probs) if n_inner else np.zeros(0)
    knots = np.sort(np.atleast_1d(np.asarray(knots, dtype=float)))
    return {"knots": knots, "boundary": b, "intercept": bool(intercept)}


def _design(t: np.ndarray, x: np.ndarray, deriv: int = 0) -> np.ndarray:
    nb = len(t) - 4
    out = np.empty((len(x), nb))
    for j in range(nb):
        c = np.zeros(nb)
        c[j] = 1.0
        spl = BSpline(t, c, 3, extrapolate=True)
        out[:, j] = spl.derivative(deriv)(x) if deriv else spl(x)
    return out


def ns_apply(x: np.ndarray, st: dict) -> np.ndarray:
    """The natural-spline basis at ``x`` (linear beyond the boundary knots, as R)."""
    b, knots = st["boundary"], st["knots"]
    t = np.concatenate([[b[0]] * 4, knots, [b[1]] * 4])
    const = _design(t, b, deriv=2)
    lo, hi = x < b[0], x > b[1]
    inside = ~(lo | hi)
    basis = np.empty((len(x), len(t) - 4))
    if inside.any():
        basis[inside] = _design(t, x[inside])
    for mask, edge in ((lo, b[0]), (hi, b[1])):
        if mask.any():
            e = np.array([edge])
            basis[mask] = _design(t, e) + np.outer(x[mask] - edge, _design(t, e, deriv=1)[0])
    if not st["intercept"]:
        basis, const = basis[:, 1:], const[:, 1:]
    q, _ = qr(const.T)
    return basis @ q[:, 2:]

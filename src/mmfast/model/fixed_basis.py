"""X's orthonormal basis for the LMM kernels (X = QR, the kernel works on Q) and solves with R,
by LAPACK directly: at millisecond fits numpy's and scipy's wrappers cost more than the work."""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dgeqrf, dorgqr, dtrtrs

from ..errors import FitError

__all__ = ["solve_upper", "thin_qr"]


def thin_qr(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """X = QR with Q n x p orthonormal (LAPACK directly: numpy's wrapper costs ~15 µs)."""
    n, p = X.shape
    if n < p:
        return np.linalg.qr(X)
    qr, tau, _, info = dgeqrf(X)
    R = np.where(_strictly_lower(p), 0.0, qr[:p])  # np.triu's result, without its ~5 µs mask
    Q, _, info2 = dorgqr(qr, tau, overwrite_a=True)  # qr is dgeqrf's own: no n x p copy (0.5 s at 10^7 rows)
    if info != 0 or info2 != 0:
        return np.linalg.qr(X)
    return Q, R


_LOWER_MASKS: dict = {}


def _strictly_lower(p: int) -> np.ndarray:
    """The p x p mask below the diagonal (built once per p)."""
    mask = _LOWER_MASKS.get(p)
    if mask is None:
        mask = _LOWER_MASKS.setdefault(p, np.tri(p, p, -1, dtype=bool))
    return mask


def solve_upper(R: np.ndarray, b: np.ndarray) -> np.ndarray:
    """R⁻¹b for upper-triangular R (LAPACK directly: scipy's wrapper costs ~10 µs a call)."""
    x, info = dtrtrs(R, b)
    if info != 0:
        raise FitError("singular fixed-effects factor R_X")
    return x

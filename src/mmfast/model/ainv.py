"""Diagonal blocks of A⁻¹ = (Λ'Z'WZΛ + I)⁻¹ per level, for conditional variances of b.

Solved from a CHOLMOD factor of A in chunks of unit columns (memory bounded), for LMMs and
GLMMs alike; only the p_k x p_k block of each level is kept.
"""
from __future__ import annotations

import numpy as np

from .._ext._pls import PLSKernel

__all__ = ["ainv_blocks"]


def ainv_blocks(blocks, terms, T) -> list[np.ndarray]:
    """Diagonal p_k x p_k blocks of A⁻¹ per term, (levels, p, p), from a CHOLMOD factor."""
    kern = PLSKernel(blocks)
    kern.update(T)
    chol, q = kern.factor, blocks.q
    out = []
    for t in terms:
        res = np.empty((t.nlevels, t.p, t.p))
        per = max(1, min(t.nlevels, 4_000_000 // max(q * t.p, 1)))
        for lev0 in range(0, t.nlevels, per):
            lev1 = min(t.nlevels, lev0 + per)
            cols = t.offset + np.arange(lev0 * t.p, lev1 * t.p)
            E = np.zeros((q, len(cols)), order="F")
            E[cols, np.arange(len(cols))] = 1.0
            S = chol.solve(E)[cols, :]
            k = lev1 - lev0
            S = S.reshape(k, t.p, k, t.p)
            res[lev0:lev1] = S[np.arange(k), :, np.arange(k), :]
        out.append(res)
    return out

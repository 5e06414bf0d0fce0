"""Analytic gradient of the profiled REML criterion / ML deviance with respect to θ.

With A = Λ'Z'ZΛ + I, F = Λ'Z'X, H = A⁻¹F, u, β the PLS solution and e = y - Xβ - ZΛu:

    d log|A|      = 2 tr(A⁻¹ Λ'Z'Z dΛ)                 (selected inverse on A's pattern)
    d r²          = -2 e'Z dΛ u                         (envelope theorem)
    d log|R_X'R_X| = -2 tr(Q⁻¹ (Z'X - Z'ZΛH)' dΛ H)     (REML only; Q = R_X'R_X)

so a gradient costs about two factorisations and no work over the n rows.  Used with the
blocked kernel, where the selected inverse comes from LAPACK's dpotri on the dense part.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_solve

from .._ext._pairs import gram_times
from .average_information import profiled_ai
from .criterion import profiled_deviance

__all__ = ["profiled_gradient"]


def _per_term(vec: np.ndarray, t) -> np.ndarray:
    """The rows of a q-vector/matrix belonging to term t, as (levels, p_k, ...)."""
    block = vec[t.offset : t.offset + t.q]
    return block.reshape((t.nlevels, t.p) + vec.shape[1:])


def profiled_gradient(model, theta: np.ndarray, reml: bool | None = None, hessian: bool = False):
    """(objective, gradient) at θ for a model whose kernel has ``trace_gradient``; with
    ``hessian``, (objective, gradient, average-information Hessian)."""
    reml = model.reml if reml is None else reml
    theta = np.asarray(theta, dtype=float)
    prof = model._profile_kernel(theta)  # the kernel's basis: orthonormal X, residual y
    if prof is None:
        nan = np.full(len(theta), np.nan)
        return (np.inf, nan, None) if hessian else (np.inf, nan)
    ldL2, ldRX2, r2, R, cb = prof
    kernel, blocks, terms = model.kernel, model.blocks, model.frame.terms
    n, p = model.nobs, model.frame.X.shape[1]  # rows of weight 0 do not count
    T = model.templates(theta)
    beta = np.linalg.solve(R, cb) if p else np.zeros(0)
    u = kernel.conditional_modes(beta)
    b = model._lambda_times_at(theta, u)
    zte = blocks.ZtW[:, p] - blocks.ZtW[:, :p] @ beta - gram_times(blocks, b)[:, 0]
    if reml and p:
        H = np.column_stack([kernel.solve_lt_c(j) for j in range(p)])
        K = H @ cho_solve((R, False), np.eye(p))
        LH = np.column_stack([model._lambda_times_at(theta, H[:, j]) for j in range(p)])
        Rx = blocks.ZtW[:, :p] - gram_times(blocks, LH)
    nfac = (n - p) if reml else n
    ai = profiled_ai(model, theta, r2, nfac, u, zte, R) if hessian else None
    Qt = kernel.trace_gradient(T, overwrite=True)  # last: it overwrites the factor
    grad = np.empty(len(theta))
    tofs = 0
    for k, t in enumerate(terms):
        pk = t.p
        GA = 2.0 * Qt[tofs : tofs + pk * pk].reshape(pk, pk).T
        tofs += pk * pk
        dr2 = -2.0 * np.einsum("lr,lc->rc", _per_term(zte, t), _per_term(u, t))
        G = GA + (nfac / r2) * dr2
        if reml and p:
            G = G - 2.0 * np.einsum("lcs,lrs->rc", _per_term(K, t), _per_term(Rx, t))
        sl = model.layout.slices[k]
        grad[sl] = t.param.chain(G, theta[sl])  # ∂ w.r.t. θ_k through T(θ_k)
    # the kernel's y is y / _yscale (1 but for extreme scales): log r² gains 2 log _yscale
    logr2 = np.log(r2) + 2.0 * np.log(model._yscale)
    obj = profiled_deviance(ldL2, ldRX2 + model._logdetRb2, logr2, n, p, reml, model._logw)
    return (obj, grad, ai) if hessian else (obj, grad)

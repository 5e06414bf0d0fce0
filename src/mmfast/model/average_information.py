"""Average information: a Hessian of the profiled LMM criterion for the price of a few solves.

With V = σ²(ZΛΛ'Z' + I) and the deviance D(σ², θ) = -2 log-likelihood (REML or ML), the
average of the observed and the expected information is (Gilmour, Thompson & Cullis 1995)

    AI_ab = w_a' P w_b,   w_a = (∂V/∂φ_a) P y,   φ = (σ², θ).

At the PLS solution P y = r / σ² (r the conditional residual), Λ'Z'r = u and X'r = 0, so

    w_θk = Z c_k,  c_k = D_k u + Λ D_k' Z'r      (D_k = ∂Λ/∂θ_k; a structure's from its Jacobian)
    w_σ'P w_σ = r² / σ⁶,  w_θk' P w_σ = c_k'Z'r / σ⁴,
    w_θk' P w_θl = (c_k'Z'Z c_l - h_k' M⁻¹ h_l) / σ²,  h = [Λ'Z'Z c; X'Z c],

with M the PLS matrix, whose factor the kernel holds.  Nothing touches the n rows: Z'Z c
comes from the stored cross-products.  σ² is profiled out by a Schur complement, so the
result approximates the Hessian of the criterion in θ that the optimiser sees; it is the
start Hessian of the Newton iterations for large models, in place of n + 1 gradients.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from .._ext._pairs import gram_times

__all__ = ["working_coefficients", "profiled_ai"]


def working_coefficients(model, theta: np.ndarray, u: np.ndarray, zte: np.ndarray) -> np.ndarray:
    """The q x nθ matrix of c_k = D_k u + Λ D_k' Z'r, one column per element of θ."""
    terms = model.frame.terms
    out = np.zeros((len(u), len(theta)))
    layout = model.layout
    for t, T, s in zip(terms, layout.templates(theta), layout.slices):
        ub = u[t.offset : t.offset + t.q].reshape(t.nlevels, t.p)
        eb = zte[t.offset : t.offset + t.q].reshape(t.nlevels, t.p)
        if not t.param.linear:  # a structure: D_k = I ⊗ dT/dθ_k (design.structures)
            for i, dT in enumerate(t.param.jacobian(theta[s])):
                out[t.offset : t.offset + t.q, s.start + i] = (ub @ dT.T + (eb @ dT) @ T.T).ravel()
            continue
        for i, (r, c) in enumerate(zip(t.param.rows.tolist(), t.param.cols.tolist())):
            blk = np.zeros((t.nlevels, t.p))
            blk[:, r] = ub[:, c]  # D_k u
            dte = np.zeros((t.nlevels, t.p))
            dte[:, c] = eb[:, r]  # D_k' Z'r
            blk += dte @ T.T  # Λ D_k' Z'r
            out[t.offset : t.offset + t.q, s.start + i] = blk.ravel()
    return out


def _lambda_t_times(model, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Λ' x for a q x m matrix x."""
    out = np.empty_like(x)
    for t, T in zip(model.frame.terms, model.layout.templates(theta)):
        blk = x[t.offset : t.offset + t.q].reshape(t.nlevels, t.p, -1)
        out[t.offset : t.offset + t.q] = np.einsum("lrm,rc->lcm", blk, T).reshape(t.q, -1)
    return out


def profiled_ai(model, theta, r2: float, nfac: int, u, zte, R) -> np.ndarray:
    """The average-information Hessian of the profiled criterion in θ, after an ``update`` at θ.

    ``r2`` is the penalised residual sum of squares, ``nfac`` n (ML) or n - p (REML), ``u``
    the spherical modes, ``zte`` Z'r and ``R`` the kernel-basis R_X.
    """
    kernel, blocks = model.kernel, model.blocks
    p = R.shape[0]
    s = r2 / nfac
    Cw = working_coefficients(model, theta, u, zte)
    G = gram_times(blocks, Cw)  # Z'Z c_k
    hu = _lambda_t_times(model, theta, G)
    v = kernel.solve_l(hu)
    ww = Cw.T @ G - v.T @ v
    if p:
        hx = blocks.ZtW[:, :p].T @ Cw - kernel.C[:, :p].T @ v
        t = solve_triangular(R, hx, trans="T")
        ww -= t.T @ t
    ai = ww / s
    a_ts = (Cw.T @ zte) / s**2
    a_ss = r2 / s**3
    H = ai - np.outer(a_ts, a_ts) / a_ss
    return 0.5 * (H + H.T)

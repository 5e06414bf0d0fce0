"""Batched preconditioned conjugate gradients that also yield stochastic Lanczos quadrature.

CG on S x = b with preconditioner P is CG on S̃ = P^{-1/2} S P^{-1/2} started at
P^{-1/2} b, and its step sizes α_j and ratios β_j are the Lanczos tridiagonal of S̃ for that
start (Saad 2003, §6.7; Gardner et al. 2018's mBCG): T_jj = 1/α_j + β_{j-1}/α_{j-1},
T_j,j+1 = √β_j / α_j.  A right-hand side P^{1/2} z for a Rademacher probe z therefore gives
z' log(S̃) z by Gauss quadrature on T (Ubaru, Chen & Saad 2017), and one batched run solves
the system's columns and estimates log|S̃| = log|S| - log|P| together (Kündig & Sigrist 2025).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh_tridiagonal

from ..errors import FitError

__all__ = ["KrylovResult", "pcg_lanczos", "slq_logdet", "rademacher"]


@dataclass
class KrylovResult:
    """Solutions of the solve columns, each column's CG coefficients and the steps taken."""

    X: np.ndarray  # (N, nsolve) solutions
    alphas: list  # per column, array of α_j
    betas: list  # per column, array of β_j
    steps: int


def rademacher(n: int, m: int, seed: int) -> np.ndarray:
    """m Rademacher probes of length n (±1), the same for the same seed: the common random
    numbers that keep the SLQ estimate a smooth function of θ across evaluations."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(n, m), dtype=np.int8).astype(float) * 2.0 - 1.0


def pcg_lanczos(matvec, pinv: np.ndarray, B: np.ndarray, nsolve: int, tol: float, probe_tol: float, max_steps: int):
    """PCG on S X = B for all columns of B at once (``matvec``: S times an N x k block,
    ``pinv``: the diagonal of P⁻¹).  The first ``nsolve`` columns are solved to a relative
    residual ``tol``; the others (probes) stop at ``probe_tol`` and only their coefficients
    are used.  A column stops on its own test, so the others' work is unchanged by it."""
    N, m = B.shape
    X = np.zeros((N, nsolve))
    R = np.array(B, dtype=float, order="F")
    Zr = pinv[:, None] * R
    P = Zr.copy()
    rho = np.einsum("ij,ij->j", R, Zr)
    rho0 = rho.copy()
    goal = np.where(np.arange(m) < nsolve, tol, probe_tol) ** 2 * rho0
    active = rho > goal
    alphas = [[] for _ in range(m)]
    betas = [[] for _ in range(m)]
    steps = 0
    while np.any(active) and steps < max_steps:
        idx = np.flatnonzero(active)
        Pa = P[:, idx]
        SP = matvec(Pa)
        pSp = np.einsum("ij,ij->j", Pa, SP)
        if not np.all(pSp > 0):
            raise FitError("the penalised system is not positive definite (conjugate gradients broke down)")
        alpha = rho[idx] / pSp
        sol = idx < nsolve
        if np.any(sol):
            X[:, idx[sol]] += alpha[sol] * Pa[:, sol]
        R[:, idx] -= alpha * SP
        Zr = pinv[:, None] * R[:, idx]
        rho_new = np.einsum("ij,ij->j", R[:, idx], Zr)
        beta = rho_new / rho[idx]
        P[:, idx] = Zr + beta * Pa
        rho[idx] = rho_new
        for j, a, b in zip(idx, alpha, beta):
            alphas[j].append(a)
            betas[j].append(b)
        active[idx] = rho_new > goal[idx]
        steps += 1
    if np.any(active[:nsolve]):
        raise FitError(f"conjugate gradients did not converge in {max_steps} steps (relative tolerance {tol:g})")
    return KrylovResult(X, [np.array(a) for a in alphas], [np.array(b) for b in betas], steps)


def _tridiagonal(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lanczos T (diagonal, off-diagonal) from one column's CG coefficients."""
    d = 1.0 / alpha
    d[1:] += beta[:-1] / alpha[:-1]
    e = np.sqrt(beta[:-1]) / alpha[:-1]
    return d, e


def slq_logdet(res: KrylovResult, probes: slice, n: int) -> float:
    """log|S̃| ≈ n/m Σ_z Σ_k τ_k² log λ_k over the m probe columns of ``res`` (λ, τ: Ritz
    values and first components of T's eigenvectors, Gauss quadrature of z'log(S̃)z/z'z)."""
    total, cols = 0.0, range(*probes.indices(len(res.alphas)))
    for j in cols:
        a, b = res.alphas[j], res.betas[j]
        if len(a) == 0:
            continue  # a probe already an eigenvector combination of eigenvalue 1: log 1 = 0
        d, e = _tridiagonal(a, b)
        lam, vec = eigh_tridiagonal(d, e)
        if not np.all(lam > 0):
            raise FitError("stochastic Lanczos quadrature met a non-positive Ritz value")
        total += float(vec[0] ** 2 @ np.log(lam))
    return n * total / len(cols)

"""The average-information Hessian: the formula done densely, and closeness to the true Hessian.

``profiled_ai`` works from the kernel's factor and the stored cross-products; here the same
quantity is built from its definition with dense n x n matrices (V, P, the working vectors
w = ∂V/∂φ P y, AI = W'PW, σ² profiled out by a Schur complement) on small data sets.  At a
REML optimum the average information is the Hessian of the criterion up to the difference of
observed and expected information, so it must be close to a finite-difference Hessian.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import mmfast
from mmfast._ext._blocked import BlockedKernel
from mmfast._ext._pairs import gram_times
from mmfast._ext._nested import NestedKernel
from mmfast.model.average_information import profiled_ai
from reference_cases import case_data, case_fit_kwargs, load_reference

# ex1 is unbalanced: there the fixed-effects part of AI (X'V⁻¹w ≠ 0) does not vanish
CASES = ["sleepstudy_slope_reml", "penicillin_reml", "pastes_reml", "orthodont_reml", "ex1_ml"]


def _fit(case):
    ref = load_reference(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.lmer(ref["formula"], case_data(ref), **case_fit_kwargs(ref))


def _kernel_ai(m, theta):
    """profiled_ai at θ with the pieces the gradient code hands it."""
    ldL2, ldRX2, r2, R, cb = m._profile_kernel(theta)
    p = m.frame.X.shape[1]
    beta = np.linalg.solve(R, cb) if p else np.zeros(0)
    u = m.kernel.conditional_modes(beta)
    b = m._lambda_times_at(theta, u)
    zte = m.blocks.ZtW[:, p] - m.blocks.ZtW[:, :p] @ beta - gram_times(m.blocks, b)[:, 0]
    n = m.frame.X.shape[0]
    return profiled_ai(m, theta, r2, (n - p) if m.reml else n, u, zte, R)


def _lambda(m, theta):
    """Λθ as a dense q x q matrix, term by term and level by level."""
    blocks = []
    for t, T in zip(m.frame.terms, m.layout.templates(theta)):
        blocks.append(sp.kron(sp.eye(t.nlevels), T))
    return sp.block_diag(blocks).toarray()


def _dense_ai(m, theta):
    """AI from its definition, with V = σ²(ZΛΛ'Z' + I) at σ² = its profiled value."""
    X, y = m.frame.X, m.frame.y
    Z = m.Z.toarray()
    n, p = X.shape
    L = _lambda(m, theta)
    V1 = Z @ L @ L.T @ Z.T + np.eye(n)  # V / σ²
    Vi1 = np.linalg.inv(V1)
    XtVi = X.T @ Vi1
    P1 = Vi1 - XtVi.T @ np.linalg.solve(XtVi @ X, XtVi)  # σ² P
    s2 = float(y @ P1 @ y) / ((n - p) if m.reml else n)
    P = P1 / s2
    Py = P @ y
    dV = [V1]  # ∂V/∂σ² = V/σ²
    for k in range(len(theta)):
        e = np.zeros(len(theta))
        e[k] = 1.0
        D = _lambda(m, e)  # ∂Λ/∂θ_k (Λ is linear in θ)
        dV.append(s2 * Z @ (D @ L.T + L @ D.T) @ Z.T)
    W = np.column_stack([dVk @ Py for dVk in dV])
    A = W.T @ P @ W
    return A[1:, 1:] - np.outer(A[1:, 0], A[0, 1:]) / A[0, 0]


@pytest.mark.parametrize("case", CASES)
def test_ai_matches_its_dense_definition(case):
    m = _fit(case)
    assert isinstance(m.kernel, (BlockedKernel, NestedKernel))  # Pastes' batch/cask: the tree kernel
    rng = np.random.default_rng(1)
    for theta in (m.theta, m.theta * (1.0 + 0.3 * rng.uniform(-1, 1, len(m.theta)))):
        theta = np.where(m.theta_lower == 0, np.abs(theta) + 0.05, theta)
        np.testing.assert_allclose(
            _kernel_ai(m, theta), _dense_ai(m, theta), rtol=1e-7, atol=1e-9 * np.abs(_dense_ai(m, theta)).max()
        )


@pytest.mark.parametrize("case", ["sleepstudy_slope_reml", "penicillin_reml"])
def test_ai_near_the_hessian_at_the_reml_optimum(case):
    m = _fit(case)
    th, k = m.theta, len(m.theta)
    h = 1e-4
    H = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * h, np.eye(k)[j] * h
            H[i, j] = (
                m.objective(th + ei + ej)
                - m.objective(th + ei - ej)
                - m.objective(th - ei + ej)
                + m.objective(th - ei - ej)
            ) / (4 * h * h)
    np.testing.assert_allclose(_kernel_ai(m, th), H, rtol=2e-3, atol=1e-3 * np.abs(H).max())

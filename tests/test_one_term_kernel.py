"""The kernel interface for one term (``model.one_term``) and the trace tensors read from the
fitted kernel (``model.traces``), against dense algebra formed here from Z and the templates
(numpy's solve, inverse and Cholesky: a derivation independent of the kernels)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mmfast
from mmfast.datasets import load
from mmfast.inference.structure import VarianceStructure
from mmfast.model.criterion import profiled_deviance
from mmfast.model.kernel import Kernel, factorization_counts
from mmfast.model.one_term import OneTermKernel
from mmfast.pipeline.scalar import _prepare, evaluate, scalar_design


def _fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.lmer(formula, data, **kw)


def _dense_parts(m):
    """Dense Z, Λ and A = Λ'Z'ZΛ + I of a fitted LMM."""
    Z = m.Z.toarray()
    Lam = np.zeros((Z.shape[1], Z.shape[1]))
    for t, T in zip(m.frame.terms, m.layout.templates(m.theta)):
        Lam[t.offset : t.offset + t.q, t.offset : t.offset + t.q] = np.kron(np.eye(t.nlevels), T)
    return Z, Lam, Lam.T @ Z.T @ Z @ Lam + np.eye(Z.shape[1])


def test_one_term_kernel_against_dense_algebra():
    m = _fit("Reaction ~ Days + (Days | Subject)", load("sleepstudy"))
    kern = OneTermKernel.of_blocks(m.blocks)
    assert isinstance(kern, Kernel)
    T = m.templates(m.theta)
    assert not kern.at(T) and kern.factor_at(T) is kern and kern.at(T)
    Z, Lam, A = _dense_parts(m)
    B = np.random.default_rng(3).standard_normal((A.shape[0], 4))
    np.testing.assert_allclose(kern.solve(B), np.linalg.solve(A, B), rtol=1e-11, atol=1e-13)
    assert kern.logdet == pytest.approx(np.linalg.slogdet(A)[1], rel=1e-13)
    Ainv = np.linalg.inv(A)
    blk = kern.selinv_blocks(m.frame.terms)[0]
    for lev in range(0, 18, 5):
        np.testing.assert_allclose(blk[lev], Ainv[2 * lev : 2 * lev + 2, 2 * lev : 2 * lev + 2], rtol=1e-11)
    # M = W'W - W'ZΛA⁻¹Λ'Z'W for the kernel's W = [Q, OLS residual of y]
    W = np.column_stack([m._Q, m._yres])
    ld, M = kern.update(T)
    ZLW = Lam.T @ Z.T @ W
    np.testing.assert_allclose(M, W.T @ W - ZLW.T @ np.linalg.solve(A, ZLW), rtol=1e-10, atol=1e-10)
    # the criterion it gives is the fit's (lme4's REML formula, ``criterion.profiled_deviance``)
    ld, ldx, r2 = kern.profiled(T)
    f = profiled_deviance(ld, ldx + m._logdetRb2, np.log(r2) + 2 * np.log(m._yscale), m.nobs, 2, True, m._logw)
    assert f == pytest.approx(m.objective(m.theta), rel=1e-12)
    beta = np.array([0.5, -1.0])
    u = np.linalg.solve(A, ZLW[:, 2] - ZLW[:, :2] @ beta)
    np.testing.assert_allclose(kern.conditional_modes(beta), u, rtol=1e-10, atol=1e-12)
    kern.reweight(m.blocks.V, m.blocks.ZtW, m.blocks.WtW)
    assert not kern.at(T)


def test_scalar_design_is_the_one_term_kernel():
    """The batched closed form of ``pipeline.scalar`` and the kernel interface give the same
    REML criterion for each response (p = 1: A_l = 1 + θ² m_l)."""
    d = load("many_small")
    g = d[d["gene"].isin(d["gene"].unique()[:3])]
    first = g[g["gene"] == g["gene"].iloc[0]]
    X = np.column_stack([np.ones(len(first)), (first["group"].astype(str) == "treat").to_numpy(float)])
    codes = first["animal"].astype("category").cat.codes.to_numpy()
    des = scalar_design(X, np.ones(len(first)), codes, int(codes.max()) + 1, reml=True)
    Y = np.stack([g.loc[g["gene"] == k, "y"].to_numpy(float) for k in g["gene"].unique()])
    E = Y - (Y @ des.Q) @ des.Q.T
    t = np.array([0.3, 1.7, 0.05])
    ev = evaluate(des, _prepare(des, E), np.sum(E * E, axis=1), t)
    for j in range(3):
        ld, ldx, r2 = des.kernel(Y[j]).profiled(np.array([np.sqrt(t[j])]))
        f = profiled_deviance(ld, ldx + des.logdetRb2, np.log(r2), des.n, des.p, True)
        assert f == pytest.approx(ev["f"][j], rel=1e-12)


def test_glmm_one_term_condvar_through_the_interface():
    """A one-term GLMM's conditional variances: the engine's factors read by ``OneTermKernel``,
    equal to σ²λ² diag((Λ'Z'WZΛ + I)⁻¹) formed densely at the converged weights."""
    d = load("cbpp")
    d["period"] = d["period"].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d)
    lam = m.theta[0]
    Z = m.Z.toarray() * lam * np.sqrt(m.engine.weights_)[:, None]
    Ainv = np.linalg.inv(Z.T @ Z + np.eye(Z.shape[1]))
    np.testing.assert_allclose(m.condvar()[0][:, 0, 0], lam**2 * np.diag(Ainv), rtol=1e-9)


def _dense_tensors(m):
    """N and dg of M = Z'V⁻¹Z = Z'Z - K'A⁻¹K (K = Λ'Z'Z) from their definitions."""
    Z, Lam, A = _dense_parts(m)
    K = Lam.T @ Z.T @ Z
    M = Z.T @ Z - K.T @ np.linalg.solve(A, K)
    terms = m.frame.terms
    N = [[None] * len(terms) for _ in terms]
    dg = []
    for k, tk in enumerate(terms):
        rk = slice(tk.offset, tk.offset + tk.q)
        own = M[rk, rk].reshape(tk.nlevels, tk.p, tk.nlevels, tk.p)
        dg.append(np.einsum("lalb->ab", own))
        for j, tm in enumerate(terms):
            sub = M[rk, tm.offset : tm.offset + tm.q].reshape(tk.nlevels, tk.p, tm.nlevels, tm.p)
            N[k][j] = np.einsum("lanc,lbnd->abcd", sub, sub)
    return N, dg


@pytest.mark.parametrize(
    "formula,name",
    [
        ("strength ~ 1 + (1 | batch/cask)", "Pastes"),  # nested: components by layout
        ("score ~ Machine + (1 | Worker) + (1 | Worker:Machine)", "Machines"),
        ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
        ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),  # one crossed component
    ],
)
@pytest.mark.parametrize("how", ["dense", "chunked"])
def test_trace_tensors_from_the_fitted_kernel(formula, name, how):
    m = _fit(formula, load(name))
    vs = VarianceStructure(m, trace_method=how)
    before = factorization_counts()
    N, dg = vs.trace_tensors()
    assert factorization_counts() == before  # read from the fitted factor: nothing refactored
    N0, dg0 = _dense_tensors(m)
    scale = max(np.max(np.abs(x)) for row in N0 for x in row)
    for row, row0 in zip(N, N0):
        for x, x0 in zip(row, row0):
            np.testing.assert_allclose(x, x0, rtol=1e-9, atol=1e-11 * scale)
    for x, x0 in zip(dg, dg0):
        np.testing.assert_allclose(x, x0, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("reml", [True, False])
def test_random_intercept_refitter_is_the_one_term_kernel(reml):
    """``resample.intercept``'s closed form (sums over levels, κ_g = s_g / (1 + θ² s_g)) and the
    kernel interface give the same profiled criterion log|A| + ν log r² (+ log|X'V⁻¹X|)."""
    from mmfast.resample.intercept import RandomInterceptLMM

    m = _fit("Reaction ~ Days + (1 | Subject)", load("sleepstudy"), reml=reml)
    ri = RandomInterceptLMM(m)
    X = m.frame.X
    W, A = ri.sums(X)
    for th in (0.2, m.theta[0], 3.0):
        ld, ldx, r2 = ri.kernel(X).profiled(np.array([th]))
        nu = m.nobs - 2 if reml else m.nobs
        assert ld + nu * np.log(r2) + (ldx if reml else 0.0) == pytest.approx(
            ri._state(th, W, A, full=False).D, rel=1e-12
        )

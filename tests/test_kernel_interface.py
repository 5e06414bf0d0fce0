"""One kernel interface: both PLS kernels satisfy it, and inference reads the fitted factor.

``solve`` and ``selinv_blocks`` are checked against A = Λ'Z'ZΛ + I formed densely from Z and
the templates (numpy's solve and inverse: a derivation independent of the kernels).  After a
fit, summary() (Satterthwaite), Kenward-Roger and Satterthwaite anova and the conditional
variances add no symbolic analysis and no factorisation of A: the process-wide counters of
the kernels do not move, and the Schur route of the trace tensors factors nothing itself.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from mmfast._ext._blocked import BlockedKernel
from mmfast._ext._pls import PLSKernel

import mmfast
from mmfast.datasets import load
from mmfast.inference import schur
from mmfast.model.kernel import Kernel, factorization_counts

SLEEP = "Reaction ~ Days + (Days | Subject)"
PENICILLIN = "diameter ~ 1 + (1 | plate) + (1 | sample)"
INSTEVAL = "y ~ service + (1 | s) + (1 | d) + (1 | dept)"


def _fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.lmer(formula, data, **kw)


def _insteval_like():
    """InstEval's crossed students x lecturers x departments, on its first 400 students."""
    d = load("InstEval")
    return d[d["s"].astype(int) < 400].copy()


def _dense_A(m):
    Z = m.Z.toarray()
    Lam = np.zeros((Z.shape[1], Z.shape[1]))
    for t, T in zip(m.frame.terms, m.layout.templates(m.theta)):
        Lam[t.offset : t.offset + t.q, t.offset : t.offset + t.q] = np.kron(np.eye(t.nlevels), T)
    return Lam.T @ Z.T @ Z @ Lam + np.eye(Z.shape[1])


@pytest.mark.parametrize("formula,name", [(SLEEP, "sleepstudy"), (PENICILLIN, "Penicillin")])
@pytest.mark.parametrize("cls", [PLSKernel, BlockedKernel])
def test_solve_logdet_selinv_against_dense_algebra(formula, name, cls):
    m = _fit(formula, load(name))
    kern = cls(m.blocks)
    assert isinstance(kern, Kernel)
    T = m.templates(m.theta)
    assert not kern.at(T)
    assert kern.factor_at(T) is kern and kern.at(T)
    A = _dense_A(m)
    rng = np.random.default_rng(1)
    B = rng.standard_normal((A.shape[0], 3))
    np.testing.assert_allclose(kern.solve(B), np.linalg.solve(A, B), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(kern.solve(B[:, 0]), np.linalg.solve(A, B[:, 0]), rtol=1e-10, atol=1e-12)
    assert kern.logdet == pytest.approx(np.linalg.slogdet(A)[1], rel=1e-12)
    Ainv = np.linalg.inv(A)
    for t, blk in zip(m.frame.terms, kern.selinv_blocks(m.frame.terms)):
        assert blk.shape == (t.nlevels, t.p, t.p)
        for lev in (0, t.nlevels - 1):
            r = slice(t.offset + lev * t.p, t.offset + (lev + 1) * t.p)
            np.testing.assert_allclose(blk[lev], Ainv[r, r], rtol=1e-10, atol=1e-13)
    kern.reweight(m.blocks.V, m.blocks.ZtW, m.blocks.WtW)  # new cross-products: nothing held
    assert not kern.at(T)


def _no_dense_schur_factor(*args, **kwargs):
    raise AssertionError("the Schur route factored S itself instead of reading the kernel")


@pytest.mark.parametrize("case", ["sleepstudy", "insteval"])
def test_inference_adds_no_factorisation(case, monkeypatch):
    if case == "sleepstudy":
        m = _fit(SLEEP, load("sleepstudy"))
    else:
        m = _fit(INSTEVAL, _insteval_like())
        assert isinstance(m.kernel, BlockedKernel) and m.kernel.dense_size > 150
    monkeypatch.setattr(schur, "cho_factor", _no_dense_schur_factor)
    # the fit's last evaluation may be elsewhere (the check at lme4's start): then the first
    # reader refactors once at θ̂ (no analysis), and nothing else factors A again
    deferred = 0 if m.kernel.at(m.templates(m.theta)) else 1
    before = factorization_counts()
    str(m.summary())
    m.anova(ddf="Kenward-Roger")
    m.anova()
    m.condvar()
    assert factorization_counts() == (before[0], before[1] + deferred)
    assert m.kernel.at(m.templates(m.theta))


def test_moved_kernel_is_refactored_not_reanalysed():
    m = _fit(PENICILLIN, load("Penicillin"))
    cv = [c.copy() for c in m.condvar()]
    m.objective(m.theta * 1.5)  # moves the kernel's factor away from the fit
    before = factorization_counts()
    again = m._ainv_diag_blocks()
    after = factorization_counts()
    assert after[0] == before[0] and after[1] == before[1] + 1
    again = [m.sigma**2 * np.einsum("ij,ljk,mk->lim", T, b, T) for T, b in zip(m.layout.templates(m.theta), again)]
    for a, b in zip(cv, again):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_glmm_conditional_variances_refactor_the_engines_kernel():
    """Multi-term GLMM: A⁻¹'s blocks from the PIRLS engine's own kernel (one numeric refactor at
    the converged weights, no analysis), equal to the dense inverse of Λ'Z'WZΛ + I."""
    d = load("cbpp")
    d["obs"] = np.arange(len(d)).astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)", d, "binomial")
    before = factorization_counts()
    cv = m.condvar()
    after = factorization_counts()
    assert after == (before[0], before[1] + 1)
    Z = m.Z.toarray()
    lam = np.concatenate([np.full(t.q, T[0, 0]) for t, T in zip(m.frame.terms, m.layout.templates(m.theta))])
    ZL = Z * lam * np.sqrt(m.engine.weights_)[:, None]
    Ainv = np.linalg.inv(ZL.T @ ZL + np.eye(Z.shape[1]))
    for t, c in zip(m.frame.terms, cv):
        l2 = lam[t.offset] ** 2
        np.testing.assert_allclose(c[:, 0, 0], l2 * np.diag(Ainv)[t.offset : t.offset + t.q], rtol=1e-10)

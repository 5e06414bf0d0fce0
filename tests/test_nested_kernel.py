"""The tree kernel of nested scalar terms (``_ext._nested``, issue 19).

Its factor, solves, selected inverse and log-determinant gradient are checked against
A = Λ'Z'ZΛ + I formed densely from Z and the templates (numpy: a derivation independent of
every kernel) and against a central difference of its own log|A|; whole fits on the tree
kernel (forced by ``LmmControl(nested_min_schur=1)``) against lme4's numbers in the committed
reference JSON; and the selection: crossed or vector terms are not a chain.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast._ext._blocked import BlockedKernel
from mmfast._ext._nested import NestedKernel, nested_chain
from mmfast.model.control import LmmControl
from reference_cases import case_data, case_fit_kwargs, load_reference

TREE = LmmControl(nested_min_schur=1)
NO_TREE = LmmControl(nested_min_schur=10**9)


def _fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.lmer(formula, data, **kw)


def _three_levels(seed=3):
    """Unbalanced subjects (1-5 rows) within sites (7 subjects) within regions (5 sites)."""
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(140), rng.integers(1, 6, 140))
    site, n = subj // 7, len(subj)
    region = site // 5
    x = rng.normal(size=n)
    y = (
        1
        + x
        + rng.normal(0, 0.7, region.max() + 1)[region]
        + rng.normal(0, 0.5, site.max() + 1)[site]
        + rng.normal(0, 1, subj.max() + 1)[subj]
        + rng.normal(size=n)
    )
    w = rng.uniform(0.5, 2.0, n)
    return pd.DataFrame(dict(y=y, x=x, w=w, subj=subj.astype(str), site=site.astype(str), region=region.astype(str)))


def _weighted_Z(m):
    Z = m.Z.toarray()
    w = m.frame.weights
    return Z if w is None else Z * np.sqrt(np.asarray(w))[:, None]


def _dense_A(m, theta):
    Z = _weighted_Z(m)
    lam = np.concatenate([np.full(t.q, th) for t, th in zip(m.frame.terms, theta)])
    ZL = Z * lam
    return ZL.T @ ZL + np.eye(Z.shape[1])


@pytest.mark.parametrize("weighted", [False, True])
def test_tree_factor_solve_selinv_against_dense_algebra(weighted):
    d = _three_levels()
    m = _fit(
        "y ~ x + (1|region) + (1|site) + (1|subj)", d, reml=False, control=TREE, weights=d["w"] if weighted else None
    )
    assert isinstance(m.kernel, NestedKernel)
    k = m.kernel
    rng = np.random.default_rng(0)
    for theta in [m.theta, m.theta * 1.7 + 0.1, np.array([0.0, 0.5, 2.0])]:
        A = _dense_A(m, theta)
        T = m.templates(theta)
        ld, M = k.update(T)
        assert ld == pytest.approx(np.linalg.slogdet(A)[1], rel=1e-12)
        B = rng.normal(size=(k.q, 3))
        np.testing.assert_allclose(k.solve(B), np.linalg.solve(A, B), rtol=1e-9, atol=1e-12)
        Ainv = np.linalg.inv(A)
        sel = np.concatenate([b.ravel() for b in k.selinv_blocks(m.frame.terms)])
        np.testing.assert_allclose(sel, np.diag(Ainv), rtol=1e-10)
        # d log|A| / dθ_k = tr(A⁻¹ dA/dθ_k), dA/dθ_k = E_k G Λ + Λ G E_k (G = Z'WZ)
        Z = _weighted_Z(m)
        lam = np.concatenate([np.full(t.q, th) for t, th in zip(m.frame.terms, theta)])
        G = Z.T @ Z
        for j, t in enumerate(m.frame.terms):
            E = np.zeros(k.q)
            E[t.offset : t.offset + t.q] = 1.0
            dA = (E[:, None] * G) * lam + lam[:, None] * (G * E)
            assert 2 * k.trace_gradient(T)[j] == pytest.approx(np.trace(Ainv @ dA), rel=1e-9, abs=1e-9)


def test_tree_fit_equals_blocked_fit():
    d = _three_levels()
    f = "y ~ x + (1|region) + (1|site) + (1|subj)"
    tree, blocked = _fit(f, d, control=TREE), _fit(f, d, control=NO_TREE)
    assert isinstance(blocked.kernel, BlockedKernel)
    np.testing.assert_allclose(tree.theta, blocked.theta, rtol=2e-5)
    assert tree.objective_value == pytest.approx(blocked.objective_value, abs=1e-7)
    th = blocked.theta
    assert tree.objective(th) == pytest.approx(blocked.objective(th), rel=1e-13)


@pytest.mark.parametrize("case", ["pastes_reml", "ex3_nested_ml"])
def test_tree_kernel_fit_matches_lme4(case):
    ref = load_reference(case)
    m = _fit(ref["formula"], case_data(ref), control=TREE, **case_fit_kwargs(ref))
    assert isinstance(m.kernel, NestedKernel)
    res = ref["results"]
    np.testing.assert_allclose(m.theta, res["tight_refit"]["theta"], rtol=2e-5)
    assert m.loglik == pytest.approx(res["logLik"], abs=1e-6)
    np.testing.assert_allclose(m.beta, res["fixef"]["estimate"], rtol=1e-6)
    s = m.summary()
    np.testing.assert_allclose(s.coefficients["df"], res["satterthwaite"]["df"], rtol=1e-4)


def test_nested_chain_recognises_only_chains_of_scalar_terms():
    d = _three_levels()
    assert nested_chain(_fit("y ~ x + (1|site) + (1|subj)", d).blocks) is not None
    crossed = d.assign(cross=(np.arange(len(d)) % 4).astype(str))
    assert nested_chain(_fit("y ~ x + (1|cross) + (1|subj)", crossed).blocks) is None
    assert nested_chain(_fit("y ~ x + (1|site) + (x|subj)", d).blocks) is None  # a vector term
    sibling = d.assign(site2=(d["subj"].astype(int) // 10).astype(str))  # subj in both, crossed
    assert nested_chain(_fit("y ~ x + (1|site) + (1|site2) + (1|subj)", sibling).blocks) is None


def test_make_kernel_takes_the_tree_for_many_nested_groups():
    d = _three_levels()
    m = _fit("y ~ x + (1|site) + (1|subj)", d, control=LmmControl(nested_min_schur=20))  # 20 sites
    assert isinstance(m.kernel, NestedKernel)
    m = _fit("y ~ x + (1|site) + (1|subj)", d, control=LmmControl(nested_min_schur=21))
    assert isinstance(m.kernel, BlockedKernel)


def test_glmm_on_the_tree_kernel_has_the_blocked_kernels_laplace_deviance(monkeypatch):
    """GLMMs keep the blocked kernel (analytic Laplace gradient) up to ``dense_schur_max``;
    forced onto the tree kernel, PIRLS gives the same Laplace deviance at the same (θ, β)
    (its fit, without that gradient, ended 8e-5 higher here: why GLMMs keep the blocked one)."""
    from mmfast.model import pirls_kernel

    rng = np.random.default_rng(5)
    subj = np.repeat(np.arange(240), 4)
    site = subj // 4
    x = rng.normal(size=len(subj))
    eta = -0.3 + 0.5 * x + rng.normal(0, 0.6, 60)[site // 4] + rng.normal(0, 0.8, 240)[subj]
    d = pd.DataFrame(dict(y=(rng.random(len(x)) < 1 / (1 + np.exp(-eta))).astype(int), x=x))
    d["subj"], d["site"] = subj.astype(str), (site // 4).astype(str)
    f = "y ~ x + (1 | site) + (1 | subj)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blocked = mmfast.glmer(f, d, family="binomial")
        assert isinstance(blocked.engine.kernel.kj, BlockedKernel)
        monkeypatch.setattr(pirls_kernel, "KERNELS", TREE)
        tree = mmfast.glmer(f, d, family="binomial")
    assert isinstance(tree.engine.kernel.kj, NestedKernel)
    th, b = blocked.theta, blocked.beta
    assert tree.deviance_at(th, b) == pytest.approx(blocked.deviance_at(th, b), rel=1e-10)


def test_inference_on_the_tree_kernel_reads_the_fitted_factor():
    """After a fit, summary (Satterthwaite) and the conditional variances read the tree factor
    the fit left (at most one refactorisation at θ̂, when the fit's last evaluation was
    elsewhere); Kenward-Roger (on the REML refit, also on the tree kernel) gives pbkrtest's
    standard errors and df."""
    from mmfast.model.kernel import factorization_counts

    ref = load_reference("ex3_nested_ml")
    m = _fit(ref["formula"], case_data(ref), control=TREE, **case_fit_kwargs(ref))
    deferred = 0 if m.kernel.at(m.templates(m.theta)) else 1
    before = factorization_counts()
    str(m.summary())
    cv = m.condvar()
    assert factorization_counts() == (before[0], before[1] + deferred)
    assert [c.shape for c in cv] == [(1244, 1, 1), (11, 1, 1)]
    kr = m.summary(ddf="kenward-roger").coefficients
    np.testing.assert_allclose(kr["Std. Error"], ref["results"]["kenward_roger"]["se"], rtol=1e-4)
    np.testing.assert_allclose(kr["df"], ref["results"]["kenward_roger"]["df"], rtol=1e-3)

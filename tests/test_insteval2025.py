"""The 2025 InstEval model of Bates, Alday & Kokandakar (issue 19):
``y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept) + (0 + service | dept)``, ML.

Against lme4's tight optimum (tests/oracle/insteval2025.R: the default fit, then BOBYQA to
rhoend 1e-10 from it).  The intercept and service's two indicators of ``dept`` are collinear
(1 = service0 + service1), so only the per-department covariance of the two service means,
σ²(θ_dept² J + T T'), is identified, not θ itself: that is compared.  The fit runs on the
blocked kernel with a scalar first term and a 2 x 2 term in the dense part; that kernel path
is checked against CHOLMOD and dense algebra on the first 120 students.
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import mmfast
from mmfast._ext._blocked import BlockedKernel
from mmfast._ext._pls import PLSKernel
from mmfast.datasets import load
from mmfast.model.frame import model_frame
from mmfast.model.gradient import profiled_gradient
from mmfast.model.lmm import LinearMixedModel
from mmfast.model.start import moment_start

with gzip.open(Path(__file__).resolve().parent / "reference" / "insteval2025.json.gz", "rt") as fh:
    REF = json.load(fh)
FORMULA = REF["formula"]


def _data(students=None):
    d = load("InstEval")[["y", "service", "s", "d", "dept"]]
    if students is not None:
        d = d[d["s"].astype(int) < students]
    d = d.copy()
    for c in ["s", "d", "dept"]:
        d[c] = d[c].astype(int).astype(str).astype("category")
    d["service"] = d["service"].astype(int).astype(str).astype("category")
    return d


def _service_cov(theta, sigma=1.0):
    """Per department, the covariance of the effects on service 0 and 1 (intercept + column)."""
    t = np.array([[theta[3], 0.0], [theta[4], theta[5]]])
    return sigma**2 * (theta[2] ** 2 * np.ones((2, 2)) + t @ t.T)


@pytest.fixture(scope="module")
def fit():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = mmfast.lmer(FORMULA, _data(), reml=False)
    return m, caught


def test_reaches_lme4_tight_optimum(fit):
    m, caught = fit
    assert not caught  # no convergence or singularity warning (lme4's default fit warns)
    assert m.loglik >= REF["logLik"] - 1e-7
    assert m.loglik == pytest.approx(REF["logLik"], abs=1e-6)
    np.testing.assert_allclose(m.beta, REF["fixef"], rtol=1e-6)
    assert m.sigma == pytest.approx(REF["sigma"], rel=1e-6)
    np.testing.assert_allclose(m.theta[:2], REF["theta"][:2], rtol=1e-5)
    ours, lme4 = _service_cov(m.theta, m.sigma), _service_cov(REF["theta"], REF["sigma"])
    np.testing.assert_allclose(ours, lme4, rtol=1e-3, atol=1e-3 * np.abs(lme4).max())
    np.testing.assert_allclose(m.vcov_array, REF["vcov"], rtol=1e-4)


def test_moment_start_splits_the_collinear_department_terms(fit):
    """(1 | dept) + (0 + service | dept) have collinear columns: the moment start estimates the
    covariance of the service means and splits it between the two terms.  Its implied service
    covariance is off the optimum's by less than the optimum's own size (lme4's start, θ = 1,
    by ~250 times it), and Newton steps from it settle in a few gradients (65 from θ = 1 for
    the department terms)."""
    m, _ = fit
    th0 = moment_start(LinearMixedModel(m.frame, reml=False))
    assert th0 is not None
    target = _service_cov(m.theta)
    assert np.linalg.norm(_service_cov(th0) - target) < np.linalg.norm(target)
    assert np.linalg.norm(_service_cov(m.theta_start) - target) > 100 * np.linalg.norm(target)
    assert m.optinfo["start"] == "moment" and m.optinfo["evaluations"] <= 12


@pytest.fixture(scope="module")
def small():
    """The first 120 students: scalar first term (s), then d, dept and the 2 x 2 term."""
    m = LinearMixedModel(model_frame(FORMULA, _data(120)), reml=False)
    assert m.frame.terms[0].p == 1 and any(t.p == 2 for t in m.frame.terms)
    return m


def _points(m):
    rng = np.random.default_rng(7)
    base = np.array([0.3, 0.4, 0.05, 0.2, -0.1, 0.15])
    return [base * rng.uniform(0.5, 1.5, 6) for _ in range(3)]


def test_blocked_kernel_with_vector_terms_matches_cholmod(small):
    sparse, blocked = PLSKernel(small.blocks), BlockedKernel(small.blocks)
    assert blocked.dense_size > 0
    for theta in _points(small):
        T = small.templates(theta)
        ld_s, M_s = sparse.update(T)
        ld_b, M_b = blocked.update(T)
        np.testing.assert_allclose(ld_b, ld_s, rtol=1e-11)
        np.testing.assert_allclose(M_b, M_s, rtol=1e-9, atol=1e-9 * np.abs(M_s).max())
        beta = np.linalg.solve(M_s[:-1, :-1], M_s[:-1, -1])
        np.testing.assert_allclose(
            blocked.conditional_modes(beta), sparse.conditional_modes(beta), rtol=1e-7, atol=1e-9
        )


def test_selected_inverse_with_vector_terms_against_dense_algebra(small):
    theta = _points(small)[0]
    Z = small.Z.toarray()
    Lam = np.zeros((Z.shape[1], Z.shape[1]))
    for t, T in zip(small.frame.terms, small.layout.templates(theta)):
        Lam[t.offset : t.offset + t.q, t.offset : t.offset + t.q] = np.kron(np.eye(t.nlevels), T)
    A = Lam.T @ Z.T @ Z @ Lam + np.eye(Z.shape[1])
    kern = BlockedKernel(small.blocks)
    T = small.templates(theta)
    kern.update(T)
    assert kern.logdet == pytest.approx(np.linalg.slogdet(A)[1], rel=1e-12)
    # d log|A| / dT_k[r, c] = 2 tr(A⁻¹ Λ'Z'Z ∂Λ), ∂Λ = I ⊗ E_rc on term k's block
    AG = np.linalg.solve(A, Lam.T @ Z.T @ Z)
    Q = kern.trace_gradient(T)
    ofs = 0
    for t in small.frame.terms:
        lev = t.offset + np.arange(t.nlevels) * t.p
        for r in range(t.p):
            for c in range(r + 1):
                exact = 2.0 * AG[lev + c, lev + r].sum()
                assert 2.0 * Q[ofs + c * t.p + r] == pytest.approx(exact, rel=1e-9, abs=1e-9)
        ofs += t.p * t.p


def test_analytic_gradient_is_the_derivative(small):
    for theta in _points(small):
        _, g = profiled_gradient(small, theta)
        h = 1e-4 * np.maximum(np.abs(theta), 0.1)
        fd = np.empty(len(theta))
        for i in range(len(theta)):
            e = np.zeros(len(theta))
            e[i] = h[i]
            d1 = (small.objective(theta + e) - small.objective(theta - e)) / (2 * h[i])
            d2 = (small.objective(theta + 2 * e) - small.objective(theta - 2 * e)) / (4 * h[i])
            fd[i] = (4 * d1 - d2) / 3
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(fd).max()))

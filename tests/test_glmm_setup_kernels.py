"""The GLMM set-up and Hessian-check kernels moved to Cython for millisecond fits (issue 15):
each gives what its definition says, derived independently here (scipy's binomial pmf, the
generic Python route through an engine wrapper), to the bit where the same operations run."""

import numpy as np
import pytest
from scipy import special, stats

import mmfast
from mmfast import datasets
from mmfast._ext._glm import binomial_start, binomial_terms, mean_at_bounds
from mmfast.families import Binomial, Poisson
from mmfast.model.pirls import ThetaScaled, fd_hessian, make_response


@pytest.fixture(scope="module")
def cbpp_fit():
    d = datasets.load("cbpp").copy()
    d["incid_p"] = d["incidence"] / d["size"]
    return mmfast.glmer("incid_p ~ period + (1 | herd)", d, family="binomial", weights="size")


def test_binomial_terms_are_minus_two_log_binomial_pmf():
    """a log μ + b log(1 - μ) terms and c = -2 log choose(m, k): -2 Σ log Binom(k | m, μ)."""
    rng = np.random.default_rng(3)
    m = rng.integers(1, 40, 50).astype(float)
    k = np.floor(rng.random(50) * (m + 1))
    y, mu = k / m, rng.uniform(0.05, 0.95, 50)
    a, b, c, exact, fractional = binomial_terms(y, m, m)
    m2ll = np.sum(c - 2.0 * a * np.log(mu) - 2.0 * b * np.log1p(-mu))
    assert m2ll == pytest.approx(-2.0 * np.sum(stats.binom.logpmf(k, m, mu)), rel=1e-12)
    assert exact and fractional
    lchoose = special.gammaln(m + 1) - special.gammaln(k + 1) - special.gammaln(m - k + 1)
    assert np.array_equal(c, -2.0 * 1.0 * lchoose)  # coef = wt / m = 1: numpy's operations, same bits
    _, _, _, exact, _ = binomial_terms(y + 0.01 / m, m, m)  # m y no longer integral
    assert not exact
    a, b, c, exact, fractional = binomial_terms(np.array([0.0, 1.0, 1.0]), np.ones(3), np.ones(3))
    assert np.array_equal(a, [0, 1, 1]) and np.array_equal(b, [1, 0, 0]) and not c.any()
    assert exact and not fractional


def test_saturated_loglik_is_minus_two_log_pmf_at_mu_equal_y():
    rng = np.random.default_rng(4)
    m = rng.integers(2, 30, 40).astype(float)
    k = np.floor(rng.random(40) * (m + 1))
    resp = make_response(Binomial(), k / m, m, np.ones(40))
    sat = resp.saturate()  # already exact: recomputed, the same value
    expect = -2.0 * np.sum(stats.binom.logpmf(k, m, k / m))
    assert sat == pytest.approx(expect, rel=1e-12, abs=1e-10)
    counts = rng.poisson(3.0, 40).astype(float)
    sat_p = make_response(Poisson(), counts, np.ones(40), np.ones(40)).saturate()
    assert sat_p == pytest.approx(-2.0 * np.sum(stats.poisson.logpmf(counts, counts)), rel=1e-12, abs=1e-10)


def test_binomial_start_and_mean_at_bounds():
    y, w = np.array([0.0, 0.25, 1.0]), np.array([4.0, 4.0, 2.0])
    bad, nonint, mustart = binomial_start(y, w)
    assert bad == -1 and not nonint
    assert np.array_equal(mustart, (w * y + 0.5) / (w + 1.0))
    bad, nonint, _ = binomial_start(np.array([0.5, 1.5, -1.0]), np.array([3.0, 1.0, 1.0]))
    assert bad == 1 and nonint  # 3 x 0.5 successes
    eta = np.array([-30.0, -1.0, 0.0, 20.0])
    mu = 1.0 / (1.0 + np.exp(-eta))
    assert np.array_equal(mean_at_bounds(0, 0, eta, 1e-7), (mu < 1e-7) | (mu > 1.0 - 1e-7))
    assert np.array_equal(mean_at_bounds(1, 3, eta, 1e-7), np.exp(eta) < 1e-7)  # Poisson, log link


def test_fd_hessian_direct_loop_equals_the_generic_route(cbpp_fit):
    """The loop driven directly and through a wrapper (Python calls, as for θ-scaled or
    structured engines) take the same steps: identical gradient, Hessian and evaluations."""
    m = cbpp_fit
    m.restore_fit_state()
    eng, x = m.engine, m._xhat
    lower = np.concatenate([m.theta_lower, np.full(len(m.beta), -np.inf)])
    fx = eng.laplace(x)
    n0 = eng.evaluations
    idx, g, H = fd_hessian(eng, x, fx, lower, len(m.theta), m.control.fd_step)
    n1 = eng.evaluations
    u1 = eng.u_
    idx2, g2, H2 = fd_hessian(ThetaScaled(eng, 1.0, len(m.theta)), x, fx, lower, len(m.theta), m.control.fd_step)
    assert n1 - n0 == eng.evaluations - n1 == len(idx) ** 2 + len(idx)
    assert np.array_equal(idx, idx2) and np.array_equal(g, g2) and np.array_equal(H, H2)
    assert np.array_equal(eng.u_, u1)  # the state is put back at x
    # and it is the curvature: H symmetric positive definite, g ~ 0 at the optimum
    assert np.allclose(H, H.T) and np.all(np.linalg.eigvalsh(H) > 0)
    assert np.max(np.abs(g)) < 1e-3
    m.restore_fit_state()

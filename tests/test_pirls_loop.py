"""The one PIRLS loop over its two kernels: its Laplace deviance is the Laplace approximation
computed densely from scratch, and the one-term kernel and the general one agree."""

import numpy as np
import pytest
from scipy import stats

import mmfast
from mmfast import datasets
from mmfast._ext._kernel_loop import KernelLoop
from mmfast._ext._pirls import PirlsLoop
from mmfast._ext._single_term import SingleTerm
from mmfast.model.pirls import make_response
from mmfast.model.pirls_kernel import GeneralKernel

ONE = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
TWO = "cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)"


@pytest.fixture(scope="module")
def cbpp():
    d = datasets.load("cbpp").copy()
    d["obs"] = np.arange(len(d))
    return d


def _dense_laplace(m, theta, beta):
    """-2 log of the Laplace approximation by Newton's method on dense matrices: log|A| +
    |u|² - 2 Σ log Binom(y | size, μ), A = I + ΛZ'WZΛ at the mode (logit: W observed = expected)."""
    Z = m.Z.toarray()
    lam = np.concatenate([np.full(t.q, th) for t, th in zip(m.frame.terms, theta)])
    ZL = Z * lam[None, :]
    succ, size = m.y * m.prior_weights, m.prior_weights
    base = m.frame.X @ beta
    u = np.zeros(Z.shape[1])
    for _ in range(100):
        mu = 1.0 / (1.0 + np.exp(-(base + ZL @ u)))
        A = np.eye(len(u)) + ZL.T @ (ZL * (size * mu * (1 - mu))[:, None])
        step = np.linalg.solve(A, ZL.T @ (succ - size * mu) - u)
        u += step
        if np.max(np.abs(step)) < 1e-12:
            break
    mu = 1.0 / (1.0 + np.exp(-(base + ZL @ u)))
    A = np.eye(len(u)) + ZL.T @ (ZL * (size * mu * (1 - mu))[:, None])
    logp = stats.binom.logpmf(np.rint(succ), np.rint(size), mu).sum()
    return np.linalg.slogdet(A)[1] + u @ u - 2.0 * logp


@pytest.mark.parametrize("formula", [ONE, TWO])
def test_the_loops_laplace_deviance_is_the_laplace_approximation(cbpp, formula):
    m = mmfast.glmer(formula, cbpp, family="binomial")
    assert isinstance(m.engine, PirlsLoop)
    for theta, beta in ((m.theta, m.beta), (1.3 * m.theta + 0.05, m.beta + 0.1)):
        assert m.deviance_at(theta, beta) == pytest.approx(_dense_laplace(m, theta, beta), abs=1e-7)
    assert -2.0 * m.loglik == pytest.approx(_dense_laplace(m, m.theta, m.beta), abs=1e-7)


def test_one_term_kernel_and_general_kernel_run_the_same_loop(cbpp):
    """A one-term model through KernelLoop + GeneralKernel (CHOLMOD/blocked) gives SingleTerm's
    deviance, modes and β (nAGQ = 0) to roundoff."""
    m = mmfast.glmer(ONE, cbpp, family="binomial")
    fr, fam = m.frame, m.family
    eta0 = fam.linkfun(fam.initialize(fr.y, fr.weights, fr.y_extra, fr.parsed.response)[3])
    off = np.zeros(fr.nobs)
    t = fr.terms[0]
    one = SingleTerm(make_response(fam, m.y, m.prior_weights, m.trials), t.factor.codes, t.X, fr.X, off, eta0, 1)
    gen = KernelLoop(
        make_response(fam, m.y, m.prior_weights, m.trials), fr.X, off, eta0, t.q, m.layout.size, m.layout.pos, 1
    )
    gen.bind(GeneralKernel(fr, fam, gen.state(), m.layout))
    for eng in (one, gen):
        eng.newton = 1
    p = len(m.beta)
    for theta in (0.3, 0.64, 1.1):  # the joint (nAGQ = 0) criterion, warm-started in turn
        assert one.joint([theta]) == pytest.approx(gen.joint([theta]), abs=1e-9)
        np.testing.assert_allclose(one.beta_, gen.beta_, atol=1e-9)
    for x in ([0.64, *m.beta], [0.9, *(m.beta + 0.2)]):  # Laplace at (θ, β)
        one.set_transform(np.zeros(p), np.eye(p))
        gen.set_transform(np.zeros(p), np.eye(p))
        assert one.laplace(x) == pytest.approx(gen.laplace(x), abs=1e-9)
        np.testing.assert_allclose(one.u_, gen.u_, atol=1e-9)
        assert one.ldL2 == pytest.approx(gen.ldL2, abs=1e-10)
    assert one.evaluations == gen.evaluations == 5

"""The iterative solver (LmmControl(solver="iterative"): PCG + stochastic Lanczos quadrature)
against exact linear algebra: its sparse products against scipy's, its Krylov pieces against
dense solves and eigenvalues, its kernel against the exact kernel at the same θ, and its fit
against the exact fit within the shift the SLQ error's gradient predicts."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.linalg import eigh, logm

import mmfast
from mmfast import IterativeControl, LmmControl, datasets
from mmfast.model.crossblock import CrossBlock
from mmfast.model.iterative import IterativeKernel
from mmfast.model.krylov import pcg_lanczos, rademacher, slq_logdet

from inference_helpers import single_threaded_blas  # noqa: F401  (a fixture, used by name)

FORMULA = "y ~ service + (1 | s) + (1 | d)"


def _ctl(probes=8):
    return LmmControl(solver="iterative", iterative=IterativeControl(probes=probes))


@pytest.fixture(scope="module")
def insteval():
    return datasets.load("InstEval")


@pytest.fixture(scope="module")
def fits(insteval, single_threaded_blas):  # noqa: F811
    exact = mmfast.lmer(FORMULA, insteval)
    it = mmfast.lmer(FORMULA, insteval, control=_ctl())
    return exact, it


@pytest.mark.parametrize("threads", [1, 2])
def test_cross_block_products_equal_scipy(threads):
    rng = np.random.default_rng(1)
    C = sp.random(3000, 700, density=0.2, random_state=2, format="csr") * 3.0
    cb = CrossBlock(C, threads=threads)
    assert len(cb.ranges) == threads
    Y, X, w = rng.normal(size=(700, 5)), rng.normal(size=(3000, 3)), rng.random(3000)
    np.testing.assert_allclose(cb.gather(Y), C @ Y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cb.scatter(X), C.T @ X, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cb.scatter(X, squared=True), C.multiply(C).T @ X, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cb.sandwich(w, Y), C.T @ (w[:, None] * (C @ Y)), rtol=1e-12, atol=1e-10)


def test_cross_block_rejects_bad_shapes():
    cb = CrossBlock(sp.eye(10, 4, format="csr"))
    with pytest.raises(mmfast.DataError, match="out columns|X"):
        cb.scatter(np.ones((9, 2)))


def test_pcg_solves_and_full_lanczos_quadrature_is_exact():
    """Run to the full Krylov space, Gauss quadrature on T is exact: z'log(S̃)z for each probe
    (S̃ = P^{-1/2} S P^{-1/2}), and the solves are S⁻¹B."""
    rng = np.random.default_rng(3)
    n = 40
    G = rng.normal(size=(n, n))
    S = G @ G.T / n + np.diag(rng.uniform(0.5, 5.0, n))
    d = np.diag(S)
    B = rng.normal(size=(n, 2))
    Z = rademacher(n, 3, seed=7)
    rhs = np.hstack([B, np.sqrt(d)[:, None] * Z])
    res = pcg_lanczos(lambda Y: S @ Y, 1.0 / d, rhs, 2, 1e-12, 1e-12, 10 * n)
    np.testing.assert_allclose(res.X, np.linalg.solve(S, B), rtol=1e-9)
    St = S / np.sqrt(np.outer(d, d))
    L = np.real(logm(St))
    want = n * np.mean([z @ L @ z / (z @ z) for z in Z.T])
    assert slq_logdet(res, slice(2, 5), n) == pytest.approx(want, rel=1e-8)
    # with n probes spanning everything (z'z = n): the estimate's expectation is log|S̃|
    assert np.sum(np.log(eigh(St, eigvals_only=True))) == pytest.approx(np.trace(L), rel=1e-10)


def test_kernel_equals_exact_kernel_at_theta(fits):
    """At the same θ the solves (M = W'W - B'A⁻¹B) are the exact kernel's to PCG's tolerance,
    and log|A| is within 4 standard errors of the exact one, the standard error from the
    spread of one-probe estimates (the fit's estimate is the mean of ``probes`` of them)."""
    exact, it = fits
    T = exact.templates(exact.theta)
    ld_ex, M_ex = exact.kernel.update(T)
    k = it.kernel
    ld_it, M_it = k.update(T)
    np.testing.assert_allclose(M_it, M_ex, rtol=1e-8, atol=1e-8 * np.abs(M_ex).max())
    one = [IterativeKernel(it.blocks, it.frame.terms, IterativeControl(probes=1, seed=s)) for s in range(16)]
    per_probe = [kk.update(T)[0] for kk in one]
    se = np.std(per_probe, ddof=1) / np.sqrt(k.options.probes)
    assert abs(ld_it - ld_ex) < 4 * se


def test_fit_theta_within_predicted_shift_of_exact(fits):
    """The iterative fit minimises f + ε, ε = the SLQ error of log|A|: to first order its θ is
    the exact θ̂ moved by -H⁻¹∇ε (H the exact criterion's Hessian, both by central differences
    at θ̂).  The fit must land there (up to second-order terms) and within the issue's 1e-3."""
    exact, it = fits
    th = exact.theta
    f_ex, f_it = exact.criterion(), it.criterion()
    h = 1e-4 * th
    eps = lambda t: f_it(t) - f_ex(t)  # noqa: E731
    g = np.array([(eps(th + h * e) - eps(th - h * e)) / (2 * h[i]) for i, e in enumerate(np.eye(2))])
    H = np.empty((2, 2))
    for i, ei in enumerate(np.eye(2)):
        for j, ej in enumerate(np.eye(2)):
            H[i, j] = (
                f_ex(th + h * ei + h * ej)
                - f_ex(th + h * ei - h * ej)
                - f_ex(th - h * ei + h * ej)
                + f_ex(th - h * ei - h * ej)
            ) / (4 * h[i] * h[j])
    shift = -np.linalg.solve(H, g)
    np.testing.assert_allclose(it.theta - th, shift, rtol=0.2, atol=2e-6 * th.max())
    assert np.all(np.abs(it.theta / th - 1) < 1e-3)
    np.testing.assert_allclose(it.fixef, exact.fixef, rtol=1e-4)
    assert it.sigma == pytest.approx(exact.sigma, rel=1e-4)


def test_ml_fit_and_modes(insteval):
    exact = mmfast.lmer(FORMULA, insteval, reml=False)
    it = mmfast.lmer(FORMULA, insteval, reml=False, control=_ctl(16))
    assert np.all(np.abs(it.theta / exact.theta - 1) < 1e-3)
    # conditional modes at the same θ are the exact ones (PCG to 1e-8)
    k = it.kernel
    k.update(exact.templates(exact.theta))
    ex_u = exact.kernel.factor_at(exact.templates(exact.theta)).conditional_modes(np.zeros(2))
    np.testing.assert_allclose(k.conditional_modes(np.zeros(2)), ex_u, rtol=1e-6, atol=1e-8 * np.abs(ex_u).max())


def test_iterative_input_errors(insteval):
    with pytest.raises(mmfast.ArgumentError, match="solver"):
        LmmControl(solver="cg")
    with pytest.raises(mmfast.ArgumentError, match="probes"):
        IterativeControl(probes=0)
    with pytest.raises(mmfast.FormulaError, match="scalar"):
        mmfast.lmer("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"), control=_ctl())


def test_no_inverse_blocks_on_the_iterative_path(fits):
    _, it = fits
    assert isinstance(it.kernel, IterativeKernel)
    with pytest.raises(mmfast.FitError, match="iterative"):
        it.condvar()


THREE = "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)"


def test_small_third_term_is_eliminated_exactly(insteval, single_threaded_blas):  # noqa: F811
    """A third term with few levels (dept:service, 28) is solved exactly beside the estimated
    block (its Schur complement factored densely): at the exact θ̂ the solves are the exact
    kernel's, and the fit's θ is within the issue's 1e-3 of the exact optimum on every term
    (sharing the estimated block it was 3.9e-2 off, benchmarks/README.md)."""
    exact = mmfast.lmer(THREE, insteval, reml=False)
    it = mmfast.lmer(THREE, insteval, reml=False, control=_ctl(8))
    k = it.kernel
    assert [t.nlevels for t in it.frame.terms] == [2972, 1128, 28]
    assert len(k._rs) == 28 and k._probes.shape[0] == 1128  # only d's block is estimated
    T = exact.templates(exact.theta)
    _, M_ex = exact.kernel.update(T)
    _, M_it = k.update(T)
    np.testing.assert_allclose(M_it, M_ex, rtol=1e-8, atol=1e-8 * np.abs(M_ex).max())
    assert np.all(np.abs(it.theta / exact.theta - 1) < 1e-3)
    np.testing.assert_allclose(it.fixef, exact.fixef, rtol=1e-4)

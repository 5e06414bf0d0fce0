"""The analytic gradient of the Laplace deviance (scalar term, canonical link) and the
quasi-Newton refits built on it (PBmodcomp, bootstrap): checked against central differences
and against tight derivative-free optima of the same criterion."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mmfast
from mmfast import datasets
from mmfast.model.optimize import minimize_bounded, minimize_newton
from mmfast.resample import refit as refit_mod
from mmfast.resample.simulate import simulate


def _glmer(formula, data, family, control=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.glmer(formula, data, family=family, control=control)


@pytest.fixture(scope="module")
def water():
    wl = datasets.load("waterlick")
    return (_glmer("lick ~ dff + (1 | mouseID)", wl, "binomial"), _glmer("lick ~ 1 + (1 | mouseID)", wl, "binomial"))


@pytest.fixture(scope="module")
def ticks():
    return _glmer("TICKS ~ YEAR + cHEIGHT + (1 | BROOD)", datasets.load("grouseticks"), "poisson")


def _central(f, x, h=1e-5):
    out = np.empty(len(x))
    for k in range(len(x)):
        e = np.zeros(len(x))
        e[k] = h
        out[k] = (f(x + e) - f(x - e)) / (2 * h)
    return out


@pytest.mark.parametrize("which", ["binomial", "poisson"])
def test_laplace_gradient_matches_central_differences(which, water, ticks):
    model = water[0] if which == "binomial" else ticks
    r = refit_mod.LoglikRefitter(model)
    eng = r._engine_for(model.frame.y)
    assert eng.has_gradient
    eng.tol = 1e-13
    for shift in (0.3, -0.2):  # away from the optimum: the gradient is far from zero
        x = r.x0 + shift * np.maximum(np.abs(r.x0), 0.5)
        x[0] = max(x[0], 0.05)
        g = np.zeros(len(x))
        f = eng.laplace_grad(x, g)
        assert f == pytest.approx(eng.laplace(x), abs=1e-9)
        fd = _central(eng.laplace, x)
        assert np.max(np.abs(g - fd)) < 1e-5 * max(1.0, np.max(np.abs(fd)))
        assert np.max(np.abs(fd)) > 0.1


def test_gradient_only_for_scalar_terms_with_canonical_links(water):
    wl = datasets.load("waterlick")
    probit = _glmer("lick ~ dff + (1 | mouseID)", wl, mmfast.families.Binomial(link="probit"))
    eng = refit_mod.LoglikRefitter(probit)._engine_for(wl["lick"].to_numpy(float))
    assert not eng.has_gradient
    with pytest.raises(ValueError):
        eng.laplace_grad(np.array(probit._xhat), np.zeros(len(probit._xhat)))
    assert refit_mod.LoglikRefitter(probit).hessian is None
    assert refit_mod.LoglikRefitter(water[0]).hessian is not None


def test_minimize_newton_on_a_bounded_quadratic():
    H = np.array([[4.0, 1.0], [1.0, 2.0]])

    def quad(a):
        def fg(x, g):
            g[:] = H @ (x - a)
            return 0.5 * float((x - a) @ H @ (x - a))

        return fg

    a = np.array([1.5, -0.7])
    res = minimize_newton(quad(a), np.zeros(2), np.array([0.0, -np.inf]), 2.0 * H)
    assert res.converged and np.allclose(res.x, a, atol=1e-6)
    # the minimum on x0 >= 0 when the free one lies at x0 < 0: the bound, reported unconverged
    b = np.array([-1.0, 0.5])
    res = minimize_newton(quad(b), np.array([1.0, 0.0]), np.array([0.0, -np.inf]), H)
    assert not res.converged and res.x[0] == 0.0
    assert res.x[1] == pytest.approx(b[1] - H[1, 0] * (0.0 - b[0]) / H[1, 1], abs=1e-6)
    # an indefinite start Hessian is no convergence certificate
    res = minimize_newton(quad(a), np.zeros(2), np.full(2, -np.inf), -H)
    assert not res.converged


def test_quasi_newton_refits_reach_the_tight_optimum(water):
    big, small = water
    Y = simulate(small, 80, seed=11, as_frame=False)  # includes fits with θ̂ at or near 0
    for model in (small, big):
        r = refit_mod.LoglikRefitter(model)
        for j in range(Y.shape[1]):
            ll = r.fit(Y[:, j])[0]
            eng = r._engine_for(Y[:, j])
            tight = minimize_bounded(eng.laplace, r.x0, r.lower, ftol_abs=1e-13, xtol_abs=1e-9, step=r.step)
            assert ll == pytest.approx(-0.5 * tight.fun, abs=1e-6)


# --- several terms (KernelLoop + laplace_gradient)  ------------------------------------------
def _simulated(first_vector: bool):
    rng = np.random.default_rng(1)
    n = 600
    g1, g2, x = rng.integers(0, 60, n), rng.integers(0, 8, n), rng.normal(size=n)
    eta = (
        -0.3
        + 0.5 * x
        + 0.8 * rng.normal(size=60)[g1]
        + 0.5 * x * rng.normal(size=60)[g1]
        + 0.6 * rng.normal(size=8)[g2]
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    import pandas as pd

    df = pd.DataFrame({"y": y, "x": x, "g1": g1.astype(str), "g2": g2.astype(str)})
    f = "y ~ x + (1 + x | g1) + (1 | g2)" if first_vector else "y ~ x + (1 | g1) + (1 + x | g2)"
    return _glmer(f, df, "binomial")


@pytest.fixture(scope="module")
def multi():
    ticks = datasets.load("grouseticks")
    return {
        "vector_first": _simulated(True),
        "vector_second": _simulated(False),
        "poisson": _glmer("TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", ticks, "poisson"),
    }


@pytest.mark.parametrize("case", ["vector_first", "vector_second", "poisson"])
def test_several_terms_gradient_matches_central_differences(case, multi):
    model = multi[case]
    eng = model.engine
    assert eng.has_gradient and len(model.frame.terms) == 2
    assert model.optinfo["stage2"]["optimizer"] in ("newton", "newton+lbfgsb(log)")  # Newton, or its fallback
    eng.tol = 1e-13
    x0 = np.array(model._xhat)
    for shift in (0.25, -0.2):
        x = x0 + shift * np.maximum(np.abs(x0), 0.3)
        g = np.zeros(len(x))
        eng.laplace_grad(x, g)
        fd = _central(eng.laplace, x)
        assert np.max(np.abs(g - fd)) < 1e-5 * max(1.0, np.max(np.abs(fd)))
    eng.tol = 1e-10
    eng.laplace(x0)


@pytest.mark.parametrize("case", ["vector_first", "poisson"])
def test_gradient_fit_reaches_the_derivative_free_optimum(case, multi):
    model = multi[case]
    bobyqa = _glmer(
        model.frame.parsed.formula, model.frame.data, model.family, control=mmfast.GlmmControl(use_gradient=False)
    )
    assert bobyqa.optinfo["stage2"]["optimizer"] == "bobyqa"
    assert model.loglik >= bobyqa.loglik - 1e-6
    assert model.loglik == pytest.approx(bobyqa.loglik, abs=1e-4)
    assert np.allclose(model.fixef, bobyqa.fixef, atol=1e-3)
    se, se_b = np.sqrt(np.diag(model.vcov)), np.sqrt(np.diag(bobyqa.vcov))
    assert np.allclose(se, se_b, rtol=2e-3)


def test_gradient_fit_of_a_singular_model():
    """No variance between g2 groups: θ₂ ends at (or within 1e-5 of) zero, flagged singular,
    at the derivative-free optimum's log-likelihood."""
    import pandas as pd

    rng = np.random.default_rng(7)
    n = 800
    g1, g2, x = rng.integers(0, 80, n), rng.integers(0, 10, n), rng.normal(size=n)
    eta = -0.2 + 0.4 * x + 0.7 * rng.normal(size=80)[g1]
    df = pd.DataFrame(
        {"y": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int), "x": x, "g1": g1.astype(str), "g2": g2.astype(str)}
    )
    m = _glmer("y ~ x + (1 | g1) + (1 | g2)", df, "binomial")
    assert m.engine.has_gradient and m.singular and m.theta[1] < 1e-5
    b = _glmer("y ~ x + (1 | g1) + (1 | g2)", df, "binomial", control=mmfast.GlmmControl(use_gradient=False))
    assert b.optinfo["stage2"]["optimizer"] == "bobyqa"
    assert m.loglik >= b.loglik - 1e-7 and m.loglik == pytest.approx(b.loglik, abs=1e-5)

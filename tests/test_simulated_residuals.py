"""DHARMa-style scaled residuals: derivations and Monte Carlo checks (DHARMa is not available
here, so no R oracle): correctly specified models give uniform residuals and quiet tests;
overdispersed and zero-inflated counts are flagged; the PIT equals its hand computation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mmfast
from mmfast.diagnostics.simulated import randomized_pit, simulation_p_value
from mmfast.errors import ArgumentError


def grouped_data(seed: int, kind: str, groups: int = 30, per: int = 10) -> pd.DataFrame:
    """y ~ x + (1 | g) with random-intercept SD 0.5, drawn from the named distribution."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size)
    eta = 0.5 + 0.4 * x + rng.normal(0.0, 0.5, groups)[g]
    if kind == "poisson":
        y = rng.poisson(np.exp(eta))
    elif kind == "negbin":  # NB with size 0.5: variance mu + 2 mu^2
        y = rng.negative_binomial(0.5, 0.5 / (0.5 + np.exp(eta)))
    elif kind == "zip":  # 30 % structural zeros
        y = np.where(rng.uniform(size=g.size) < 0.3, 0, rng.poisson(np.exp(eta)))
    elif kind == "binomial":
        y = rng.binomial(1, 1.0 / (1.0 + np.exp(-(eta - 0.5))))
    else:
        y = eta + rng.normal(size=g.size)
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": [f"g{i:02d}" for i in g]})


def fit(d: pd.DataFrame, kind: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "gaussian":
            return mmfast.lmer("y ~ x + (1 | g)", d)
        return mmfast.glmer("y ~ x + (1 | g)", d, "binomial" if kind == "binomial" else "poisson")


# ----------------------------------------------------------------------------- hand computations
def test_pit_by_hand():
    sims = np.array([[0, 1, 2, 2, 3], [5, 5, 5, 5, 5], [0.1, 0.4, 0.2, 0.9, 0.3]], dtype=float)
    y = np.array([2.0, 7.0, 0.35])
    u = np.random.default_rng(11).uniform(size=3)
    got = randomized_pit(y, sims, np.random.default_rng(11), integer_response=True)
    # row 1: P(S < 2) = 2/5, P(S = 2) = 2/5; row 2: all below -> 1; row 3: 3 of 5 below 0.35
    np.testing.assert_allclose(got, [0.4 + u[0] * 0.4, 1.0, 0.6], rtol=0, atol=1e-15)
    np.testing.assert_allclose(randomized_pit(y, sims, np.random.default_rng(0), False), [0.8, 1.0, 0.6])


def test_p_value_as_dharma():
    sim = np.arange(1.0, 101.0)  # 1..100
    assert simulation_p_value(sim, 95.5, "greater") == 0.05
    assert simulation_p_value(sim, 95.5, "less") == 0.95
    assert simulation_p_value(sim, 95.5) == pytest.approx(0.10)
    assert simulation_p_value(sim, 50.0) == 1.0
    with pytest.raises(ArgumentError, match="alternative"):
        simulation_p_value(sim, 1.0, "bigger")


def test_scaled_residuals_are_the_pit_of_the_stored_simulations():
    d = grouped_data(5, "poisson")
    r = fit(d, "poisson").simulate_residuals(n_sim=100, seed=2)
    below = np.mean(r.simulated < r.observed[:, None], axis=1)
    upto = np.mean(r.simulated <= r.observed[:, None], axis=1)
    assert np.all((below <= r.scaled) & (r.scaled <= upto))
    assert np.any(below < upto) and np.all(r.scaled[below == upto] == below[below == upto])
    again = fit(d, "poisson").simulate_residuals(n_sim=100, seed=2)
    np.testing.assert_array_equal(again.scaled, r.scaled)  # the seed reproduces everything
    np.testing.assert_array_equal(r.observed, d["y"].to_numpy())
    m = r.model  # population-level means exp(Xβ̂)
    np.testing.assert_allclose(r.fitted, np.exp(m.frame.X @ m.beta))
    with pytest.raises(ArgumentError, match="n_sim"):
        m.simulate_residuals(n_sim=1)


def test_gaussian_scaled_residuals_converge_to_the_marginal_normal_cdf():
    """Unconditional LMM simulations: y_i ~ N(x_i β̂, z_i' Σ z_i + σ̂²), so u_i -> Φ(...)."""
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", mmfast.datasets.load("sleepstudy"))
    r = m.simulate_residuals(n_sim=4000, seed=1)
    S = m.term_covariances()[0]
    Z = m.frame.X  # the random-effect columns (1, Days) are X's
    sd = np.sqrt(np.einsum("ij,jk,ik->i", Z, S, Z) + m.sigma**2)
    expected = stats.norm.cdf((m.frame.y - m.frame.X @ m.beta) / sd)
    assert np.max(np.abs(r.scaled - expected)) < 0.035  # 4.4 binomial SEs at n_sim = 4000
    assert not r.integer_response


def test_cbind_binomial_counts_scale():
    d = mmfast.datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d)
    r = m.simulate_residuals(n_sim=200, seed=4)
    assert r.integer_response
    np.testing.assert_array_equal(r.observed, d["incidence"])  # counts, as simulate() gives
    assert np.all(r.simulated <= d["size"].to_numpy()[:, None])
    eta = m.frame.X @ m.beta
    np.testing.assert_allclose(r.fitted, d["size"] / (1 + np.exp(-eta)))


# ----------------------------------------------------------------------------- Monte Carlo
@pytest.mark.parametrize("kind", ["poisson", "binomial", "gaussian"])
def test_correct_models_give_uniform_residuals_and_quiet_tests(kind):
    pooled, disp_p, ratios = [], [], []
    for seed in range(6):
        r = fit(grouped_data(100 + seed, kind), kind).simulate_residuals(n_sim=250, seed=seed)
        pooled.append(r.scaled)
        t = r.test_dispersion()
        disp_p.append(t.p_value)
        ratios.append(t.statistic)
        assert r.test_uniformity().p_value > 0.01
    pooled = np.concatenate(pooled)  # 1800 residuals
    assert stats.kstest(pooled, "uniform").pvalue > 0.01
    assert np.sum(np.array(disp_p) < 0.05) <= 1
    assert 0.9 < np.mean(ratios) < 1.1
    if kind == "poisson":
        assert r.test_zero_inflation().p_value > 0.05


def test_overdispersed_counts_fitted_as_poisson_are_flagged():
    """NB(size 0.5) counts fitted as Poisson: the unconditional test (DHARMa's default) sees
    the excess spread, though part of it is absorbed by the random-intercept variance; the
    conditional simulations (random effects at their modes) are the more sensitive test."""
    for seed in range(4):
        m = fit(grouped_data(200 + seed, "negbin"), "poisson")
        r = m.simulate_residuals(seed=seed)
        t = r.test_dispersion()
        assert t.statistic > 1.4 and t.p_value < 0.1
        assert t.p_value == simulation_p_value(t.simulated, t.observed)
        assert r.test_dispersion("greater").p_value <= t.p_value
        assert r.test_uniformity().p_value < 1e-6
        c = m.simulate_residuals(seed=seed, conditional=True).test_dispersion()
        assert c.statistic > 1.9 and c.p_value < 0.01


def test_conditional_simulations_of_a_correct_model_are_quiet():
    for seed in range(3):
        m = fit(grouped_data(100 + seed, "poisson"), "poisson")
        r = m.simulate_residuals(seed=seed, conditional=True)
        assert r.test_dispersion().p_value > 0.05 and r.test_uniformity().p_value > 0.05
        np.testing.assert_allclose(r.fitted, m.fitted.to_numpy())  # conditional means


def test_zero_inflated_counts_are_flagged():
    for seed in range(3):
        r = fit(grouped_data(300 + seed, "zip"), "poisson").simulate_residuals(seed=seed)
        t = r.test_zero_inflation()
        assert t.observed == np.sum(r.observed == 0)
        assert t.statistic > 1.2 and t.p_value < 0.01


def test_refit_variant():
    m = fit(grouped_data(7, "negbin", groups=15), "poisson")
    r = m.simulate_residuals(n_sim=20, seed=1, refit=True)
    assert r.refit and r.scaled.shape == (150,) and np.all((0 <= r.scaled) & (r.scaled <= 1))
    t = r.test_dispersion()
    np.testing.assert_allclose(t.observed, np.sum(m.resid("pearson") ** 2))
    assert t.statistic > 1.5 and t.p_value < 0.2  # at n_sim = 20 the smallest p is 0.1


def test_gamma_glmm_needs_conditional_simulations():
    """lme4's simulate draws a Gamma GLMM's random effects on the unscaled θ, σ̂ times wider
    than the fit: the unconditional residuals flag a sound fit, the conditional ones do not."""
    cake = mmfast.datasets.load("cake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.glmer(
            "angle ~ recipe + temperature + (1 | replicate)", cake, family=mmfast.families.Gamma(link="log")
        )
    with pytest.warns(UserWarning, match="conditional=True"):
        wide = m.simulate_residuals(seed=2)
    assert wide.test_dispersion().statistic < 0.5 and not wide.integer_response
    r = m.simulate_residuals(seed=2, conditional=True)
    assert r.test_dispersion().p_value > 0.05 and r.test_uniformity().p_value > 0.05

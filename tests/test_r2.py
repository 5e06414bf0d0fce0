"""Nakagawa-Schielzeth R² against R's performance::r2_nakagawa (tests/oracle/r2.R)."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.diagnostics.r2 import _distribution_variance, _null_formula, model_variances
from mmfast.errors import ModelSpecError, SingularFitWarning
from mmfast.families import Binomial, Gamma, Poisson

with gzip.open(Path(__file__).parent / "reference" / "r2.json.gz") as fh:
    R = json.load(fh)


def load(name, factors=()):
    d = mmfast.datasets.load(name)
    for v in factors:
        d[v] = pd.Categorical(d[v], categories=sorted(d[v].unique()))
    return d


def _cbpp():
    d = load("cbpp", ["period", "herd"])
    d["obs"] = np.arange(len(d))
    return d


def _spikes():
    d = load("spikes", ["mouse"])
    d["logdur"] = np.log(d["duration"])
    return d


CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
GROUSE = ["YEAR", "BROOD", "LOCATION", "INDEX"]
FITS = {
    "sleepstudy_slope": lambda: mmfast.lmer("Reaction ~ Days + (Days | Subject)", load("sleepstudy")),
    "sleepstudy_uncorr": lambda: mmfast.lmer("Reaction ~ Days + (Days || Subject)", load("sleepstudy")),
    "penicillin": lambda: mmfast.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", load("Penicillin")),
    "ex1_ml": lambda: mmfast.lmer(
        "res ~ treatment + (1 | midx)", load("ex1").assign(treatment=lambda d: d.treatment_idx.astype(str)), reml=False
    ),
    "cbpp_logit": lambda: mmfast.glmer(CBPP, _cbpp(), "binomial"),
    "cbpp_probit": lambda: mmfast.glmer(CBPP, _cbpp(), Binomial(link="probit")),
    "cbpp_obs": lambda: mmfast.glmer(CBPP + " + (1 | obs)", _cbpp(), "binomial"),
    "grouse_poisson": lambda: mmfast.glmer(
        "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", load("grouseticks", GROUSE), "poisson"
    ),
    "grouse_obs": lambda: mmfast.glmer(
        "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", load("grouseticks", GROUSE), "poisson"
    ),
    "spikes_slope": lambda: mmfast.glmer(
        "count ~ condition + stim + (stim | mouse)", _spikes(), Poisson(), offset="logdur"
    ),
    "cake_gamma_log": lambda: mmfast.glmer(
        "angle ~ recipe + temperature + (1 | replicate)", load("cake", ["recipe", "replicate"]), Gamma(link="log")
    ),
}
COMPONENTS = ["var_fixed", "var_random", "var_residual", "var_distribution", "var_dispersion"]


@pytest.fixture(scope="module")
def fits():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {case: f() for case, f in FITS.items()}


@pytest.mark.parametrize("case", list(FITS))
def test_components_at_r_estimates(case, fits):
    """Each variance component, evaluated at lme4's own estimates, equals insight's."""
    r, m = R[case], fits[case]
    sigma = r["sigma"] if m.use_scale else 1.0
    covs = [sigma**2 * T @ T.T for T in m.layout.templates(np.atleast_1d(r["theta"]))]
    vf, vr, vd = model_variances(m.frame, np.atleast_1d(r["fixef"]), covs, glmm=m.family != "gaussian")
    expected_random = r["var_random_all_terms"] if case == "sleepstudy_uncorr" else r["var_random"]
    np.testing.assert_allclose(
        [vf, vr, vd], [r["var_fixed"], expected_random, r["var_dispersion"]], rtol=1e-9, atol=1e-14
    )
    if m.family == "poisson":
        dist = _distribution_variance(m, null_intercept=r["null_intercept"])
        np.testing.assert_allclose(dist, r["var_distribution"], rtol=1e-12)


@pytest.mark.parametrize("case", list(FITS))
def test_matches_performance(case, fits):
    """End to end on mmfast's fit: LMM optima agree with lme4's to ~1e-7; glmer's default
    optimiser stops up to ~1e-3 (relative, in β) short of the maximum mmfast finds."""
    r, m = R[case], fits[case]
    assert m.loglik >= r["logLik"] - (5e-4 if m.family == "Gamma" else 1e-6)  # Gamma: σ̂ differs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = m.r2_nakagawa()
    low_mean = [w for w in caught if "below 6" in str(w.message)]
    assert len(low_mean) == (m.family == "poisson" and r["null_intercept"] < np.log(6))
    tol = 1e-5 if m.family == "gaussian" else 3e-3
    if case == "sleepstudy_uncorr":  # insight keeps only the first term on Subject
        assert r["var_random"] < r["var_random_all_terms"]
        np.testing.assert_allclose(res.var_random, r["var_random_all_terms"], rtol=tol)
        vf, vr, ve = r["var_fixed"], r["var_random_all_terms"], r["var_residual"]
        np.testing.assert_allclose(res.conditional, (vf + vr) / (vf + vr + ve), rtol=tol)
        np.testing.assert_allclose(res.marginal, vf / (vf + vr + ve), rtol=tol)
        return
    if m.family == "poisson":  # glmer's null fit stops short too: log(1 + 1/mu) within 1%
        null = m.refit_formula(_null_formula(m))
        assert null.loglik >= r["null_logLik"] - 1e-6
        tol = 1e-2 if null.loglik - r["null_logLik"] > 1e-3 else tol
    for c in COMPONENTS:
        np.testing.assert_allclose(getattr(res, c), r[c], rtol=tol, atol=1e-12, err_msg=c)
    np.testing.assert_allclose([res.marginal, res.conditional], [r["marginal"], r["conditional"]], rtol=tol, atol=1e-12)
    assert mmfast.r2_nakagawa(m) == res
    assert list(res.to_series().index[:2]) == ["marginal", "conditional"]


def test_singular_fit_has_no_conditional_r2():
    r = R["dyestuff2_singular"]
    m = mmfast.lmer("Yield ~ 1 + (1 | Batch)", load("Dyestuff2"))
    assert r["singular"] and r["conditional"] is None
    with pytest.warns(SingularFitWarning, match="conditional"):
        res = m.r2_nakagawa()
    assert np.isnan(res.conditional) and np.isnan(res.var_random)
    assert r["marginal"] == 0.0 and abs(res.marginal) < 1e-20  # var(Xβ) of an intercept
    np.testing.assert_allclose(res.var_residual, r["var_residual"], rtol=1e-6)


def test_by_hand_random_slope_variance():
    """Johnson's var_random for (Days | Subject) is Σ00 + 2 Σ01 mean(x) + Σ11 mean(x²)."""
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", load("sleepstudy"))
    S = m.term_covariances()[0]
    x = m.frame.X[:, 1]
    expected = S[0, 0] + 2 * S[0, 1] * x.mean() + S[1, 1] * np.mean(x**2)
    np.testing.assert_allclose(m.r2_nakagawa().var_random, expected, rtol=1e-12)


def test_unsupported_link_is_refused():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.glmer(CBPP, _cbpp(), Binomial(link="cauchit"))
    with pytest.raises(ModelSpecError, match="cauchit"):
        m.r2_nakagawa()

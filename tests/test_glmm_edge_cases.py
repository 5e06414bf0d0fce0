"""glmer on issue 14's edge cases against lme4: observation-level random effects (lme4's
glmerControl level checks), constant responses, separation, Gamma responses in other units.

The R numbers are in tests/reference/glmm_edge_cases.json.gz, made by
tests/oracle/glmm_edge_cases.R (R 4.2.2, lme4 1.1-31): every fit with lme4's defaults and with
tight settings (bobyqa in both stages, rhoend 1e-12, tolPwrss 1e-10), compared with the latter.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.errors import ConvergenceWarning, DataError, MmfastError, ModelSpecError, SingularFitWarning
from mmfast.families import Binomial, Gamma
from reference_cases import load_reference

REF = load_reference("glmm_edge_cases")


def _factors(d: pd.DataFrame, cols) -> pd.DataFrame:
    d = d.copy()
    for c in cols:
        d[c] = pd.Categorical(d[c], categories=sorted(d[c].unique()))
    return d


def _cbpp():
    d = _factors(mmfast.datasets.load("cbpp"), ["herd", "period"])
    d["obs"] = np.arange(1, len(d) + 1)
    return d


def _grouse():
    return _factors(mmfast.datasets.load("grouseticks"), ["INDEX", "BROOD", "YEAR", "LOCATION"])


def _water():
    return mmfast.datasets.load("waterlick")


def _water_per_mouse():
    w = _water()
    g = w.groupby("mouseID")["lick"]
    return pd.DataFrame({"mouseID": g.sum().index, "lick": g.sum().to_numpy(), "trials": g.size().to_numpy()})


def _fit_strict(formula, data, family, **kw):
    """glmer with numpy's RuntimeWarnings turned into errors: none may leak out of a fit."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", RuntimeWarning)
        m = mmfast.glmer(formula, data, family=family, **kw)
    return m, [w for w in caught]


def _compare(m, ref, tol_fixef=1e-4, tol_ll=1e-5):
    np.testing.assert_allclose(m.fixef.to_numpy(), np.atleast_1d(ref["fixef"]), rtol=tol_fixef, atol=1e-6)
    np.testing.assert_allclose(m.theta, np.atleast_1d(ref["theta"]), rtol=tol_fixef, atol=1e-6)
    assert abs(m.loglik - ref["logLik"]) < tol_ll * max(1.0, abs(ref["logLik"]))


# --- 1. level checks: lme4's glmerControl defaults allow as many levels as observations -------

LEVEL_CASES = {
    "cbpp_obs": (_cbpp, "binomial"),
    "cbpp_herd_obs": (_cbpp, "binomial"),
    "grouse_obs": (_grouse, "poisson"),
    "grouse_obs_only": (_grouse, "poisson"),
    "water_per_mouse": (_water_per_mouse, "binomial"),
}


@pytest.mark.parametrize("case", sorted(LEVEL_CASES))
def test_observation_level_random_effects_as_lme4(case):
    make, family = LEVEL_CASES[case]
    ref = REF[case]
    m, caught = _fit_strict(ref["formula"], make(), family)
    assert not caught, [str(w.message) for w in caught]
    _compare(m, ref["tight"])
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov_array)), ref["tight"]["se"], rtol=2e-3)
    assert m.ngroups == ref["tight"]["ngrps"]


def test_level_checks_stop_still_allow_n_levels_in_glmer():
    # glFormula checks with allow.n = TRUE: "stop" refuses only more levels than observations
    ref = REF["cbpp_obs_stop"]
    m = mmfast.glmer(
        "cbind(incidence, size - incidence) ~ period + (1 | obs)",
        _cbpp(),
        "binomial",
        check_nobs_vs_nlev="stop",
        check_nobs_vs_nre="stop",
    )
    _compare(m, ref, tol_fixef=2e-3, tol_ll=1e-6)


def test_nobs_vs_nre_stop_and_warning_in_glmer():
    f = "cbind(incidence, size - incidence) ~ 1 + (period | obs)"
    with pytest.raises(
        ModelSpecError,
        match=r"number of observations \(=56\) < number of random "
        r"effects \(=224\) for term \(period \| obs\).*check_nobs_vs_nre",
    ):
        mmfast.glmer(f, _cbpp(), "binomial", check_nobs_vs_nre="stop")
    assert REF["nre_stop"]["error"].startswith("number of observations (=56) < number of random")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            mmfast.glmer(f, _cbpp(), "binomial", check_nobs_vs_nre="warning")
        except MmfastError:
            pass  # only the check's warning matters here
    assert any(str(w.message) == REF["nre_warning"]["warnings"] for w in caught)


def test_one_level_and_lmer_checks_unchanged():
    w = _water()
    w["one"] = 1
    with pytest.raises(ModelSpecError, match="must have > 1 sampled level"):
        mmfast.glmer("lick ~ dff + (1 | one)", w, "binomial")
    assert "> 1 sampled level" in REF["one_level"]["error"]
    # lmer keeps lmerControl's defaults: as many levels as observations is an error
    with pytest.raises(ModelSpecError, match="must be < number of observations"):
        mmfast.lmer("TICKS ~ YEAR + (1 | INDEX)", _grouse())
    assert "must be < number of observations" in REF["lmer_obs"]["error"]
    with pytest.raises(ModelSpecError, match="check_nobs_vs_nlev must be"):
        mmfast.glmer("lick ~ dff + (1 | mouseID)", w, "binomial", check_nobs_vs_nlev="Stop")


# --- 2. edge cases: constant responses, separation -------------------------------------------


@pytest.mark.parametrize("case,value", [("const_binomial_0", 0), ("const_binomial_1", 1)])
def test_constant_binomial_response_is_an_error_as_lme4(case, value):
    assert REF[case]["error"] == "Response is constant"
    w = _water()
    w["lick"] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(DataError, match=rf"response 'lick' is constant \(every value is {value}\)"):
            mmfast.glmer("lick ~ dff + (1 | mouseID)", w, "binomial")


def test_constant_poisson_and_cbind_responses_are_errors():
    assert REF["const_poisson_0"]["error"] == "Response is constant"
    g = _grouse()
    g["TICKS"] = 0
    with pytest.raises(DataError, match="response 'TICKS' is constant"):
        mmfast.glmer("TICKS ~ YEAR + (1 | BROOD)", g, "poisson")
    d = _cbpp()
    d["incidence"], d["size"] = 2, 10
    with pytest.raises(DataError, match=r"is constant \(every row is cbind\(2, 8\)\)"):
        mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, "binomial")
    d["incidence"] = np.where(np.arange(len(d)) % 2, 2, 3)  # not constant: fits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        mmfast.glmer("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", d, "binomial")


# --- 3. Gamma: the fit does not depend on the response's units --------------------------------


def _gamma_data(scale):
    gd = REF["gamma_data"]
    return pd.DataFrame({"ys": np.asarray(gd["y"]) * scale, "x": gd["x"], "g": gd["g"]})


@pytest.mark.parametrize("key", ["gamma_inverse_scale_1e+00", "gamma_inverse_scale_1e-06", "gamma_log_scale_1e-06"])
def test_gamma_fits_as_lme4_in_any_units(key):
    ref = REF[key]
    link = "log" if key.startswith("gamma_log") else "inverse"
    m, caught = _fit_strict(ref["formula"], _gamma_data(ref["scale"]), Gamma(link=link))
    assert not caught, [str(w.message) for w in caught]
    assert m.converged and not m.singular
    # lme4's tight fit; mmfast's deviance may be lower (lme4's log|L| lags one PIRLS step)
    t = ref["tight"]
    np.testing.assert_allclose(m.fixef.to_numpy(), t["fixef"], rtol=2e-5)
    np.testing.assert_allclose(m.theta, t["theta"], rtol=2e-5)
    assert -1e-6 < m.loglik - t["logLik"] < 2e-5
    assert m.sigma == pytest.approx(t["sigma"], rel=1e-4)


def test_gamma_inverse_is_equivariant_in_the_response_units():
    """y -> c y: β and θ (both on the 1/y scale) times 1/c, SEs too, σ unchanged, logLik
    - n log c.  lme4 itself fails at c = 1e6 ("PIRLS loop resulted in NaN value") and its SEs
    at c = 1e-6 are off by 10^3 (finite differences with absolute steps)."""
    assert "NaN" in REF["gamma_inverse_scale_1e+06"]["default"]["error"]
    ref = REF["gamma_inverse_scale_1e+00"]["tight"]
    fits = {}
    for c in (1.0, 1e-6, 1e6):
        fits[c], caught = _fit_strict("ys ~ x + (1 | g)", _gamma_data(c), Gamma(link="inverse"))
        assert not caught, [str(w.message) for w in caught]
    n = fits[1.0].nobs
    se1 = np.sqrt(np.diag(fits[1.0].vcov_array))
    np.testing.assert_allclose(se1, ref["se"], rtol=2e-3)
    for c in (1e-6, 1e6):
        m = fits[c]
        assert m.converged and not m.singular
        np.testing.assert_allclose(m.fixef.to_numpy() * c, ref["fixef"], rtol=2e-5)
        np.testing.assert_allclose(m.theta * c, ref["theta"], rtol=2e-5)
        np.testing.assert_allclose(np.sqrt(np.diag(m.vcov_array)) * c, se1, rtol=1e-4)
        assert m.sigma == pytest.approx(fits[1.0].sigma, rel=1e-6)
        assert m.loglik == pytest.approx(fits[1.0].loglik - n * np.log(c), abs=1e-5)


def _only_separation_warning(caught, pattern):
    import re

    assert len(caught) == 1, [str(w.message) for w in caught]
    assert caught[0].category is ConvergenceWarning
    assert re.search(pattern, str(caught[0].message)), str(caught[0].message)


def _separated():
    w = _water()
    w["band"] = np.where(w.dff > 10, "high", np.where(w.dff > 0, "mid", "low"))
    w.loc[w.band == "high", "lick"] = 1  # every trial with dff > 10 a lick
    return w


def test_quasi_complete_separation_fits_as_lme4_with_a_warning():
    ref = REF["separation"]
    m, caught = _fit_strict(ref["formula"], _separated(), "binomial")
    _only_separation_warning(
        caught,
        r"numerically 0 or 1 for 68 rows \(complete or quasi-"
        r"complete separation\): the estimates of \(Intercept\), bandlow, "
        r"bandmid tend to ±infinity",
    )
    t = ref["tight"]
    assert m.theta[0] == pytest.approx(t["theta"], rel=1e-4)
    # the log-likelihood's supremum: mmfast at least as high as lme4's tight fit, not far above
    assert -1e-6 < m.loglik - t["logLik"] < 1e-4
    b, bt = m.fixef.to_numpy(), np.asarray(t["fixef"])
    # identified: the log-odds of the "low" and "mid" bands; the reference level's goes to +inf
    np.testing.assert_allclose(b[0] + b[1:], bt[0] + bt[1:], atol=1e-4)
    assert b[0] > 10 and bt[0] > 10
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        se = np.sqrt(np.diag(m.vcov_array))
        m.summary()
    assert np.all(np.isfinite(se)) and se[0] > 10  # lme4: 36 (tight) to 1170 (default)


def test_probit_with_one_separating_row_fits_as_lme4_with_a_warning():
    ref = REF["probit_one_row"]
    w = _water()
    w["z"] = 0.0
    w.loc[ref["z_row"], "z"] = 1.0
    assert w.lick[ref["z_row"]] == 1
    m, caught = _fit_strict(ref["formula"], w, Binomial(link="probit"))
    _only_separation_warning(
        caught,
        r"for 1 row \(complete or quasi-complete separation\): "
        r"the estimates of z tend to ±infinity",
    )
    t = ref["tight"]
    assert m.theta[0] == pytest.approx(t["theta"], rel=1e-4)
    np.testing.assert_allclose(m.fixef.to_numpy()[:2], t["fixef"][:2], rtol=1e-4)
    assert m.fixef["z"] > 5
    assert -1e-6 < m.loglik - t["logLik"] < 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        se = np.sqrt(np.diag(m.vcov_array))
        m.summary()
    np.testing.assert_allclose(se[:2], t["se"][:2], rtol=2e-3)


@pytest.mark.parametrize("case", ["separation_nagq0", "separation_two_terms"])
def test_separation_other_paths_as_lme4(case):
    """nAGQ = 0 (β inside PIRLS: the stage that diverges) and two terms (the kernel engine)."""
    ref = REF[case]
    d = _separated()
    d["blk"] = np.arange(len(d)) % 16
    m, caught = _fit_strict(ref["formula"], d, "binomial", n_agq=0 if case.endswith("nagq0") else 1)
    _only_separation_warning(
        caught,
        r"the estimates of \(Intercept\), bandlow, bandmid tend to "
        r"±infinity",
    )
    t = ref["tight"]
    np.testing.assert_allclose(m.theta, t["theta"], rtol=1e-4)
    assert -1e-6 < m.loglik - t["logLik"] < 1e-4
    b, bt = m.fixef.to_numpy(), np.asarray(t["fixef"])
    np.testing.assert_allclose(b[0] + b[1:], bt[0] + bt[1:], atol=1e-4)
    assert b[0] > 10

"""Python-native results API (issue 18): per-row values as Series on the caller's index (R's
na.exclude), statsmodels-style accessors and broom.mixed's tidy/glance/augment.

Oracle: tests/reference/tidy.json.gz, made by tests/oracle/tidy.R (lme4 1.1-31, lmerTest,
broom.mixed 0.2.9.4); prediction standard errors by their derivation sqrt(diag(X V X'))
from R's vcov (lme4 1.1-31's predict has no se.fit).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mmfast
from mmfast.errors import MmfastError
from reference_cases import load_reference

REF = load_reference("tidy")
SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def _factors(d: pd.DataFrame, cols) -> pd.DataFrame:
    d = d.copy()
    for c in cols:
        d[c] = pd.Categorical(d[c], categories=sorted(d[c].unique()))
    return d


@pytest.fixture(scope="module")
def sleep():
    return _factors(mmfast.datasets.load("sleepstudy"), ["Subject"])


@pytest.fixture(scope="module")
def fits(sleep):
    cbpp = _factors(mmfast.datasets.load("cbpp"), ["herd", "period"])
    mach = _factors(mmfast.datasets.load("Machines"), ["Machine", "Worker"])
    return {
        "sleep_reml": mmfast.lmer(SLEEP, sleep),
        "sleep_ml": mmfast.lmer(SLEEP, sleep, reml=False),
        "machines_3x3": mmfast.lmer("score ~ Machine + (0 + Machine | Worker)", mach),
        "sleep_weighted": mmfast.lmer(SLEEP, sleep.assign(w=1.0 + sleep["Days"] % 3), weights="w"),
        "cbpp": mmfast.glmer(CBPP, cbpp, "binomial"),
    }


def _ref_frame(case: str, key: str) -> pd.DataFrame:
    return pd.DataFrame(REF[case][key])


# --- fitted / residuals / predict on the caller's rows ------------------------------------
def test_fitted_on_caller_index_with_na_exclude(sleep):
    d = sleep.copy()
    d.index = pd.Index(np.arange(len(d)) * 10 + 7, name="row")
    d.loc[d.index[[3, 50]], "Reaction"] = np.nan
    m = mmfast.lmer(SLEEP, d)
    for s in (m.fitted, m.residuals, m.predict(), m.predict(re_form=None)):
        assert isinstance(s, pd.Series)
        assert s.index.equals(d.index)
        assert list(np.flatnonzero(s.isna())) == [3, 50]
    d["fit"] = m.fitted  # aligns by label
    ok = d["Reaction"].notna()
    np.testing.assert_allclose((d["fit"] + m.residuals)[ok], d["Reaction"][ok], rtol=1e-12)
    # the same values as a fit to the complete rows only
    m2 = mmfast.lmer(SLEEP, d[ok])
    np.testing.assert_allclose(m.fitted[ok].to_numpy(), m2.fitted.to_numpy(), rtol=1e-10)
    assert m2.fitted.index.equals(d.index[ok])


def test_predict_newdata_keeps_its_index(fits, sleep):
    m = fits["sleep_reml"]
    new = sleep.iloc[[5, 1, 30]].set_axis(["a", "b", "c"])
    p = m.predict(new)
    assert list(p.index) == ["a", "b", "c"]
    np.testing.assert_allclose(p.to_numpy(), m.fitted.to_numpy()[[5, 1, 30]], rtol=1e-12)


def test_glmm_fitted_predict_series(fits):
    g = fits["cbpp"]
    aug = _ref_frame("cbpp", "augment")
    assert isinstance(g.fitted, pd.Series) and isinstance(g.predict(type="response"), pd.Series)
    np.testing.assert_allclose(g.fitted.to_numpy(), aug[".mu"], rtol=2e-3)
    np.testing.assert_allclose(g.predict().to_numpy(), aug[".eta"], rtol=2e-3, atol=1e-3)
    np.testing.assert_allclose(g.residuals.to_numpy(), aug[".resid"], rtol=2e-3, atol=1e-3)


# --- statsmodels-style accessors ------------------------------------------------------------
@pytest.mark.parametrize("case", ["sleep_reml", "sleep_ml"])
def test_lmm_accessors_match_lmertest(fits, case):
    m, ref = fits[case], _ref_frame(case, "tidy")
    fixed = ref[ref["effect"] == "fixed"].set_index("term")
    assert list(m.params.index) == list(fixed.index)
    np.testing.assert_allclose(m.params, fixed["estimate"], rtol=1e-6)
    np.testing.assert_allclose(m.bse, fixed["std.error"], rtol=1e-5)
    np.testing.assert_allclose(m.tvalues, fixed["statistic"], rtol=1e-5)
    np.testing.assert_allclose(m.pvalues, fixed["p.value"], rtol=1e-4)  # Satterthwaite
    np.testing.assert_allclose(m.cov_params().to_numpy(), np.array(REF[case]["vcov"]), rtol=1e-5, atol=1e-4)
    g = REF[case]["glance"]
    assert m.llf == pytest.approx(g["logLik"], rel=1e-9)
    assert m.df_resid == g["df.residual"] and m.nobs == g["nobs"]


def test_conf_int_is_wald_normal(fits):
    m = fits["sleep_reml"]
    fixed = _ref_frame("sleep_reml", "tidy").query("effect == 'fixed'").set_index("term")
    ci = m.conf_int(alpha=0.1)
    z = stats.norm.ppf(0.95)  # statsmodels' MixedLM: normal quantile
    np.testing.assert_allclose(ci[0], fixed["estimate"] - z * fixed["std.error"], rtol=1e-6)
    np.testing.assert_allclose(ci[1], fixed["estimate"] + z * fixed["std.error"], rtol=1e-6)
    with pytest.raises(MmfastError, match="alpha"):
        m.conf_int(alpha=1.5)


def test_glmm_accessors_are_glmer_wald_z(fits):
    g, ref = fits["cbpp"], _ref_frame("cbpp", "tidy")
    fixed = ref[ref["effect"] == "fixed"].set_index("term")
    assert list(g.params.index) == list(fixed.index)
    np.testing.assert_allclose(g.params, fixed["estimate"], rtol=1e-3)  # lme4: see model/glmm.py
    # standard errors: glmmTMB's exact Laplace Hessian (lme4's finite differences are ~1% off)
    np.testing.assert_allclose(g.params, REF["cbpp"]["tmb_fixef"], rtol=1e-5)
    se = np.array(REF["cbpp"]["tmb_se"])
    np.testing.assert_allclose(g.bse, se, rtol=1e-4)
    np.testing.assert_allclose(g.bse, fixed["std.error"], rtol=2e-2)
    # glmer's summary: z = estimate / SE, p = 2 Φ(-|z|)
    z = np.array(REF["cbpp"]["tmb_fixef"]) / se
    np.testing.assert_allclose(g.tvalues, z, rtol=1e-4)
    np.testing.assert_allclose(g.pvalues, 2 * stats.norm.sf(np.abs(z)), rtol=1e-3)
    assert g.llf == pytest.approx(REF["cbpp"]["glance"]["logLik"], abs=1e-3)


def test_get_prediction_mean_se_is_x_vcov_x(fits, sleep):
    m = fits["sleep_reml"]
    new = sleep.iloc[[0, 11, 25]].set_axis([100, 200, 300])
    V = np.array(REF["sleep_reml"]["vcov"])  # R's vcov
    X = np.column_stack([np.ones(3), new["Days"].to_numpy(float)])
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
    sf = m.get_prediction(new).summary_frame(alpha=0.05)
    assert list(sf.index) == [100, 200, 300]
    np.testing.assert_allclose(sf["mean"], m.predict(new), rtol=1e-12)
    np.testing.assert_allclose(sf["mean_se"], se, rtol=1e-5)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(sf["mean_ci_lower"], sf["mean"] - z * se, rtol=1e-5)
    np.testing.assert_allclose(sf["mean_ci_upper"], sf["mean"] + z * se, rtol=1e-5)
    # population-level prediction interval: X V X' + z' Σ z + σ², Σ from R's VarCorr
    pars = _ref_frame("sleep_reml", "tidy").set_index("term")["estimate"]
    s0, s1, rho, sig = (
        pars["sd__(Intercept)"],
        pars["sd__Days"],
        pars["cor__(Intercept).Days"],
        pars["sd__Observation"],
    )
    S = np.array([[s0**2, rho * s0 * s1], [rho * s0 * s1, s1**2]])
    sd = np.sqrt(se**2 + np.einsum("ij,jk,ik->i", X, S, X) + sig**2)
    pop = m.get_prediction(new, re_form=None).summary_frame(alpha=0.05)
    np.testing.assert_allclose(pop["obs_ci_upper"] - pop["mean"], z * sd, rtol=1e-5)


def test_get_prediction_conditional_interval_uses_condvar(fits):
    m = fits["sleep_reml"]
    sf = m.get_prediction().summary_frame(alpha=0.05)
    X = m.frame.X
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, m.vcov_array, X))
    # row 0: Subject 308, Days 0: conditional variance of its intercept (condsd²)
    csd = m.ranef_condsd["Subject"].iloc[0]["(Intercept)"]
    z = stats.norm.ppf(0.975)
    width = (sf["obs_ci_upper"] - sf["mean"]).iloc[0]
    assert width == pytest.approx(z * np.sqrt(se[0] ** 2 + csd**2 + m.sigma**2), rel=1e-10)
    np.testing.assert_allclose(sf["mean"], m.fitted, rtol=1e-12)


def test_glmm_get_prediction_response_scale(fits):
    g = fits["cbpp"]
    link = g.get_prediction().summary_frame()
    resp = g.get_prediction(type="response").summary_frame()
    assert "obs_ci_lower" not in resp
    expit = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    np.testing.assert_allclose(resp["mean"], expit(link["mean"]), rtol=1e-12)
    np.testing.assert_allclose(resp["mean_ci_lower"], expit(link["mean_ci_lower"]), rtol=1e-12)
    mu = resp["mean"].to_numpy()
    np.testing.assert_allclose(resp["mean_se"], mu * (1 - mu) * link["mean_se"], rtol=1e-12)


# --- broom.mixed --------------------------------------------------------------------------
TIDY_COLS = ["effect", "group", "term", "estimate", "std.error", "statistic", "df", "p.value", "conf.low", "conf.high"]


@pytest.mark.parametrize("case", ["sleep_reml", "sleep_ml", "machines_3x3", "sleep_weighted"])
def test_tidy_matches_broom_mixed(fits, case):
    ref = _ref_frame(case, "tidy")
    got = fits[case].tidy(conf_int=True)
    assert list(got.columns) == TIDY_COLS == list(ref.columns)
    assert list(got["effect"]) == list(ref["effect"])
    assert list(got["term"]) == list(ref["term"])
    assert list(got["group"].fillna("NA")) == list(ref["group"].fillna("NA"))
    for col in TIDY_COLS[3:]:
        np.testing.assert_allclose(
            got[col].to_numpy(float), ref[col].to_numpy(float), rtol=1e-4, atol=1e-8, err_msg=f"{case}: {col}"
        )


def test_tidy_conf_level_and_effects(fits):
    ref = _ref_frame("sleep_reml", "tidy90")
    got = fits["sleep_reml"].tidy(effects="fixed", conf_int=True, conf_level=0.9)
    np.testing.assert_allclose(got["conf.low"], ref["conf.low"], rtol=1e-5)
    np.testing.assert_allclose(got["conf.high"], ref["conf.high"], rtol=1e-5)
    assert "conf.low" not in fits["sleep_reml"].tidy()
    with pytest.raises(MmfastError, match="effects"):
        fits["sleep_reml"].tidy(effects="random")


def test_tidy_ran_vals(fits):
    ref = _ref_frame("sleep_reml", "ran_vals")
    got = fits["sleep_reml"].tidy(effects="ran_vals")
    assert list(got.columns) == list(ref.columns)
    key = ["term", "level"]
    got = got.assign(level=got["level"].astype(str)).sort_values(key).reset_index(drop=True)
    ref = ref.assign(level=ref["level"].astype(str)).sort_values(key).reset_index(drop=True)
    assert list(got["level"]) == list(ref["level"])
    np.testing.assert_allclose(got["estimate"], ref["estimate"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["std.error"], ref["std.error"], rtol=1e-5)


def test_tidy_glmm(fits):
    ref = _ref_frame("cbpp", "tidy")
    got = fits["cbpp"].tidy(conf_int=True)
    assert list(got.columns) == list(ref.columns)  # no df column for glmer
    assert list(got["term"]) == list(ref["term"]) and list(got["effect"]) == list(ref["effect"])
    np.testing.assert_allclose(got["estimate"], ref["estimate"], rtol=1e-3)
    # SE-based columns: broom's formulas on glmmTMB's exact SEs
    est, se = np.array(REF["cbpp"]["tmb_fixef"]), np.array(REF["cbpp"]["tmb_se"])
    fx = got[got["effect"] == "fixed"]
    np.testing.assert_allclose(fx["std.error"], se, rtol=1e-4)
    np.testing.assert_allclose(fx["p.value"], 2 * stats.norm.sf(np.abs(est / se)), rtol=1e-3)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(fx["conf.low"], est - z * se, rtol=1e-4)
    np.testing.assert_allclose(fx["conf.high"], est + z * se, rtol=1e-4)
    rp = got[got["effect"] == "ran_pars"]
    assert rp["std.error"].isna().all() and rp["conf.low"].isna().all()
    np.testing.assert_allclose(rp["estimate"], ref[ref["effect"] == "ran_pars"]["estimate"], rtol=1e-3)


@pytest.mark.parametrize("case", ["sleep_reml", "sleep_ml", "machines_3x3", "sleep_weighted", "cbpp"])
def test_glance_matches_broom_mixed(fits, case):
    ref = REF[case]["glance"]
    got = fits[case].glance()
    assert list(got.columns) == list(ref)
    tol = 1e-6 if case != "cbpp" else 1e-4  # glmer's deviance: see model/glmm.py
    for k, v in ref.items():
        assert got[k].iloc[0] == pytest.approx(v, rel=tol), k


@pytest.mark.parametrize("case", ["sleep_reml", "sleep_weighted", "cbpp"])
def test_augment_matches_broom_mixed(fits, case):
    ref = _ref_frame(case, "augment")
    got = fits[case].augment()
    rtol, atol = (1e-6, 1e-4) if case != "cbpp" else (3e-3, 3e-3)  # optimum: ~1e-5 apart
    skip = (".hat", ".cooksd") if case == "cbpp" else ()  # lme4: "may not make sense for GLMMs"
    for col in [c for c in ref.columns if c not in skip]:
        assert col in got, col
        np.testing.assert_allclose(
            got[col].to_numpy(float), ref[col].to_numpy(float), rtol=rtol, atol=atol, err_msg=f"{case}: {col}"
        )
    if case != "cbpp":  # lme4's hatvalues: depend on θ only, so they agree closely
        np.testing.assert_allclose(got[".hat"], ref[".hat"], rtol=1e-5)
        np.testing.assert_allclose(got[".cooksd"], ref[".cooksd"], rtol=1e-4)


def test_augment_keeps_data_rows_and_index(sleep):
    d = sleep.copy()
    d.index = d.index + 1000
    d.loc[1003, "Reaction"] = np.nan
    m = mmfast.lmer(SLEEP, d)
    a = m.augment()
    assert 1003 not in a.index and len(a) == len(d) - 1  # as broom: the rows the model used
    assert a.index.equals(d.index.drop(1003))
    full = m.augment(d)
    assert np.isnan(full.loc[1003, ".fitted"]) and full.index.equals(d.index)
    with pytest.raises(MmfastError, match="rows"):
        m.augment(d.iloc[:10])


def test_glmm_na_exclude():
    d = _factors(mmfast.datasets.load("cbpp"), ["herd", "period"])
    d.loc[[2, 40], "incidence"] = np.nan
    g = mmfast.glmer(CBPP, d, "binomial")
    g2 = mmfast.glmer(CBPP, d.dropna(), "binomial")
    for a, b in (
        (g.fitted, g2.fitted),
        (g.residuals, g2.residuals),
        (g.predict(type="response"), g2.predict(type="response")),
    ):
        assert a.index.equals(d.index) and list(np.flatnonzero(a.isna())) == [2, 40]
        np.testing.assert_allclose(a.dropna().to_numpy(), b.to_numpy(), rtol=1e-8)
    sf = g.get_prediction().summary_frame()
    assert sf.index.equals(d.index) and sf["mean_se"].isna().sum() == 2

"""Issue 14, weights: a prior weight of 0 must not count as an observation.

lme4 itself cannot fit such a model (log(0) in its criterion: logLik NaN, θ stuck at the start;
see the ``zero`` entries of the reference), so the target is R's fit on the rows with those
weights dropped (``dropped``: lme4 + lmerTest, tests/oracle/refit_predict_weights.R), which is
what a weight of 0 means and what R's ``nobs``/``df.residual`` for weighted fits count.
Before the fix mmfast used n = 180 (not 146) in σ, the criteria, logLik and the ddf.
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import mmfast

REF = json.load(gzip.open(Path(__file__).parent / "reference" / "refit_predict_weights.json.gz"))
FORMULA = "Reaction ~ Days + (Days | Subject)"


def _fits(key):
    ref = REF[key]
    w = np.asarray(ref["weights"], dtype=float)
    sleep = mmfast.datasets.load("sleepstudy")
    reml = ref["dropped"]["REML"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zero = mmfast.lmer(FORMULA, sleep, weights=w, reml=reml)
        dropped = mmfast.lmer(FORMULA, sleep[w > 0].reset_index(drop=True), weights=w[w > 0], reml=reml)
    return ref, zero, dropped


@pytest.mark.parametrize("key", ["zero_weights_reml", "zero_weights_ml"])
def test_zero_weights_match_r_without_those_rows(key):
    ref, m, _ = _fits(key)
    r = ref["dropped"]
    assert ref["zero"]["logLik"] is None  # lme4 fails on the zero weights themselves
    assert m.nobs == r["nobs"] == 146 and len(m.fitted) == 180
    np.testing.assert_allclose(m.theta, r["theta"], rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(m.beta, r["fixef"], rtol=1e-6)
    np.testing.assert_allclose(m.sigma, r["sigma"], rtol=1e-6)
    np.testing.assert_allclose(m.loglik, r["logLik"], rtol=1e-9)
    np.testing.assert_allclose(m.objective_value, r["objective"], rtol=1e-9)
    np.testing.assert_allclose([m.aic, m.bic], [r["AIC"], r["BIC"]], rtol=1e-9)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov_array)), r["se"], rtol=1e-5)
    assert m.nobs - m.npar == r["df_residual"]
    co = m.summary().coefficients
    np.testing.assert_allclose(co["df"].to_numpy(), r["sat_df"], rtol=1e-4)
    if not r["REML"]:
        np.testing.assert_allclose(m.deviance, r["deviance"], rtol=1e-9)


def test_zero_weights_kenward_roger_and_profile_equal_the_dropped_fit():
    """pbkrtest ignores prior weights (its Σ is σ²I plus the random part), so R's KR df of a
    weighted model are no reference; a zero weight must still give exactly the dropped fit's."""
    _, m, d = _fits("zero_weights_reml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(
            m.summary(ddf="Kenward-Roger").coefficients.to_numpy(),
            d.summary(ddf="Kenward-Roger").coefficients.to_numpy(),
            rtol=1e-4,
        )
        np.testing.assert_allclose(m.anova().to_numpy(float), d.anova().to_numpy(float), rtol=1e-4)
        np.testing.assert_allclose(
            m.confint(method="profile").to_numpy(), d.confint(method="profile").to_numpy(), rtol=1e-4
        )
        np.testing.assert_allclose(m.drop1().to_numpy(float), d.drop1().to_numpy(float), rtol=1e-6)
        vm, vd = mmfast.variance_test(m), mmfast.variance_test(d)
        np.testing.assert_allclose(vm.stat, vd.stat, rtol=1e-6)


def test_all_weights_zero_is_an_error():
    sleep = mmfast.datasets.load("sleepstudy")
    with pytest.raises(mmfast.MmfastError, match="weight"):
        mmfast.lmer(FORMULA, sleep, weights=np.zeros(len(sleep)))


def test_lm_zero_weights_as_r_lm():
    """R's lm drops rows of weight 0 from nobs, df.residual, σ and logLik."""
    r = REF["zero_weights_lm"]
    w = np.asarray(r["weights"], dtype=float)
    m = mmfast.lm(r["formula"], mmfast.datasets.load("sleepstudy"), weights=w)
    assert m.nobs == r["nobs"] and m.df_residual == r["df_residual"]
    np.testing.assert_allclose(m.beta, r["coef"], rtol=1e-10)
    np.testing.assert_allclose(
        [m.sigma, m.loglik, m.aic, m.bic], [r["sigma"], r["logLik"], r["AIC"], r["BIC"]], rtol=1e-10
    )
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov_array)), r["se"], rtol=1e-10)


def test_variance_test_against_lm_with_zero_weights():
    """The LRT of the random effects against the weighted lm: both count the same 146 rows."""
    ref, m, _ = _fits("zero_weights_ml")
    null = mmfast.lm(
        REF["zero_weights_lm"]["formula"],
        mmfast.datasets.load("sleepstudy"),
        weights=np.asarray(ref["weights"], dtype=float),
    )
    res = mmfast.variance_test(m, null)
    np.testing.assert_allclose(res.stat, 2 * (ref["dropped"]["logLik"] - REF["zero_weights_lm"]["logLik"]), rtol=1e-8)


@pytest.mark.parametrize("family", ["poisson", "gamma"])
def test_glmm_zero_weights_equal_the_dropped_fit(family):
    """GLMMs: a row of prior weight 0 adds nothing to the deviance; nobs, BIC, residual df
    and (Gamma) the scale must not count it either, as for the fit without that row."""
    cbpp = mmfast.datasets.load("cbpp").assign(y=lambda d: d["incidence"] + 0.5)
    resp = "incidence" if family == "poisson" else "y"
    w = np.ones(len(cbpp))
    w[[3, 10, 20]] = 0
    f = f"{resp} ~ period + (1 | herd)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = mmfast.glmer(f, cbpp, family=family, weights=w)
        b = mmfast.glmer(f, cbpp[w > 0].reset_index(drop=True), family=family, weights=w[w > 0])
    assert a.nobs == b.nobs == 53 and a.df_residual == b.df_residual
    np.testing.assert_allclose([a.loglik, a.aic, a.bic, a.sigma], [b.loglik, b.aic, b.bic, b.sigma], rtol=1e-8)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-6)


@pytest.mark.parametrize("reml", [True, False])
def test_permutation_fast_path_counts_the_same_rows(reml):
    """The random-intercept engine of the permutation tests must give the σ and Satterthwaite
    df of the fit without the zero-weight rows (it counted every row before)."""
    from mmfast.resample.intercept import RandomInterceptLMM

    sleep = mmfast.datasets.load("sleepstudy")
    w = np.ones(len(sleep))
    w[::7], w[5::9] = 0.0, 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.lmer("Reaction ~ Days + (1 | Subject)", sleep, weights=w, reml=reml)
        eng = RandomInterceptLMM(m)
        res = eng.fit(m.frame.X)
        est, se, df = eng.satterthwaite(res).t_test(np.array([0.0, 1.0]))
        d = mmfast.lmer(
            "Reaction ~ Days + (1 | Subject)", sleep[w > 0].reset_index(drop=True), weights=w[w > 0], reml=reml
        )  # the reference: those rows dropped
        co = d.summary().coefficients.loc["Days"]
    np.testing.assert_allclose([res["theta"], res["sigma"]], [d.theta[0], d.sigma], rtol=1e-6)
    np.testing.assert_allclose([est, se, df], co[["Estimate", "Std. Error", "df"]].to_numpy(float), rtol=1e-6)

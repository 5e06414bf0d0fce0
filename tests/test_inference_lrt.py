"""Likelihood-ratio tests (lme4's anova) and the naive linear model (R's lm / aov).

References: ``extras.lrt_vs_ex3_nested_ml`` of ex3_cell_slope_ml (a non-identifiable model: logLik
to 1e-3 as the README says), ``extras.naive_lm`` of ex1 and ex2.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import mmfast


def assert_close(actual, expected, rtol, atol=0.0, what=""):
    a = np.asarray(actual, dtype=float)
    e = np.asarray([np.nan if v is None else v for v in np.ravel(expected)], dtype=float).reshape(a.shape)
    bad = ~((np.abs(a - e) <= atol + rtol * np.abs(e)) | (np.isnan(a) & np.isnan(e)))
    assert not bad.any(), f"{what}: got {a[bad]}, expected {e[bad]}"


COLS = ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]


def test_lrt_nested_vs_cell_slope(fit_case):
    small, big = fit_case("ex3_nested_ml"), fit_case("ex3_cell_slope_ml")
    ref = big.ref["results"]["extras"]["lrt_vs_ex3_nested_ml"]
    tab = mmfast.anova(big.model, small.model, names=["ex3_cell_slope_ml", "ex3_nested_ml"])
    assert list(tab.columns) == COLS
    assert list(tab.index) == ref["models"]  # sorted by npar
    assert_close(tab["npar"], ref["npar"], 0, 0, "npar")
    assert_close(tab["Df"], ref["Df"], 0, 0, "Df")
    for col, key in [("logLik", "logLik"), ("deviance", "deviance"), ("AIC", "AIC"), ("BIC", "BIC")]:
        assert_close(tab[col], ref[key], 0, 2e-3, col)  # ex3_cell_slope: logLik to 1e-3 (README)
    assert_close(tab["Chisq"], ref["Chisq"], 0, 4e-3, "Chisq")
    assert_close(tab["Pr(>Chisq)"], ref["p"], 0, 2e-3, "p")
    assert np.isnan(tab["Chisq"].iloc[0])


@pytest.mark.parametrize("case", ["ex1_ml", "ex2_ml"])
def test_naive_lm(case, fit_case):
    fit = fit_case(case)
    ref = fit.ref["results"]["extras"]["naive_lm"]
    lhs, rhs = fit.ref["formula"].split("~")
    fixed = rhs.split("+ (")[0]
    ols = mmfast.lm(f"{lhs}~{fixed}", fit.data)
    coef = ols.summary().coefficients
    assert list(coef.columns) == ["Estimate", "Std. Error", "t value", "Pr(>|t|)"]
    assert list(coef.index) == ref["coef"]["names"]
    assert_close(coef["Estimate"], ref["coef"]["estimate"], 1e-10, 1e-12, "lm estimates")
    assert_close(coef["Std. Error"], ref["coef"]["se"], 1e-10, 0, "lm SE")
    assert_close(coef["t value"], ref["coef"]["t"], 1e-10, 0, "lm t")
    assert_close(coef["Pr(>|t|)"], ref["coef"]["p"], 1e-7, 1e-300, "lm p")
    assert ols.sigma == pytest.approx(ref["sigma"], rel=1e-12)
    assert ols.df_residual == ref["df_residual"]
    aov = ols.anova()
    assert list(aov.index) == ref["aov"]["terms"]
    assert_close(aov["Df"], ref["aov"]["Df"], 0, 0, "aov Df")
    assert_close(aov["Sum Sq"], ref["aov"]["SumSq"], 1e-10, 0, "aov Sum Sq")
    assert_close(aov["Mean Sq"], ref["aov"]["MeanSq"], 1e-10, 0, "aov Mean Sq")
    assert_close(aov["F value"], ref["aov"]["F"], 1e-9, 0, "aov F")
    assert_close(aov["Pr(>F)"], ref["aov"]["p"], 1e-6, 1e-300, "aov p")


def test_lm_as_null_model(fit_case):
    """The random-intercept LRT against the model without random effects (lm), as the lecture's."""
    fit = fit_case("ex2_ml")
    ols = mmfast.lm("res ~ factor(treatment_idx)", fit.data)
    assert ols.refit_ml() is ols and ols.npar == 5
    n = ols.nobs
    assert ols.loglik == pytest.approx(-n / 2 * (np.log(2 * np.pi * ols.rss / n) + 1), rel=1e-14)
    tab = mmfast.anova(ols, fit.model)
    assert list(tab["npar"]) == [5, 6]
    chisq = 2 * (fit.model.loglik - ols.loglik)
    assert tab["Chisq"].iloc[1] == pytest.approx(chisq, rel=1e-12)
    assert tab["Pr(>Chisq)"].iloc[1] == pytest.approx(stats.chi2.sf(chisq, 1), rel=1e-12)
    assert tab["AIC"].iloc[0] == pytest.approx(ols.aic, rel=1e-14)


def test_reml_fits_are_refitted_by_ml(fit_case):
    reml = fit_case("sleepstudy_slope_reml").model
    ml = fit_case("sleepstudy_slope_ml").model
    m0 = reml.refit_formula("Reaction ~ Days + (1 | Subject)")
    tab = reml.anova(m0)  # the method form
    assert "refitting model(s) with ML (instead of REML)" in tab.attrs["notes"]
    assert tab["logLik"].iloc[1] == pytest.approx(ml.loglik, abs=1e-6)
    assert tab["npar"].iloc[0] == 4 and tab["Df"].iloc[1] == 2


def test_drop1_is_the_lrt_of_each_term(fit_case):
    fit = fit_case("ex1_ml")
    tab = fit.model.drop1(test="Chisq")
    assert list(tab.columns) == ["npar", "AIC", "LRT", "Pr(Chi)"]
    assert list(tab.index) == ["<none>", "factor(treatment_idx)"]
    m0 = fit.model.refit_formula("res ~ 1 + (1 | midx)")
    lrt = 2 * (fit.model.loglik - m0.loglik)
    assert tab.loc["factor(treatment_idx)", "LRT"] == pytest.approx(lrt, rel=1e-8)
    assert tab.loc["factor(treatment_idx)", "npar"] == 4
    assert tab.loc["<none>", "AIC"] == pytest.approx(fit.model.aic, rel=1e-12)


def test_anova_checks_nobs(fit_case):
    with pytest.raises(ValueError, match="same size"):
        mmfast.anova(fit_case("ex1_ml").model, fit_case("ex2_ml").model)

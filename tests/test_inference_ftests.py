"""Other df methods and user contrasts: nlme's between-within df against ``extras.nlme_lme_ML`` of ex1,
residual and asymptotic df, lme4's plain table, ``contest``.

nlme's ML fit reports standard errors inflated by sqrt(N / (N - p)) (its ``adjustSigma``); mmfast keeps
the model's (lme4's) standard errors with nlme's df, so t values are compared after that factor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mmfast.errors import ModelSpecError


def assert_close(actual, expected, rtol, atol=0.0, what=""):
    a = np.asarray(actual, dtype=float)
    e = np.asarray(expected, dtype=float).reshape(a.shape)
    bad = ~(np.abs(a - e) <= atol + rtol * np.abs(e))
    assert not bad.any(), f"{what}: got {a[bad]}, expected {e[bad]}"


COLS = ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]


def test_between_within_df_and_t_as_nlme(fit_case):
    fit = fit_case("ex1_ml")
    ref = fit.ref["results"]["extras"]["nlme_lme_ML"]["tTable"]
    m = fit.model
    tab = m.summary(ddf="between-within").coefficients
    assert list(tab.columns) == COLS
    assert_close(tab["df"], ref["DF"], 0, 0, "nlme df (1176 for the intercept, 19 for treatment)")
    n, p = m.frame.X.shape
    t_nlme = tab["t value"] * np.sqrt((n - p) / n)
    assert_close(t_nlme, ref["t"], 1e-6, 0, "t (nlme's sigma adjustment)")
    assert_close(2 * stats.t.sf(np.abs(t_nlme), tab["df"]), ref["p"], 1e-5, 1e-12, "p")
    assert "between-within" in str(m.summary(ddf="between-within"))


def test_between_within_anova_as_nlme(fit_case):
    fit = fit_case("ex1_ml")
    ref = fit.ref["results"]["extras"]["nlme_lme_ML"]["anova"]
    m = fit.model
    tab = m.anova(type=1, ddf="between-within")
    n, p = m.frame.X.shape
    i = ref["terms"].index("factor(treatment_idx)")
    assert tab.loc["factor(treatment_idx)", "DenDF"] == ref["denDF"][i] == 19
    assert tab.loc["factor(treatment_idx)", "NumDF"] == ref["numDF"][i]
    assert_close(tab.loc["factor(treatment_idx)", "F value"] * (n - p) / n, ref["F"][i], 1e-6, 0, "F")


def test_between_within_needs_nested_factors(fit_case):
    with pytest.raises(ModelSpecError, match="nested"):
        fit_case("penicillin_reml").model.summary(ddf="between-within")


def test_residual_and_asymptotic_df(fit_case):
    m = fit_case("ex1_ml").model
    n, p = m.frame.X.shape
    res = m.summary(ddf="residual").coefficients
    assert np.all(res["df"] == n - p)
    z = m.summary(ddf=None).coefficients
    assert list(z.columns) == COLS and np.all(np.isinf(z["df"]))
    assert_close(z["Pr(>|t|)"], 2 * stats.norm.sf(np.abs(z["t value"])), 1e-12, 0, "z test p")
    plain = m.summary(ddf="lme4").coefficients
    assert list(plain.columns) == ["Estimate", "Std. Error", "t value"]
    assert_close(plain["Std. Error"], z["Std. Error"], 1e-14, 0, "same SEs")


@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward-roger", "residual"])
def test_contest_one_row_is_a_t_test(ddf, fit_case):
    m = fit_case("ex1_ml").model
    summ = m.summary(ddf=ddf).coefficients
    one = m.contest(np.eye(5)[2], ddf=ddf)
    assert list(one.columns) == COLS
    assert_close(one.iloc[0].to_numpy(), summ.iloc[2].to_numpy(), 1e-10, 0, "contest row = summary row")
    # a difference of two coefficients, by name
    L = pd.DataFrame([[1.0, -1.0]], columns=["factor(treatment_idx)2", "factor(treatment_idx)3"])
    d = m.contest(L, ddf=ddf)
    est = m.fixef["factor(treatment_idx)2"] - m.fixef["factor(treatment_idx)3"]
    assert d["Estimate"].iloc[0] == pytest.approx(est, rel=1e-12) or ddf == "kenward-roger"


@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward-roger"])
def test_contest_several_rows_is_the_anova_F(ddf, fit_case):
    m = fit_case("orthodont_reml").model
    tab = m.anova(type=3, ddf=ddf)
    L = np.vstack([tab.attrs["hypotheses"]["age"], tab.attrs["hypotheses"]["age:Sex"]])
    joint = m.contest(L, ddf=ddf)
    assert list(joint.columns) == ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    assert joint["NumDF"].iloc[0] == 2
    sep = m.contest(L, ddf=ddf, joint=False)
    assert len(sep) == 2 and list(sep.columns) == COLS
    # rank-deficient hypotheses keep their rank (one direction repeated)
    rep = m.contest(np.vstack([L[0], 2 * L[0]]), ddf=ddf)
    assert rep["NumDF"].iloc[0] == 1
    assert rep["F value"].iloc[0] == pytest.approx(tab.loc["age", "F value"], rel=1e-8)


def test_contest_rhs(fit_case):
    m = fit_case("sleepstudy_slope_reml").model
    t0 = m.contest([0, 1], rhs=10.0)
    se = np.sqrt(m.vcov_array[1, 1])
    assert t0["t value"].iloc[0] == pytest.approx((m.beta[1] - 10.0) / se, rel=1e-12)
    f = m.contest(np.eye(2), rhs=[250.0, 10.0])
    assert np.isfinite(f["F value"].iloc[0])


def test_anova_types_on_one_term_are_type1(fit_case):
    m = fit_case("ex1_ml").model
    f = [m.anova(type=t).loc["factor(treatment_idx)", "F value"] for t in (1, 2, 3)]
    assert f[0] == pytest.approx(f[1], rel=1e-12) and f[0] == pytest.approx(f[2], rel=1e-12)
    with pytest.raises(ValueError):
        m.anova(type=4)

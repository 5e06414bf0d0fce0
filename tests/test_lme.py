"""nlme's calling style, ``mmfast.lme``, against nlme 3.1-162 (tests/reference/lecture_extras.json.gz).

Tolerances (tests/reference/README.md): logLik/AIC/BIC 1e-6 absolute, estimates and SEs 1e-5
relative, p-values 1e-4 relative.  Two documented exceptions:

* ex3 nested: nlme stops 6e-9 below the optimum in logLik, along the flat direction of the
  mouse standard deviation; its intercept SE differs from the optimum's (lme4's, mmfast's)
  by 1.6e-5 relative, so SEs there are compared to 5e-5.
* the cell-slope model (``cidx = ~treatment``) is not identifiable: logLik to 1e-3 and fixed
  effects to 1e-4 only.
"""

from __future__ import annotations

import gzip
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.nlme.random import lme4_formula, parse_random
from mmfast.errors import FormulaError

REF = json.load(gzip.open(Path(__file__).parent / "reference" / "lecture_extras.json.gz"))


def _factors(d: pd.DataFrame, *cols: str) -> pd.DataFrame:
    d = d.copy()
    for c in cols:
        d[c] = pd.Categorical(d[c], categories=sorted(d[c].dropna().unique()))
    return d


@pytest.fixture(scope="module")
def ex1_ml():
    ex1 = _factors(mmfast.datasets.load("ex1"), "treatment_idx")
    return mmfast.lme("res ~ treatment_idx", data=ex1, random="~ 1 | midx", method="ML")


@pytest.fixture(scope="module")
def ex3():
    d = _factors(mmfast.datasets.load("ex3"), "treatment")
    return d[d["res"].notna()].reset_index(drop=True)  # the lecture's Ex3[!is.na(Ex3$res),]


@pytest.fixture(scope="module")
def ex3_nested(ex3):
    return mmfast.lme("res ~ treatment", ex3, random="~1 | midx/cidx", method="ML")


@pytest.fixture(scope="module")
def ex3_cell_slope(ex3):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a convergence note is fine: the model is not identifiable
        return mmfast.lme("res ~ treatment", ex3, random={"midx": "~1", "cidx": "~treatment"}, method="ML")


def _close(actual, expected, rel, abs_=0.0):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=rel, atol=abs_)


# --- translation of nlme's random argument ----------------------------------------------------
@pytest.mark.parametrize(
    "random, expected",
    [
        ("~ 1 | midx", "res ~ t + (1 | midx)"),
        ("~1|midx/cidx", "res ~ t + (1 | midx) + (1 | cidx:midx)"),
        ("~ x | g", "res ~ t + (x | g)"),
        ({"midx": "~1", "cidx": "~treatment"}, "res ~ t + (1 | midx) + (treatment | cidx:midx)"),
        ("list(midx = ~1, cidx = ~treatment)", "res ~ t + (1 | midx) + (treatment | cidx:midx)"),
        ({"g": "pdDiag(~ x)"}, "res ~ t + (x || g)"),
        ("~ x - 1 | g", "res ~ t + (0 + x | g)"),
    ],
)
def test_random_translation(random, expected):
    assert lme4_formula("res ~ t", parse_random(random)) == expected


def test_random_level_names():
    levels = parse_random("~ 1 | midx/cidx")
    assert [lv.label for lv in levels] == ["midx", "cidx %in% midx"]
    assert levels[1].formula == "~1 | cidx %in% midx"


@pytest.mark.parametrize("bad", ["~ 1", "1 | g", "~ 1 | a b", {"g": "~ 1 | h"}, {"g": "pdCompSymm(~x)"}, 3])
def test_random_errors(bad):
    with pytest.raises(FormulaError):
        parse_random(bad)


def test_bad_method():
    with pytest.raises(ValueError, match="REML"):
        mmfast.lme("y ~ 1", pd.DataFrame({"y": [1.0, 2.0], "g": [1, 2]}), "~1|g", method="GLS")


# --- Example 1: lme(res ~ treatment_idx, random = ~ 1 | midx, method = "ML") -------------------
def test_ex1_ttable(ex1_ml):
    ref = REF["lme_ex1"]["tTable"]
    tt = ex1_ml.summary().tTable
    assert list(tt.index) == ref["term"]
    assert list(tt.columns) == ["Value", "Std.Error", "DF", "t-value", "p-value"]
    _close(tt["Value"], ref["Value"], 1e-5)
    _close(tt["Std.Error"], ref["Std.Error"], 1e-5)
    _close(tt["DF"], ref["DF"], 0)
    _close(tt["t-value"], ref["t-value"], 1e-5)
    _close(tt["p-value"], ref["p-value"], 1e-4)


def test_ex1_ml_se_is_lme4_se_inflated(ex1_ml):
    """nlme's ML standard errors: lme4's times sqrt(N / (N - p)); vcov() itself is lme4's."""
    n, p = ex1_ml.nobs, len(ex1_ml.fixef)
    lme4_se = np.sqrt(np.diag(ex1_ml.model.vcov_array))
    _close(ex1_ml.tTable()["Std.Error"], lme4_se * math.sqrt(n / (n - p)), 1e-12)
    _close(ex1_ml.tTable(adjust_sigma=False)["Std.Error"], lme4_se, 1e-12)
    _close(np.diag(ex1_ml.vcov), lme4_se**2, 1e-12)


def test_ex1_criteria_and_sds(ex1_ml):
    ref = REF["lme_ex1"]
    s = ex1_ml.summary()
    assert s.logLik == pytest.approx(ref["logLik"], abs=1e-6 * abs(ref["logLik"]))
    assert s.AIC == pytest.approx(ref["AIC"], abs=1e-6 * ref["AIC"])
    assert s.BIC == pytest.approx(ref["BIC"], abs=1e-6 * ref["BIC"])
    vc = ex1_ml.varcorr()
    # the reference sds are nlme's printed values (7 significant digits)
    _close(vc["StdDev"], ref["sd"], 2e-6)


def test_ex1_anova(ex1_ml):
    ref = REF["lme_ex1"]["anova"]
    a = ex1_ml.anova()
    assert list(a.index) == ref["term"]
    assert list(a.columns) == ["numDF", "denDF", "F-value", "p-value"]
    _close(a["numDF"], ref["numDF"], 0)
    _close(a["denDF"], ref["denDF"], 0)
    _close(a["F-value"], ref["F-value"], 1e-5)
    # nlme prints 0 for the intercept (1 - pf underflows); mmfast keeps the tiny value
    assert a["p-value"].iloc[0] < 1e-40
    assert a["p-value"].iloc[1] == pytest.approx(ref["p-value"][1], rel=1e-4)


def test_ex1_printed_summary(ex1_ml):
    text = str(ex1_ml.summary())
    assert "Linear mixed-effects model fit by maximum likelihood" in text
    assert "2189.937 2225.567 -1087.968" in text
    assert "StdDev:    0.332379 0.5828861" in text
    assert "treatment_idx2  1.0828450 0.1917088   19  5.648384  0.0000" in text
    assert "Number of Groups: 24" in text
    anova_text = repr(ex1_ml.anova())
    assert "(Intercept)       1  1176 244.65402  <.0001" in anova_text
    assert "treatment_idx     4    19  11.63622   1e-04" in anova_text


def test_ex1_reml_matches_lmer_and_nlme_bic():
    """REML: lme4's restricted logLik; nlme's BIC counts N - p observations."""
    ex1 = _factors(mmfast.datasets.load("ex1"), "treatment_idx")
    fit = mmfast.lme("res ~ treatment_idx", ex1, "~ 1 | midx")
    m = mmfast.lmer("res ~ treatment_idx + (1 | midx)", ex1)
    assert fit.method == "REML" and fit.loglik == pytest.approx(m.loglik, abs=1e-9)
    assert fit.loglik == pytest.approx(-1092.18, abs=5e-3)  # nlme prints -1092.18
    assert fit.bic == pytest.approx(2233.961, abs=5e-4)  # nlme: BIC on N - p = 1195
    assert fit.aic == pytest.approx(2198.36, abs=5e-3)
    a = fit.anova()
    _close(a["F-value"], [193.80785, 9.26455], 1e-6)  # nlme's anova(m2)
    marg = fit.anova(type="marginal")
    _close(marg["F-value"], [24.67658, 9.26455], 1e-6)


# --- Example 3: nested random intercepts and the cell-level slope ------------------------------
def test_ex3_nested(ex3_nested):
    ref = REF["lme_ex3_nested"]
    assert ex3_nested.loglik == pytest.approx(ref["logLik"], abs=1e-6 * abs(ref["logLik"]))
    assert ex3_nested.loglik >= ref["logLik"] - 1e-9  # never worse than nlme
    tt = ex3_nested.tTable()
    r = ref["tTable"]
    assert list(tt.index) == r["term"]
    _close(tt["Value"], r["Value"], 1e-5)
    _close(tt["Std.Error"], r["Std.Error"], 5e-5)
    _close(tt["DF"], r["DF"], 0)
    _close(tt["t-value"], r["t-value"], 5e-5)
    _close(tt["p-value"], r["p-value"], 2e-3)  # p ~ 1e-19 and 1e-65: follow the t values
    assert ex3_nested.ngroups == {"midx": 11, "cidx %in% midx": 1244}


def test_ex3_list_same_model(ex3, ex3_nested):
    ref = REF["lme_ex3_list"]
    fit = mmfast.lme("res ~ treatment", ex3, random={"midx": "~1", "cidx": "~1"}, method="ML")
    assert fit.loglik == pytest.approx(ref["logLik"], abs=1e-6 * abs(ref["logLik"]))
    assert fit.loglik == pytest.approx(ex3_nested.loglik, abs=1e-9)


def test_ex3_cell_slope(ex3_cell_slope):
    ref = REF["lme_ex3_cell_slope"]
    assert ex3_cell_slope.loglik == pytest.approx(ref["logLik"], abs=1e-3)
    _close(ex3_cell_slope.fixef, ref["fixef"], 1e-4)
    assert ex3_cell_slope.npar == 7


def test_ex3_compare(ex3_nested, ex3_cell_slope):
    ref = REF["lme_ex3_cell_slope"]["anova_vs_nested"]
    cmp = ex3_nested.compare(ex3_cell_slope)
    assert list(cmp.columns) == ["Model", "df", "AIC", "BIC", "logLik", "Test", "L.Ratio", "p-value"]
    _close(cmp["df"], ref["df"], 0)
    _close(cmp["AIC"], ref["AIC"], 0, 2e-3)
    _close(cmp["BIC"], ref["BIC"], 0, 2e-3)
    _close(cmp["logLik"], ref["logLik"], 0, 1e-3)
    assert list(cmp["Test"]) == ref["Test"]
    assert np.isnan(cmp["L.Ratio"].iloc[0]) and np.isnan(cmp["p-value"].iloc[0])
    assert cmp["L.Ratio"].iloc[1] == pytest.approx(ref["L.Ratio"][1], abs=2e-3)
    assert cmp["p-value"].iloc[1] == pytest.approx(ref["p-value"][1], abs=1e-3)
    # anova(fit1, fit2) is the same comparison; mmfast.anova gives lme4's layout of it
    same = ex3_nested.anova(ex3_cell_slope)
    _close(same["L.Ratio"].iloc[1:], cmp["L.Ratio"].iloc[1:], 1e-12)
    lme4_style = mmfast.anova(ex3_nested, ex3_cell_slope)
    _close(lme4_style["Chisq"].iloc[1:], cmp["L.Ratio"].iloc[1:], 1e-12)
    _close(lme4_style["logLik"], ref["logLik"], 0, 1e-3)
    assert "1 vs 2" in repr(cmp)


def test_compare_refuses_mixed_methods(ex3, ex3_nested):
    reml = mmfast.lme("res ~ treatment", ex3, random="~1 | midx/cidx")
    with pytest.raises(ValueError, match="estimation method"):
        ex3_nested.compare(reml)
    assert reml.refit_ml().loglik == pytest.approx(ex3_nested.loglik, abs=1e-8)


def test_random_slope_print_and_varcorr():
    """``~ Days | Subject``: nlme's pdLogChol block (StdDev and Corr), REML."""
    ss = mmfast.datasets.load("sleepstudy")
    fit = mmfast.lme("Reaction ~ Days", ss, random="~ Days | Subject")
    assert fit.loglik == pytest.approx(-871.8141, abs=1e-4)  # nlme's print
    vc = fit.varcorr()
    _close(vc["StdDev"], [24.740241, 5.922103, 25.591843], 2e-4)  # nlme's optimum, flat direction
    text = str(fit.summary())
    assert "Structure: General positive-definite, Log-Cholesky parametrization" in text
    assert "(Intr)" in text and "Residual" in text
    assert list(fit.ranef) == ["Subject"]
    assert fit.fixDF()["X"].tolist() == [161.0, 161.0]

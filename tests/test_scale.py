"""LMMs on extreme scales: sleepstudy with y + 1e12, y * 1e±200, Days * 1e-7 and Days * 1e5.

The exact answers follow from the base fit (lme4's, tests/reference/scale.json.gz "base"):
y -> c y leaves θ unchanged and adds 2 (n - p) log c to the REML criterion; y -> y + k (X has
an intercept) changes nothing but the intercept; a covariate x -> d x (in X and Z) divides its
rows of Λ by d and adds 2 log d to the REML criterion (|R_X| gains the factor d).  lme4's own
fits of the same data (tests/oracle/scale.R) are stored beside them: lme4 is off at y + 1e12
(a convergence warning), returns a criterion of ±Inf (σ = Inf or 0) at y * 1e±200 and misses the optimum for the scaled
covariates; mmfast must be no worse than lme4 anywhere and right everywhere.
"""

from __future__ import annotations

import gzip
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import mmfast

REF = json.load(gzip.open(Path(__file__).resolve().parent / "reference" / "scale.json.gz", "rt"))
BASE = REF["base"]
N, P = 180, 2
FORMULA = "Reaction ~ Days + (Days | Subject)"


def _fit(column, fn):
    d = mmfast.datasets.load("sleepstudy").copy()
    d[column] = fn(d[column])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mmfast.errors.SingularFitWarning)  # lme4 says so too
        return mmfast.lmer(FORMULA, d)


@pytest.mark.parametrize("key,c", [("y_times_1e200", 1e200), ("y_times_1e_200", 1e-200)])
def test_response_scaled_by_1e200(key, c):
    m = _fit("Reaction", lambda y: y * c)
    assert m.converged
    np.testing.assert_allclose(m.theta, BASE["theta"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.sigma, BASE["sigma"] * c, rtol=1e-6)
    np.testing.assert_allclose(m.fixef.values, np.array(BASE["fixef"]) * c, rtol=1e-6)
    expected = BASE["REML"] + 2 * (N - P) * math.log(c)
    assert m.reml_criterion == pytest.approx(expected, rel=1e-9)
    assert np.all(np.isfinite(m.ranef["Subject"].to_numpy() / c))
    assert not math.isfinite(float(REF[key]["REML"]))  # what lme4 returns: no fit at all


def test_response_offset_by_1e12():
    m = _fit("Reaction", lambda y: y + 1e12)
    assert m.converged
    # y + 1e12 is stored to 1.2e-4 (its rounding unit): θ moves by about that share of σ
    np.testing.assert_allclose(m.theta, BASE["theta"], rtol=1e-4, atol=1e-5)
    assert m.fixef.iloc[0] - 1e12 == pytest.approx(BASE["fixef"][0], abs=1e-3)
    assert m.fixef.iloc[1] == pytest.approx(BASE["fixef"][1], rel=1e-5)
    assert m.reml_criterion == pytest.approx(BASE["REML"], abs=1e-3)
    assert m.reml_criterion <= REF["y_plus_1e12"]["REML"] + 1e-9  # lme4 stops short here


@pytest.mark.parametrize("key,d", [("days_times_1e_7", 1e-7), ("days_times_1e5", 1e5)])
def test_slope_covariate_on_extreme_scale(key, d):
    m = _fit("Days", lambda x: x * d)
    expected = BASE["REML"] + 2 * math.log(d)
    assert m.converged
    assert m.reml_criterion == pytest.approx(expected, rel=1e-9)
    assert m.reml_criterion < REF[key]["REML"] - 1e-3  # lme4 ends far from the optimum
    np.testing.assert_allclose(m.theta * np.array([1, d, d]), BASE["theta"], rtol=1e-3)
    assert m.sigma == pytest.approx(BASE["sigma"], rel=1e-5)
    assert m.fixef.iloc[1] * d == pytest.approx(BASE["fixef"][1], rel=1e-6)


def test_exact_linear_function_still_refused():
    d = mmfast.datasets.load("sleepstudy").copy()
    d["Reaction"] = 1e12 + 3.0 * d["Days"]
    with pytest.raises(mmfast.errors.DataError, match="exact linear function"):
        mmfast.lmer(FORMULA, d)


def test_fit_many_response_offset_by_1e12_matches_lmer():
    """fit_many's batched scalar path: y + 1e12 is not 'an exact linear function' (the rounding
    of the mean is not a residual); each group's answer is lmer's on that group."""
    d = mmfast.datasets.load("sleepstudy").copy()
    d["Reaction"] = d["Reaction"] + 1e12
    d["half"] = d["Subject"].astype(str).str[-1].astype(int) % 2
    out = mmfast.fit_many(d, "Reaction ~ Days + (1 | Subject)", by="half")
    assert out["error"].isna().all()
    for half, rows in out.groupby("half"):
        m = mmfast.lmer("Reaction ~ Days + (1 | Subject)", d[d["half"] == half])
        fixed = rows[rows["effect"] == "fixed"].set_index("term")["estimate"]
        assert fixed["Days"] == pytest.approx(m.fixef["Days"], rel=1e-6)
        # both intercepts are 1e12 + ~250 to a few units of the last place (1.2e-4): 1e-14 relative
        assert fixed["(Intercept)"] == pytest.approx(m.fixef.iloc[0], rel=1e-14)


def test_fit_many_exact_linear_function_still_refused():
    d = mmfast.datasets.load("sleepstudy").copy()
    d["Reaction"] = 1e12 + 3.0 * d["Days"]
    d["half"] = d["Subject"].astype(str).str[-1].astype(int) % 2
    out = mmfast.fit_many(d, "Reaction ~ Days + (1 | Subject)", by="half")
    assert out["error"].str.contains("exact linear function").all()

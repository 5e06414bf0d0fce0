"""Profile-likelihood and Wald intervals against lme4 (tests/reference/profile_confint.json.gz).

lme4 interpolates splines through its profile; mmfast solves ζ = ±z exactly, so interval ends
agree to a small fraction of the interval's width (README: about 5e-3; required here: 1e-3).
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from scipy import stats

from reference_cases import REFERENCE_DIR

with gzip.open(REFERENCE_DIR / "profile_confint.json.gz", "rt", encoding="utf-8") as fh:
    PROFILES = json.load(fh)
CASES = sorted(PROFILES)


@pytest.mark.parametrize("case", CASES)
def test_profile_confint(case, fit_case):
    ref = PROFILES[case]["profile"]
    ci = fit_case(case).model.confint(method="profile", level=0.95)
    assert list(ci.index) == ref["names"]
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    lo, hi = np.asarray(ref["lower"]), np.asarray(ref["upper"])
    width = hi - lo
    err = np.maximum(np.abs(ci["2.5 %"] - lo), np.abs(ci["97.5 %"] - hi)) / width
    assert np.all(err <= 1e-3), dict(zip(ref["names"], err))


@pytest.mark.parametrize("case", CASES)
def test_wald_confint(case, fit_case):
    ref = PROFILES[case]["wald"]
    ci = fit_case(case).model.confint(method="wald")
    assert list(ci.index) == ref["names"]
    lo = np.array([np.nan if v is None else v for v in ref["lower"]])
    hi = np.array([np.nan if v is None else v for v in ref["upper"]])
    assert np.array_equal(np.isnan(ci["2.5 %"]), np.isnan(lo))  # NaN for variance parameters, as lme4
    ok = ~np.isnan(lo)
    width = (hi - lo)[ok]  # SEs agree to 1e-5 (penicillin: 1e-4, a flat direction of theta)
    assert np.all(np.abs(ci["2.5 %"].to_numpy()[ok] - lo[ok]) <= 1e-4 * width)
    assert np.all(np.abs(ci["97.5 %"].to_numpy()[ok] - hi[ok]) <= 1e-4 * width)


def test_profile_data_for_zeta_plots(fit_case):
    m = fit_case("sleepstudy_slope_reml").model
    prof = m.profile()
    assert list(prof.columns) == ["parameter", "value", "zeta"]
    names = list(m.confint(method="wald").index)
    assert list(dict.fromkeys(prof["parameter"])) == names
    cutoff = np.sqrt(stats.chi2.ppf(0.99, len(names)))
    for name, grp in prof.groupby("parameter"):
        z = grp.sort_values("value")["zeta"].to_numpy()
        assert np.all(np.diff(z) > 0), name  # ζ increases along the parameter
        assert np.any(np.abs(z) < 1e-12), name  # passes through the estimate
        assert z.max() >= cutoff or name.startswith("cor_"), name
    # the intervals are where ζ crosses ±1.96
    ci = m.confint(level=0.95)
    days = prof[prof["parameter"] == "Days"].sort_values("value")
    z_at = np.interp(ci.loc["Days"].to_numpy(), days["value"], days["zeta"])
    assert np.allclose(z_at, [-1.96, 1.96], atol=0.02)


def test_other_levels_and_bounds(fit_case):
    m = fit_case("dyestuff2_reml").model  # singular: the sd's interval starts at 0
    ci = m.confint(level=0.9)
    assert list(ci.columns) == ["5 %", "95 %"]
    assert ci.iloc[0, 0] == 0.0 and ci.iloc[0, 1] > 0
    assert ci.loc["sigma", "5 %"] < m.sigma < ci.loc["sigma", "95 %"]

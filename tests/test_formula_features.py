"""Formula features beyond the shared reference cases, against lme4 itself.

tests/reference/formula_features.json.gz is written by tests/oracle/formula_features.R (lme4
with tight bobyqa settings): factor interactions and their R names, (x || g), I(), log(),
0 + ..., grouping interactions a:b, nested a/b, crossed terms, a factor slope (0 + f | g).
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmfast

REF = json.load(gzip.open(Path(__file__).parent / "reference" / "formula_features.json.gz"))
CASES = [k for k in REF if not k.startswith("_")]


def _data(ref):
    """The data set with the columns R made factors as Categoricals with sorted levels."""
    d = mmfast.datasets.load(ref["data"])
    factors = ref["factors"]
    for col in [factors] if isinstance(factors, str) else factors:  # R unboxes length-1 vectors
        levels = sorted(d[col].dropna().unique())
        d[col] = pd.Categorical(d[col], categories=levels)
    return d


@pytest.fixture(scope="module")
def fits():
    out = {}
    for case in CASES:
        ref = REF[case]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[case] = mmfast.lmer(ref["formula"], _data(ref), reml=ref["REML"])
    return out


@pytest.mark.parametrize("case", CASES)
def test_names_follow_lme4(fits, case):
    m, ref = fits[case], REF[case]
    assert list(m.fixef.index) == ref["fixef_names"]
    assert (
        m.theta_names == ref["theta_names"]
        if isinstance(ref["theta_names"], list)
        else m.theta_names == [ref["theta_names"]]
    )
    assert list(m.varcorr["grp"]) == ref["varcorr"]["grp"]
    assert m.ngroups == ref["ngrps"]


@pytest.mark.parametrize("case", CASES)
def test_estimates_match_lme4(fits, case):
    m, ref = fits[case], REF[case]
    obj = m.reml_criterion if ref["REML"] else m.deviance
    assert obj <= ref["objective"] + 1e-6 * max(1.0, abs(ref["objective"]))
    assert obj == pytest.approx(ref["objective"], abs=1e-6 * max(1.0, abs(ref["objective"])))
    np.testing.assert_allclose(m.fixef.to_numpy(), ref["fixef"], rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov_array)), ref["se"], rtol=1e-3)
    np.testing.assert_allclose(m.sigma, ref["sigma"], rtol=1e-3)
    np.testing.assert_allclose(
        m.varcorr["sdcor"].to_numpy(dtype=float), np.asarray(ref["varcorr"]["sdcor"], dtype=float), rtol=2e-3, atol=2e-3
    )
    assert m.singular == ref["singular"]

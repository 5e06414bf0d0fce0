"""Issue 14, predict: a missing grouping value in newdata (NaN, None, a missing Categorical)
used to index the last level's random effect (code -1).  lme4 refuses it unless
allow.new.levels = TRUE, and then predicts that row at the population level.  Numbers from
tests/oracle/refit_predict_weights.R (tests/reference/refit_predict_weights.json.gz)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.errors import MmfastError

REF = json.load(gzip.open(Path(__file__).parent / "reference" / "refit_predict_weights.json.gz"))


@pytest.fixture(scope="module")
def sleep_model():
    return mmfast.lmer(REF["predict_na_lmm"]["formula"], mmfast.datasets.load("sleepstudy"))


def _newdata_variants(days, subject):
    """The same newdata with the missing group as None (object), NaN (float) and a Categorical."""
    obj = pd.DataFrame({"Days": days, "Subject": pd.Series(subject, dtype=object)})
    num = pd.DataFrame({"Days": days, "Subject": [np.nan if s is None else float(s) for s in subject]})
    cat = pd.DataFrame({"Days": days, "Subject": pd.Categorical(subject)})
    return {"object": obj, "float": num, "categorical": cat}


@pytest.mark.parametrize("kind", ["object", "float", "categorical"])
def test_lmm_missing_group_is_an_error_by_default(sleep_model, kind):
    ref = REF["predict_na_lmm"]
    nd = _newdata_variants(ref["newdata"]["Days"][:3], ref["newdata"]["Subject"][:3])[kind]
    assert "NAs are not allowed in prediction data" in ref["error_default"]
    with pytest.raises(MmfastError, match="NAs are not allowed in prediction data.*'Subject'"):
        sleep_model.predict(nd)


@pytest.mark.parametrize("kind", ["object", "float"])
def test_lmm_missing_group_with_allow_new_levels_is_population(sleep_model, kind):
    ref = REF["predict_na_lmm"]
    nd = _newdata_variants(ref["newdata"]["Days"], ref["newdata"]["Subject"])[kind]
    got = sleep_model.predict(nd, allow_new_levels=True)
    np.testing.assert_allclose(got, ref["pred_allow_new"], rtol=1e-6)
    np.testing.assert_allclose(got[1], ref["pred_pop"][1], rtol=1e-6)


def test_lmm_missing_categorical_group_with_allow_new_levels(sleep_model):
    ref = REF["predict_na_lmm"]
    nd = _newdata_variants(ref["newdata"]["Days"][:3], ref["newdata"]["Subject"][:3])["categorical"]
    np.testing.assert_allclose(sleep_model.predict(nd, allow_new_levels=True), ref["pred_allow_new"][:3], rtol=1e-6)


def test_glmm_missing_group():
    ref = REF["predict_na_glmm"]
    cbpp = mmfast.datasets.load("cbpp")
    cbpp["period"] = pd.Categorical(cbpp["period"])  # a factor, as in the R script
    g = mmfast.glmer(ref["formula"], cbpp, family="binomial")
    nd = pd.DataFrame(
        {
            "period": pd.Categorical(
                [int(p) for p in ref["newdata"]["period"]], categories=cbpp["period"].cat.categories
            ),
            "herd": pd.Series([None if h is None else int(h) for h in ref["newdata"]["herd"]], dtype=object),
        }
    )
    with pytest.raises(MmfastError, match="NAs are not allowed in prediction data.*'herd'"):
        g.predict(nd)
    # mmfast's Laplace fit of cbpp differs from lme4's in β by ~2e-4 (tests/test_glmm_reference):
    # R's numbers to 1e-3; the missing-herd rows exactly at the population level
    got = g.predict(nd, allow_new_levels=True)
    np.testing.assert_allclose(got, ref["pred_link"], rtol=1e-3)
    np.testing.assert_allclose(g.predict(nd, allow_new_levels=True, type="response"), ref["pred_response"], rtol=1e-3)
    pop = g.predict(nd, re_form=None)
    np.testing.assert_allclose(got[[1, 3]], pop[[1, 3]], rtol=1e-14)
    assert abs(got[0] - pop[0]) > 0.05 and abs(got[2] - pop[2]) > 0.05  # herds 1, 3: their own

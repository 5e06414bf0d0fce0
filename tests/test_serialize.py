"""to_dict / to_json / _repr_html_ on fitted models, and the CLI's --json output."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.cli import main
from mmfast.present.serialize import jsonable, results_dict, table_records

F = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def lmm():
    return mmfast.lmer(F, mmfast.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def glmm():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.glmer("lick ~ dff + (1 | mouseID)", mmfast.datasets.load("waterlick"), family="binomial")


def strict_loads(text: str):
    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=no_constants)


def test_to_dict_matches_the_model(lmm):
    d = lmm.to_dict()
    assert d["formula"] == F and d["family"] == "gaussian" and d["reml"] is True
    assert d["nobs"] == 180 and d["ngroups"] == {"Subject": 18}
    assert d["coef_names"] == ["(Intercept)", "Days"]
    assert d["fixef"] == pytest.approx(lmm.fixef.to_dict(), rel=0, abs=0)
    np.testing.assert_array_equal(np.array(d["vcov"]), lmm.vcov.to_numpy())
    np.testing.assert_array_equal(d["theta"], lmm.theta)
    assert d["sigma"] == lmm.sigma and d["loglik"] == lmm.loglik
    assert d["aic"] == lmm.aic and d["bic"] == lmm.bic and d["npar"] == lmm.npar
    assert len(d["varcorr"]) == len(lmm.varcorr) == 4
    assert d["varcorr"][0] == {
        "grp": "Subject",
        "var1": "(Intercept)",
        "var2": None,
        "vcov": lmm.varcorr["vcov"][0],
        "sdcor": lmm.varcorr["sdcor"][0],
    }
    assert d["varcorr"][-1]["grp"] == "Residual" and d["varcorr"][-1]["var1"] is None
    assert [r["term"] for r in d["coefficients"]] == ["(Intercept)", "Days"]
    assert d["coefficients"][1]["Estimate"] == lmm.fixef["Days"]
    re = lmm.ranef["Subject"]
    assert set(d["ranef"]["Subject"]) == {str(v) for v in re.index}
    assert d["ranef"]["Subject"][str(re.index[0])]["Days"] == re["Days"].iloc[0]
    assert "ranef_condsd" not in d and "ranef" not in lmm.to_dict(ranef=False)


def test_to_json_is_strict_and_round_trips(lmm, tmp_path):
    path = tmp_path / "fit.json"
    text = lmm.to_json(path, condsd=True)
    assert path.read_text().strip() == text
    back = strict_loads(text)
    assert back["fixef"] == lmm.to_dict()["fixef"]
    sd = lmm.ranef_condsd["Subject"]
    assert back["ranef_condsd"]["Subject"][str(sd.index[2])]["(Intercept)"] == pytest.approx(
        sd["(Intercept)"].iloc[2], rel=1e-15
    )
    assert strict_loads(lmm.to_json(indent=None))["nobs"] == 180


def test_to_dict_with_ddf_carries_df_and_p_values(lmm):
    d = lmm.to_dict(ddf="satterthwaite")
    row = d["coefficients"][1]
    assert {"df", "Pr(>|t|)"} <= set(row) and 0 < row["Pr(>|t|)"] < 1


def test_glmm_to_dict(glmm):
    d = strict_loads(glmm.to_json())
    assert d["family"] == "binomial" and d["link"] == "logit" and d["n_agq"] == 1
    assert d["reml"] is False and d["sigma"] == 1.0
    assert d["fixef"]["dff"] == glmm.fixef["dff"]
    assert [r["grp"] for r in d["varcorr"]] == ["mouseID"]
    assert "Pr(>|z|)" in d["coefficients"][1]
    assert len(d["ranef"]["mouseID"]) == 8


def test_notebook_html(lmm, glmm):
    for m in (lmm, glmm):
        html = m._repr_html_()
        assert html.startswith("<pre>") and "<table" in html and "Fixed effects" in html


def test_cli_json_is_results_dict(tmp_path, capsys):
    out = tmp_path / "cli.json"
    assert main(["fit", "sleepstudy", F, "--json", str(out)]) == 0
    assert "results written to" in capsys.readouterr().out
    cli = strict_loads(out.read_text())
    ref = results_dict(mmfast.lmer(F, mmfast.datasets.load("sleepstudy")))
    for key in ("fixef", "vcov", "theta", "varcorr", "loglik", "coefficients", "ranef"):
        assert cli[key] == ref[key], key


def test_jsonable_edge_cases():
    obj = {
        1: np.float64("nan"),
        "inf": -np.inf,
        "i": np.int64(3),
        "b": np.bool_(True),
        "arr": np.array([[1.0, np.nan]]),
        "t": (np.float32(0.5), None),
        "na": pd.NA,
        "s": pd.Series([1.0, 2.0], index=["a", "b"]),
    }
    out = jsonable(obj)
    assert out == {
        "1": None,
        "inf": None,
        "i": 3,
        "b": True,
        "arr": [[1.0, None]],
        "t": [0.5, None],
        "na": None,
        "s": {"a": 1.0, "b": 2.0},
    }
    assert type(out["i"]) is int and type(out["b"]) is bool
    json.dumps(out, allow_nan=False)
    df = pd.DataFrame({"x": [1.0, math.nan]}, index=pd.Index(["p", "q"], name="term"))
    assert table_records(df) == [{"term": "p", "x": 1.0}, {"term": "q", "x": None}]
    assert table_records(df.reset_index(drop=True)) == [{"x": 1.0}, {"x": None}]

"""The peer benchmark's simulated workloads have the published shapes (issue 19), and the
adapters re-express lme4 formulas correctly for engines with other interfaces."""

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import peers  # noqa: E402
import workloads  # noqa: E402
from peers._statsmodels_like import mixedlm_spec  # noqa: E402

sys.path.remove(str(BENCH))


def test_kb07_design_is_the_balanced_2x2x2_latin_square():
    d = workloads.kb07(None)
    assert len(d) == 56 * 32
    assert d.groupby(["subj", "item"]).size().max() == 1  # every pair exactly once
    cond = d[["S", "P", "C"]].astype(str).agg("".join, axis=1)
    assert cond.nunique() == 8
    assert (d.assign(c=cond).groupby(["subj", "c"]).size() == 32 // 8).all()
    assert (d.assign(c=cond).groupby(["item", "c"]).size() == 56 // 8).all()
    np.testing.assert_array_equal(d["SPC"], d["S"] * d["P"] * d["C"])
    assert set(np.unique(d["S"])) == {-0.5, 0.5}


def test_crossed_binomial_shape_and_seed():
    d = workloads.crossed_binomial((50, 20, 10))
    assert len(d) == 500
    assert d["subj"].nunique() == 50 and d["item"].max() <= 20
    assert (d.groupby("subj")["item"].nunique() == 10).all()  # no item twice for a subject
    assert set(np.unique(d["y"])) == {0, 1}
    again = workloads.crossed_binomial((50, 20, 10))
    assert d.equals(again)  # fixed seed: the same data in every run


def test_nested_series_nests_subjects_in_sites():
    d = workloads.nested("1e4")
    assert len(d) == 10_000
    assert d["subj"].nunique() == 1000 and d["site"].nunique() == 20
    assert (d.groupby("subj")["site"].nunique() == 1).all()
    assert [w.label(s) for w in [workloads.WORKLOADS["nested"]] for s in w.full] == [
        "nested_1e4",
        "nested_1e5",
        "nested_1e6",
        "nested_1e7",
    ]
    assert "1e7" not in workloads.WORKLOADS["nested"].quick


def test_split_formula_keeps_nested_parentheses():
    lhs, fixed, random = peers.split_formula(workloads.WORKLOADS["insteval2025"].formula)
    assert lhs == "y" and fixed == ["1", "service"]
    assert random == [("1", "s"), ("1", "d"), ("1", "dept"), ("0 + service", "dept")]
    _, fixed, random = peers.split_formula(workloads.WORKLOADS["kb07"].formula)
    assert len(fixed) == 8 and [g for _, g in random] == ["subj", "item"]
    assert random[0][0] == workloads.KB07_RE


def test_mixedlm_spec_nested_and_crossed():
    w = workloads.WORKLOADS["nested"]
    formula, kwargs = mixedlm_spec(w, peers.as_factors(w, workloads.nested("1e4")))
    assert formula == "y ~ 1 + x"
    assert kwargs == {"groups": "site", "re_formula": "~1", "vc_formula": {"subj": "0 + C(subj)"}}
    w = workloads.WORKLOADS["kb07"]
    assert "crossed" in mixedlm_spec(w, peers.as_factors(w, workloads.kb07(None)))
    assert "GLMM" in mixedlm_spec(workloads.WORKLOADS["crossed_glmm"], None)


def test_unknown_workload_is_named():
    with pytest.raises(SystemExit, match="kb08"):
        workloads.get(["kb08"])


def test_engine_limits_are_reported_as_cannot_fit():
    lme_python, glmm = peers.adapter("lme_python"), peers.adapter("glmm")
    insteval = workloads.WORKLOADS["insteval2025"]
    assert "(0 + service | dept)" in lme_python.cannot_fit(insteval, None)
    assert "without intercept" in glmm.cannot_fit(insteval, None)
    kb07 = workloads.WORKLOADS["kb07"]  # numeric slopes with intercepts: both can fit
    assert lme_python.cannot_fit(kb07, None) is None and glmm.cannot_fit(kb07, None) is None

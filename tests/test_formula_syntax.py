"""Formula syntax and transforms against R: model.matrix names and values (training and new
data), lmer/glmer fits with expression terms, lme4's parse of bars and factor responses.

tests/reference/formula_syntax.json.gz is written by tests/oracle/formula_syntax.R; the data
are sleepstudy plus deterministic columns that ``augmented()`` rebuilds here (x8 and z8 as
int8, so R's double arithmetic is what is tested).
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
from mmfast.formula import build_matrix

REF = json.load(gzip.open(Path(__file__).parent / "reference" / "formula_syntax.json.gz"))


def _names(v) -> list:
    return [v] if isinstance(v, str) else list(v)  # R's JSON unboxes length-1 vectors


def augmented() -> pd.DataFrame:
    d = mmfast.datasets.load("sleepstudy").copy()
    i = np.arange(len(d))
    d["Subject"] = pd.Categorical(d["Subject"], categories=sorted(d["Subject"].unique()))
    d["Reaction.time"] = d["Reaction"]
    d["a b"] = d["Reaction"] / 10
    d["f"] = np.array(["a", "b", "c"])[i % 3]
    d["x8"] = (d["Days"] * 12).astype(np.int8)
    d["z8"] = ((i % 7) * 15).astype(np.int8)
    d["Intercept"] = (i % 5) + 0.5
    d["exposure.time"] = 1 + (i % 4)
    d["count"] = np.round(d["Reaction"] / 50) + (i % 3)
    d["y3"] = np.where(d["Reaction"] < 260, "lo", np.where(d["Reaction"] < 320, "mid", "hi"))
    d["yn"] = pd.Categorical(np.where(d["Reaction"] > 290, "yes", "no"), categories=["yes", "no"])
    d["lk"] = d["Reaction"] > 290
    return d


@pytest.fixture(scope="module")
def data():
    return augmented()


@pytest.fixture(scope="module")
def newdata(data):
    nd = data.iloc[REF["newdata_rows"]].reset_index(drop=True).copy()
    nd["Days"] = nd["Days"] + 0.5
    nd["x8"] = (nd["x8"] + 6).astype(np.int8)
    return nd


@pytest.mark.parametrize("rhs", list(REF["model_matrix"]))
def test_model_matrix_as_r(rhs, data, newdata):
    ref = REF["model_matrix"][rhs]
    X, names, spec = build_matrix(rhs, data)
    assert names == _names(ref["names"])
    np.testing.assert_allclose(X, np.array(ref["X"]), rtol=1e-9, atol=1e-11)
    Xn = np.asarray(spec.get_model_matrix(newdata), dtype=float)  # training state: poly, ns
    np.testing.assert_allclose(Xn, np.array(ref["Xnew"]), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("formula", list(REF["lmer"]))
def test_lmer_formulas_as_lme4(formula, data, newdata):
    ref = REF["lmer"][formula]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.lmer(formula, data)
    assert list(m.fixef.index) == _names(ref["fixef_names"])
    np.testing.assert_allclose(m.fixef.to_numpy(), np.ravel(ref["fixef"]), rtol=2e-5, atol=1e-7)
    assert m.reml_criterion == pytest.approx(ref["objective"], rel=1e-7)
    if ref.get("predict_new_pop") is not None:
        pop = m.predict(newdata, re_form=None)
        np.testing.assert_allclose(pop, ref["predict_new_pop"], rtol=2e-5)
        np.testing.assert_allclose(m.predict(newdata), ref["predict_new"], rtol=2e-5)


@pytest.mark.parametrize("formula", list(REF["glmer"]))
def test_glmer_formulas_and_factor_responses(formula, data, newdata):
    ref = REF["glmer"][formula]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.glmer(formula, data, family=ref["family"])
    np.testing.assert_array_equal(m.frame.y, ref["y"])  # R's factor rule: first level fails
    assert list(m.fixef.index) == _names(ref["fixef_names"])
    np.testing.assert_allclose(m.fixef.to_numpy(), np.ravel(ref["fixef"]), rtol=1e-4, atol=1e-6)
    assert -2 * m.loglik == pytest.approx(ref["deviance"], abs=1e-4)
    np.testing.assert_allclose(m.predict(newdata), ref["predict_new"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "formula, family, message",
    [
        ("cbind(Reaction, Days) ~ Days + (1 | Subject)", None, "cbind"),  # lme4 fails obscurely
        ("Reaction | Subject ~ Days + (1 | Subject)", None, "left-hand side"),
        ("count ~ Days + offset(\"Days\") + (1 | Subject)", "poisson", "offset.*text"),
        ("Reaction ~ Days + (1 | Subject) ~ Days", None, "more than one '~'"),
        ("Reaction ~ foo(Days) + (1 | Subject)", None, r"'foo\(\)'"),
        ("Reaction ~ log(Dayz) + (1 | Subject)", None, "'Dayz'"),
        ("Reaction ~ Days^2.5 + (1 | Subject)", None, "power"),
        ("Reaction ~ Days + (1 | Subject", None, "unbalanced"),
    ],
)
def test_formula_errors_name_the_problem(formula, family, message, data):
    with pytest.raises(mmfast.MmfastError, match=message):
        if family:
            mmfast.glmer(formula, data, family=family)
        else:
            mmfast.lmer(formula, data)


def test_factor_response_rules(data):
    """R: a factor response's first level is failure (after unused levels are dropped);
    lmer refuses a factor/text response."""
    d = data.copy()
    d["yn2"] = pd.Categorical(
        np.where(d["Reaction"] > 290, "yes", "no"), categories=["never", "yes", "no"]
    )  # 'never' unused: 'yes' fails
    ref = REF["glmer"]["yn ~ Days + (1 | Subject)"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.glmer("yn2 ~ Days + (1 | Subject)", d, family="binomial")
    np.testing.assert_array_equal(m.frame.y, ref["y"])
    with pytest.raises(mmfast.DataError, match="'y3'.*numeric"):
        mmfast.lmer("y3 ~ Days + (1 | Subject)", data)


def test_predict_keeps_training_levels(data, newdata):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.lmer('Reaction ~ relevel(f, ref = "b") + (1 | Subject)', data)
    bad = newdata.assign(f="z")
    with pytest.raises(mmfast.DataError, match="new levels.*z"):
        m.predict(bad)
    # a newdata subset with one level still gets the training coding
    one = newdata.assign(f="b")
    np.testing.assert_allclose(m.predict(one, re_form=None), m.fixef.iloc[0])


def test_anova_on_expression_terms():
    """lmerTest's Type III and II tables: term labels and columns from the expression terms."""
    ref = REF["anova_ex2"]
    d = mmfast.datasets.load("ex2").copy()
    d["z"] = np.arange(len(d)) % 5
    m = mmfast.lmer(ref["formula"], d)
    for kind, typ in (("type3", 3), ("type2", 2)):
        a = m.anova(type=typ)
        assert list(a.index) == ref[kind]["terms"]
        np.testing.assert_allclose(a["NumDF"], ref[kind]["NumDF"])
        np.testing.assert_allclose(a["DenDF"], ref[kind]["DenDF"], rtol=1e-3)
        np.testing.assert_allclose(a["F value"], ref[kind]["F"], rtol=1e-4)

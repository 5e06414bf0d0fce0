"""Printed summaries and anova/drop1 tables against R's own printed text (capture.output in
tests/oracle/printing.R -> tests/reference/printing.json.gz).

Layout (every character but the digits of numbers) must match line by line; a printed number
may differ from R's only in its last printed digit (fits agree to ~1e-6, not to every digit),
except where a documented difference is larger (cbpp's standard errors: lme4's finite-difference
Hessian is ~1% off, see src/mmfast/model/glmm.py).
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.datasets import load
from mmfast.rformat import AnovaTable

with gzip.open(Path(__file__).parent / "reference" / "printing.json.gz", "rt", encoding="utf-8") as fh:
    REF = json.load(fh)
NUM = re.compile(r"(-?\d+(?:\.\d+)?(?:e[+-]\d+)?)")


def _ulp(s: str) -> float:
    """One unit in the last printed digit of a number as R printed it."""
    mant, _, exp = s.partition("e")
    dec = len(mant.split(".")[1]) if "." in mant else 0
    return 10.0 ** (-dec + (int(exp) if exp else 0))


def assert_prints_like_r(
    ours: str, case: str, loose: dict[str, float] | None = None, numbers_differ_after: str | None = None
):
    """Line-by-line: identical text between numbers, numbers within one last-digit unit; from
    a line starting with a key of ``loose`` on, also within that relative tolerance; the line
    after ``numbers_differ_after`` compared as layout only (a documented difference)."""
    ref = REF[case]["text"]
    got = str(ours).split("\n")
    assert len(got) == len(ref), "\n".join(got)
    rel, previous = 0.0, None
    for g, r in zip(got, ref):
        rel = next((v for k, v in (loose or {}).items() if r.startswith(k)), rel)
        layout_only = numbers_differ_after is not None and str(previous).startswith(numbers_differ_after)
        previous = r
        if layout_only:
            assert [len(c) for c in NUM.split(g)] == [len(c) for c in NUM.split(r)], (r, g)
            continue
        gs, rs = NUM.split(g), NUM.split(r)
        assert gs[0::2] == rs[0::2], f"layout differs:\n  R:  {r!r}\n  py: {g!r}"
        assert len(gs) == len(rs)
        for a, b in zip(gs[1::2], rs[1::2]):
            if a != b:
                tol = _ulp(b) * 1.0001 + rel * abs(float(b))
                assert abs(float(a) - float(b)) <= tol, f"number {a} vs R's {b}:\n  R:  {r}\n  py: {g}"


@pytest.fixture(scope="module")
def sleepstudy():
    return load("sleepstudy")


def test_lmertest_summary(sleepstudy):
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    assert_prints_like_r(m.summary(), "sleep_summary")


def test_lme4_ml_summary(sleepstudy):
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, reml=False)
    assert_prints_like_r(m.summary(ddf="lme4"), "sleep_lme4_ml")


def test_lmertest_ml_title_wraps(sleepstudy):
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, reml=False)
    assert_prints_like_r(m.summary(), "sleep_ml_summary")


def test_weights_line(sleepstudy):
    sleepstudy = sleepstudy.assign(w=1 + sleepstudy["Days"] % 3)
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, weights="w")
    assert_prints_like_r(m.summary(), "sleep_weighted_summary")


def test_tiny_estimates_print_scientific(sleepstudy):
    sleepstudy = sleepstudy.assign(tiny=sleepstudy["Reaction"] / 12000)
    m = mmfast.lmer("tiny ~ Days + (Days | Subject)", sleepstudy)
    text = str(m.summary())
    assert_prints_like_r(text, "tiny_summary")
    assert "8.723e-04" in text and "0.0009" not in text


def test_two_crossed_factors_summary():
    Penicillin = load("Penicillin")
    m = mmfast.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", Penicillin)
    assert_prints_like_r(m.summary(), "penicillin_summary")


@pytest.fixture(scope="module")
def cbpp_fit():
    cbpp = load("cbpp")
    cbpp["period"] = cbpp["period"].astype(str)
    return mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")


def test_glmer_summary(cbpp_fit):
    # mmfast's optimum has logLik -92.02628, R's bobyqa stops at -92.02657: residuals and
    # variances differ by < 0.1%; the exact-Hessian standard errors by ~1% (module docstring),
    # so z by ~1% and the tiny p-values by up to 25%; the layout is R's all the same
    assert_prints_like_r(
        cbpp_fit.summary(), "cbpp_summary", loose={"Scaled residuals": 1e-3, "(Intercept)": 0.25, "Correlation": 0.02}
    )


def test_agq_summary():
    cbpp = load("cbpp")
    cbpp["period"] = cbpp["period"].astype(str)
    g25 = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, n_agq=25)
    # mmfast reports the integrated logLik (-92.0), lme4 its saturated-scale one (-50.0; see
    # test_glmm_reference.test_agq_logLik_scale_differs_from_lme4): that row is layout-only
    assert_prints_like_r(
        g25.summary(),
        "cbpp_agq25_summary",
        numbers_differ_after="     AIC      BIC",
        loose={"Scaled residuals": 1e-3, "(Intercept)": 0.25, "Correlation": 0.02},
    )


def test_glmer_drop1(cbpp_fit):
    assert_prints_like_r(cbpp_fit.drop1(), "cbpp_drop1")


def test_anova_of_two_lmers_named_by_variables(sleepstudy):
    m0 = mmfast.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    m1 = mmfast.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    tab = m0.anova(m1)
    assert_prints_like_r(tab, "sleep_anova")
    assert list(tab.index) == REF["sleep_anova"]["models"]
    # still a DataFrame: columns index as before; derived frames are plain DataFrames
    assert isinstance(tab, pd.DataFrame) and isinstance(tab, AnovaTable)
    assert tab.loc["m1", "Df"] == 2 and type(tab[["AIC"]]) is pd.DataFrame
    assert tab._repr_html_().startswith("<pre>Data: sleepstudy")
    # names fall back to formulas (R deparses the argument), MODELi when they clash
    fits = {"a": m0, "b": m1}
    assert list(mmfast.anova(fits["a"], fits["b"]).index) == [
        "Reaction ~ Days + (1 | Subject)",
        "Reaction ~ Days + (Days | Subject)",
    ]
    assert list(mmfast.anova(m1, m1).index) == ["MODEL1", "MODEL2"]


def test_correlated_three_term_summary():
    # formatVC's correlation columns ("Corr" and a blank-headed one) and a mixed-sign
    # correlation-of-fixed-effects block
    Machines = load("Machines")
    m3 = mmfast.lmer("score ~ Machine + (0 + Machine | Worker)", Machines)
    assert_prints_like_r(m3.summary(), "machines_3x3_summary")


def test_lm_anova(sleepstudy):
    assert_prints_like_r(mmfast.lm("Reaction ~ Days", sleepstudy).anova(), "lm_anova")


def test_lmer_drop1():
    Machines = load("Machines")
    mm = mmfast.lmer("score ~ Machine + (1 | Worker)", Machines, reml=False)
    assert_prints_like_r(mm.drop1(), "machines_drop1")


def test_lmertest_type3_anova():
    Oats = load("Oats")
    Oats["nitro"] = Oats["nitro"].astype(str)
    mo = mmfast.lmer("yield ~ Variety * nitro + (1 | Block)", Oats)
    tab = mo.anova()
    assert_prints_like_r(tab, "oats_anova3")
    assert tab.loc["nitro", "NumDF"] == 3


def test_correlation_block_switches(sleepstudy):
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    assert "Correlation of Fixed Effects:" not in str(m.summary(correlation=False))
    # lme4 leaves the block out above 12 fixed effects (option lme4.summary.cor.max) and says so
    rng = np.random.default_rng(1)
    wide = sleepstudy.assign(**{f"x{k}": rng.normal(size=len(sleepstudy)) for k in range(12)})
    m = mmfast.lmer("Reaction ~ " + " + ".join(f"x{k}" for k in range(12)) + " + (1 | Subject)", wide)
    assert len(m.fixef) > 12
    text = str(m.summary(ddf="lme4"))
    assert f"Correlation matrix not shown by default, as p = {len(m.fixef)} > 12." in text
    shown = str(m.summary(ddf="lme4", correlation=True)).split("Correlation of Fixed Effects:\n")[1]
    assert len(shown.split("\n")) == len(m.fixef)  # header + p - 1 rows of the lower triangle

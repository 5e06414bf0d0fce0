"""Estimated marginal means and contrasts, ``mmfast.emmeans``, against R's emmeans 1.8.4-1.

References: tests/reference/lecture_extras.json.gz (``emmeans_ex2_*``: the lecture's ex2 with
Kenward-Roger and Satterthwaite df), and below, values printed by emmeans 1.8.4-1 (R 4.2.2,
lme4 1.1-31, pbkrtest 0.5.2, lmerTest 3.1-3, nlme 3.1-162) for other grids, contrast families,
adjustments and model classes.

Tolerances: estimates 1e-6 relative, SEs 1e-5, df 1e-4, p-values 1e-4 relative when above 1e-6.
Below that R's ``ptukey`` (computed as 1 - cdf) is only accurate to ~1e-12 absolute: its
2.80e-9 for the ex2 pair 2-3 is 0.16% off the value integrated directly (2.7999e-9, checked to
1e-13 by refining the quadrature); such p-values are compared to 1e-11 absolute.
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mmfast
from mmfast.emmeans.contrasts import _p_adjust, adjust_pvalues, pdunnx_sf, ptukey_sf

REF = json.load(gzip.open(Path(__file__).parent / "reference" / "lecture_extras.json.gz"))
TOL = {"emmean": 1e-6, "estimate": 1e-6, "SE": 1e-5, "df": 1e-4, "t.ratio": 1e-5, "lower.CL": 1e-5, "upper.CL": 1e-5}


def _factor(d: pd.DataFrame, col: str) -> pd.DataFrame:
    d = d.copy()
    d[col] = pd.Categorical(d[col], categories=sorted(d[col].unique()))
    return d


def check_table(actual: pd.DataFrame, expected: dict):
    """Every column of ``expected`` (emmeans' summary as a data frame) against ``actual``."""
    assert len(actual) == len(next(iter(expected.values())))
    for col, exp in expected.items():
        assert col in actual.columns, f"missing column {col}"
        act = actual[col]
        if isinstance(exp[0], str):
            assert [str(a) for a in act] == exp, col
            continue
        a, e = act.to_numpy(dtype=float), np.asarray(exp, dtype=float)
        if col == "p.value":
            big = e > 1e-6
            np.testing.assert_allclose(a[big], e[big], rtol=1e-4, err_msg=col)
            np.testing.assert_allclose(a[~big], e[~big], rtol=0, atol=1e-11, err_msg=col)
        else:
            np.testing.assert_allclose(a, e, rtol=TOL[col], atol=1e-12, err_msg=col)


@pytest.fixture(scope="module")
def ex2_model():
    ex2 = _factor(mmfast.datasets.load("ex2"), "treatment_idx")
    return mmfast.lmer("res ~ treatment_idx + (1 | midx)", ex2, reml=True)


# --- the lecture's ex2 (reference file) -----------------------------------------------------------
@pytest.mark.parametrize(
    "ddf, key", [("kenward-roger", "emmeans_ex2_kenward_roger"), ("satterthwaite", "emmeans_ex2_satterthwaite")]
)
def test_ex2_means_pairs_and_trt_vs_ctrl(ex2_model, ddf, key):
    ref = REF[key]
    em = mmfast.emmeans(ex2_model, specs="treatment_idx", ddf=ddf)
    assert list(em.table.columns) == ["treatment_idx", "emmean", "SE", "df", "lower.CL", "upper.CL"]
    check_table(em.table, ref["emmeans"])
    pairs = em.pairs(adjust="tukey")
    assert list(pairs.columns) == ["contrast", "estimate", "SE", "df", "t.ratio", "p.value"]
    check_table(pairs, ref["pairwise_tukey"])
    ctrl = em.contrast("trt.vs.ctrl", ref=0)  # emmeans' ref = 1
    check_table(ctrl, ref["trt_vs_ctrl_dunnett"])
    assert ctrl.attrs["adjust"] == "dunnettx"
    assert pairs.attrs["adjust"] == "tukey"


def test_ex2_defaults_and_print(ex2_model):
    em = mmfast.emmeans(ex2_model, "treatment_idx")  # emmeans' default lmer.df: kenward-roger
    assert em.ddf == "kenward-roger"
    np.testing.assert_allclose(em.table["df"], REF["emmeans_ex2_kenward_roger"]["emmeans"]["df"], rtol=1e-4)
    # emmeans 1.8.4-1's print, verbatim
    assert repr(em.table).splitlines() == [
        " treatment_idx emmean     SE   df lower.CL upper.CL",
        " 1              0.699 0.0286 3.47    0.614    0.783",
        " 2              0.654 0.0286 3.48    0.569    0.738",
        " 3              0.730 0.0285 3.42    0.646    0.815",
        " 4              0.749 0.0283 3.35    0.664    0.834",
        "",
        "Degrees-of-freedom method: kenward-roger ",
        "Confidence level used: 0.95 ",
    ]
    text = repr(em.pairs())
    assert " treatment_idx2 - treatment_idx4  -0.0953 0.0126 1686  -7.545  <.0001" in text
    assert "P value adjustment: tukey method for comparing a family of 4 estimates " in text
    assert "P value adjustment: dunnettx method for 3 tests " in repr(em.contrast("trt.vs.ctrl"))
    # ref by label, and the last level as control
    by_label = em.contrast("trt.vs.ctrl", ref="1")
    assert list(by_label["contrast"]) == REF["emmeans_ex2_kenward_roger"]["trt_vs_ctrl_dunnett"]["contrast"]
    assert list(em.contrast("trt.vs.ctrlk")["contrast"])[0] == "treatment_idx1 - treatment_idx4"


# --- more grids and families, against emmeans 1.8.4-1 ---------------------------------------------
@pytest.fixture(scope="module")
def cake_model():
    return mmfast.lmer("angle ~ recipe * factor(temperature) + (1 | recipe:replicate)", mmfast.datasets.load("cake"))


def test_cake_average_over_interacting_factor(cake_model):
    # emmeans(m, ~ recipe): averaged over factor(temperature), equal weights
    em = mmfast.emmeans(cake_model, "recipe", ddf="kenward-roger")
    check_table(
        em.table,
        {
            "recipe": ["A", "B", "C"],
            "emmean": [33.12222222, 31.64444444, 31.6],
            "SE": [1.736833397] * 3,
            "df": [42.0] * 3,
            "lower.CL": [29.61715052, 28.13937274, 28.0949283],
            "upper.CL": [36.62729392, 35.14951614, 35.1050717],
        },
    )
    assert "Results are averaged over the levels of: temperature" in repr(em.table)


def test_cake_contrast_families(cake_model):
    em = mmfast.emmeans(cake_model, "recipe", ddf="satterthwaite")
    eff = em.contrast("eff")  # default adjust: fdr
    check_table(
        eff,
        {
            "contrast": ["A effect", "B effect", "C effect"],
            "estimate": [1.0, -0.4777777778, -0.5222222222],
            "SE": [1.418118531] * 3,
            "df": [41.99999981] * 3,
            "p.value": [0.7378628263] * 3,
        },
    )
    rev = em.contrast("revpairwise", adjust="scheffe")
    check_table(
        rev,
        {
            "contrast": ["B - A", "C - A", "C - B"],
            "t.ratio": [-0.6016389881, -0.6197333938, -0.01809440566],
            "p.value": [0.8350954111, 0.8259987456, 0.9998363103],
        },
    )
    dele = em.contrast("del.eff", adjust="sidak")
    check_table(
        dele,
        {
            "estimate": [1.5, -0.7166666667, -0.7833333333],
            "SE": [2.127177796] * 3,
            "p.value": [0.8630933582, 0.9819870087, 0.9767377207],
        },
    )
    check_table(em.contrast("consec", adjust="holm"), {"contrast": ["B - A", "C - B"], "p.value": [1.0, 1.0]})
    check_table(
        em.contrast("trt.vs.ctrlk", adjust="bonferroni"), {"contrast": ["A - C", "B - C"], "p.value": [1.0, 1.0]}
    )
    with pytest.raises(NotImplementedError, match="mvt"):
        em.contrast("consec")  # emmeans' default for consec is the multivariate t


def test_cake_cells_dunnettx_17_tests(cake_model):
    em = mmfast.emmeans(cake_model, ["recipe", "temperature"], ddf="satterthwaite")
    res = em.contrast("trt.vs.ctrl", ref=1)  # emmeans' ref = 2: "B temperature175"
    assert res["contrast"].iloc[0] == "A temperature175 - B temperature175"
    assert res["contrast"].iloc[-1] == "C temperature225 - B temperature175"
    check_table(
        res,
        {
            "SE": [
                2.88231242,
                2.88231242,
                2.88231242,
                1.652105705,
                2.88231242,
                2.88231242,
                1.652105705,
                2.88231242,
                2.88231242,
                1.652105705,
                2.88231242,
                2.88231242,
                1.652105705,
                2.88231242,
                2.88231242,
                1.652105705,
                2.88231242,
            ],
            "df": [
                77.4368231,
                77.43682307,
                77.43682308,
                210.0000001,
                77.43682307,
                77.43682308,
                210.0000001,
                77.43682307,
                77.43682308,
                210.0000001,
                77.43682307,
                77.43682308,
                210.0000001,
                77.43682307,
                77.43682308,
                210.0000001,
                77.43682307,
            ],
            "p.value": [
                0.9777603757,
                0.9994732094,
                0.6335649189,
                0.6871889071,
                0.9855670599,
                0.7862797414,
                0.04658827993,
                0.5884011806,
                0.2256510855,
                0.02289760425,
                0.7736739292,
                0.001587971301,
                0.0001197241832,
                0.1196505838,
                0.06876634274,
                1.360549931e-05,
                0.03754299735,
            ],
        },
    )


def test_by_groups(cake_model):
    em = mmfast.emmeans(cake_model, "~ temperature | recipe", ddf="satterthwaite")
    assert list(em.table.columns) == ["temperature", "emmean", "SE", "df", "lower.CL", "upper.CL", "recipe"]
    assert len(em.table) == 18
    pairs = em.pairs()
    assert len(pairs) == 45 and set(pairs["recipe"]) == {"A", "B", "C"}
    a = pairs[pairs["recipe"] == "A"]
    assert a["contrast"].iloc[3] == "temperature175 - temperature215"
    assert a["t.ratio"].iloc[3] == pytest.approx(-5.770, abs=5e-4)  # emmeans: -5.770, p <.0001
    assert "tukey method for comparing a family of 6 estimates" in repr(pairs)
    assert "recipe = B:" in repr(pairs)


def test_covariate_at_mean_and_at():
    oats = mmfast.datasets.load("Oats")
    m = mmfast.lmer("yield ~ Variety + nitro + (1 | Block)", oats)
    em = mmfast.emmeans(m, "Variety", at={"nitro": 0.2}, ddf="satterthwaite")
    check_table(
        em.table,
        {
            "emmean": [97.13333333, 102.425, 90.25833333],
            "SE": [7.160325307] * 3,
            "df": [6.74454303] * 3,
            "lower.CL": [80.07098019, 85.36264686, 73.19598019],
        },
    )
    at_mean = mmfast.emmeans(m, "Variety", ddf="satterthwaite")
    shift = float(m.fixef["nitro"]) * (oats["nitro"].mean() - 0.2)
    np.testing.assert_allclose(at_mean.table["emmean"] - em.table["emmean"], shift, rtol=1e-10)


def test_lm_model():
    lm = mmfast.lm("yield ~ Variety + nitro", mmfast.datasets.load("Oats"))
    em = mmfast.emmeans(lm, "Variety")
    check_table(
        em.pairs(),
        {
            "contrast": ["Golden Rain - Marvellous", "Golden Rain - Victory", "Marvellous - Victory"],
            "estimate": [-5.291666667, 6.875, 12.16666667],
            "SE": [6.130043275] * 3,
            "df": [68.0] * 3,
            "p.value": [0.6651585279, 0.5042405149, 0.1237302354],
        },
    )
    assert "Degrees-of-freedom" not in repr(em.table)


def test_lme_fit_containment_df():
    """emmeans on nlme::lme: sigma-adjusted (ML) covariance, containment df (intercept: groups - 1)."""
    ex1 = _factor(mmfast.datasets.load("ex1"), "treatment_idx")
    fit = mmfast.lme("res ~ treatment_idx", ex1, random="~ 1 | midx", method="ML")
    em = mmfast.emmeans(fit, "treatment_idx")
    check_table(
        em.table,
        {
            "emmean": [0.7277355483, 1.810580585, 1.485601915, 0.9311264671, 0.6494948871],
            "SE": [0.1302909655, 0.1406290674, 0.2001340715, 0.2002632614, 0.1551708794],
            "df": [23.0, 19.0, 19.0, 19.0, 19.0],
            "lower.CL": [0.4582081509, 1.516240564, 1.066716489, 0.5119706437, 0.324718504],
        },
    )
    assert "Degrees-of-freedom method: containment" in repr(em.table)
    with pytest.raises(ValueError, match="containment"):
        mmfast.emmeans(fit, "treatment_idx", ddf="kenward-roger")


def test_ml_fit_kenward_roger_as_emmeans():
    """KR on an ML fit: pbkrtest refits by REML for vcovAdj; emmeans' Lb_ddf uses the ML vcov."""
    ex1 = _factor(mmfast.datasets.load("ex1"), "treatment_idx")
    m = mmfast.lmer("res ~ treatment_idx + (1 | midx)", ex1, reml=False)
    em = mmfast.emmeans(m, "treatment_idx", ddf="kenward-roger")
    check_table(
        em.table,
        {
            "emmean": [0.7277355483, 1.810580585, 1.485601915, 0.9311264669, 0.6494948868],
            "df": [30.30477257, 30.25679922, 30.68851463, 30.71758808, 30.75344394],
        },
    )
    # SEs: pbkrtest's REML refit, 5e-7 from mmfast's (both optimizers' tolerance)
    np.testing.assert_allclose(
        em.table["SE"], [0.1464440593, 0.1580849875, 0.2246992593, 0.2248440733, 0.1741868681], rtol=2e-6
    )


def test_glmm_asymptotic_link_scale():
    cbpp = _factor(mmfast.datasets.load("cbpp"), "period")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    em = mmfast.emmeans(g, "period")
    assert list(em.table.columns)[-2:] == ["asymp.LCL", "asymp.UCL"]
    assert np.all(np.isinf(em.table["df"]))
    np.testing.assert_allclose(em.table["emmean"].iloc[0], g.fixef.iloc[0], rtol=1e-12)
    assert "z.ratio" in em.pairs().columns
    assert "Results are given on the logit (not the response) scale." in repr(em.table)


# --- the distributions and adjustments --------------------------------------------------------------
@pytest.mark.parametrize("q, df", [(3.0, 10.0), (8.0, 50.0), (10.0, 1700.0), (12.0, np.inf), (2.0, 3.0)])
def test_ptukey_two_means_is_t(q, df):
    """Q for 2 means is sqrt(2)|T|: exact check of the tail, down to 1e-19."""
    exact = 2 * (stats.t.sf(q / np.sqrt(2), df) if np.isfinite(df) else stats.norm.sf(q / np.sqrt(2)))
    assert ptukey_sf(q, 2, df) == pytest.approx(exact, rel=1e-7)


def test_ptukey_tiny_tail_is_accurate():
    # reference: direct integration refined to 1e-13; R's ptukey gives 2.8037e-9 / 2.8045e-9
    assert ptukey_sf(6.26608472152671 * np.sqrt(2), 4, 1719.405) == pytest.approx(2.7999187969e-9, rel=1e-8)


def test_dunnettx_one_contrast_is_t():
    # with m = 1 the Tukey weight is 0 and the Sidak part is the two-sided t test
    assert pdunnx_sf(2.1, 1, 15.0) == pytest.approx(2 * stats.t.sf(2.1, 15.0), rel=1e-12)


def test_single_test_is_not_adjusted():
    p, used, _ = adjust_pvalues(np.array([2.0]), np.array([10.0]), "tukey", "pairwise", 2, 1)
    assert used == "none" and p[0] == pytest.approx(2 * stats.t.sf(2.0, 10.0))


def test_p_adjust_matches_r():
    p = np.array([0.01, 0.02, 0.03, 0.04, 0.05])
    # R: p.adjust(c(.01,.02,.03,.04,.05), m)
    np.testing.assert_allclose(_p_adjust(p, "holm"), [0.05, 0.08, 0.09, 0.09, 0.09])
    np.testing.assert_allclose(_p_adjust(p, "hochberg"), [0.05] * 5)
    np.testing.assert_allclose(_p_adjust(p, "bh"), [0.05] * 5)
    np.testing.assert_allclose(_p_adjust(p, "by"), [0.1141667] * 5, rtol=1e-6)
    np.testing.assert_allclose(_p_adjust(p, "bonferroni"), [0.05, 0.10, 0.15, 0.20, 0.25])


def test_errors(ex2_model):
    with pytest.raises(ValueError, match="not variables"):
        mmfast.emmeans(ex2_model, "dose")
    em = mmfast.emmeans(ex2_model, "treatment_idx", ddf="satterthwaite")
    with pytest.raises(ValueError, match="unknown contrast"):
        em.contrast("helmert-ish")
    with pytest.raises(ValueError, match="out of range"):
        em.contrast("trt.vs.ctrl", ref=7)
    with pytest.raises(ValueError, match="unknown adjust"):
        em.pairs(adjust="magic")
    custom = em.contrast({"24h vs rest": [1, -1 / 3, -1 / 3, -1 / 3]})
    assert custom.attrs["adjust"] == "none" and custom["contrast"].iloc[0] == "24h vs rest"


def test_non_estimable_cells():
    """A missing cell (recipe C at 225): its means and contrasts are emmeans' nonEst."""
    cake = mmfast.datasets.load("cake")
    cake = cake[~((cake["recipe"] == "C") & (cake["temperature"] == 225))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the aliased interaction column is dropped
        m = mmfast.lmer("angle ~ recipe * factor(temperature) + (1 | recipe:replicate)", cake)
    em = mmfast.emmeans(m, "recipe", ddf="satterthwaite")
    assert np.isnan(em.table["emmean"].iloc[2]) and not em.table["emmean"].iloc[:2].isna().any()
    np.testing.assert_allclose(em.table["emmean"].iloc[:2], [33.1222222222, 31.6444444444], rtol=1e-9)
    pairs = em.pairs()
    check_table(pairs.iloc[:1], {"estimate": [1.4777777778], "SE": [2.3942977], "df": [41.5258177305]})
    assert pairs["estimate"].iloc[1:].isna().all() and pairs["p.value"].iloc[1:].isna().all()
    text = repr(pairs)
    assert " A - C      nonEst   NA   NA      NA      NA" in text
    # emmeans 1.8.4 computes this Tukey p-value with the df rounded to 42 (0.81155) when the
    # family holds non-estimable contrasts; mmfast uses the row's df (0.81156)
    assert pairs["p.value"].iloc[0] == pytest.approx(0.8115592458, rel=1e-6)


def test_pairs_reverse(ex2_model):
    em = mmfast.emmeans(ex2_model, "treatment_idx", ddf="satterthwaite")
    rev = em.pairs(reverse=True)
    assert list(rev["contrast"][:3]) == [
        "treatment_idx2 - treatment_idx1",
        "treatment_idx3 - treatment_idx1",
        "treatment_idx3 - treatment_idx2",
    ]
    fwd = em.pairs()
    assert rev["p.value"].iloc[0] == pytest.approx(fwd["p.value"].iloc[0], rel=1e-12)

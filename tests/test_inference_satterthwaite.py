"""Satterthwaite t and F tests against lmerTest (tests/reference: ``satterthwaite``,
``anova_type3_satterthwaite``), and the exact derivatives against Richardson differences.

Fits come from conftest's session cache.  Tolerances (README): df 1e-3 relative; SEs and t 1e-5,
widened where lme4's default fit (at which lmerTest worked) is measurably off the optimum that
mmfast reaches (README table of default-vs-tight gaps and flat directions); p-values follow from
t and df: |Δp| <= 1e-10 + (1e-4 + (t² + 1) tol_t) p, since d log p / d t ≈ t in the tails.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmfast.inference.derivatives import analytic_derivatives, numeric_derivatives
from mmfast.inference.structure import VarianceStructure
from inference_helpers import assert_close, assert_p, single_threaded_blas  # noqa: F401
from reference_cases import load_reference, reference_cases

CASES = [c for c in reference_cases("LMM") if "satterthwaite" in load_reference(c)["results"]]
SMALL = [
    "sleepstudy_slope_reml",
    "sleepstudy_slope_ml",
    "sleepstudy_uncorr_reml",
    "dyestuff_reml",
    "dyestuff2_reml",
    "penicillin_reml",
    "pastes_reml",
    "orthodont_reml",
    "ex1_ml",
    "ex2_ml",
    "ex3_nested_ml",
]

# relative tolerance of SEs / t / F (t-scale) per case, and why
T_TOL = {
    "orthodont_reml": 3e-3,
    "sleepstudy_slope_ml": 3e-3,
    "sleepstudy_slope_reml": 3e-3,
    "sleepstudy_uncorr_reml": 3e-3,  # flat directions in theta (README), as test_lmm_reference
    "penicillin_reml": 1e-4,  # theta moves 1e-4 along a flat direction (README)
    "insteval_ml": 1e-4,  # lme4's default stops 3.4e-6 (theta) / 7e-6 (fixef) off the optimum
    "ex3_cell_slope_ml": 1e-3,  # not identifiable: theta is not determined by the data
}
DF_TOL = 1e-3


def t_tol(case):
    return T_TOL.get(case, 1e-5)


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas(single_threaded_blas):
    yield


@pytest.mark.parametrize("case", CASES)
def test_summary_satterthwaite(case, fit_case):
    fit = fit_case(case)
    ref = fit.ref["results"]["satterthwaite"]
    tab = fit.model.summary().coefficients  # Satterthwaite is the default for LMMs
    assert list(tab.columns) == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    assert list(tab.index) == ref["names"]
    tol = t_tol(case)
    se = np.asarray(ref["se"])
    assert_close(tab["Estimate"], ref["estimate"], 1e-5, 1e-6 * se, f"{case} estimates")
    assert_close(tab["Std. Error"], se, tol, 0, f"{case} SE")
    assert_close(tab["t value"], ref["t"], tol, 1e-6, f"{case} t")
    assert_close(tab["df"], ref["df"], DF_TOL, 0, f"{case} Satterthwaite df")
    assert_p(tab["Pr(>|t|)"], ref["p"], ref["t"], tol, f"{case} p")


@pytest.mark.parametrize("case", CASES)
def test_anova_type3_satterthwaite(case, fit_case):
    fit = fit_case(case)
    ref = fit.ref["results"]["anova_type3_satterthwaite"]
    tab = fit.model.anova()  # type 3, Satterthwaite
    assert list(tab.index) == ref["terms"]
    assert list(tab.columns) == ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    assert tab.attrs["heading"] == ref["heading"]
    if not ref["terms"]:
        return
    tol = 2 * t_tol(case)  # F ~ t²
    assert_close(tab["NumDF"], ref["NumDF"], 0, 0, f"{case} NumDF")
    assert_close(tab["DenDF"], ref["DenDF"], DF_TOL, 0, f"{case} DenDF")
    assert_close(tab["F value"], ref["F"], tol, 0, f"{case} F")
    if case != "ex3_cell_slope_ml":  # Sum Sq = F σ², and σ is not identified there
        assert_close(tab["Sum Sq"], ref["SumSq"], tol, 0, f"{case} Sum Sq")
        assert_close(tab["Mean Sq"], ref["MeanSq"], tol, 0, f"{case} Mean Sq")
    assert_p(tab["Pr(>F)"], ref["p"], np.sqrt(ref["F"]), tol, f"{case} p")
    hyp = tab.attrs["hypotheses"]
    for term, L in ref["L"].items():  # lmerTest's contrast matrices, reproduced exactly
        L = np.asarray(L, dtype=float).reshape(hyp[term].shape)
        assert_close(hyp[term], L, 0, 1e-9, f"{case} L[{term}]")


@pytest.mark.parametrize("case", SMALL)
def test_exact_derivatives_match_richardson(case, fit_case):
    m = fit_case(case).model
    exact, numeric = analytic_derivatives(m), numeric_derivatives(m)
    # Richardson is good to ~1e-9 relative, but at theta = 0 (dyestuff2) its first step is 1e-4
    scale_h = np.max(np.abs(numeric.hessian))
    assert np.max(np.abs(exact.hessian - numeric.hessian)) <= 1e-5 * scale_h, case
    scale_j = np.max(np.abs(numeric.jacobian))
    assert np.max(np.abs(exact.jacobian - numeric.jacobian)) <= 1e-6 * scale_j, case


def _tensors(model, how):
    N, dg = VarianceStructure(model, trace_method=how).trace_tensors()
    return np.concatenate([x.ravel() for row in N for x in row] + [x.ravel() for x in dg])


@pytest.fixture(scope="module")
def crossed_vector_model():
    """Subjects (random intercept and slope) crossed with items: the Schur route with 2 x 2 blocks."""
    import pandas as pd

    import mmfast

    rng = np.random.default_rng(20240601)
    subj, item = np.meshgrid(np.arange(40), np.arange(12), indexing="ij")
    subj, item = subj.ravel(), item.ravel()
    x = rng.normal(size=subj.size)
    b = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 0.5]], size=40)
    c = rng.normal(scale=0.8, size=12)
    y = 1 + 0.5 * x + b[subj, 0] + b[subj, 1] * x + c[item] + rng.normal(size=subj.size)
    data = pd.DataFrame({"y": y, "x": x, "subj": [f"s{i:02d}" for i in subj], "item": item})
    return mmfast.lmer("y ~ x + (x | subj) + (1 | item)", data)


@pytest.mark.parametrize("case", ["penicillin_reml", "ex3_nested_ml", "pastes_reml", "crossed"])
def test_trace_routes_agree(case, fit_case, crossed_vector_model):
    """Batched dense, Schur-complement and chunked sparse traces are the same numbers."""
    m = crossed_vector_model if case == "crossed" else fit_case(case).model
    base = _tensors(m, "chunked")
    for how in ("dense", "schur"):
        other = _tensors(m, how)
        assert np.max(np.abs(other - base)) <= 1e-10 * np.max(np.abs(base)), (case, how)


def test_exact_df_where_lmerTest_is_numerically_off(fit_case):
    """Exact derivatives give the exact df: Dyestuff 5 (lmerTest 4.99999998), Dyestuff2 (theta = 0) 29."""
    assert fit_case("dyestuff_reml").model.summary().coefficients["df"].iloc[0] == pytest.approx(5, rel=1e-7)
    assert fit_case("dyestuff2_reml").model.summary().coefficients["df"].iloc[0] == pytest.approx(29, rel=1e-9)


def test_summary_text_names_the_method(fit_case):
    m = fit_case("sleepstudy_slope_reml").model
    assert "t-tests use Satterthwaite's method" in str(m.summary())
    with pytest.raises(ValueError, match="ddf must be one of"):
        m.summary(ddf="bogus")

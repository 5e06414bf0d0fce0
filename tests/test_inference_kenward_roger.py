"""Kenward-Roger against pbkrtest (tests/reference: ``kenward_roger``, ``anova_type3_kenward_roger``),
against a dense n x n implementation of pbkrtest's formulas, and on the big cases (no reference:
pbkrtest cannot run there) against Satterthwaite.

For ML cases the reference is the REML refit of the same formula, as mmfast's KR.  Tolerances as in
test_inference_satterthwaite; KR df 1e-3.  ex3_cell_slope_ml is not identifiable: its REML refit
lands elsewhere on a flat ridge than lme4's, so only loose agreement is meaningful there.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmfast.inference.kenward_roger import KenwardRoger
from inference_helpers import assert_close, assert_p, single_threaded_blas  # noqa: F401
from reference_cases import load_reference, reference_cases

CASES = [c for c in reference_cases("LMM") if "kenward_roger" in load_reference(c)["results"]]
T_TOL = {
    "orthodont_reml": 3e-3,
    "sleepstudy_slope_ml": 3e-3,
    "sleepstudy_slope_reml": 3e-3,
    "sleepstudy_uncorr_reml": 3e-3,
    "penicillin_reml": 1e-4,
    "ex3_cell_slope_ml": 1e-3,
}
DF_TOL = {"ex3_cell_slope_ml": 1e-2}


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas(single_threaded_blas):
    yield


@pytest.mark.parametrize("case", CASES)
def test_summary_kenward_roger(case, fit_case):
    fit = fit_case(case)
    ref = fit.ref["results"]["kenward_roger"]
    summ = fit.model.summary(ddf="kenward-roger")
    tab = summ.coefficients
    assert list(tab.columns) == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    tol = T_TOL.get(case, 1e-5)
    se = np.asarray(ref["se"])
    assert_close(tab["Estimate"], ref["estimate"], 1e-5, 1e-4 * se, f"{case} KR estimates")
    assert_close(tab["Std. Error"], se, tol, 0, f"{case} KR adjusted SE")
    assert_close(tab["t value"], ref["t"], tol, 1e-6, f"{case} KR t")
    assert_close(tab["df"], ref["df"], DF_TOL.get(case, 1e-3), 0, f"{case} KR df")
    assert_p(tab["Pr(>|t|)"], ref["p"], ref["t"], tol, f"{case} KR p")
    if not fit.ref["REML"]:
        # the title is wrapped at R's width 80, as lme4 wraps it
        assert "Kenward-Roger's method (on the REML refit)" in " ".join(str(summ).split())


@pytest.mark.parametrize("case", CASES)
def test_anova_type3_kenward_roger(case, fit_case):
    fit = fit_case(case)
    ref = fit.ref["results"]["anova_type3_kenward_roger"]
    tab = fit.model.anova(type=3, ddf="Kenward-Roger")
    assert list(tab.index) == ref["terms"]
    if not ref["terms"]:
        return
    tol = 2 * T_TOL.get(case, 1e-5)
    assert_close(tab["NumDF"], ref["NumDF"], 0, 0, f"{case} NumDF")
    assert_close(tab["DenDF"], ref["DenDF"], DF_TOL.get(case, 1e-3), 0, f"{case} KR DenDF")
    assert_close(tab["F value"], ref["F"], tol, 0, f"{case} KR F")
    if case != "ex3_cell_slope_ml":
        assert_close(tab["Sum Sq"], ref["SumSq"], tol, 0, f"{case} KR Sum Sq")
    assert_p(tab["Pr(>F)"], ref["p"], np.sqrt(ref["F"]), tol, f"{case} KR p")


def dense_kenward_roger(m):
    """pbkrtest's vcovAdj with explicit n x n matrices (the definition; small models only)."""
    Z = m.Z.toarray()
    X = m.frame.X
    n = X.shape[0]
    G, gam = [], []
    for t, S in zip(m.frame.terms, m.term_covariances()):
        Zk = Z[:, t.offset : t.offset + t.q]
        for j in range(t.p):
            for i in range(j, t.p):
                E = np.zeros((t.p, t.p))
                E[i, j] = E[j, i] = 1.0
                D = np.kron(np.eye(t.nlevels), E)
                G.append(Zk @ D @ Zk.T)
                gam.append(S[i, j])
    G.append(np.eye(n))
    gam.append(m.sigma**2)
    Sigma = sum(g * Gi for g, Gi in zip(gam, G))
    Si = np.linalg.inv(Sigma)
    Phi = np.asarray(m.vcov_array)
    P = [-X.T @ Si @ Gi @ Si @ X for Gi in G]
    Q = [[X.T @ Si @ Gi @ Si @ Gj @ Si @ X for Gj in G] for Gi in G]
    K = np.array([[np.trace(Si @ Gi @ Si @ Gj) for Gj in G] for Gi in G])
    r = len(G)
    IE2 = np.array(
        [
            [K[i, j] - 2 * np.trace(Phi @ Q[i][j]) + np.trace(Phi @ P[i] @ Phi @ P[j]) for j in range(r)]
            for i in range(r)
        ]
    )
    W = 2 * np.linalg.inv(IE2)
    U = sum(W[i, j] * (Q[i][j] - P[i] @ Phi @ P[j]) for i in range(r) for j in range(r))
    return Phi + 2 * Phi @ U @ Phi, IE2


@pytest.mark.parametrize(
    "case", ["sleepstudy_slope_reml", "penicillin_reml", "pastes_reml", "orthodont_reml", "sleepstudy_uncorr_reml"]
)
def test_sparse_algebra_matches_dense_definition(case, fit_case):
    m = fit_case(case).model
    kr = KenwardRoger(m)
    PhiA, IE2 = dense_kenward_roger(m)
    assert np.max(np.abs(kr.vcov_adjusted - PhiA)) <= 1e-9 * np.max(np.abs(PhiA)), case
    assert np.max(np.abs(kr.information - IE2)) <= 1e-9 * np.max(np.abs(IE2)), case


@pytest.mark.parametrize("case", ["insteval_ml", "big_nested_ml"])
def test_kenward_roger_on_big_cases(case, fit_case):
    """No reference (pbkrtest needs n x n matrices).  KR's SEs and df must be finite and close to the
    unadjusted SEs and Satterthwaite's df of the same REML fit (KR runs on the REML refit of these
    ML fits): with 20-2000 groups the small-sample corrections are small (insteval: 6% in df)."""
    from mmfast.inference.ftests import ddf_method

    m = fit_case(case).model
    kr = m.summary(ddf="kenward-roger").coefficients
    reml = ddf_method(m, "kenward-roger").model
    assert reml.reml and not m.reml
    sat = reml.summary(ddf="satterthwaite").coefficients
    assert np.all(np.isfinite(kr.to_numpy()))
    assert_close(kr["Estimate"], sat["Estimate"], 1e-12, 1e-12, f"{case}: REML estimates")
    assert_close(kr["df"], sat["df"], 0.10, 0, f"{case}: KR df vs Satterthwaite df (REML)")
    assert_close(kr["Std. Error"], sat["Std. Error"], 0.01, 0, f"{case}: KR SE vs REML SE")
    assert np.all(kr["Std. Error"] >= sat["Std. Error"] * (1 - 1e-9))

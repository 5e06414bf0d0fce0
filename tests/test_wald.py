"""The shared Wald F (inference/wald.py) checked by derivation on sleepstudy.

F = (Lβ̂)'(LVL')⁻¹(Lβ̂)/rank(L): for one row it is t²; it depends on L only through its row
space (L -> M L, M non-singular; duplicated rows); it equals a plain numpy evaluation with the
model's own Var(β̂).  Every ddf method (Satterthwaite, Kenward-Roger, residual, asymptotic)
goes through it, so each is checked here.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

import mmfast
from mmfast import datasets
from mmfast.inference.ftests import contest, ddf_method
from mmfast.inference.wald import directions, wald_test

DDFS = ("satterthwaite", "kenward-roger", "residual", None)


@pytest.fixture(scope="module")
def sleep():
    ss = datasets.load("sleepstudy").assign(Days2=lambda d: (d["Days"] - 4.5) ** 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.lmer("Reaction ~ Days + Days2 + (Days | Subject)", ss)


def _numpy_f(beta, V, L):
    """Independent evaluation for a full-row-rank L: explicit inverse, no eigen-directions."""
    Lb = L @ beta
    return float(Lb @ np.linalg.inv(L @ V @ L.T) @ Lb) / L.shape[0]


L2 = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def test_equals_numpy_on_the_model_vcov(sleep):
    beta, V = np.asarray(sleep.beta), np.asarray(sleep.vcov_array)
    n, p = sleep.nobs, len(beta)
    F = _numpy_f(beta, V, L2)
    res = wald_test(beta, V, L2, df=n - p)
    assert res.F == pytest.approx(F, rel=1e-12)
    assert res.numdf == 2 and res.t is None
    assert res.p == pytest.approx(stats.f.sf(F, 2, n - p), rel=1e-10)
    row = contest(sleep, L2, ddf="residual").iloc[0]
    assert row["F value"] == pytest.approx(F, rel=1e-12)
    assert row["Pr(>F)"] == pytest.approx(stats.f.sf(F, 2, n - p), rel=1e-10)
    # asymptotic: χ²_q / q; a callable vcov is evaluated
    asym = wald_test(beta, lambda: V, L2)
    assert asym.dendf == np.inf
    assert asym.p == pytest.approx(stats.chi2.sf(2 * F, 2), rel=1e-10)
    # Kenward-Roger's unscaled F is the same quadratic form on its adjusted covariance
    kr = ddf_method(sleep, "kenward-roger")
    assert kr.f_test(L2)["Mean Sq"] == pytest.approx(_numpy_f(kr.beta, kr.vcov_adjusted, L2) * kr.sigma**2, rel=1e-10)


@pytest.mark.parametrize("ddf", DDFS)
def test_one_row_F_is_t_squared(sleep, ddf):
    l = np.array([[0.0, 1.0, -2.0]])
    t_row = contest(sleep, l, ddf=ddf).iloc[0]
    meth = ddf_method(sleep, ddf)
    f_row = meth.f_test(l)
    assert f_row["F value"] == pytest.approx(t_row["t value"] ** 2, rel=1e-10)
    assert f_row["NumDF"] == 1
    assert f_row["DenDF"] == pytest.approx(t_row["df"], rel=1e-8)
    assert f_row["Pr(>F)"] == pytest.approx(t_row["Pr(>|t|)"], rel=1e-8)
    res = wald_test(meth.beta, meth.vcov, l)
    assert res.t == pytest.approx(t_row["t value"], rel=1e-10)  # signed, not just |t|
    assert res.F == pytest.approx(res.t**2, rel=1e-12)


@pytest.mark.parametrize("ddf", DDFS)
def test_invariant_to_nonsingular_recombination(sleep, ddf):
    M = np.array([[2.0, -1.0], [0.5, 3.0]])
    meth = ddf_method(sleep, ddf)
    a, b = meth.f_test(L2), meth.f_test(M @ L2)
    assert b["F value"] == pytest.approx(a["F value"], rel=1e-10)
    assert b["NumDF"] == a["NumDF"] == 2
    if ddf != "satterthwaite":  # Satterthwaite's df follows the eigen-directions of LΦL' (lmerTest)
        assert b["DenDF"] == pytest.approx(a["DenDF"], rel=1e-8)
        assert b["Pr(>F)"] == pytest.approx(a["Pr(>F)"], rel=1e-8)
    # the quadratic form's matrix L'(LVL')⁻¹L is the same for L and ML
    V = np.asarray(sleep.vcov_array)
    A, B = directions(M @ L2, V).metric(), directions(L2, V).metric()
    assert np.allclose(A, B, rtol=1e-10, atol=1e-12 * np.abs(B).max())


@pytest.mark.parametrize("ddf", DDFS)
def test_duplicate_row_keeps_F_and_rank(sleep, ddf):
    Ld = np.vstack([L2, L2[0]])  # rank 2, three rows
    meth = ddf_method(sleep, ddf)
    a, b = meth.f_test(L2), meth.f_test(Ld)
    assert b["NumDF"] == 2
    assert b["F value"] == pytest.approx(a["F value"], rel=1e-8)
    if ddf != "satterthwaite":
        assert b["DenDF"] == pytest.approx(a["DenDF"], rel=1e-8)
    res = wald_test(np.asarray(sleep.beta), np.asarray(sleep.vcov_array), Ld)
    assert res.numdf == 2
    assert res.F == pytest.approx(_numpy_f(np.asarray(sleep.beta), np.asarray(sleep.vcov_array), L2), rel=1e-8)


def test_rhs_and_zero_rank(sleep):
    beta, V = np.asarray(sleep.beta), np.asarray(sleep.vcov_array)
    rhs = np.array([10.0, 1.0])
    Lb = L2 @ beta - rhs
    F = float(Lb @ np.linalg.solve(L2 @ V @ L2.T, Lb)) / 2
    assert wald_test(beta, V, L2, rhs=rhs).F == pytest.approx(F, rel=1e-12)
    none = wald_test(beta, V, np.zeros((1, 3)), df=lambda d: 1.0)
    assert none.numdf == 0 and np.isnan(none.F) and np.isnan(none.p) and np.isnan(none.dendf)


def test_infinite_satterthwaite_df_gives_the_chi_square_p(sleep):
    """Regression: with Var(φ̂) = 0 every ν_m is infinite; the F's p-value is then χ²_q/q's
    (it was NaN: scipy's F tail with an infinite denominator df), as the t test's is normal."""
    import copy
    import dataclasses
    from mmfast.inference.satterthwaite import Satterthwaite

    sat = copy.copy(Satterthwaite(sleep))
    d = sat.derivatives
    sat.derivatives = dataclasses.replace(d, vcov_varpar=np.zeros_like(d.vcov_varpar))
    row = sat.f_test(L2)
    F = _numpy_f(sat.beta, sat.vcov, L2)
    assert row["DenDF"] == np.inf and row["F value"] == pytest.approx(F, rel=1e-12)
    assert row["Pr(>F)"] == pytest.approx(stats.chi2.sf(2 * F, 2), rel=1e-10)

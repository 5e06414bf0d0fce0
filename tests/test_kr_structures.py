"""Kenward-Roger through structured G-side terms.

* Against pbkrtest (tests/oracle/kr_structures.R -> tests/reference/kr_structures.json.gz) where
  lme4 fits a model with the same V: ``diag(x | g)`` = ``(x || g)``, ``homcs(0 + f | g)`` =
  ``(1 | g) + (1 | g:f)`` (ρ ≥ 0), ``us`` = lme4's unstructured; one of them singular.
* For ar1, toep and ou (no lme4 equivalent) against a dense n x n Kenward & Roger (1997)
  computation written here: V(τ) built from the structure's textbook formula on glmmTMB's
  reporting scale (SDs, ρ or the OU rate, σ), its derivatives G_r by central differences, the
  REML information ½tr(P G_r P G_s) with P the REML projection, Φ_A and KR's moment-matched df.
  mmfast works on another parametrisation (variances, φ) and in q dimensions: agreement also
  shows the first-order KR's invariance to the parametrisation.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mmfast
from mmfast.inference.kenward_roger import KenwardRoger

REF = json.load(gzip.open(Path(__file__).parent / "reference" / "kr_structures.json.gz"))
CASES = [k for k in REF if not k.startswith("_")]
STRUCT = json.load(gzip.open(Path(__file__).parent / "reference" / "structures.json.gz"))


def _data(case: str) -> pd.DataFrame:
    ref = REF[case]
    if "data" in ref:
        return pd.DataFrame(ref["data"])
    if ref["formula"].startswith("yield"):
        d = mmfast.datasets.load("Oats")
        return d.drop(index=ref.get("drop_rows0", [])).reset_index(drop=True)
    return mmfast.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def fits():
    import warnings

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular_diag is a boundary fit (as in lme4)
        for case in CASES:
            out[case] = mmfast.lmer(REF[case]["formula"], _data(case), reml=REF[case]["reml"])
    return out


@pytest.mark.parametrize("case", CASES)
def test_kenward_roger_matches_pbkrtest_on_equivalent_lme4_models(fits, case):
    """Tolerances: the REML optimum agrees to ~1e-7 in θ; KR quantities to 1e-5 relative."""
    ref, m = REF[case], fits[case]
    kr = KenwardRoger(m)
    assert kr.model.loglik == pytest.approx(ref["loglik_reml"], rel=1e-9)
    V = np.asarray(ref["vcov_adj"])
    np.testing.assert_allclose(kr.vcov_adjusted, V, rtol=0, atol=1e-5 * np.abs(V).max())
    co = m.summary(ddf="kenward-roger").coefficients
    c = ref["coef"]
    np.testing.assert_allclose(co["Std. Error"], c["se"], rtol=1e-5)
    np.testing.assert_allclose(co["df"], c["df"], rtol=1e-5)
    np.testing.assert_allclose(co["t value"], c["t"], rtol=1e-5)
    an = m.anova(ddf="kenward-roger")
    a = ref["anova"]
    np.testing.assert_allclose(an["NumDF"], a["numdf"])
    np.testing.assert_allclose(an["DenDF"], a["dendf"], rtol=1e-5)
    np.testing.assert_allclose(an["F value"], a["F"], rtol=1e-5)


def test_homcs_case_has_a_nonnegative_correlation(fits):
    """The homcs = nested intercepts equivalence needs ρ ≥ 0 (lme4's two variances ≥ 0)."""
    for case in ("oats_homcs", "oats_homcs_unbalanced"):
        m = fits[case]
        (t,) = m.frame.terms
        rho = t.param.correlation_parameters(np.asarray(m.theta))[0]
        assert rho > 0
        v = REF[case]["vcomp"]
        assert rho == pytest.approx(
            v["Block.(Intercept).NA"] / (v["Block.(Intercept).NA"] + v["Block:Variety.(Intercept).NA"]), rel=1e-5
        )


# --- dense Kenward & Roger (1997) on glmmTMB's scale, derivatives by differences -----------------
def _sigma_of(kind: str, tau: np.ndarray, p: int, times=None) -> np.ndarray:
    """The term's covariance from its textbook formula: tau = (SDs..., correlation parameters)."""
    lag = np.abs(np.subtract.outer(np.arange(p), np.arange(p)))
    if kind == "ar1":  # (sd, ρ): sd² ρ^|i-j|
        return tau[0] ** 2 * tau[1] ** lag
    if kind == "toep":  # (sd_1..sd_p, ρ_1..ρ_{p-1})
        R = np.eye(p)
        for k in range(1, p):
            R[lag == k] = tau[p + k - 1]
        return np.outer(tau[:p], tau[:p]) * R
    if kind == "ou":  # (sd, rate κ): sd² exp(-κ |t_i - t_j|)
        return tau[0] ** 2 * np.exp(-tau[1] * np.abs(np.subtract.outer(times, times)))
    raise AssertionError(kind)


def _dense_v(m, kind):
    """V(par) = σ²I + Z (I ⊗ Σ(τ)) Z' for par = (τ on glmmTMB's scale, σ), dense."""
    Z = m.Z.toarray()
    n = Z.shape[0]
    (t,) = m.frame.terms
    ell, p = t.nlevels, t.p
    times = getattr(t.param, "times", None)

    def V(par):
        S = _sigma_of(kind, par[:-1], p, times)
        return par[-1] ** 2 * np.eye(n) + Z @ np.kron(np.eye(ell), S) @ Z.T

    return V


def _dense_kr(m, V, par, L_rows, second_order=False):
    """Φ_A and per-hypothesis (df, F scale) from the n x n formulas at V(par), G_r = ∂V/∂par_r
    by central differences; ``second_order`` adds KR 1997's -¼ Σ W_rs R_rs to Φ_A."""
    X = np.asarray(m.frame.X, dtype=float)
    steps = [1e-5 * max(abs(v), 1e-2) for v in par]
    unit = np.eye(len(par))
    G = [(V(par + h * e) - V(par - h * e)) / (2 * h) for h, e in zip(steps, unit)]
    Vi = np.linalg.inv(V(par))
    Phi = np.linalg.inv(X.T @ Vi @ X)
    Pm = Vi - Vi @ X @ Phi @ X.T @ Vi  # REML projection
    k = len(G)
    P = [-X.T @ Vi @ Gr @ Vi @ X for Gr in G]
    info = np.array([[0.5 * np.trace(Pm @ G[r] @ Pm @ G[s]) for s in range(k)] for r in range(k)])
    W = np.linalg.inv(info)
    U = sum(W[r, s] * (X.T @ Vi @ G[r] @ Vi @ G[s] @ Vi @ X - P[r] @ Phi @ P[s]) for r in range(k) for s in range(k))
    if second_order:
        for r in range(k):
            for s_ in range(k):
                a, b = steps[r] * 10 * unit[r], steps[s_] * 10 * unit[s_]
                H = (V(par + a + b) - V(par + a - b) - V(par - a + b) + V(par - a - b)) / (4 * a[r] * b[s_])
                U = U - 0.25 * W[r, s_] * (X.T @ Vi @ H @ Vi @ X)
    PhiA = Phi + 2 * Phi @ U @ Phi
    out = []
    for L in L_rows:
        L = np.atleast_2d(L)
        q = L.shape[0]
        Th = L.T @ np.linalg.inv(L @ Phi @ L.T) @ L
        M = [Th @ Phi @ P[r] @ Phi for r in range(k)]
        A1 = sum(W[r, s] * np.trace(M[r]) * np.trace(M[s]) for r in range(k) for s in range(k))
        A2 = sum(W[r, s] * np.trace(M[r] @ M[s]) for r in range(k) for s in range(k))
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        c1, c2, c3 = (np.array([g, q - g, q + 2 - g])) / (3 * q + 2 * (1 - g))
        Estar = 1 / (1 - A2 / q)
        Vstar = 2 / q * (1 + c1 * B) / ((1 - c2 * B) ** 2 * (1 - c3 * B))
        rho = Vstar / (2 * Estar**2)
        mdf = 4 + (q + 2) / (q * rho - 1)
        out.append((mdf, mdf / (Estar * (mdf - 2))))
    return PhiA, out


def _struct_data(case):
    if "data" in STRUCT[case]:
        return pd.DataFrame(STRUCT[case]["data"])
    d = mmfast.datasets.load("sleepstudy").copy()
    d["period"] = d["Days"] // 2
    return d


@pytest.mark.parametrize(
    "kind, case, formula",
    [
        ("ar1", "sleep_ar1", "Reaction ~ Days + I(Days^2) + ar1(0 + factor(Days) | Subject)"),
        ("toep", "sleep_toep_periods", "Reaction ~ Days + I(Days^2) + toep(0 + factor(period) | Subject)"),
        ("ou", "ou_irregular", "y ~ x + time + ou(time + 0 | g)"),
    ],
)
def test_kenward_roger_matches_dense_computation(kind, case, formula):
    m = mmfast.lmer(formula, _struct_data(case), reml=True)
    (t,) = m.frame.terms
    th = np.asarray(m.theta)
    sigma = float(m.sigma)
    sd = sigma * th[: t.param.ntau]
    corr = t.param.correlation_parameters(th)
    if kind == "ou":
        corr = -np.log(corr)  # the rate κ from the correlation at unit distance
    tau = np.concatenate([sd, corr])
    p = m.frame.X.shape[1]
    rows = [np.eye(p)[j] for j in range(p)] + [np.eye(p)[1:]]
    PhiA, moments = _dense_kr(m, _dense_v(m, kind), np.concatenate([tau, [sigma]]), rows)
    kr = KenwardRoger(m)
    np.testing.assert_allclose(kr.vcov_adjusted, PhiA, rtol=1e-6, atol=1e-7 * np.abs(PhiA).max())
    co = m.summary(ddf="kenward-roger").coefficients
    np.testing.assert_allclose(co["df"], [mo[0] for mo in moments[:p]], rtol=1e-5)
    # the joint test of every slope: df and KR's scaled F
    L = np.eye(p)[1:]
    res = m.contest(L, ddf="kenward-roger")
    df2, lam = moments[-1]
    beta = np.asarray(m.beta)
    F_unscaled = float((L @ beta) @ np.linalg.solve(L @ PhiA @ L.T, L @ beta)) / (p - 1)
    assert float(res["DenDF"].iloc[0]) == pytest.approx(df2, rel=1e-5)
    assert float(res["F value"].iloc[0]) == pytest.approx(lam * F_unscaled, rel=1e-5)
    assert float(res["Pr(>F)"].iloc[0]) == pytest.approx(stats.f.sf(lam * F_unscaled, p - 1, df2), rel=1e-4)


def test_first_order_kr_is_invariant_to_the_parametrisation_second_order_is_not():
    """Why mmfast drops KR 1997's R_rs term: Φ_A without it is the same on the (SD, ρ, σ) and the
    (variance, ρ, σ²) scales of an ar1 fit; with it the two differ (and a linear scale would give
    a third answer), so no parametrisation-free second-order KR exists for a nonlinear structure."""
    m = mmfast.lmer("Reaction ~ Days + ar1(0 + factor(Days) | Subject)", mmfast.datasets.load("sleepstudy"))
    (t,) = m.frame.terms
    th, sigma = np.asarray(m.theta), float(m.sigma)
    sd_scale = np.array([sigma * th[0], t.param.correlation_parameters(th)[0], sigma])
    V_sd = _dense_v(m, "ar1")

    def V_var(par):  # (sd², ρ, σ²)
        return V_sd(np.array([np.sqrt(par[0]), par[1], np.sqrt(par[2])]))

    var_scale = np.array([sd_scale[0] ** 2, sd_scale[1], sigma**2])
    rows = [np.array([0.0, 1.0])]
    first_sd, (df_sd,) = _dense_kr(m, V_sd, sd_scale, rows)
    first_var, (df_var,) = _dense_kr(m, V_var, var_scale, rows)
    np.testing.assert_allclose(first_sd, first_var, rtol=1e-6)
    assert df_sd[0] == pytest.approx(df_var[0], rel=1e-6)
    np.testing.assert_allclose(KenwardRoger(m).vcov_adjusted, first_sd, rtol=1e-6)
    second_sd, _ = _dense_kr(m, V_sd, sd_scale, rows, second_order=True)
    second_var, _ = _dense_kr(m, V_var, var_scale, rows, second_order=True)
    gap = np.abs(second_sd - second_var).max() / np.abs(first_sd - KenwardRoger(m).Phi).max()
    assert gap > 0.05  # a material share of the whole adjustment Φ_A - Φ


def test_variance_directions_are_derivatives_of_the_covariance():
    """∂(σ²TT')/∂(variances, φ) by central differences through the θ -> T map."""
    from mmfast.design.structures import make_structure

    sigma = 1.7
    for kind, hom, p, times in (
        ("ar1", True, 4, None),
        ("toep", False, 4, None),
        ("cs", False, 3, None),
        ("cs", True, 3, None),
        ("ou", True, 4, [0.0, 0.4, 1.5, 2.1]),
        ("diag", False, 3, None),
    ):
        pm = make_structure(kind, hom, p, [f"c{i}" for i in range(p)], "g", times)
        rng = np.random.default_rng(3)
        th = np.concatenate([rng.uniform(0.5, 1.5, pm.ntau), rng.uniform(-0.6, 0.6, pm.nphi)])
        D = pm.variance_directions(th, sigma)

        def cov(v):  # v = (variances, φ)
            x = np.concatenate([np.sqrt(v[: pm.ntau]) / sigma, v[pm.ntau :]])
            T = pm.to_template(x)
            return sigma**2 * T @ T.T

        v0 = np.concatenate([(sigma * th[: pm.ntau]) ** 2, th[pm.ntau :]])
        for r in range(pm.ntheta):
            e = np.zeros(pm.ntheta)
            e[r] = 1e-6 * max(abs(v0[r]), 1.0)
            num = (cov(v0 + e) - cov(v0 - e)) / (2 * e[r])
            np.testing.assert_allclose(D[r], num, rtol=1e-6, atol=1e-8, err_msg=f"{kind} hom={hom} τ_{r}")

"""lmer(residual=) downstream: summary's structure blocks, simulate (correlated and
heteroscedastic residuals), refit and bootstrap re-estimating φ, Satterthwaite's df with φ
estimated, and nlme's fitted(.) covariate as a fixed point.

Oracles: nlme 3.1-162 and lmerTest (tests/oracle/residual.R -> residual.json.gz): a
compound-symmetry residual within Subject (Rho >= 0) beside (0 + Days | Subject) has the
covariance of lme4's (1 | Subject) + (0 + Days | Subject), so logLik and Satterthwaite's df must
be lmerTest's on that fit.  Derivations: the simulated residuals' covariance against R (exact
for the colouring, sampling error for the draws), a dense n x n computation of the df.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.resample.simulate import ResponseSimulator

REF = json.load(gzip.open(Path(__file__).parent / "reference" / "residual.json.gz"))


@pytest.fixture(scope="module")
def ortho():
    d = mmfast.datasets.load("Orthodont")
    d["Subject"] = pd.Categorical(d["Subject"], categories=sorted(d["Subject"].unique()))
    return d


@pytest.fixture(scope="module")
def ar1_ident(ortho):
    """AR(1) within Subject and an SD per Sex: both φ well inside their ranges."""
    return mmfast.lmer(
        "distance ~ age + (1 | Subject)", ortho, residual=[mmfast.corAR1(), mmfast.varIdent(form="~1 | Sex")]
    )


def _dense_R(m, ortho) -> np.ndarray:
    """σ⁻²Cov(ε) from nlme's definitions: sd_i sd_j Phi^|Δposition| within a subject."""
    ucor, uvar = m.residual.split(m.phi)
    phi = float(m.residual.correlation.natural(ucor)[0])
    ratio = float(m.residual.variance.natural(uvar)[0])
    first = ortho["Sex"].iloc[np.argmin(ortho["Subject"].cat.codes.to_numpy())]  # nlme's first stratum
    sd = np.where(ortho["Sex"].to_numpy() == first, 1.0, ratio)
    subj = ortho["Subject"].cat.codes.to_numpy()
    pos = ortho.groupby("Subject", observed=True).cumcount().to_numpy()
    same = subj[:, None] == subj[None, :]
    return np.where(same, phi ** np.abs(pos[:, None] - pos[None, :]), 0.0) * np.outer(sd, sd)


def test_summary_prints_the_structures_after_random_effects(ar1_ident):
    text = str(ar1_ident.summary())
    lines = text.splitlines()
    i_re, i_cor = lines.index("Random effects:"), lines.index("Correlation Structure: AR(1)")
    i_var, i_fix = lines.index("Variance function:"), lines.index("Fixed effects:")
    assert i_re < i_cor < i_var < i_fix
    ucor, uvar = ar1_ident.residual.split(ar1_ident.phi)
    phi = ar1_ident.residual.correlation.natural(ucor)[0]
    assert lines[i_cor + 3].split() == ["Phi"]
    assert float(lines[i_cor + 4]) == pytest.approx(phi, rel=1e-6)
    assert lines[i_var + 1] == " Structure: Different standard deviations per stratum"
    assert lines[i_var + 4].split() == ["Female", "Male"]  # nlme's order: rows sorted by Subject
    ratio = ar1_ident.residual.variance.natural(uvar)[0]
    assert [float(v) for v in lines[i_var + 5].split()] == pytest.approx([1.0, ratio], rel=1e-5)
    # scaled residuals: (y - fitted) / (σ s_i), nlme's standardized within-group residuals
    r = (ar1_ident.frame.y - ar1_ident.linear_predictor()) / ar1_ident.residual_sd
    i_res = lines.index("Scaled residuals: ")
    assert [float(v) for v in lines[i_res + 2].split()] == pytest.approx(
        np.quantile(r, [0, 0.25, 0.5, 0.75, 1]), abs=1e-4
    )


def test_summary_block_is_nlmes(ortho):
    """The lmer-style summary prints nlme's own block (ortho_ar1_reml's print)."""
    m = mmfast.lmer("distance ~ age + (1 | Subject)", ortho, residual=mmfast.corAR1())
    mine = str(m.summary()).splitlines()
    ref = REF["ortho_ar1_reml"]["print"]
    i, j = mine.index("Correlation Structure: AR(1)"), ref.index("Correlation Structure: AR(1)")
    assert [s.rstrip() for s in mine[i : i + 3]] == [s.rstrip() for s in ref[j : j + 3]]
    assert float(mine[i + 4]) == pytest.approx(float(ref[j + 4]), rel=2e-3)


def test_colouring_is_the_covariance_factor(ar1_ident, ortho):
    """Derivation: E = colouring(I) has E E' = R exactly (AR(1) x varIdent, data row order)."""
    n = len(ortho)
    E = ar1_ident.residual_colouring()(np.eye(n))
    assert np.allclose(E @ E.T, _dense_R(ar1_ident, ortho), atol=1e-12)


def test_colouring_dense_structure():
    """corSymm (dense per-group Cholesky) with irregular group sizes: E E' = R, and the
    whitening undoes the colouring."""
    from mmfast.model.residual import DenseCorrelation

    groups = np.repeat([0, 1, 2], [3, 4, 2])
    pos = np.array([2, 0, 3, 0, 1, 2, 3, 3, 1])
    R = np.array([[1, 0.5, 0.3, 0.2], [0.5, 1, 0.4, 0.1], [0.3, 0.4, 1, 0.6], [0.2, 0.1, 0.6, 1.0]])
    eng = DenseCorrelation(groups, pos, lambda u: R)
    L = eng.colour(None)(np.eye(9))  # rows in eng.order
    W = eng.factor(None).apply(np.eye(9))
    assert np.allclose(W @ L, np.eye(9), atol=1e-12)
    C = np.zeros((9, 9))
    for g in range(3):
        idx = np.flatnonzero(groups == g)
        C[np.ix_(idx, idx)] = R[np.ix_(pos[idx], pos[idx])]
    assert np.allclose(L @ L.T, C[np.ix_(eng.order, eng.order)], atol=1e-12)


def test_simulated_residuals_have_the_fitted_covariance(ar1_ident, ortho):
    """Residuals around Xβ̂ + Zb̂ (simulate's conditional draws): the empirical covariance of
    N draws within each subject against σ²R, each element within 4.5 of its sampling SE
    sqrt((Σ_ii Σ_jj + Σ_ij²)/N); the marginal draws of simulate() against σ²(ZΛΛ'Z' + R)."""
    N = 6000
    sim = ResponseSimulator(ar1_ident, conditional=True)
    rng = np.random.default_rng(11)
    eta = ar1_ident.linear_predictor()
    E = np.column_stack([sim.draw(rng) - eta for _ in range(N)])
    S = ar1_ident.sigma**2 * _dense_R(ar1_ident, ortho)
    emp = E @ E.T / N
    se = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S**2) / N)
    block = S != 0
    assert np.all(np.abs(emp - S)[block] < 4.5 * se[block])
    # the AR(1) shows: lag-1 correlations are Phi, far from 0
    assert np.max(S[block & ~np.eye(len(S), dtype=bool)]) > 0.1 * ar1_ident.sigma**2
    Y = ar1_ident.simulate(N, seed=5, as_frame=False)
    D = Y - (ar1_ident.frame.X @ ar1_ident.beta)[:, None]
    theta = float(ar1_ident.theta[0])
    subj = ortho["Subject"].cat.codes.to_numpy()
    V = S + (ar1_ident.sigma * theta) ** 2 * (subj[:, None] == subj[None, :])
    emp = D @ D.T / N
    se = np.sqrt((np.outer(np.diag(V), np.diag(V)) + V**2) / N)
    block = V != 0
    assert np.all(np.abs(emp - V)[block] < 4.5 * se[block])
    assert np.all(np.abs(D.mean(axis=1)) < 4.5 * np.sqrt(np.diag(V) / N))


def test_refit_reproduces_the_fit_and_reestimates_phi(ar1_ident):
    same = ar1_ident.refit(ar1_ident.frame.y)
    assert same.loglik == pytest.approx(ar1_ident.loglik, rel=1e-9)
    assert np.allclose(same.phi, ar1_ident.phi, rtol=1e-4, atol=1e-6)
    assert np.allclose(same.beta, ar1_ident.beta, rtol=1e-6)
    y = ar1_ident.simulate(1, seed=3, as_frame=False)[:, 0]
    other = ar1_ident.refit(y)
    assert not np.allclose(other.phi, ar1_ident.phi, rtol=1e-3)  # φ re-estimated
    assert ar1_ident.loglik == pytest.approx(same.loglik, rel=1e-9)  # the original fit untouched


def test_refit_equals_a_fresh_fit(ortho, ar1_ident):
    y = ar1_ident.simulate(1, seed=8, as_frame=False)[:, 0]
    d = ortho.copy()
    d["distance"] = y
    fresh = mmfast.lmer(
        "distance ~ age + (1 | Subject)", d, residual=[mmfast.corAR1(), mmfast.varIdent(form="~1 | Sex")]
    )
    assert ar1_ident.refit(y).loglik == pytest.approx(fresh.loglik, rel=1e-8)


def test_bootstrap_runs_on_residual_fits(ar1_ident):
    b = ar1_ident.bootstrap(4, seed=1)  # default statistics: β, θ, σ and the structures' Phi, ratio
    assert list(b.columns)[-2:] == ["Phi", "Male"]
    assert np.all(np.isfinite(b.to_numpy()))
    assert b.attrs["n_failed"] == 0
    ucor, uvar = ar1_ident.residual.split(ar1_ident.phi)
    t0 = b.attrs["t0"]
    assert t0["Phi"] == pytest.approx(ar1_ident.residual.correlation.natural(ucor)[0], rel=1e-12)
    assert len(set(np.round(b["Phi"], 8))) == 4  # φ re-estimated per replicate


def test_fitted_covariate_is_a_fixed_point(ortho):
    """nlme's fitted(.): at the result the covariate is the fit's own fitted values (to the
    iteration's tolerance), and φ is the optimum for that covariate (no better φ from
    elsewhere).  refit on the observed response gives the same fixed point."""
    from mmfast.model.optimize import minimize_bounded

    f = mmfast.lme("distance ~ age", ortho, random="~1 | Subject", weights="varPower(form = ~fitted(.) | Sex)")
    m = f.model
    v = m.residual.variance.v
    assert np.max(np.abs(m.linear_predictor() - v) / np.abs(v)) < 1e-5
    best = m.objective_value
    with m._reopened():
        g, _ = m.profiled_criterion()
        r = minimize_bounded(g, np.zeros(2), np.full(2, -30.0), np.full(2, 30.0), step=np.full(2, 0.3))
        m._load(m.phi)
        m._set_theta(m.theta)
    assert r.fun >= best - 1e-7
    again = m.refit(m.frame.y)
    assert again.loglik == pytest.approx(m.loglik, rel=1e-8)


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_satterthwaite_with_phi_matches_lmertest_by_equivalence(method):
    ref = REF[f"satt_cs_{method}"]
    d = mmfast.datasets.load("sleepstudy")
    m = mmfast.lmer(
        "Reaction ~ Days + (0 + Days | Subject)",
        d,
        reml=method == "reml",
        residual=mmfast.corCompSymm(form="~1 | Subject"),
    )
    assert m.loglik == pytest.approx(ref["logLik"], rel=1e-7)
    rho = m.residual.correlation.natural(m.phi)[0]
    vc = ref["vc"]  # (Intercept), Days, Residual variances of the lme4 fit
    assert rho == pytest.approx(vc[0] / (vc[0] + vc[2]), rel=1e-3)
    co = m.summary().coefficients
    assert np.allclose(co["Std. Error"], ref["se"], rtol=1e-5)
    assert np.allclose(co["df"], ref["df"], rtol=1e-4)
    a = m.anova()
    assert a["DenDF"].iloc[0] == pytest.approx(ref["anova_df"], rel=1e-4)
    assert a["F value"].iloc[0] == pytest.approx(ref["anova_F"], rel=5e-5)  # (β/SE)²: twice the SE's error


def _dense_df(ortho, x0, L, reml=True, free_phi=True, h=1e-4):
    """Satterthwaite's df from a dense V = σ²(θ²ZZ' + S(δ)²) (varIdent by Sex beside
    (1 | Subject)): deviance and Var(β̂) = (X'V⁻¹X)⁻¹ straight from V, central differences."""
    y = ortho["distance"].to_numpy(float)
    X = np.column_stack([np.ones(len(y)), ortho["age"].to_numpy(float)])
    subj = ortho["Subject"].cat.codes.to_numpy()
    ZZ = (subj[:, None] == subj[None, :]).astype(float)
    first = ortho["Sex"].iloc[np.argmin(subj)]
    male = (ortho["Sex"].to_numpy() != first).astype(float)

    def V(x):
        th, s, ld = x
        sd = np.exp(ld * male)
        return s * s * (th * th * ZZ + np.diag(sd * sd))

    def dev(x):
        Vx = V(x)
        Vi = np.linalg.inv(Vx)
        F = X.T @ Vi @ X
        b = np.linalg.solve(F, X.T @ Vi @ y)
        r = y - X @ b
        out = np.linalg.slogdet(Vx)[1] + r @ Vi @ r
        return out + (np.linalg.slogdet(F)[1] if reml else 0.0)

    def vcov(x):
        return np.linalg.inv(X.T @ np.linalg.inv(V(x)) @ X)

    k = 3 if free_phi else 2
    H = np.zeros((k, k))
    E = np.eye(k) * h
    for i in range(k):
        for j in range(k):
            H[i, j] = (
                dev(x0 + _pad(E[i] + E[j]))
                - dev(x0 + _pad(E[i] - E[j]))
                - dev(x0 + _pad(-E[i] + E[j]))
                + dev(x0 + _pad(-E[i] - E[j]))
            ) / (4 * h * h)
    J = np.array([(vcov(x0 + _pad(E[i])) - vcov(x0 - _pad(E[i]))) / (2 * h) for i in range(k)])
    A = 2 * np.linalg.inv(H)
    out = []
    for l in L:
        g = np.array([l @ Ji @ l for Ji in J])
        out.append(2 * (l @ vcov(x0) @ l) ** 2 / (g @ A @ g))
    return np.array(out), dev(x0)


def _pad(e):
    return np.r_[e, np.zeros(3 - len(e))]


@pytest.mark.parametrize("reml", [True, False])
def test_satterthwaite_with_varident_against_a_dense_derivation(ortho, reml):
    m = mmfast.lmer("distance ~ age + (1 | Subject)", ortho, reml=reml, residual=mmfast.varIdent(form="~1 | Sex"))
    x0 = np.array([m.theta[0], m.sigma, m.phi[0]])
    L = np.eye(2)
    df, dev = _dense_df(ortho, x0, L, reml=reml)
    n, p = len(ortho), 2
    const = (n - p if reml else n) * np.log(2 * np.pi)
    assert dev + const == pytest.approx(-2 * m.loglik, rel=1e-9)  # the same likelihood
    mine = m.summary().coefficients["df"].to_numpy()
    assert np.allclose(mine, df, rtol=2e-3)
    known, _ = _dense_df(ortho, x0, L, reml=reml, free_phi=False)  # φ treated as known
    assert not np.allclose(known, df, rtol=2e-2)  # so the comparison can tell the two apart


def test_kenward_roger_and_profile_intervals_are_refused_with_a_residual_structure(ar1_ident):
    """Both would hold φ at φ̂ (their V lacks R(φ)'s derivatives): refused, not wrong."""
    from mmfast.errors import ModelSpecError

    with pytest.raises(ModelSpecError, match="Kenward-Roger"):
        str(ar1_ident.summary(ddf="kenward-roger"))
    with pytest.raises(ModelSpecError, match="profile intervals"):
        ar1_ident.confint()
    ci = ar1_ident.confint(method="wald")
    assert np.allclose(
        ci.loc["age"], ar1_ident.beta[1] + np.array([-1, 1]) * 1.959964 * np.sqrt(ar1_ident.vcov_array[1, 1])
    )


def test_pickle_and_parallel_bootstrap(ortho):
    """Fits with residual structures pickle (the structures hold methods, not lambdas), so
    bootstrap's worker processes get them: the same replicates for n_jobs = 1 and 2."""
    import pickle

    m = mmfast.lmer("distance ~ age + (1 | Subject)", ortho, residual=mmfast.corCAR1(form="~ age | Subject"))
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.loglik == m.loglik
    assert np.array_equal(m2.simulate(2, seed=1, as_frame=False), m.simulate(2, seed=1, as_frame=False))
    assert np.allclose(m2.summary().coefficients["df"], m.summary().coefficients["df"], rtol=1e-10)
    b1, b2 = m.bootstrap(3, seed=4, n_jobs=1), m.bootstrap(3, seed=4, n_jobs=2)
    assert np.allclose(b1.to_numpy(), b2.to_numpy(), rtol=1e-10)


def test_emmeans_defaults_to_satterthwaite_with_a_residual_structure(ortho):
    m = mmfast.lmer("distance ~ Sex + age + (1 | Subject)", ortho, residual=mmfast.corAR1())
    e = mmfast.emmeans(m, "Sex")  # Female (the reference level) at the mean age
    assert e.ddf == "satterthwaite"
    sat = m.contest(np.array([[1.0, 0.0, float(ortho["age"].mean())]]), joint=False)
    assert float(e.table["df"].iloc[0]) == pytest.approx(float(sat["df"].iloc[0]), rel=1e-8)
    assert float(e.table["SE"].iloc[0]) == pytest.approx(float(sat["Std. Error"].iloc[0]), rel=1e-8)

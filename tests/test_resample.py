"""Simulation and resampling (issue 5): simulate, refit, bootstrap, PBmodcomp, permutation tests.

Reference numbers from R (no R needed here): the waterlick PBmodcomp block of
``waterlick_laplace.json.gz``; pbkrtest 0.5.2's ``.summarizePB`` and boot's ``norm.inter`` on
the small constructed inputs below (values printed by R 4.2.2, pbkrtest 0.5.2, boot 1.3-28).
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import mmfast
from mmfast import datasets
from mmfast.resample import bootstrap, cluster_permutation_test, confint_boot, pbmodcomp, refit_response, simulate
from mmfast.resample import refit as refit_mod
from mmfast.resample.bootstrap import norm_inter
from mmfast.resample.parallel import TaskFailure, run_tasks
from mmfast.resample.pbmodcomp import pb_tests

REF = Path(__file__).parent / "reference"
EX1 = "res ~ factor(treatment_idx) + (1 | midx)"


def _ref(case):
    with gzip.open(REF / f"{case}.json.gz", "rt") as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def ex1():
    return datasets.load("ex1")


@pytest.fixture(scope="module")
def sleep():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.lmer("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def water():
    wl = datasets.load("waterlick")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        big = mmfast.glmer("lick ~ dff + (1 | mouseID)", wl, family="binomial")
        small = mmfast.glmer("lick ~ 1 + (1 | mouseID)", wl, family="binomial")
    return big, small


# --- parallel execution ---------------------------------------------------------------------
def _draw_or_fail(payload, rng):
    x = float(rng.standard_normal())
    if x > payload:
        raise ValueError("too big")
    return x


def test_run_tasks_seeded_per_task_any_chunking_and_failures_kept():
    a = run_tasks(_draw_or_fail, 1.0, 40, seed=7, n_jobs=1, chunk_size=1)
    b = run_tasks(_draw_or_fail, 1.0, 40, seed=7, n_jobs=1, chunk_size=13)
    c = run_tasks(_draw_or_fail, 1.0, 40, seed=7, n_jobs=2)
    expect = [float(np.random.default_rng(s).standard_normal()) for s in np.random.SeedSequence(7).spawn(40)]
    for res in (a, b, c):
        assert len(res) == 40
        for r, e in zip(res, expect):
            assert (isinstance(r, TaskFailure) and "too big" in r.error) if e > 1.0 else r == e
    assert any(isinstance(r, TaskFailure) for r in a)


# --- simulate and refit -----------------------------------------------------------------------
def test_simulate_lmm_reproducible_and_moments(ex1):
    m = mmfast.lmer("res ~ 1 + (1 | midx)", ex1)
    Y = simulate(m, 400, seed=11)
    assert Y.shape == (m.nobs, 400) and list(Y.columns[:2]) == ["sim_1", "sim_2"]
    assert Y.equals(simulate(m, 400, seed=11))
    assert not Y.equals(simulate(m, 400, seed=12))
    # column j is the j-th seeded stream: the first columns do not depend on nsim
    assert np.array_equal(simulate(m, 3, seed=11, as_frame=False), Y.iloc[:, :3].to_numpy())
    # y = β0 + σ θ u_g + σ ε: mean β0, variance σ²(1 + θ²)
    assert abs(Y.to_numpy().mean() - m.beta[0]) < 4 * m.sigma * m.theta[0] / np.sqrt(24 * 400) + 0.01
    var = Y.to_numpy().var(axis=0, ddof=1).mean()
    assert var == pytest.approx(m.sigma**2 * (1 + m.theta[0] ** 2), rel=0.1)


def test_simulate_glmm_binomial_forms(water):
    big, _ = water
    Y = simulate(big, 50, seed=1, as_frame=False)
    assert set(np.unique(Y)) <= {0.0, 1.0}
    assert abs(Y.mean() - big.fitted.mean()) < 0.05
    cb = datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cb, family="binomial")
    S = simulate(g, 20, seed=2, as_frame=False)
    size = cb["size"].to_numpy()[:, None]
    assert np.all(S == np.rint(S)) and np.all((S >= 0) & (S <= size))
    f = refit_response(g, S[:, 0])
    assert f.frame.y_extra is g.frame.y_extra and np.all(np.isfinite(f.beta))


def test_refit_response_glmm_reproduces_fit_and_lean_loglik(water):
    big, small = water
    again = refit_response(big, big.frame.y)
    assert np.allclose(again.theta, big.theta, rtol=1e-4)
    assert np.allclose(again.beta, big.beta, rtol=1e-4)
    assert again.loglik == pytest.approx(big.loglik, abs=1e-6)
    Y = simulate(small, 4, seed=3, as_frame=False)
    full, lean = refit_mod.Refitter(big), refit_mod.LoglikRefitter(big)
    for j in range(4):
        assert lean(Y[:, j]) == pytest.approx(full(Y[:, j]).loglik, abs=1e-6)
    with pytest.raises(ValueError):
        refit_response(big, big.frame.y[:-1])


# --- PBmodcomp --------------------------------------------------------------------------------
def test_pb_tests_definitions_match_pbkrtest():
    ref = np.array([0.5, 1, 2, 3, 4, -0.1, 0, 2.5, 0.25, np.nan])  # NaN: a failed refit
    res = pb_tests(2.5, 2, ref)
    t = res["table"]
    # pbkrtest:::.summarizePB(c(tobs = 2.5, df = 2), ref without the NaN)
    assert t.loc["LRT", "p.value"] == pytest.approx(0.286504796860190, rel=1e-12)
    assert t.loc["PBtest", "p.value"] == pytest.approx(0.375, rel=1e-12)  # (1 + 2) / (1 + 7)
    assert t.loc["Gamma", "p.value"] == pytest.approx(0.261246616063991, rel=1e-10)
    assert t.loc["Bartlett", "stat"] == pytest.approx(2.64150943396226, rel=1e-12)
    assert t.loc["Bartlett", "p.value"] == pytest.approx(0.266933766477891, rel=1e-12)
    assert t.loc["F", "ddf"] == pytest.approx(4.24, rel=1e-12)
    assert t.loc["F", "p.value"] == pytest.approx(0.374331724777592, rel=1e-10)
    assert res["mean"] == pytest.approx(1.89285714285714) and res["npos"] == 7
    assert res["var"] == pytest.approx(1.91369047619048)


def test_pbmodcomp_waterlick_matches_reference(water):
    big, small = water
    pb = _ref("waterlick_laplace")["results"]["extras"]["PBmodcomp"]
    r = pbmodcomp(big, small, nsim=200, seed=1)
    assert list(r.test.index) == ["LRT", "PBtest", "Gamma", "Bartlett"]
    assert list(r.test.columns) == ["stat", "df", "p.value"]
    assert r.test.loc["LRT", "stat"] == pytest.approx(pb["LRT_stat"], rel=1e-5)
    assert r.test.loc["LRT", "df"] == pb["LRT_df"] == 1
    assert r.test.loc["LRT", "p.value"] == pytest.approx(pb["p_LRT"], rel=1e-4)
    assert abs(r.test.loc["PBtest", "p.value"] - pb["p_PBtest"]) < 0.05
    # the bootstrap moments: pbkrtest's Bartlett statistic 7.90 (mean 1.13): ours statistically
    assert 0.7 < r.moment["mean"] < 1.6
    assert r.n_failed == 0 and r.samples["nsim"] == 200 and np.all(np.isfinite(r.ref))
    assert "PBtest" in repr(r)


def test_pbmodcomp_counts_failed_refits(water, monkeypatch):
    big, small = water
    nsim = 30
    Y = simulate(small, nsim, seed=5, as_frame=False)  # the very responses PBmodcomp draws
    bad = (Y.sum(axis=0).astype(int) % 3) == 0
    assert 0 < bad.sum() < nsim
    original = refit_mod.LoglikRefitter.fit

    def flaky(self, y, start=None):
        if int(np.sum(y)) % 3 == 0:
            raise mmfast.errors.FitError("simulated failure")
        return original(self, y, start)

    monkeypatch.setattr(refit_mod.LoglikRefitter, "fit", flaky)
    with pytest.warns(RuntimeWarning, match="failed"):
        r = pbmodcomp(big, small, nsim=nsim, seed=5)
    assert r.n_failed == bad.sum() == r.samples["n_failed"]
    assert np.array_equal(np.isnan(r.ref), bad)
    assert all("simulated failure" in f for f in r.failures)
    assert r.samples["npos"] <= nsim - r.n_failed


def test_pbmodcomp_lmm_refits_by_ml_and_checks(sleep):
    small = sleep.refit_formula("Reaction ~ 1 + (Days | Subject)")
    r = pbmodcomp(sleep, small, nsim=20, seed=2)
    lrt = mmfast.anova(sleep, small)
    assert r.test.loc["LRT", "stat"] == pytest.approx(lrt["Chisq"].iloc[1], rel=1e-8)
    same = pbmodcomp(sleep, "Reaction ~ 1 + (Days | Subject)", nsim=20, seed=2)
    assert np.allclose(same.ref, r.ref)
    with pytest.raises(ValueError, match="more parameters"):
        pbmodcomp(small, sleep, nsim=5)


# --- bootstrap ---------------------------------------------------------------------------------
def test_bootstrap_default_statistics_and_determinism(sleep):
    b = bootstrap(sleep, 24, seed=3)
    assert list(b.columns) == [
        "(Intercept)",
        "Days",
        "Subject.(Intercept)",
        "Subject.Days.(Intercept)",
        "Subject.Days",
        "sigma",
    ]
    assert b.shape == (24, 6) and b.attrs["n_failed"] == 0
    assert b.attrs["t0"]["Days"] == pytest.approx(sleep.beta[1])
    assert b.equals(bootstrap(sleep, 24, seed=3, n_jobs=2))
    assert abs(b["Days"].mean() - sleep.beta[1]) < 4 * np.sqrt(sleep.vcov_array[1, 1])
    # replicate j is a refit to column j of simulate(seed)
    y0 = simulate(sleep, 1, seed=3, as_frame=False)[:, 0]
    assert b.iloc[0]["Days"] == pytest.approx(sleep.refit(y0).beta[1], rel=1e-10)
    f = bootstrap(sleep, 5, func=lambda m: m.sigma, seed=3)
    assert list(f.columns) == ["t1"] and np.allclose(f["t1"], b["sigma"].iloc[:5], rtol=1e-10)


def test_bootstrap_failures_are_nan_rows(sleep, monkeypatch):
    original = refit_mod.Refitter.__call__
    calls = {"n": 0}

    def flaky(self, y):
        calls["n"] += 1
        if calls["n"] % 4 == 0:
            raise mmfast.errors.FitError("no")
        return original(self, y)

    monkeypatch.setattr(refit_mod.Refitter, "__call__", flaky)
    with pytest.warns(RuntimeWarning):
        b = bootstrap(sleep, 8, seed=1)
    assert b.attrs["n_failed"] == 2 and b.isna().all(axis=1).sum() == 2


def test_norm_inter_matches_boot():
    t = ((np.arange(1, 51)) ** 1.5) % 17
    got = norm_inter(t, [0.025, 0.975, 0.1, 0.33, 0.5])
    want = [
        0.464133483591733,
        15.999660312309990,
        1.581058478271953,
        4.418050273334649,
        7.784609690826529,
    ]  # boot:::norm.inter in R
    assert np.allclose(got, want, rtol=1e-12)


def test_confint_boot_layout_matches_other_methods():
    m = mmfast.lmer("Yield ~ 1 + (1 | Batch)", datasets.load("Dyestuff"))
    ci = m.confint(method="boot", nsim=60, seed=4)
    wald = m.confint(method="wald")
    assert list(ci.index) == list(wald.index) and list(ci.columns) == list(wald.columns)
    assert ci.attrs["nsim"] == 60 and ci.attrs["n_failed"] == 0
    lo, hi = ci.loc["(Intercept)"]
    assert lo < m.beta[0] < hi
    assert ci.loc["sigma"].iloc[0] < m.sigma < ci.loc["sigma"].iloc[1]
    assert m.confint(method="boot", nsim=60, seed=4).equals(ci)


def test_confint_boot_glmm_has_no_sigma(water):
    big, _ = water
    ci = confint_boot(big, nsim=20, seed=1)
    assert list(ci.index) == ["sd_(Intercept)|mouseID", "(Intercept)", "dff"]


# --- cluster permutation test ----------------------------------------------------------------
def test_cluster_permutation_lecture_check(ex1):
    """The lecture's check: 1000 label permutations across the 24 mice."""
    r = cluster_permutation_test(
        EX1, ex1, permute="treatment_idx", cluster="midx", n_perm=1000, seed=2
    )  # LMM 0.043 (seeds 1, 3: 0.038, 0.048)
    rate = r.rejection_rate(0.05)
    lo, hi = r.binomial_band(0.05)
    assert set(rate) == {"lmm", "lm"} and list(r.pvalues.columns) == ["lmm", "lm"]
    assert r.n_failed == 0 and r.pvalues.shape == (1000, 2)
    assert lo <= rate["lmm"] <= hi
    assert rate["lm"] > 0.5
    # the unpermuted data: lmerTest's anova and anova(lm)
    m = mmfast.lmer(EX1, ex1)
    a = m.anova()
    assert r.observed["lmm"] == pytest.approx(a["Pr(>F)"].iloc[0], rel=1e-4)
    assert r.observed["lm"] == pytest.approx(
        mmfast.lm("res ~ factor(treatment_idx)", ex1).anova()["Pr(>F)"].iloc[0], rel=1e-6
    )
    # every mouse keeps its rows; the labels are a permutation of the 24 mice's labels
    labels = ex1.groupby("midx")["treatment_idx"].first().sort_values().to_numpy()
    assert np.array_equal(np.sort(r.assignments.iloc[7].to_numpy()), labels)


def test_cluster_permutation_fast_paths_equal_formula_refits(ex1):
    from mmfast.resample.permutation import _slow_test

    rng = np.random.default_rng(0)
    d = ex1.copy()
    d["x"] = rng.normal(size=len(d))
    cases = [
        (EX1, d, "factor(treatment_idx)", True),  # random-intercept engine
        (EX1, d, "factor(treatment_idx)", False),
        ("res ~ factor(treatment_idx) * x + (1 | midx)", d, "factor(treatment_idx)", True),
        ("res ~ factor(treatment_idx) + x + (x | midx)", d, "factor(treatment_idx)", True),
    ]
    for formula, data, term, reml in cases:
        r = cluster_permutation_test(formula, data, "treatment_idx", "midx", n_perm=3, seed=2, reml=reml)
        assert r.info["fast_path"] and r.term == term
        for i in range(3):
            dp = data.copy()
            dp["treatment_idx"] = r.assignments.iloc[i].loc[dp["midx"]].to_numpy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p_lmm, p_lm, F, ddf, F_lm = _slow_test(formula, dp, term, "satterthwaite", reml)
            assert r.pvalues["lmm"].iloc[i] == pytest.approx(p_lmm, rel=2e-4)
            assert r.statistics["DenDF_lmm"].iloc[i] == pytest.approx(ddf, rel=2e-4)
            assert r.pvalues["lm"].iloc[i] == pytest.approx(p_lm, rel=1e-8)


def test_cluster_permutation_determinism_errors_and_plot(ex1):
    a = cluster_permutation_test(EX1, ex1, "treatment_idx", "midx", n_perm=40, seed=9)
    b = cluster_permutation_test(EX1, ex1, "treatment_idx", "midx", n_perm=40, seed=9, n_jobs=2)
    assert a.pvalues.equals(b.pvalues) and a.assignments.equals(b.assignments)
    bad = ex1.copy()
    bad.loc[0, "treatment_idx"] = 5 if bad.loc[0, "treatment_idx"] != 5 else 1
    with pytest.raises(ValueError, match="not constant within clusters"):
        cluster_permutation_test(EX1, bad, "treatment_idx", "midx", n_perm=5)
    with pytest.raises(ValueError, match="not a column"):
        cluster_permutation_test(EX1, ex1, "dose", "midx", n_perm=5)
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    fig = a.plot()
    assert len(fig.axes) == 2
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_satterthwaite_f_equals_lmertest_f_test(sleep):
    from mmfast.inference.satterthwaite import Satterthwaite
    from mmfast.resample.design_refit import satterthwaite_f

    sat = Satterthwaite(sleep)
    for L in (np.array([[0.0, 1.0]]), np.eye(2)):
        row = sat.f_test(L)
        F, q, ddf, p = satterthwaite_f(sat, L)
        assert (F, q) == pytest.approx((row["F value"], row["NumDF"]), rel=1e-12)
        assert ddf == pytest.approx(row["DenDF"], rel=1e-12)
        assert p == pytest.approx(row["Pr(>F)"], rel=1e-10)


def test_permuting_a_categorical_column_keeps_it_a_factor():
    """Regression: a Categorical permute column stayed a factor (it once became numeric: 1-df tests)."""
    ex1 = mmfast.datasets.load("ex1")
    cat = ex1.assign(treatment_idx=ex1["treatment_idx"].astype("category"))
    a = mmfast.cluster_permutation_test(
        "res ~ factor(treatment_idx) + (1 | midx)", ex1, permute="treatment_idx", cluster="midx", n_perm=5, seed=3
    )
    b = mmfast.cluster_permutation_test(
        "res ~ treatment_idx + (1 | midx)", cat, permute="treatment_idx", cluster="midx", n_perm=5, seed=3
    )
    np.testing.assert_allclose(b.pvalues.to_numpy(), a.pvalues.to_numpy(), rtol=1e-8)
    # and the first permutation's naive LM p-value equals lm() on the permuted data
    lab = np.asarray(b.assignments)[0]
    mice = sorted(cat["midx"].unique())
    perm = cat.assign(treatment_idx=cat["midx"].map(dict(zip(mice, lab))).astype("category"))
    p_lm = mmfast.lm("res ~ treatment_idx", perm).anova()["Pr(>F)"].iloc[0]
    assert b.pvalues["lm"].iloc[0] == pytest.approx(p_lm, rel=1e-8)

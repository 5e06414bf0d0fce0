"""mmfast.fit_many: per-group fits against lme4 (many_small) and against lmer itself, tidy
layout, failures as rows, resumable Parquet output, and identical results on every backend."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.pipeline import api, tasks
from mmfast.pipeline.grouping import plan_groups
from mmfast.pipeline.scalar import _prepare, evaluate, scalar_design

REF = Path(__file__).resolve().parent / "reference" / "many_small.json.gz"
FORMULA = "y ~ group + (1 | animal)"
COLUMNS = [
    "effect",
    "group",
    "term",
    "estimate",
    "std_error",
    "df",
    "statistic",
    "p_value",
    "converged",
    "singular",
    "loglik",
    "error",
]


@pytest.fixture(scope="module")
def many_small():
    return mmfast.datasets.load("many_small")


@pytest.fixture(scope="module")
def reference():
    with gzip.open(REF, "rt", encoding="utf-8") as fh:
        return json.load(fh)["results"]["all_genes"]


def make_data(n_groups=12, seed=1, unbalanced=False, shift_ids=False, slope=False):
    """Simulated per-gene data: 8 animals (4 per group) x cells, a covariate x."""
    rng = np.random.default_rng(seed)
    cells = [3, 5, 2, 4, 6, 3, 4, 5] if unbalanced else [4] * 8
    out = []
    for g in range(n_groups):
        sd_a = rng.uniform(0, 0.8)
        for a in range(8):
            k = cells[a]
            x = np.round(rng.normal(size=k), 4)
            u, v = rng.normal(0, sd_a), rng.normal(0, 0.3) if slope else 0.0
            y = 3 + 0.5 * (a >= 4) + u + (0.4 + v) * x + rng.normal(size=k)
            out.append(
                pd.DataFrame(
                    {
                        "gene": f"g{g:03d}",
                        "y": np.round(y, 6),
                        "x": x,
                        "group": "treat" if a >= 4 else "ctrl",
                        "animal": a + 1 + (100 * g if shift_ids else 0),
                        "batch": g % 2,
                    }
                )
            )
    return pd.concat(out, ignore_index=True)


def per_group_lmer(data, formula, by, reml=True):
    """Reference: one plain lmer per group."""
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, piece in data.groupby(by, sort=True):
            fits[key] = mmfast.lmer(formula, piece.reset_index(drop=True), reml=reml)
    return fits


def compare_with_lmer(res, fits, by, rtol=1e-6):
    for key, m in fits.items():
        key = key if isinstance(key, tuple) else (key,)
        sel = np.logical_and.reduce([res[c] == k for c, k in zip(by, key)])
        rows = res[sel]
        fixed = rows[rows.effect == "fixed"]
        assert list(fixed.term) == list(m.frame.fixef_names)
        np.testing.assert_allclose(fixed.estimate, m.beta, rtol=rtol, atol=1e-8)
        np.testing.assert_allclose(fixed.std_error, np.sqrt(np.diag(m.vcov_array)), rtol=rtol)
        np.testing.assert_allclose(rows.loglik.iloc[0], m.loglik, rtol=1e-9)
        rp = rows[rows.effect == "ran_pars"]
        expect = tasks.ran_pars_rows(m)
        assert list(rp.term) == [r[1] for r in expect]
        assert list(rp.group) == [r[0] for r in expect]
        np.testing.assert_allclose(rp.estimate, [r[2] for r in expect], rtol=1e-4, atol=2e-4)
        assert bool(rows.singular.iloc[0]) == m.singular


# --- many_small against lme4 ---------------------------------------------------------------
def test_many_small_all_genes_match_lme4(many_small, reference):
    res = mmfast.fit_many(many_small, FORMULA, by="gene")
    assert len(res) == 4 * 2000 and res.error.isna().all() and res.converged.all()
    assert list(res.columns) == ["gene"] + COLUMNS
    fixed = res[res.effect == "fixed"]
    beta = fixed.estimate.to_numpy().reshape(-1, 2)
    se = fixed.std_error.to_numpy().reshape(-1, 2)
    ref_beta = np.column_stack([reference["intercept"], reference["grouptreat"]])
    ref_se = np.column_stack([reference["se_intercept"], reference["se_grouptreat"]])
    crit = -2 * res.groupby("gene", sort=True).loglik.first().to_numpy()
    ref_crit = np.array(reference["REMLcrit"])
    assert list(res.gene.unique()) == reference["gene"]
    # REML criterion: 1e-6 relative everywhere, and never worse than lme4's
    assert np.max(np.abs(crit - ref_crit) / ref_crit) < 1e-6
    assert np.all(crit <= ref_crit + 1e-9 * ref_crit)
    np.testing.assert_allclose(beta, ref_beta, rtol=1e-5)
    # SEs: 1e-5 where lme4 reached the optimum; where lme4's optimiser stopped early (a
    # criterion larger than ours by > 1e-9, 10 of 2000 genes) its SEs are off by up to 2e-4
    early = (ref_crit - crit) > 1e-9
    assert early.sum() <= 15
    np.testing.assert_allclose(se[~early], ref_se[~early], rtol=1e-5)
    np.testing.assert_allclose(se[early], ref_se[early], rtol=5e-4)
    sd = res[res.term == "sd__(Intercept)"].estimate.to_numpy()
    sigma = res[res.term == "sd__Observation"].estimate.to_numpy()
    np.testing.assert_allclose(sigma[~early], np.array(reference["sigma"])[~early], rtol=1e-5)
    theta, ref_theta = sd / sigma, np.array(reference["theta"])
    singular = np.array(reference["singular"])
    assert np.all(theta[singular] < 1e-4)
    np.testing.assert_allclose(theta, ref_theta, atol=1e-3)
    flags = res.groupby("gene", sort=True).singular.first().to_numpy()
    assert np.sum(flags != singular) <= 1  # g1265: lme4 stopped at θ = 2.6e-4, the optimum is 0


def test_scalar_path_matches_general_path(many_small):
    genes = many_small.gene.unique()[:40]
    sub = many_small[many_small.gene.isin(genes)]
    fast = mmfast.fit_many(sub, FORMULA, by="gene")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(api._Spec, "scalar_ok", lambda self, model: False)
        slow = mmfast.fit_many(sub, FORMULA, by="gene")
    assert list(fast.term) == list(slow.term)
    assert list(fast.group.fillna("")) == list(slow.group.fillna(""))
    np.testing.assert_allclose(fast.loglik, slow.loglik, rtol=1e-10)
    fx = fast.effect == "fixed"
    for col in ("estimate", "std_error", "statistic", "df", "p_value"):
        np.testing.assert_allclose(fast.loc[fx, col], slow.loc[fx, col], rtol=2e-6)
    # random-effect sds: BOBYQA stops within ~1e-6 of 0 for singular genes, we land on 0
    np.testing.assert_allclose(fast.loc[~fx, "estimate"], slow.loc[~fx, "estimate"], rtol=1e-4, atol=1e-5)
    assert (fast.singular == slow.singular).all()


def test_scalar_criterion_and_derivatives_are_lmer_objective(many_small):
    piece = many_small[many_small.gene == "g0001"].reset_index(drop=True)
    m = mmfast.lmer(FORMULA, piece)
    t = m.frame.terms[0]
    for reml in (True, False):
        des = scalar_design(m.frame.X, t.X[:, 0], t.factor.codes, t.nlevels, reml)
        E = piece.y.to_numpy()[None] - (piece.y.to_numpy() @ des.Q) @ des.Q.T
        Yst, rss = _prepare(des, E), np.sum(E * E, axis=1)
        for theta in (0.0, 0.2, 0.9, 3.0):
            tt = np.array([theta**2])
            f = evaluate(des, Yst, rss, tt)["f"][0]
            assert f == pytest.approx(m.objective(np.array([theta]), reml=reml), rel=1e-12)
            h = 1e-5 * max(theta**2, 1e-2)
            lo, hi = max(tt[0] - h, 0.0), tt[0] + h
            ev = evaluate(des, Yst, rss, tt, order=2)
            fd = (evaluate(des, Yst, rss, np.array([hi]))["f"][0] - evaluate(des, Yst, rss, np.array([lo]))["f"][0]) / (
                hi - lo
            )
            fd2 = (
                evaluate(des, Yst, rss, np.array([hi]), 1)["ft"][0]
                - evaluate(des, Yst, rss, np.array([lo]), 1)["ft"][0]
            ) / (hi - lo)
            assert ev["ft"][0] == pytest.approx(fd, rel=1e-5, abs=1e-6)
            assert ev["ftt"][0] == pytest.approx(fd2, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(
    "formula,reml",
    [
        ("y ~ group + (1 | animal)", False),
        ("y ~ 1 + (1 | animal)", True),
        ("y ~ group * x + (1 | animal)", True),
        ("y ~ x + (0 + x | animal)", True),
    ],
)
def test_scalar_path_other_designs_match_lmer(formula, reml):
    data = make_data(n_groups=6, unbalanced=True, seed=3)
    res = mmfast.fit_many(data, formula, by="gene", reml=reml)
    assert res.error.isna().all()
    compare_with_lmer(res, per_group_lmer(data, formula, "gene", reml), ["gene"])


def test_satterthwaite_df_match_inference_module(many_small):
    assert tasks.satterthwaite_available()
    from mmfast.inference.ftests import coefficient_table

    data = make_data(n_groups=5, unbalanced=True, seed=7)
    res = mmfast.fit_many(data, "y ~ group + x + (1 | animal)", by="gene")
    for gene, m in per_group_lmer(data, "y ~ group + x + (1 | animal)", "gene").items():
        tab = coefficient_table(m, "satterthwaite")
        rows = res[(res.gene == gene) & (res.effect == "fixed")]
        np.testing.assert_allclose(rows.df, tab["df"], rtol=1e-6)
        np.testing.assert_allclose(rows.p_value, tab["Pr(>|t|)"], rtol=1e-6)
    nodf = mmfast.fit_many(data, "y ~ group + x + (1 | animal)", by="gene", ddf=None)
    assert nodf.df.isna().all() and nodf.p_value.isna().all() and nodf.statistic.notna().any()


# --- designs, grouping, failures -----------------------------------------------------------
def test_general_path_random_slopes_and_two_by_columns():
    data = make_data(n_groups=4, slope=True, seed=5)
    formula = "y ~ x + (x | animal)"
    res = mmfast.fit_many(data, formula, by=["batch", "gene"])
    assert list(res.columns[:2]) == ["batch", "gene"]
    rp = res[(res.gene == "g000") & (res.effect == "ran_pars")]
    assert list(rp.term) == ["sd__(Intercept)", "cor__(Intercept).x", "sd__x", "sd__Observation"]
    assert list(rp.group) == ["animal", "animal", "animal", "Residual"]
    compare_with_lmer(res, per_group_lmer(data, formula, ["batch", "gene"]), ["batch", "gene"], rtol=1e-4)
    assert res[["batch", "gene"]].drop_duplicates().shape[0] == 4


def test_designs_shared_across_relabelled_and_reordered_groups():
    data = make_data(n_groups=6, unbalanced=True, shift_ids=True, seed=11)
    data = data.sample(frac=1.0, random_state=0).reset_index(drop=True)  # rows shuffled
    spec_cols = ["group", "animal"]
    plan = plan_groups(data, ["gene"], spec_cols, ["animal"], np.ones(len(data), dtype=bool))
    assert len(plan.classes) == 1 and len(plan.classes[0].groups) == 6
    res = mmfast.fit_many(data, FORMULA, by="gene")
    compare_with_lmer(res, per_group_lmer(data, FORMULA, "gene"), ["gene"])


def test_failures_are_rows_never_lost():
    data = make_data(n_groups=8, seed=2)
    data.loc[data.gene == "g001", "y"] = 4.25  # constant response
    data.loc[data.gene == "g002", "y"] = np.nan  # nothing left
    data.loc[data.index[data.gene == "g003"][:3], "y"] = np.nan  # fewer rows: its own design
    data = data[~((data.gene == "g004") & (data.animal > 1))]  # one animal: no random effect
    data.loc[data.gene == "g005", "y"] = np.inf
    res = mmfast.fit_many(data, FORMULA, by="gene")
    assert sorted(res.gene.unique()) == sorted(data.gene.unique())
    err = res.groupby("gene").error.first()
    assert "constant" in err["g001"] and "no rows left" in err["g002"]
    assert "1 level" in err["g004"] and "non-finite" in err["g005"]
    for g in ("g000", "g003", "g006", "g007"):
        assert pd.isna(err[g])
    failed = res[res.gene.isin(["g001", "g002", "g004", "g005"])]
    assert len(failed) == 4 and failed.estimate.isna().all() and failed.converged.isna().all()
    ok = data[data.gene.isin(["g003", "g006"])].dropna()
    compare_with_lmer(res, per_group_lmer(ok, FORMULA, "gene"), ["gene"])
    # the general path reports the same errors
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(api._Spec, "scalar_ok", lambda self, model: False)
        slow = mmfast.fit_many(data, FORMULA, by="gene")
    assert list(slow.groupby("gene").error.first().fillna("")) == list(err.fillna(""))


@pytest.mark.parametrize(
    "formula",
    [
        FORMULA,
        "y ~ group + x + (x | animal)",
        "y ~ factor(batch) + group + (1 | animal)",
        "y ~ scale(x) + group + (1 | animal)",
    ],
)
def test_missing_responses_drop_rows_like_lmer(formula):
    """Groups missing responses use the class's design without those rows (or rebuild it)."""
    data = make_data(n_groups=8, seed=5, unbalanced=True)
    gene = data.gene
    data.loc[(gene == "g001") & (data.animal == 2), "y"] = np.nan  # an animal lost
    data.loc[(gene == "g002") & (data.group == "treat"), "y"] = np.nan  # a factor level lost
    data.loc[(gene == "g003") & (data.animal <= 6), "y"] = np.nan  # two animals left
    data.loc[data.index[gene == "g004"][[0, 5]], "y"] = np.nan
    data.loc[data.index[gene == "g006"][[0, 5]], "y"] = np.nan  # same pattern as g004
    data.loc[(gene == "g005") & (data.animal >= 2), "y"] = np.nan  # one animal: an error
    res = mmfast.fit_many(data, formula, by="gene")
    err = res.groupby("gene").error.first()
    assert list(err.dropna().index) == ["g005"] and "1 level" in err["g005"]
    ok = data[gene != "g005"].dropna()
    compare_with_lmer(res, per_group_lmer(ok, formula, "gene"), ["gene"], rtol=1e-4)


# --- resumable output ----------------------------------------------------------------------
def test_output_resumes_after_interruption(tmp_path, many_small):
    genes = many_small.gene.unique()[:60]
    data = many_small[many_small.gene.isin(genes)]
    out = tmp_path / "results.parquet"
    full = mmfast.fit_many(data, FORMULA, by="gene")
    # an interrupted run: a first batch of genes is on disk ...
    mmfast.fit_many(data[data.gene.isin(genes[:25])], FORMULA, by="gene", output=str(out))
    # ... and a run killed after writing its first chunk
    calls = {"n": 0}
    real_write = api.ResultStore.write

    def dying_write(self, frame, *hashes):
        real_write(self, frame, *hashes)
        calls["n"] += 1
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(api, "SCALAR_CHUNK", 10)
        mp.setattr(api.ResultStore, "write", dying_write)
        with pytest.raises(KeyboardInterrupt):
            mmfast.fit_many(data, FORMULA, by="gene", output=str(out))
    assert calls["n"] == 1
    res = mmfast.fit_many(data, FORMULA, by="gene", output=str(out))
    disk = pd.read_parquet(out)
    for frame in (res, disk):
        assert frame.groupby("gene").size().eq(4).all()  # every gene exactly once
        assert set(frame.gene) == set(genes)
    pd.testing.assert_frame_equal(res, full, check_exact=False, rtol=1e-9)
    disk = disk.sort_values(["gene"], kind="stable").reset_index(drop=True)
    np.testing.assert_allclose(disk.estimate, full.estimate, rtol=1e-9)
    # nothing left to do: the stored results come back as they are
    again = mmfast.fit_many(data, FORMULA, by="gene", output=str(out))
    pd.testing.assert_frame_equal(again, res)
    assert len(pd.read_parquet(out)) == len(full)
    with pytest.raises(ValueError, match="another fit_many call"):
        mmfast.fit_many(data, "y ~ 1 + (1 | animal)", by="gene", output=str(out))


# --- backends ------------------------------------------------------------------------------
def _mixed_data():
    data = make_data(n_groups=10, seed=4)
    data.loc[data.gene == "g003", "y"] = 1.0  # an error row too
    return data


def test_loky_results_identical_to_serial(monkeypatch):
    monkeypatch.setattr(api, "SCALAR_CHUNK", 3)
    monkeypatch.setattr(api, "GENERAL_CHUNK", 3)
    data = _mixed_data()
    for formula in (FORMULA, "y ~ x + (x | animal)"):
        serial = mmfast.fit_many(data, formula, by="gene", n_jobs=1)
        loky = mmfast.fit_many(data, formula, by="gene", n_jobs=2, backend="loky")
        pd.testing.assert_frame_equal(serial, loky, check_exact=True)


def test_dask_results_identical_to_serial(monkeypatch, tmp_path):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(api, "SCALAR_CHUNK", 3)
    data = _mixed_data()
    serial = mmfast.fit_many(data, FORMULA, by="gene")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster),
    ):
        res = mmfast.fit_many(data, FORMULA, by="gene", backend="dask", output=str(tmp_path / "r.parquet"))
    pd.testing.assert_frame_equal(serial, res, check_exact=True)
    assert len(pd.read_parquet(tmp_path / "r.parquet")) == len(serial)


def test_bad_arguments():
    data = make_data(n_groups=2)
    with pytest.raises(mmfast.DataError, match="nope"):
        mmfast.fit_many(data, FORMULA, by="nope")
    with pytest.raises(ValueError, match="backend"):
        mmfast.fit_many(data, FORMULA, by="gene", n_jobs=2, backend="threads")


def test_design_classes_are_exact_row_partitions():
    from mmfast.pipeline.grouping import _unique_rows

    H = np.random.default_rng(0).integers(0, 3, size=(400, 5)).astype(np.uint64)
    first, inv = _unique_rows(H)
    np.testing.assert_array_equal(H[first[inv]], H)  # every row equals its class's first row
    assert len(first) == len(np.unique(H, axis=0))

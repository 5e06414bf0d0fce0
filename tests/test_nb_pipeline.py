"""fit_many(family="negative_binomial"): per-gene NB GLMMs against glmmTMB and glmer.nb.

The reference (tests/oracle/nb_pipeline.R, glmmTMB 1.1.5 and lme4's glmer.nb) holds 30 simulated
genes on 600 cells of 12 donors and every gene's fits.  glmmTMB maximises the same Laplace
likelihood (exact Hessian of the conditional density), so logLik, β, their SEs, σ_donor and θ
agree closely; glmer.nb's Laplace uses lme4's Fisher weights and alternates θ and the GLMM
fit, so its logLik differs in the 4th-5th significant digit.
"""

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast._ext._nbgenes import fit_nb_genes, nb_laplace_deviance
from mmfast.pipeline import nb

REF = Path(__file__).parent / "reference" / "nb_pipeline.json.gz"


@pytest.fixture(scope="module")
def ref():
    with gzip.open(REF, "rt") as fh:
        return json.load(fh)


def _fit(ref, genes=None, **kwargs):
    cells = pd.DataFrame(ref["cells"])
    counts = pd.DataFrame(np.array(ref["counts"], dtype=float), index=ref["genes"])
    if genes is not None:
        counts = counts.loc[genes]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.fit_many(cells, ref["formula"], by="gene", counts=counts, family="negative_binomial", **kwargs)


@pytest.fixture(scope="module")
def fitted(ref):
    return _fit(ref)


def _best(fits):
    ok = [f for f in (fits["default"], fits["tight"]) if f.get("logLik") is not None]
    return max(ok, key=lambda f: f["logLik"]) if ok else None


def _converged_genes(ref):
    return [g for g in ref["genes"] if (b := _best(ref["fits"][g])) and b["convergence"] == 0 and b["pdHess"]]


def test_every_converged_gene_matches_glmmtmb(ref, fitted):
    genes = _converged_genes(ref)
    assert len(genes) >= 25
    for g in genes:
        best, r = _best(ref["fits"][g]), fitted[fitted.gene == g].set_index("term")
        assert r["error"].isna().all() and r["converged"].all(), g
        ll = r["loglik"].iloc[0]
        assert abs(ll - best["logLik"]) <= 1e-8 * abs(best["logLik"]), (g, ll, best["logLik"])
        fe = r.loc[best["fixef_names"]]
        se = np.array(best["se"])
        np.testing.assert_allclose((fe["estimate"] - best["fixef"]) / se, 0.0, atol=2e-3, err_msg=g)
        np.testing.assert_allclose(fe["std_error"], se, rtol=1e-3, err_msg=g)
        assert abs(r.loc["sd__(Intercept)", "estimate"] - best["sd_donor"]) <= 2e-3 * max(best["sd_donor"], 0.05), g
        assert r.loc["theta", "estimate"] == pytest.approx(best["theta"], rel=2e-3), g


def test_glmer_nb_agrees_to_its_laplace_weights(ref, fitted):
    """glmer.nb: same θ and β to 3-4 digits; logLik differs by its Fisher-weight log-determinant."""
    for g in _converged_genes(ref):
        nbf, r = ref["fits"][g]["glmer_nb"], fitted[fitted.gene == g].set_index("term")
        if "error" in nbf or nbf["sd_donor"] < 1e-3:
            continue
        assert r["loglik"].iloc[0] == pytest.approx(nbf["logLik"], rel=1e-4), g
        assert r.loc["theta", "estimate"] == pytest.approx(nbf["theta"], rel=1e-2), g
        np.testing.assert_allclose(r.loc[["(Intercept)", "conditiontreated"], "estimate"], nbf["fixef"], atol=5e-3)


@pytest.mark.parametrize("gene", ["gene02", "gene07", "gene14", "nodonor"])
def test_each_gene_is_glmer_with_negative_binomial(ref, fitted, gene):
    """The batched fit of a gene is mmfast.glmer(..., family=NegativeBinomial()) on its rows."""
    from mmfast.families import NegativeBinomial

    cells = pd.DataFrame(ref["cells"]).assign(count=ref["counts"][ref["genes"].index(gene)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.glmer(ref["formula"], cells, family=NegativeBinomial())
    r = fitted[fitted.gene == gene].set_index("term")
    assert r["loglik"].iloc[0] == pytest.approx(m.loglik, rel=1e-8)
    se = np.sqrt(np.diag(np.asarray(m.vcov_array)))
    np.testing.assert_allclose((r.loc[list(m.frame.fixef_names), "estimate"] - m.fixef) / se, 0.0, atol=2e-3)
    np.testing.assert_allclose(r.loc[list(m.frame.fixef_names), "std_error"], se, rtol=2e-3)
    assert r.loc["theta", "estimate"] == pytest.approx(m.dispersion, rel=2e-3)
    assert r.loc["sd__(Intercept)", "estimate"] == pytest.approx(abs(m.theta[0]), abs=2e-3)


def test_edge_genes_are_rows_with_a_status(ref, fitted):
    zero = fitted[fitted.gene == "zero"]
    assert len(zero) == 1 and "all counts are zero" in zero["error"].iloc[0]
    # two counts in 600 cells: no overdispersion to estimate (θ -> inf), donor sd 0; glmmTMB ends
    # at the same log-likelihood with θ = 9e3 (a false-convergence warning)
    sparse = fitted[fitted.gene == "sparse"].set_index("term")
    assert np.isinf(sparse.loc["theta", "estimate"]) and sparse["singular"].all()
    assert sparse["loglik"].iloc[0] == pytest.approx(ref["fits"]["sparse"]["default"]["logLik"], rel=1e-7)
    nodonor = fitted[fitted.gene == "nodonor"].set_index("term")
    assert nodonor["singular"].all()
    assert nodonor["loglik"].iloc[0] == pytest.approx(ref["fits"]["nodonor"]["tight"]["logLik"], rel=1e-9)
    with pytest.warns(UserWarning, match="1 gene.*Poisson limit"):
        mmfast.fit_many(
            pd.DataFrame(ref["cells"]),
            ref["formula"],
            by="gene",
            family="nbinom2",
            counts=np.array(ref["counts"], dtype=float)[[ref["genes"].index("sparse")]],
        )


def test_bad_counts_are_error_rows(ref):
    counts = np.array(ref["counts"], dtype=float)[:3].copy()
    counts[0, 5] = 1.5
    counts[1, 7] = -1
    counts[2, 9] = np.nan
    res = mmfast.fit_many(pd.DataFrame(ref["cells"]), ref["formula"], by="gene", counts=counts, family="nbinom2")
    assert len(res) == 3
    assert res["error"].str.contains("non-negative integers").sum() == 2
    assert res["error"].str.contains("non-finite").sum() == 1


def test_long_data_equals_counts_matrix(ref, fitted):
    genes = ref["genes"][:6]
    cells = pd.DataFrame(ref["cells"])
    Y = np.array(ref["counts"], dtype=float)[:6]
    long = pd.concat([cells.assign(gene=g, count=Y[k]) for k, g in enumerate(genes)], ignore_index=True)
    long = long.sample(frac=1.0, random_state=3)  # any row order
    res = mmfast.fit_many(long, ref["formula"], by="gene", family="negative_binomial")
    wide = fitted[fitted.gene.isin(genes)].reset_index(drop=True)
    # another row order sums in another order: the optimum to the optimiser's tolerance
    pd.testing.assert_frame_equal(res[wide.columns], wide, check_dtype=False, rtol=1e-6)


def test_backends_and_resumed_output_give_the_same_rows(ref, fitted, monkeypatch, tmp_path):
    monkeypatch.setattr(nb, "NB_CHUNK", 7)
    loky = _fit(ref, n_jobs=2, backend="loky")
    pd.testing.assert_frame_equal(loky, fitted, check_exact=True)
    out = tmp_path / "nb.parquet"
    _fit(ref, genes=ref["genes"][:10], output=out)  # an "interrupted" run: 10 genes written
    parts = len(list(out.glob("part-*.parquet")))
    res = _fit(ref, output=out)
    assert len(list(out.glob("part-*.parquet"))) > parts
    pd.testing.assert_frame_equal(res, fitted, check_exact=True)
    with pytest.raises(mmfast.DataError, match="data changed"):
        cells = pd.DataFrame(ref["cells"])
        counts = pd.DataFrame(np.array(ref["counts"], dtype=float) + 1, index=ref["genes"])
        mmfast.fit_many(cells, ref["formula"], by="gene", counts=counts, family="nbinom2", output=out)


def test_dask_backend(ref, fitted, tmp_path):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster),
    ):
        res = _fit(ref, backend="dask", output=tmp_path / "d.parquet")
    pd.testing.assert_frame_equal(res, fitted, check_exact=True)


# --- the kernel ---------------------------------------------------------------------------
def _design(ref):
    cells = pd.DataFrame(ref["cells"])
    X = np.column_stack([np.ones(len(cells)), (cells.condition == "treated").to_numpy(float)])
    codes = pd.factorize(cells.donor, sort=True)[0].astype(np.int64)
    return X, np.log(cells.size_factor.to_numpy()), codes, int(codes.max()) + 1


def test_kernel_gradient_is_the_deviance_derivative(ref):
    X, off, codes, L = _design(ref)
    y = np.array(ref["counts"][3], dtype=float)
    x = np.array([0.2, -0.1, 0.4, np.log(3.0)])
    D, grad, _ = nb_laplace_deviance(y, X, off, codes, L, x)
    for c in range(4):
        h = 1e-5
        up, dn = x.copy(), x.copy()
        up[c] += h
        dn[c] -= h
        D_up, D_dn = nb_laplace_deviance(y, X, off, codes, L, up)[0], nb_laplace_deviance(y, X, off, codes, L, dn)[0]
        fd = (D_up - D_dn) / (2 * h)
        assert grad[c] == pytest.approx(fd, rel=1e-6, abs=1e-6)


def test_kernel_reported_deviance_is_its_objective(ref, fitted):
    """The deviance reported (_glm's nbinom2 -2 log p) equals the one optimised (histogram form)."""
    X, off, codes, L = _design(ref)
    for k in (0, 5, 12):
        g = ref["genes"][k]
        r = fitted[fitted.gene == g].set_index("term")
        est = r["estimate"]
        x = np.r_[est[["(Intercept)", "conditiontreated", "sd__(Intercept)"]], np.log(est["theta"])]
        D = nb_laplace_deviance(np.array(ref["counts"][k], dtype=float), X, off, codes, L, x, False)[0]
        assert -0.5 * D == pytest.approx(r["loglik"].iloc[0], rel=1e-12)


def test_kernel_checks_lengths(ref):
    X, off, codes, L = _design(ref)
    Y = np.array(ref["counts"][:2], dtype=float)
    args = dict(par=np.zeros((2, 4)), deviance=np.zeros(2), hess=np.zeros((2, 4, 4)),
                status=np.zeros(2, np.int64), iterations=np.zeros(2, np.int64))  # fmt: skip
    with pytest.raises(mmfast.DataError, match="offset"):
        fit_nb_genes(Y, X, off[:-1], codes, L, **args)
    with pytest.raises(mmfast.DataError, match="codes"):
        fit_nb_genes(Y, X, off, codes, L - 1, **args)
    with pytest.raises(mmfast.DataError, match="hess"):
        fit_nb_genes(Y, X, off, codes, L, **{**args, "hess": np.zeros((2, 3, 3))})


def test_other_families_and_bad_counts_are_refused(ref):
    """(Formulas the kernel does not batch are glmer per gene: tests/test_nb_general.py.)"""
    cells = pd.DataFrame(ref["cells"]).assign(x=np.arange(600.0) % 5)
    counts = np.array(ref["counts"], dtype=float)[:2]
    with pytest.raises(mmfast.ArgumentError, match="not family"):
        mmfast.fit_many(cells, "count ~ condition + (1 | donor)", by="gene", counts=counts, family="poisson")
    with pytest.raises(mmfast.DataError, match="columns"):
        mmfast.fit_many(cells, "count ~ condition + (1 | donor)", by="gene", counts=counts[:, :10], family="nbinom2")

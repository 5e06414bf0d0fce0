"""fit_many(family="negative_binomial") beyond the batched (1 | g) kernel: random slopes and
fixed-θ families are mmfast.glmer per group, in the NB pipeline's row layout."""

import warnings

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.families import NegativeBinomial

FORMULA = "count ~ x + offset(log(sf)) + (x | donor)"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    donors, per = 8, 25
    n = donors * per
    donor = np.repeat([f"d{k}" for k in range(donors)], per)
    x = rng.normal(size=n)
    sf = rng.uniform(0.5, 2.0, n)
    parts = []
    for g in range(4):
        b0, b1 = rng.normal(0, 0.5, donors), rng.normal(0, 0.3, donors)
        d = np.repeat(np.arange(donors), per)
        mu = sf * np.exp(1.0 + 0.4 * x + b0[d] + b1[d] * x)
        y = rng.negative_binomial(3.0, 3.0 / (3.0 + mu))
        parts.append(pd.DataFrame({"gene": f"g{g}", "donor": donor, "x": x, "sf": sf, "count": y.astype(float)}))
    parts.append(pd.DataFrame({"gene": "zero", "donor": donor, "x": x, "sf": sf, "count": 0.0}))
    return pd.concat(parts, ignore_index=True)


def _glmer(rows, family):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.glmer(FORMULA, rows.reset_index(drop=True), family=family)


def _check(res, data, family):
    for g in ["g0", "g1", "g2", "g3"]:
        m = _glmer(data[data.gene == g], family)
        r = res[res.gene == g].set_index("term")
        assert r["error"].isna().all(), g
        assert r["loglik"].iloc[0] == pytest.approx(m.loglik, rel=1e-8), g
        fe = r.loc[list(m.frame.fixef_names)]
        np.testing.assert_allclose(fe["estimate"], m.fixef, rtol=1e-8, err_msg=g)
        se = np.sqrt(np.diag(np.asarray(m.vcov_array)))
        np.testing.assert_allclose(fe["std_error"], se, rtol=1e-8, err_msg=g)
        assert r.loc["theta", "estimate"] == pytest.approx(m.dispersion, rel=1e-8), g
        assert list(r.index) == ["(Intercept)", "x", "sd__(Intercept)", "cor__(Intercept).x", "sd__x", "theta"]
        assert np.isinf(fe["df"]).all() and (fe["p_value"] > 0).all()
        assert bool(r["converged"].iloc[0]) == bool(m.converged)
    zero = res[res.gene == "zero"]
    assert len(zero) == 1 and "all counts are zero" in zero["error"].iloc[0]


def test_random_slopes_are_glmer_per_group(data):
    res = mmfast.fit_many(data, FORMULA, by="gene", family="negative_binomial")
    _check(res, data, "negative_binomial")


def test_fixed_theta_family(data, tmp_path):
    fam = NegativeBinomial(theta=2.5)
    res = mmfast.fit_many(data, FORMULA, by="gene", family=fam, n_jobs=2, output=tmp_path / "r.parquet")
    _check(res, data, NegativeBinomial(theta=2.5))
    assert (res.loc[res.term == "theta", "estimate"] == 2.5).all()
    again = mmfast.fit_many(data, FORMULA, by="gene", family=fam, output=tmp_path / "r.parquet")
    pd.testing.assert_frame_equal(again, res)
    # the (1 | g) design with a fixed theta is not the kernel's either
    one = mmfast.fit_many(data[data.gene == "g0"], "count ~ x + (1 | donor)", by="gene", family=fam)
    m = mmfast.glmer("count ~ x + (1 | donor)", data[data.gene == "g0"].reset_index(drop=True), family=fam)
    assert one["loglik"].iloc[0] == pytest.approx(m.loglik, rel=1e-8)


def test_counts_matrix_with_random_slopes(data):
    cells = data[data.gene == "g0"][["donor", "x", "sf"]].reset_index(drop=True)
    Y = np.vstack([data.loc[data.gene == g, "count"].to_numpy() for g in ["g0", "g1", "g2", "g3", "zero"]])
    counts = pd.DataFrame(Y, index=["g0", "g1", "g2", "g3", "zero"])
    res = mmfast.fit_many(cells, FORMULA, by="gene", counts=counts, family="negative_binomial")
    _check(res, data, "negative_binomial")

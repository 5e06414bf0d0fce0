"""The GLMM's per-row work for vector-valued terms visits each row's nonzero term columns only
(an indicator term ``0 + factor(block) | g`` adds one product per row, not p²): the cross-products
(``_crossprods.Crossprods``) against the design's own bincount formulas (``design.blocks.
pair_values``, ``zt_times``) and a dense Z Λ u, and the analytic Laplace gradient
(``model.laplace_gradient``) against central differences, for scalar, indicator and dense
vector-valued terms; and a structured GLMM's stage 2 on that gradient."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast._ext._crossprods import Crossprods
from mmfast.design.blocks import build_Z, pair_values, zt_times


@pytest.fixture(scope="module")
def fit():
    rng = np.random.default_rng(7)
    n = 600
    d = pd.DataFrame(
        {
            "g": rng.integers(0, 12, n),
            "h": rng.integers(0, 5, n),
            "k": rng.integers(0, 4, n),
            "blk": rng.integers(0, 4, n),
            "x": rng.standard_normal(n),
        }
    )
    d.loc[d.index % 7 == 0, "x"] = 0.0  # zeros inside a dense column: still every slot visited
    d["y"] = rng.standard_normal(n) + d["g"] % 3 + 0.3 * d["blk"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.lmer("y ~ x + (1 | h) + (0 + factor(blk) | g) + (1 + x | k) + (0 + factor(blk):x | h)", d)


def test_reweight_and_linpred_match_dense_formulas(fit):
    terms, b = fit.frame.terms, fit.blocks
    n, q = fit.frame.nobs, b.q
    rng = np.random.default_rng(3)
    X = np.ascontiguousarray(fit.frame.X, dtype=float)
    px = X.shape[1]
    w, zt = rng.uniform(0.2, 2.0, n), rng.standard_normal(n)
    cp = Crossprods(b, terms)
    V, ZtW, WtW = np.zeros(len(b.V)), np.zeros((q, px + 1), order="F"), np.zeros((px + 1, px + 1))
    cp.reweight(w, zt, X, V, ZtW, WtW)
    sw = np.sqrt(w)
    Vref = pair_values([t.X * sw[:, None] for t in terms], b.pieces, b.row_pair, b.pair_vofs)
    np.testing.assert_allclose(V, Vref, rtol=1e-12, atol=1e-12)
    XZ = np.column_stack([X, zt])
    np.testing.assert_allclose(ZtW, zt_times(terms, XZ * w[:, None]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(WtW, XZ.T @ (XZ * w[:, None]), rtol=1e-12)

    T = fit.templates(fit.theta)
    u = rng.standard_normal(q)
    lam_u, ofs = np.empty(q), 0
    for t in terms:  # Λu per term: each level's block times the lower-triangular template
        Tt = T[ofs : ofs + t.p * t.p].reshape(t.p, t.p, order="F")
        ofs += t.p * t.p
        lam_u[t.offset : t.offset + t.q] = (u[t.offset : t.offset + t.q].reshape(-1, t.p) @ Tt.T).ravel()
    base = rng.standard_normal(n)
    out = np.empty(n)
    cp.linpred(base, u, T, out)
    np.testing.assert_allclose(out, base + build_Z(terms, n) @ lam_u, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ x + (1 | h) + (1 + x | g)",  # dense vector-valued term: every column of every row
        "y ~ x + (0 + factor(blk) | g) + (1 | h)",  # indicator term: one column per row
    ],
)
def test_laplace_gradient_of_vector_terms_matches_differences(formula):
    rng = np.random.default_rng(11)
    n = 800
    d = pd.DataFrame({"g": rng.integers(0, 30, n), "h": rng.integers(0, 6, n), "blk": rng.integers(0, 3, n)})
    d["x"] = rng.standard_normal(n)
    b = rng.normal(0, 0.4, (30, 3))
    eta = 0.5 + 0.3 * d["x"] + b[d["g"], d["blk"]] + 0.3 * b[d["g"], 0] * d["x"] + rng.normal(0, 0.3, 6)[d["h"]]
    d["y"] = rng.poisson(np.exp(eta))
    g = mmfast.glmer(formula, d, family="poisson")
    eng = g.engine
    assert eng.has_gradient
    x = np.array(g._xhat, dtype=float)
    x[: len(g.theta)] = x[: len(g.theta)] * 1.1 + 0.05  # off the optimum: a gradient of size
    grad = np.empty(len(x))
    eng.laplace_grad(x, grad)
    h = 1e-6
    fd = np.array([(eng.laplace(x + h * e) - eng.laplace(x - h * e)) / (2 * h) for e in np.eye(len(x))])
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-4 * np.abs(fd).max())


def test_structured_glmm_takes_stage_2_on_the_gradient():
    """A structured GLMM's engine (a kernel loop behind the θ map) runs stage 2 as quasi-Newton on
    the analytic gradient, and lands at glmmTMB's best logLik (tests/oracle/structures.R)."""
    import gzip
    import json
    from pathlib import Path

    ref = json.load(gzip.open(Path(__file__).parent / "reference" / "structures.json.gz"))["glmm_two_terms"]
    g = mmfast.glmer(ref["formula"], pd.DataFrame(ref["data"]), family="poisson")
    assert g.optinfo["stage2"]["optimizer"].startswith("newton")
    assert g.loglik >= ref["loglik_best"] - 1e-6 * abs(ref["loglik_best"])

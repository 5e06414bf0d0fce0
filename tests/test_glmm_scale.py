"""Crossed GLMMs at scale (issue 19): the blocked kernel's panelled Schur update and the
selected inverse A⁻¹ on A's block pattern (``_selinv.pattern_inverse``, the Laplace gradient's
input) against dense linear algebra on designs whose dense part spans several panels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast._ext._blocked import BlockedKernel
from mmfast._ext._selinv import pattern_inverse
from mmfast.design.blocks import build_blocks, build_Z
from mmfast.model.frame import model_frame
from mmfast.model.lmm import LinearMixedModel


def _crossed(n_a, n_b, n, slope=False, seed=5):
    """``slope``: False, True (a vector term after the scalar first term) or "first" (the
    first term, a's, vector-valued)."""
    rng = np.random.default_rng(seed)
    a, b, x = rng.integers(0, n_a, n), rng.integers(0, n_b, n), rng.normal(size=n)
    y = 0.3 * x + rng.normal(0, 0.8, n_a)[a] + rng.normal(0, 0.6, n_b)[b] + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x": x, "a": a.astype(str), "b": b.astype(str)})
    if slope == "first":
        return df, "y ~ x + (1 + x | a) + (1 | b)"
    return df, ("y ~ x + (1 | a) + (1 + x | b)" if slope else "y ~ x + (1 | a) + (1 | b)")


def _dense_A(model, T, w):
    """A = Λ'Z'WZΛ + I densely, from the model's own Z and templates."""
    Z = build_Z(model.frame.terms, model.frame.nobs).toarray()
    lam = np.zeros((Z.shape[1], Z.shape[1]))
    ofs = 0
    for t in model.frame.terms:
        Tt = T[ofs : ofs + t.p * t.p].reshape(t.p, t.p, order="F")
        ofs += t.p * t.p
        for lev in range(t.nlevels):
            s = t.offset + lev * t.p
            lam[s : s + t.p, s : s + t.p] = Tt
    ZL = Z @ lam
    return ZL.T @ (w[:, None] * ZL) + np.eye(Z.shape[1])


@pytest.mark.parametrize("slope", [False, True, "first"])
def test_panelled_schur_and_pattern_inverse_match_dense_algebra(slope):
    """400 levels after the first term: the scalar Schur update runs in three panels (65,536
    entries of S each; with a vector term after the scalar first term, over its L21 entries;
    a vector first term takes the per-level BLAS path); log|A|, A⁻¹b and every A⁻¹ entry on
    A's block pattern as dense algebra gives them, at unequal weights."""
    df, formula = _crossed(800, 400, 5000, slope)
    model = LinearMixedModel(model_frame(formula, df))
    terms = model.frame.terms
    rng = np.random.default_rng(2)
    w = rng.uniform(0.05, 0.3, len(df))
    X = np.column_stack([model.frame.X, np.zeros(len(df))])
    blocks = build_blocks(terms, X, np.sqrt(w))
    kern = BlockedKernel(blocks)
    assert kern.dense_size == (800 if slope is True else 400) and 2 * (65536 // 400) < 400
    theta = np.array([0.9, 0.7, 0.2, 0.4]) if slope else np.array([0.9, 0.7])
    T = model.templates(theta)
    ld, _ = kern.update(T)
    A = _dense_A(model, T, w)
    sign, ld_dense = np.linalg.slogdet(A)
    assert sign > 0 and ld == pytest.approx(ld_dense, rel=1e-11)
    rhs = rng.normal(size=A.shape[0])
    np.testing.assert_allclose(kern.solve(rhs), np.linalg.solve(A, rhs), rtol=1e-9, atol=1e-11)
    Ainv = np.linalg.inv(A)
    got = pattern_inverse(kern)
    bs, bt, tp = blocks.blk_start, blocks.blk_term, blocks.term_p
    for pr, pc, vo in zip(blocks.pair_row, blocks.pair_col, blocks.pair_vofs[:-1]):
        r0, c0, pa, pb = bs[pr], bs[pc], tp[bt[pr]], tp[bt[pc]]
        want = Ainv[r0 : r0 + pa, c0 : c0 + pb].ravel()
        np.testing.assert_allclose(got[vo : vo + pa * pb], want, rtol=1e-8, atol=1e-12)
    # the factor is intact (pattern_inverse worked on a copy of S): the same solve again
    np.testing.assert_allclose(kern.solve(rhs), np.linalg.solve(A, rhs), rtol=1e-9, atol=1e-11)


def test_crossed_binomial_reaches_the_laplace_optimum():
    """benchmarks/workloads.py's crossed binomial design at 12,000 rows (1,000 subjects x 400
    items: a dense part of three panels), against tests/oracle/crossed_glmm.R: glmmTMB's exact
    Laplace optimum to 1e-5 in logLik, reached by quasi-Newton on the analytic gradient in a
    handful of evaluations; lme4 (175 evaluations) reports a logLik ~0.023 lower, its deviance
    taking log|L| one PIRLS iterate before the mode (``glmm``'s docstring), so mmfast must be
    at or above it and its estimates within 1e-3."""
    import gzip
    import json
    from pathlib import Path

    ref_dir = Path(__file__).resolve().parent / "reference"
    with gzip.open(ref_dir / "crossed_glmm.json.gz", "rt") as fh:
        ref = json.load(fh)
    data = pd.read_csv(ref_dir / "crossed_glmm.csv.gz")
    m = mmfast.glmer("y ~ 1 + x + (1 | subj) + (1 | item)", data, family="binomial")
    tmb, tight = ref["glmmTMB"], ref["tight"]
    assert m.optinfo["stage2"]["optimizer"] == "newton" and m.optinfo["stage2"]["evaluations"] <= 8
    assert m.converged
    assert m.loglik >= tmb["logLik"] - 1e-6 and m.loglik == pytest.approx(tmb["logLik"], abs=1e-5)
    np.testing.assert_allclose(m.theta, tmb["sd"], rtol=1e-4)
    np.testing.assert_allclose(m.fixef, tmb["fixef"], rtol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov)), tmb["se"], rtol=1e-3)
    assert tight["logLik"] < m.loglik < tight["logLik"] + 0.05 and ref["logLik"] < m.loglik
    np.testing.assert_allclose(m.theta, tight["theta"], rtol=2e-3)
    np.testing.assert_allclose(m.fixef, tight["fixef"], rtol=2e-3)


def test_warm_start_keeps_b_across_a_theta_step():
    """Scalar terms: after a step in θ the warm start is u·θ_old/θ_new (b = Λu kept): the same
    Laplace deviance (PIRLS to 1e-10) as a start that keeps u, in fewer iterations."""
    df, formula = _crossed(200, 60, 3000)
    df["y"] = (df["y"] > 0).astype(int)
    engines = []
    for keep_b in (True, False):
        m = mmfast.glmer(formula, df, family="binomial")
        eng = m.engine
        if not keep_b:
            eng.warm_start_in_b([], [], [])
        x = np.array(m._xhat)
        eng.laplace(x)
        it0 = eng.iterations
        x2 = x.copy()
        x2[:2] *= [1.6, 0.5]
        engines.append((eng.laplace(x2), eng.iterations - it0))
    (f_b, it_b), (f_u, it_u) = engines
    assert f_b == pytest.approx(f_u, rel=1e-12, abs=1e-8)
    assert it_b < it_u

"""The blocked kernel with a vector-valued first term: per first-term level, the Schur update
S -= L21 L21' is one dsyrk and the selected inverse's S⁻¹ L21 one dgemm, on S in place where
the level's rows are contiguous in S (every subject meets every item, as in kb07) and through
a gathered copy where they are not (some subject-item pairs missing).  Both against CHOLMOD
(log|A|, M) and dense algebra (d log|A| / dT)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmfast._ext._blocked import BlockedKernel
from mmfast._ext._pls import PLSKernel
from mmfast.model.frame import model_frame
from mmfast.model.lmm import LinearMixedModel

FORMULA = "y ~ 1 + x + (1 + x | subj) + (1 + x | item)"


def _design(drop: float, seed: int = 5):
    """30 subjects x 12 items, each pair twice, a share ``drop`` of the pairs left out."""
    rng = np.random.default_rng(seed)
    subj, item = np.meshgrid(np.arange(30), np.arange(12), indexing="ij")
    keep = rng.random(subj.shape) >= drop
    subj, item = np.repeat(subj[keep], 2), np.repeat(item[keep], 2)
    x = rng.normal(size=len(subj))
    y = 1 + 0.5 * x + rng.normal(0, 1, 30)[subj] + rng.normal(0, 0.5, 12)[item] + rng.normal(size=len(subj))
    d = pd.DataFrame({"y": y, "x": x, "subj": subj.astype(str), "item": item.astype(str)})
    m = LinearMixedModel(model_frame(FORMULA, d), reml=False)
    assert [t.p for t in m.frame.terms] == [2, 2]
    return m


def _dense_A(m, theta):
    Z = m.Z.toarray()
    Lam = np.zeros((Z.shape[1], Z.shape[1]))
    for t, T in zip(m.frame.terms, m.layout.templates(theta)):
        Lam[t.offset : t.offset + t.q, t.offset : t.offset + t.q] = np.kron(np.eye(t.nlevels), T)
    return Lam.T @ Z.T @ Z @ Lam + np.eye(Z.shape[1]), Lam.T @ Z.T @ Z


@pytest.mark.parametrize("drop", [0.0, 0.3])
def test_vector_first_term_against_cholmod_and_dense_algebra(drop):
    m = _design(drop)
    sparse, blocked = PLSKernel(m.blocks), BlockedKernel(m.blocks)
    assert blocked.dense_size == 24
    theta = np.array([0.9, 0.2, 0.4, 0.5, -0.1, 0.3])
    T = m.templates(theta)
    ld_s, M_s = sparse.update(T)
    ld_b, M_b = blocked.update(T)
    np.testing.assert_allclose(ld_b, ld_s, rtol=1e-12)
    np.testing.assert_allclose(M_b, M_s, rtol=1e-10, atol=1e-10 * np.abs(M_s).max())
    A, G = _dense_A(m, theta)
    assert blocked.logdet == pytest.approx(np.linalg.slogdet(A)[1], rel=1e-12)
    AG = np.linalg.solve(A, G)
    Q = blocked.trace_gradient(T)
    ofs = 0
    for t in m.frame.terms:  # d log|A| / dT_k[r, c] = 2 tr(A⁻¹ Λ'Z'Z (I ⊗ E_rc))
        lev = t.offset + np.arange(t.nlevels) * t.p
        for r in range(t.p):
            for c in range(r + 1):
                assert Q[ofs + c * t.p + r] == pytest.approx(AG[lev + c, lev + r].sum(), rel=1e-10, abs=1e-12)
        ofs += t.p * t.p

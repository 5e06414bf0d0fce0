"""Every public entry of the Cython kernels checks its arguments' lengths: a wrong length is a
DataError (an MmfastError, so also a ValueError) naming the argument, never an out-of-bounds read
(the kernels are compiled without bounds checks, so before these checks a short T, r or w read
past the end of its buffer or was silently broadcast)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mmfast
from mmfast._ext._blocked import BlockedKernel
from mmfast._ext._cholmod import SparseCholesky
from mmfast._ext._crossprods import Crossprods
from mmfast._ext._glm import GlmResponse
from mmfast._ext._moments import level_regressions
from mmfast._ext._pairs import gram_times, pair_codes
from mmfast._ext._kernel_loop import KernelLoop
from mmfast._ext._single_term import SingleTerm
from mmfast._ext._pls import PLSKernel
from mmfast._ext._selinv import trace_gradient
from mmfast.datasets import load
from mmfast.errors import DataError, MmfastError


@pytest.fixture(scope="module")
def pen():
    """Penicillin: two crossed scalar terms, so the blocked kernel has cross and dense parts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", load("Penicillin"))


def test_blocked_kernel_refuses_a_malformed_block_structure(pen):
    """The set-up runs in C loops without bounds checks: a pair or block outside the structure
    is a ValueError before anything is written."""
    import dataclasses

    b = pen.blocks
    BlockedKernel(b)  # the structure as built
    nb = len(b.blk_term)
    for change, match in [
        ({"pair_row": np.where(b.pair_row == b.pair_row.max(), nb, b.pair_row)}, "out of range"),
        ({"blk_start": b.blk_start + b.q}, "out of range"),
        ({"blk_start": b.blk_start[:-1]}, "one start per block"),
        ({"pair_col": b.pair_col[:-1]}, "differ in length"),
        ({"blk_term": np.full_like(b.blk_term, 5)}, "out of range"),
    ]:
        with pytest.raises(ValueError, match=match):
            BlockedKernel(dataclasses.replace(b, **change))


def bad(match):
    return pytest.raises(DataError, match=match)


def short(a):
    return np.asarray(a, dtype=float)[:-1].copy()


@pytest.mark.parametrize("kernel", [PLSKernel, BlockedKernel])
def test_lmm_kernels(pen, kernel):
    b = pen.blocks
    k = kernel(b)
    T = pen.templates(pen.theta)
    with bad("'T' has length"):
        k.update(short(T))
    with bad("'T' has length"):
        k.profiled(np.append(T, 1.0))
    with bad("'V'"):
        k.set_crossprods(short(b.V), b.ZtW, b.WtW)
    with bad("'V'"):  # one value would have been broadcast over all of V
        k.set_crossprods(np.ones(1), b.ZtW, b.WtW)
    with bad("'ZtW'"):
        k.set_crossprods(b.V, b.ZtW[:-1], b.WtW)
    with bad("'WtW'"):
        k.set_crossprods(b.V, b.ZtW, b.WtW[:, :1])
    ld, M = k.update(T)
    assert np.isfinite(ld)
    with bad("'beta'"):
        k.conditional_modes(np.zeros(2))
    assert issubclass(DataError, MmfastError) and issubclass(DataError, ValueError)


def test_blocked_solves_and_selinv(pen):
    b = pen.blocks
    k = BlockedKernel(b)
    T = pen.templates(pen.theta)
    k.update(T)
    q = b.q
    for f in (k.solve_lt, k.solve_l, k._solve_lt_internal):
        with bad("'r' has length"):
            f(np.ones(q - 1))
    with bad("'r' has length"):
        k.solve_l(np.ones((1, 3)))  # one row would have been broadcast over all q
    with pytest.raises(ValueError, match="out of range"):
        k.solve_lt_c(b.WtW.shape[0])
    with bad("'T' has length"):
        trace_gradient(k, short(T))
    with bad("'T' has length"):
        k.trace_gradient(short(T))
    with bad("'B' has length"):
        gram_times(b, np.ones((q - 1, 2)))


def test_crossprods(pen):
    b, terms = pen.blocks, pen.frame.terms
    cp = Crossprods(b, terms)
    n, q = pen.frame.nobs, b.q
    X = np.ascontiguousarray(pen.frame.X, dtype=float)
    px = X.shape[1]
    V = np.zeros(len(b.V))
    ZtW = np.zeros((q, px + 1), order="F")
    WtW = np.zeros((px + 1, px + 1))
    w, zt = np.ones(n), np.ones(n)
    cp.reweight(w, zt, X, V, ZtW, WtW)  # the right lengths work
    with bad("'w'"):
        cp.reweight(w[:-1], zt, X, V, ZtW, WtW)
    with bad("'zt'"):
        cp.reweight(w, zt[:-1], X, V, ZtW, WtW)
    with bad("'X"):
        cp.reweight(w, zt, X[:-1], V, ZtW, WtW)
    with bad("'V'"):
        cp.reweight(w, zt, X, V[:-1], ZtW, WtW)
    with bad("'ZtW"):
        cp.reweight(w, zt, X, V, np.zeros((q - 1, px + 1), order="F"), WtW)
    T = pen.templates(pen.theta)
    out = np.zeros(n)
    cp.linpred(np.zeros(n), np.zeros(q), T, out)
    with bad("'base'"):
        cp.linpred(np.zeros(n - 1), np.zeros(q), T, out)
    with bad("'u'"):
        cp.linpred(np.zeros(n), np.zeros(q - 1), T, out)
    with bad("'T'"):
        cp.linpred(np.zeros(n), np.zeros(q), short(T), out)
    with bad("'out'"):
        cp.linpred(np.zeros(n), np.zeros(q), T, np.zeros(n - 1))


def _response(n):
    z = np.zeros(n)
    return GlmResponse(0, 0, z, np.ones(n), z, z, z)


def test_glm_response():
    r = _response(5)
    with bad("'pw'"):
        GlmResponse(0, 0, np.zeros(5), np.ones(4), np.zeros(5), np.zeros(5), np.zeros(5))
    with bad("'eta'"):
        r.py_set_eta(np.zeros(4))
    with bad("'mu'"):
        r.py_set_mu(np.zeros(6))
    for i, name in enumerate(["eta", "base", "w", "zt"]):
        args = [np.zeros(5) for _ in range(4)]
        args[i] = np.zeros(4)
        with bad(f"'{name}'"):
            r.working_into(*args)


def test_single_term_pirls():
    n, nl = 12, 3
    codes = np.arange(n) % nl
    Zx, X, off, eta0 = np.ones((n, 1)), np.ones((n, 1)), np.zeros(n), np.zeros(n)
    resp = _response(n)
    with bad("'Zx"):
        SingleTerm(resp, codes, Zx[:-1], X, off, eta0, 1)
    with bad("'X"):
        SingleTerm(resp, codes, Zx, X[:-1], off, eta0, 1)
    with bad("'off'"):
        SingleTerm(resp, codes, Zx, X, off[:-1], eta0, 1)
    with bad("'eta0'"):
        SingleTerm(resp, codes, Zx, X, off, eta0[:-1], 1)
    with bad("'response'"):
        SingleTerm(_response(n - 1), codes, Zx, X, off, eta0, 1)
    with bad("'codes'"):
        SingleTerm(resp, codes - 1, Zx, X, off, eta0, 1)
    with bad("'codes'"):  # a negative code after the first row (the range is one C pass)
        SingleTerm(resp, np.r_[codes[:5], -1, codes[6:]], Zx, X, off, eta0, 1)
    # levels = the largest code + 1, wherever it sits
    assert SingleTerm(resp, np.r_[1, 0, 4, codes[3:]], Zx, X, off, eta0, 1).nlev == 5
    eng = SingleTerm(resp, codes, Zx, X, off, eta0, 1)
    with bad("'x'"):
        eng.laplace(np.ones(3))
    with bad("'theta'"):
        eng.joint(np.ones(2))
    with bad("'u'"):
        eng.set_state(np.zeros(nl - 1), np.zeros(1))
    with bad("'beta'"):
        eng.set_state(np.zeros(nl), np.zeros(2))
    with bad("'beta0'"):
        eng.set_transform(np.zeros(2), np.eye(1))
    with bad("'Binv'"):
        eng.set_transform(np.zeros(1), np.eye(2))
    with bad("'w'"):
        eng.set_agq(np.zeros(3), np.ones(2))
    with bad("'grad'"):
        eng.laplace_grad(np.ones(2), np.zeros(3))
    with bad("'response'"):
        eng.reset(_response(n + 1), eta0)
    with bad("'eta0'"):
        eng.reset(resp, np.zeros(n + 1))


def test_kernel_pirls_loop():
    n = 12
    X, off, eta0, resp = np.ones((n, 1)), np.zeros(n), np.zeros(n), _response(n)
    pos = np.array([0])
    with bad("'X"):
        KernelLoop(resp, X[:-1], off, eta0, 3, 1, pos, 1)
    with bad("'off'"):
        KernelLoop(resp, X, off[:-1], eta0, 3, 1, pos, 1)
    with bad("'eta0'"):
        KernelLoop(resp, X, off, eta0[:-1], 3, 1, pos, 1)
    with bad("'tidx'"):
        KernelLoop(resp, X, off, eta0, 3, 2, np.array([0, 1]), 1)
    eng = KernelLoop(resp, X, off, eta0, 3, 1, pos, 1)
    with bad("'x'"):
        eng.laplace(np.ones(3))
    with bad("'theta'"):
        eng.joint(np.ones(2))
    with bad("'u'"):
        eng.set_state(np.zeros(2), np.zeros(1))
    with bad("'response'"):
        eng.reset(_response(n + 1), eta0)


def test_cholmod_factor():
    indptr, indices = np.array([0, 1, 2]), np.array([0, 1])
    f = SparseCholesky(indptr, indices, 2)
    with bad("'indptr'"):
        SparseCholesky(indptr[:-1], indices, 2)
    with bad("'indptr'"):
        SparseCholesky(np.array([0, 1, 3]), indices, 2)  # would index past `indices`
    with bad("'values'"):
        f.factorize(np.ones(1))  # one value would have been broadcast
    f.factorize(np.array([4.0, 9.0]))
    np.testing.assert_allclose(f.solve(np.array([4.0, 9.0])), [1.0, 1.0])
    with bad("'B"):
        f.solve(np.ones(4))  # 4 = 2 x 2 would have been read as a 2 x 2 right-hand side


def test_moments_and_pairs():
    X, r = np.ones((6, 1)), np.ones(6)
    codes = np.array([0, 0, 1, 1, 2, 2], dtype=np.int32)
    level_regressions(X, codes, 3, r)
    with bad("'codes'"):
        level_regressions(X, codes[:-1].copy(), 3, r)
    with bad("'r'"):
        level_regressions(X, codes, 3, r[:-1].copy())
    with bad("'codes'"):
        level_regressions(X, codes, 2, r)  # level 2 would be written past the G = 2 rows
    with bad("'codes'"):
        level_regressions(X, np.array([0, 1, -1, 1, 2, 2], dtype=np.int32), 3, r)
    with bad("'b'"):
        pair_codes(np.zeros(4, dtype=np.int64), np.zeros(3, dtype=np.int64), 1, 1)

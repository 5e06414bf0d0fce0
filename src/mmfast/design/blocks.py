"""The cross-products of [Z X y], formed once per model, in the block layout the kernel uses.

u is cut into blocks, one per (term, level), of size p_k.  Z'Z is stored as the dense
sub-blocks of the block pairs (i >= j) that co-occur in some row, with each entry's
position in the CSC lower triangle of A(θ) = Λ'Z'ZΛ + I.  An objective evaluation then
never touches the n rows: it transforms the sub-blocks by the templates T_k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .._ext._pairs import add_pair_products, as_codes, code_counts, gather_codes, pair_codes
from .remat import RandomTerm

__all__ = ["BlockStructure", "build_blocks", "build_Z", "zt_times", "pair_values", "pair_index"]


@dataclass
class BlockStructure:
    """Block-sparse Z'Z and dense Z'W, W'W for W = [X y] (sqrt-weighted rows)."""

    q: int
    term_p: np.ndarray  # int32 (nterms,)
    blk_term: np.ndarray  # int32 (nblocks,) term of each u-block
    blk_start: np.ndarray  # int32 (nblocks,) first u index of each block
    pair_row: np.ndarray  # int32 (npairs,) row block (>= col block)
    pair_col: np.ndarray  # int32 (npairs,)
    pair_vofs: np.ndarray  # int64 (npairs,) offset of the pair's sub-block in V / pos
    V: np.ndarray  # float64, sub-blocks row-major (p_row x p_col)
    ZtW: np.ndarray  # (q, p+1) Fortran order
    WtW: np.ndarray  # (p+1, p+1)
    pieces: list  # (k, m) term pairs, k >= m, in the order of row_pair's rows
    row_pair: np.ndarray  # int32 (int64 past 2^31 pairs) (npieces, n): the block pair each row adds to, per term pair


def csc_pattern(blocks: "BlockStructure") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSC pattern of lower(A) and the value index of every V entry (-1 above the diagonal).

    Only the CHOLMOD kernel needs this; the blocked kernel works on the sub-blocks directly.
    """
    tp, bt, bs = blocks.term_p, blocks.blk_term, blocks.blk_start
    sizes = np.diff(blocks.pair_vofs)
    ent_pair = np.repeat(np.arange(len(sizes)), sizes)
    within = np.arange(len(blocks.V)) - blocks.pair_vofs[ent_pair]
    pcol = tp[bt[blocks.pair_col]][ent_pair]
    grow = bs[blocks.pair_row][ent_pair] + within // pcol
    gcol = bs[blocks.pair_col][ent_pair] + within % pcol
    lower = grow >= gcol
    order = np.lexsort((grow[lower], gcol[lower]))
    pos = np.full(len(blocks.V), -1, dtype=np.int64)
    lower_idx = np.flatnonzero(lower)[order]
    pos[lower_idx] = np.arange(len(lower_idx))
    indices = grow[lower_idx].astype(np.int32)
    counts = np.bincount(gcol[lower_idx], minlength=blocks.q)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return indptr, indices, pos


def build_Z(terms: list[RandomTerm], n: int, sqrtw: np.ndarray | None = None) -> sp.csc_matrix:
    """Sparse Z (n x q) from the terms' integer codes, level-major within each term.

    Every row has exactly Σ p_t entries, in increasing column order (terms in order, a term's
    columns after its level's offset), so the CSR arrays are written directly (no COO sort)."""
    q = sum(t.q for t in terms)
    m = sum(t.p for t in terms)
    cols = np.empty((n, m), dtype=np.int32 if q < 2**31 else np.int64)
    vals = np.empty((n, m))
    k = 0
    for t in terms:
        base = t.offset + t.factor.codes.astype(np.int64) * t.p
        for j in range(t.p):
            cols[:, k] = base + j
            vals[:, k] = t.X[:, j] if sqrtw is None else t.X[:, j] * sqrtw
            k += 1
    indptr = np.arange(0, n * m + 1, m, dtype=cols.dtype)
    Z = sp.csr_matrix((vals.ravel(), cols.ravel(), indptr), shape=(n, q))
    return Z.tocsc()


def zt_times(terms: list[RandomTerm], W: np.ndarray, sqrtw: np.ndarray | None = None) -> np.ndarray:
    """Z'W (q x m, Fortran order) for a dense W (n x m), from the terms' integer codes: per
    term one pass over the rows (``add_pair_products`` with a level's p x m block as its
    "pair"), reading W in its own memory order, without building the sparse Z."""
    return _zt_times(terms, [t.X if sqrtw is None else t.X * sqrtw[:, None] for t in terms], W)


def _zt_times(terms: list[RandomTerm], Xw: list[np.ndarray], W: np.ndarray) -> np.ndarray:
    """``zt_times`` from the terms' already row-weighted model matrices ``Xw``."""
    q = sum(t.q for t in terms)
    m = W.shape[1]
    out = np.empty((q, m), order="F")
    for t, X in zip(terms, Xw):
        acc = np.zeros(t.q * m)
        vofs = np.arange(t.nlevels + 1, dtype=np.int64) * (t.p * m)
        add_pair_products(acc, vofs, as_codes(t.factor.codes), _f64(X), _f64(W))
        out[t.offset : t.offset + t.q] = acc.reshape(t.q, m)
    return out


def pair_index(pieces, row_pair: np.ndarray, pair_vofs: np.ndarray, term_p) -> list[np.ndarray]:
    """Per term pair (piece), the position in V of every (row, column pair) product: what
    ``pair_values`` adds into, computed once where the values are refreshed often."""
    out = []
    for (k, m), pid in zip(pieces, row_pair):
        pk, pm = int(term_p[k]), int(term_p[m])
        base = pair_vofs[pid]
        out.append(np.concatenate([base + (s * pm + t) for s in range(pk) for t in range(pm)]))
    return out


def pair_values(
    Xw: list[np.ndarray], pieces, row_pair: np.ndarray, pair_vofs: np.ndarray, index: list | None = None
) -> np.ndarray:
    """Z'Z's sub-block values on a fixed pattern (``pieces``, ``row_pair``, ``pair_vofs`` of a
    ``BlockStructure``) from the terms' row-weighted model matrices ``Xw``: the values change,
    never the pattern (the residual whitening of ``model.residual_fit``).  ``index``: the
    ``pair_index`` of the pattern, if kept."""
    V = np.zeros(int(pair_vofs[-1]))
    for j, (k, m) in enumerate(pieces):  # per piece, one bincount
        pk, pm = Xw[k].shape[1], Xw[m].shape[1]
        if index is not None:  # the kept pattern: every row's products
            wts = np.concatenate([Xw[k][:, s] * Xw[m][:, t] for s in range(pk) for t in range(pm)])
            V += np.bincount(index[j], weights=wts, minlength=len(V))
            continue
        add_pair_products(V, pair_vofs, row_pair[j], _f64(Xw[k]), _f64(Xw[m]))
    return V


def _f64(X: np.ndarray) -> np.ndarray:
    """X as a float64 matrix in any memory order (what the accumulator reads); no copy when
    it already is one."""
    return np.asarray(X, dtype=np.float64)


def build_blocks(terms: list[RandomTerm], W: np.ndarray, sqrtw: np.ndarray | None = None) -> BlockStructure:
    """Form Z'Z (as block pairs), Z'W and W'W once; W's rows must already be weighted."""
    if len(terms) == 1:
        return _one_term_blocks(terms[0], W, sqrtw)
    n = W.shape[0]
    nterms = len(terms)
    term_p = np.array([t.p for t in terms], dtype=np.int32)
    nblk = np.array([t.nlevels for t in terms], dtype=np.int64)
    blk_base = np.concatenate([[0], np.cumsum(nblk)])
    nblocks = int(blk_base[-1])
    blk_term = np.repeat(np.arange(nterms, dtype=np.int32), nblk)
    blk_start = (
        np.concatenate([t.offset + np.arange(t.nlevels) * t.p for t in terms]).astype(np.int32)
        if nterms
        else np.zeros(0, np.int32)
    )
    Xw = [t.X if sqrtw is None else t.X * sqrtw[:, None] for t in terms]
    codes = [as_codes(t.factor.codes) for t in terms]  # each term's level of every row

    # block pairs (bi >= bj): term k >= term m, so blocks of k come later in u
    pieces = [(k, m) for k in range(nterms) for m in range(k + 1)]
    # unique pairs per piece (pieces' keys are disjoint: their terms differ); a diagonal piece's
    # pair is (a row's block, itself), so only cross pieces need pair coding
    local = []
    for k, m in pieces:
        if k == m:
            present = code_counts(codes[k], int(nblk[k])) > 0
            ub = blk_base[k] + np.flatnonzero(present)
            if present.all():  # every level has rows: a row's pair is its level
                local.append((codes[k], ub * nblocks + ub))
                continue
            remap = np.full(int(nblk[k]), -1, dtype=np.int64)
            remap[present] = np.arange(len(ub))
            local.append((remap[codes[k]], ub * nblocks + ub))
        else:
            pc, pkeys = pair_codes(codes[k], codes[m], int(nblk[k]), int(nblk[m]))
            ka, kb = pkeys // nblk[m] + blk_base[k], pkeys % nblk[m] + blk_base[m]
            local.append((pc, ka * nblocks + kb))
    # merge the pieces' sorted keys: a stable argsort of sorted runs, then each key's rank
    allkeys = np.concatenate([u for _, u in local])
    order = np.argsort(allkeys, kind="stable")
    uniq = allkeys[order]
    small = len(order) < 2**31  # row_pair in int32 when it can: n x pieces of it stay with the model
    rank = np.empty(len(order), dtype=np.int32 if small else np.int64)
    rank[order] = np.arange(len(order), dtype=rank.dtype)
    ofs = np.cumsum([0] + [len(u) for _, u in local])
    row_pair = np.empty((len(pieces), n), dtype=rank.dtype)
    for j, (o, (c, u)) in enumerate(zip(ofs, local)):
        gather_codes(row_pair[j], rank[o : o + len(u)], c)
    del local
    pair_row = (uniq // nblocks).astype(np.int32)
    pair_col = (uniq % nblocks).astype(np.int32)
    sizes = term_p[blk_term[pair_row]].astype(np.int64) * term_p[blk_term[pair_col]]
    pair_vofs = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    V = pair_values(Xw, pieces, row_pair, pair_vofs)

    q = int(sum(t.q for t in terms))
    ZtW = _zt_times(terms, Xw, W)
    WtW = W.T @ W
    return BlockStructure(
        q=q,
        term_p=term_p,
        blk_term=blk_term,
        blk_start=blk_start,
        pair_row=pair_row,
        pair_col=pair_col,
        pair_vofs=pair_vofs,
        V=V,
        ZtW=ZtW,
        WtW=WtW,
        pieces=pieces,
        row_pair=row_pair,
    )


def _one_term_blocks(t: RandomTerm, W: np.ndarray, sqrtw) -> BlockStructure:
    """``build_blocks`` for a single term: one diagonal block per level (every level has rows),
    Σ over its rows of x x', in one pass over the rows."""
    G, p, codes = t.nlevels, t.p, as_codes(t.factor.codes)
    V = np.zeros(G * p * p)
    vofs = np.arange(G + 1, dtype=np.int64) * (p * p)
    Xw = _f64(t.X if sqrtw is None else t.X * sqrtw[:, None])
    add_pair_products(V, vofs, codes, Xw, Xw)
    levels = np.arange(G, dtype=np.int32)
    return BlockStructure(
        q=G * p,
        term_p=np.full(1, p, dtype=np.int32),
        blk_term=np.zeros(G, dtype=np.int32),
        blk_start=(t.offset + levels * p).astype(np.int32),
        pair_row=levels,
        pair_col=levels,
        pair_vofs=vofs,
        V=V,
        ZtW=_zt_times([t], [Xw], W),
        WtW=W.T @ W,
        pieces=[(0, 0)],
        row_pair=codes[None, :],
    )

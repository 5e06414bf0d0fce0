"""Trace tensors of M = Z'V⁻¹Z from a fitted kernel (what Satterthwaite and Kenward-Roger read).

With A = Λ'Z'ZΛ + I (the kernel's factor) and K = Λ'Z'Z, M = Z'Z - K'A⁻¹K.  Every trace
tr(M (I⊗s) M (I⊗s')) of an LMM is a contraction of the term-pair tensors
N_km[a,b,c,d] = Σ_{l,l'} M[(l,a),(l',c)] M[(l,b),(l',d)], and tr(M (I⊗s)) one of the
diagonal-block sums dg_k[a,b] = Σ_l M[(l,a),(l,b)] (``inference.structure``).

M is block diagonal over the connected components of Z'Z.  Components of one layout (the same
number of levels per term) are processed together: as the columns of K on different
components touch disjoint rows, one ``kernel.solve`` on the sum over components of their j-th
columns gives A⁻¹K's j-th column of every component at once.  So a group of components of
size s costs s solves with the fitted factor, never a new factorisation or a batched dense
solve of the assembled A.  Large components (crossed designs) go through a Schur complement
where the caller supplies one (``inference.schur``), else by column chunks of M.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np
import scipy.sparse as sp

__all__ = [
    "TraceDesign",
    "trace_tensors",
    "contract_columns",
    "component_groups",
    "DENSE_COMPONENT_MAX",
    "CHUNK_ENTRIES",
]

CHUNK_ENTRIES = 4_000_000  # entries of one dense column chunk (q x columns)
DENSE_COMPONENT_MAX = 150  # components up to this size: all of a layout at once (larger: Schur)


class TraceDesign(Protocol):
    """What the tensors need besides the kernel: the terms, q, Z'Z and K = Λ'Z'Z (csc)."""

    terms: list
    q: int
    ZtZ: sp.csc_matrix
    K: sp.csc_matrix


def trace_tensors(kernel, design: TraceDesign, method: str = "auto", schur: Callable | None = None):
    """(N, dg) from the kernel whose factor is A at the design's θ (``kernel.solve``).

    ``method``: "auto", or force "dense" (components by layout), "schur" or "chunked";
    ``schur(idx, N, dg)`` adds one large component's part and returns False where it does
    not apply."""
    terms = design.terms
    N = [[np.zeros((tk.p, tk.p, tm.p, tm.p)) for tm in terms] for tk in terms]
    dg = [np.zeros((t.p, t.p)) for t in terms]
    for counts, members in component_groups(design):
        if method == "dense" or (method == "auto" and int(np.sum(counts)) <= DENSE_COMPONENT_MAX):
            _layout_group(kernel, design, counts, members, N, dg)
            continue
        for idx in members:
            if method in ("auto", "schur") and schur is not None and schur(idx, N, dg):
                continue
            if method == "schur":
                raise ValueError("the Schur route does not apply to this component")
            _chunked_component(kernel, design, idx, N, dg)
    return N, dg


def component_groups(design: TraceDesign):
    """[(counts per term, (ncomp, size) array of sorted global indices)] by layout."""
    from scipy.sparse.csgraph import connected_components

    terms = design.terms
    # a level's p_k columns belong together even where one of them is all zero
    same_level = sp.block_diag([sp.kron(sp.identity(t.nlevels), np.ones((t.p, t.p))) for t in terms], format="csc")
    ncomp, labels = connected_components(abs(design.ZtZ) + same_level, directed=False)
    term_of = np.concatenate([np.full(t.q, k) for k, t in enumerate(terms)])
    counts = np.zeros((ncomp, len(terms)), dtype=np.int64)
    np.add.at(counts, (labels, term_of), 1)
    order = np.argsort(labels, kind="stable")  # by component, then by global index
    starts = np.concatenate([[0], np.cumsum(counts.sum(axis=1))])
    keys: dict = {}
    for c in range(ncomp):
        keys.setdefault(tuple(counts[c]), []).append(c)
    out = []
    for key, comps in keys.items():
        size = int(sum(key))
        idx = order[starts[np.array(comps)][:, None] + np.arange(size)[None, :]]
        out.append((np.array(key), idx))
    return out


def _layout_group(kernel, design, counts, members, N, dg):
    """M on every component of one layout: A⁻¹K from ``size`` solves with the fitted factor."""
    nc, size = members.shape
    q, terms = design.q, design.terms
    per = max(1, 2_000_000 // (size * size))  # components per dense (per, size, size) stack
    off = np.concatenate([[0], np.cumsum(counts)])
    K = design.K
    for b0 in range(0, nc, per):
        idx = members[b0 : b0 + per]
        nb = len(idx)
        # Σ over components of their j-th columns of K: disjoint rows, so one solve each
        rhs = np.zeros((q, size), order="F")
        for j in range(size):
            col = K[:, idx[:, j]]
            rhs[col.indices, j] = col.data
        sol = kernel.solve(rhs)  # A⁻¹K on every component's own rows
        S = sol[idx]  # (nb, size, size): rows of component b, its columns
        Kd = _blocks_of(K, idx)
        Mb = _blocks_of(design.ZtZ, idx) - np.matmul(Kd.transpose(0, 2, 1), S)
        for k, tk in enumerate(terms):
            lk = counts[k] // tk.p
            if lk == 0:
                continue
            rows = slice(off[k], off[k + 1])
            own = Mb[:, rows, rows].reshape(nb, lk, tk.p, lk, tk.p)
            ii = np.arange(lk)
            dg[k] += own[:, ii, :, ii, :].sum(axis=(0, 1))
            for m, tm in enumerate(terms):
                lm = counts[m] // tm.p
                if lm == 0:
                    continue
                sub = Mb[:, rows, off[m] : off[m + 1]].reshape(nb, lk, tk.p, lm, tm.p)
                N[k][m] += np.einsum("zlayc,zlbyd->abcd", sub, sub, optimize=True)


def _blocks_of(S: sp.csc_matrix, idx: np.ndarray) -> np.ndarray:
    """S's diagonal blocks on the components idx (nb, size) by a scatter of its entries
    (for many components, where slicing S square would be large)."""
    nb, size = idx.shape
    pos = np.full(S.shape[0], -1, dtype=np.int64)
    slot = np.full(S.shape[0], -1, dtype=np.int64)
    pos[idx.ravel()] = np.tile(np.arange(size), nb)
    slot[idx.ravel()] = np.repeat(np.arange(nb), size)
    coo = S[:, idx.ravel()].tocoo()
    cols = idx.ravel()[coo.col]
    keep = slot[coo.row] >= 0
    D = np.zeros((nb, size, size))
    D[slot[coo.row[keep]], pos[coo.row[keep]], pos[cols[keep]]] = coo.data[keep]
    return D


def _chunked_component(kernel, design, idx, N, dg):
    """Columns of M for one (large) component, in chunks, through the fitted factor."""
    ZtZ, K, terms, q = design.ZtZ, design.K, design.terms, design.q
    for m, tm in enumerate(terms):
        cols_m = idx[(idx >= tm.offset) & (idx < tm.offset + tm.q)]
        if len(cols_m) == 0:
            continue
        per = max(1, CHUNK_ENTRIES // max(q * tm.p, 1)) * tm.p
        for c0 in range(0, len(cols_m), per):
            cols = cols_m[c0 : c0 + per]
            rhs = K[:, cols].toarray(order="F")
            MJ = ZtZ[:, cols].toarray() - np.asarray(K.T @ kernel.solve(rhs))
            contract_columns(MJ, cols, m, terms, N, dg)


def contract_columns(MJ: np.ndarray, cols: np.ndarray, m: int, terms, N, dg) -> None:
    """Add M's columns ``cols`` (whole levels of term m; ``MJ`` = M[:, cols], every row) to the
    term-pair tensors N[k][m] and to dg[m]: the one contraction every route ends in."""
    tm = terms[m]
    nl = len(cols) // tm.p
    for k, tk in enumerate(terms):
        Mk = MJ[tk.offset : tk.offset + tk.q]
        if tk.p == 1 and tm.p == 1:
            N[k][m][0, 0, 0, 0] += float(np.einsum("ij,ij->", Mk, Mk))
        else:
            Mk = Mk.reshape(tk.nlevels, tk.p, nl, tm.p)
            N[k][m] += np.einsum("lanc,lbnd->abcd", Mk, Mk, optimize=True)
    own = MJ[cols].reshape(nl, tm.p, nl, tm.p)
    ii = np.arange(nl)
    dg[m] += own[ii, :, ii, :].sum(axis=0)

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Integer codes of (a, b) pairs, numbered in sorted (a, b) order: the block pairs of the
design (design/blocks.py) and interactions of grouping factors (design/remat.py); and the
products over those block pairs (Z'Z's sub-block sums, Z'Z B).

A counting sort of the rows by a, then within each a the distinct b's, found with a marker
array and sorted (insertion sort when there are few, qsort otherwise): O(n + pairs log(pairs
per a)), no hashing.
"""
import numpy as np
cimport numpy as cnp
from ._types cimport i64
from ._codes cimport code_range, code_t, out_of_range, sort_i64
from ._checks import check_length

cnp.import_array()


def as_codes(x):
    """x as the codes ``pair_codes`` reads: int32 or int64, contiguous (int32 is not widened:
    at 10^7 rows that copy was 80 MB and, on a fresh VM page, ~0.4 s)."""
    x = np.asarray(x)
    if x.dtype == np.int32 or x.dtype == np.int64:
        return np.ascontiguousarray(x)
    return np.ascontiguousarray(x, dtype=np.int64)


def pair_codes(a_in, b_in, Py_ssize_t na, Py_ssize_t nb):
    """(codes, keys): codes[i] numbers the pair (a[i], b[i]) among the distinct pairs in
    increasing a·nb + b order, keys holds a·nb + b of each distinct pair (int64, sorted).
    a and b are integer arrays with 0 <= a < na and 0 <= b < nb."""
    a, b = as_codes(a_in), as_codes(b_in)
    if b.dtype != a.dtype:
        a, b = a.astype(np.int64, copy=False), b.astype(np.int64, copy=False)
    return _pair_codes(a, b, na, nb, a_in, b_in)  # dispatched on the codes' width


def _pair_codes(const code_t[::1] a, const code_t[::1] b, Py_ssize_t na, Py_ssize_t nb, a_in, b_in):
    cdef Py_ssize_t n = a.shape[0], i, j, k, s, e, m, npairs = 0, x
    if b.shape[0] != n:
        check_length("b", b.shape[0], n)
    if out_of_range(a, 0, na) or out_of_range(b, 0, nb):
        raise ValueError("pair_codes: a code out of range")
    codes_a = np.empty(n, dtype=np.int64)
    cdef i64[::1] codes = codes_a
    cdef i64[::1] start = np.zeros(na + 1, dtype=np.int64)
    cdef i64[::1] rows = np.empty(n, dtype=np.int64)
    cdef i64[::1] fill = np.empty(na, dtype=np.int64)
    cdef i64[::1] mark = np.full(nb, -1, dtype=np.int64)
    cdef i64[::1] slot = np.empty(nb, dtype=np.int64)
    cdef i64[::1] seen = np.empty(nb, dtype=np.int64)
    keys_a = np.empty(min(n, na * nb), dtype=np.int64)  # at most one key per row
    cdef i64[::1] keys = keys_a
    with nogil:
        for i in range(n):
            start[a[i] + 1] += 1
        for j in range(na):
            start[j + 1] += start[j]
            fill[j] = start[j]
        for i in range(n):
            rows[fill[a[i]]] = i
            fill[a[i]] += 1
        for j in range(na):
            s, e, m = start[j], start[j + 1], 0
            for k in range(s, e):  # the distinct b's of this a
                x = b[rows[k]]
                if mark[x] != j:
                    mark[x] = j
                    seen[m] = x
                    m += 1
            sort_i64(&seen[0], m)  # the distinct b of this a, ascending
            for k in range(m):
                slot[seen[k]] = npairs + k
                keys[npairs + k] = j * nb + seen[k]
            for k in range(s, e):
                codes[rows[k]] = slot[b[rows[k]]]
            npairs += m
    return codes_a, keys_a[:npairs].copy()


def add_pair_products(double[::1] V, const i64[::1] pair_vofs, const code_t[::1] pair_of_row,
                      const double[:, :] Xk, const double[:, :] Xm):
    """V[pair_vofs[pair_of_row[i]] + s·pm + t] += Xk[i, s]·Xm[i, t] over the rows i: one term
    pair's sub-block sums of Z'Z in one pass (``design.blocks.pair_values``), no n-length
    temporaries; zero products (indicator columns) are skipped.  Xk and Xm in any memory
    order (Z'W reads the kernels' column-major [Q y] as it is)."""
    cdef Py_ssize_t n = pair_of_row.shape[0], pk = Xk.shape[1], pm = Xm.shape[1]
    cdef Py_ssize_t i, s, t, npairs = pair_vofs.shape[0] - 1
    cdef i64 base
    cdef double xs
    if Xk.shape[0] != n:
        check_length("Xk (rows)", Xk.shape[0], n)
    if Xm.shape[0] != n:
        check_length("Xm (rows)", Xm.shape[0], n)
    if out_of_range(pair_of_row, 0, npairs):
        raise ValueError("add_pair_products: a pair index out of range")
    if npairs and pair_vofs[npairs] > V.shape[0]:
        check_length("V", V.shape[0], pair_vofs[npairs])
    with nogil:
        for i in range(n):
            base = pair_vofs[pair_of_row[i]]
            for s in range(pk):
                xs = Xk[i, s]
                if xs == 0.0:
                    continue
                for t in range(pm):
                    V[base + s * pm + t] += xs * Xm[i, t]


def code_counts(const code_t[::1] codes, Py_ssize_t nlevels):
    """Rows per level (int64, ``nlevels``) of integer codes 0 <= c < nlevels, negative codes
    (missing) skipped: ``np.bincount`` without its int64 copy of int32 codes."""
    out_a = np.zeros(nlevels, dtype=np.int64)
    cdef i64[::1] out = out_a
    cdef Py_ssize_t i, n = codes.shape[0]
    cdef i64 c
    cdef i64 lowest = -(<i64> 1 << 62)  # negative codes (missing) are allowed, and skipped
    if out_of_range(codes, lowest, nlevels):
        raise ValueError("code_counts: a code out of range")
    with nogil:
        for i in range(n):
            c = codes[i]
            if c >= 0:
                out[c] += 1
    return out_a


ctypedef fused rank_t:
    int
    i64


def gather_codes(rank_t[::1] out, const rank_t[::1] table, const code_t[::1] codes):
    """out[i] = table[codes[i]]: the block pair of every row from its piece-local pair code
    (``design.blocks.build_blocks``), without numpy's int64 copy of int32 indices."""
    cdef Py_ssize_t i, n = codes.shape[0], m = table.shape[0]
    if out.shape[0] != n:
        check_length("out", out.shape[0], n)
    if out_of_range(codes, 0, m):
        raise ValueError("gather_codes: a code out of range")
    with nogil:
        for i in range(n):
            out[i] = table[codes[i]]


def dense_codes(const code_t[::1] values, i64 max_span):
    """(codes int32, levels int64) of integer ids in sorted level order, by a table over their
    range (two passes, no hashing or sorting: subject numbers, 0..k-1), or None when the ids
    span more than ``max_span`` values or there are none."""
    cdef Py_ssize_t i, n = values.shape[0]
    cdef i64 lo, hi, j, k = 0
    if n == 0:
        return None
    code_range(values, &lo, &hi)
    if <unsigned long long> hi - <unsigned long long> lo > <unsigned long long> max_span:
        return None  # (unsigned: no overflow for ids at both ends of int64)
    table_a = np.zeros(hi - lo + 1, dtype=np.int32)
    levels_a = np.empty(hi - lo + 1, dtype=np.int64)
    codes_a = np.empty(n, dtype=np.int32)
    cdef int[::1] table = table_a, codes = codes_a
    cdef i64[::1] levels = levels_a
    with nogil:
        for i in range(n):
            table[values[i] - lo] = 1
        for j in range(hi - lo + 1):
            if table[j]:
                table[j] = <int> k
                levels[k] = lo + j
                k += 1
        for i in range(n):
            codes[i] = table[values[i] - lo]
    return codes_a, levels_a[:k]


def gram_times(blocks, B):
    """Z'Z B for a dense B (q x m), from the stored sub-blocks (no n-row work)."""
    B = np.asarray(B, dtype=np.float64)
    check_length("B", B.shape[0] if B.ndim else -1, blocks.q)
    cdef double[:, ::1] Bv = np.ascontiguousarray(B).reshape(blocks.q, -1)
    out = np.zeros((blocks.q, Bv.shape[1]))
    cdef double[:, ::1] O = out
    cdef int[::1] prow = np.ascontiguousarray(blocks.pair_row, dtype=np.int32)
    cdef int[::1] pcol = np.ascontiguousarray(blocks.pair_col, dtype=np.int32)
    cdef i64[::1] vofs = np.ascontiguousarray(blocks.pair_vofs, dtype=np.int64)
    cdef double[::1] V = np.ascontiguousarray(blocks.V, dtype=np.float64)
    cdef int[::1] bt = np.ascontiguousarray(blocks.blk_term, dtype=np.int32)
    cdef int[::1] bs = np.ascontiguousarray(blocks.blk_start, dtype=np.int32)
    cdef int[::1] tp = np.ascontiguousarray(blocks.term_p, dtype=np.int32)
    cdef Py_ssize_t pr, x, y, px, py, s, t, m, nm = Bv.shape[1]
    cdef const double* Vp
    with nogil:
        for pr in range(prow.shape[0]):
            x = prow[pr]
            y = pcol[pr]
            px = tp[bt[x]]
            py = tp[bt[y]]
            Vp = &V[vofs[pr]]
            for s in range(px):
                for t in range(py):
                    for m in range(nm):
                        O[bs[x] + s, m] += Vp[s * py + t] * Bv[bs[y] + t, m]
                        if x != y:
                            O[bs[y] + t, m] += Vp[s * py + t] * Bv[bs[x] + s, m]
    return out

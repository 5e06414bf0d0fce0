# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Blocked Cholesky for PLS: the first term's block of A is block-diagonal and never fills.

A = [[A11, A21'], [A21, A22]] with A11 = blockdiag(L_j L_j') (one p0 x p0 block per level of
the first term), L21 = A21 L11⁻ᵀ (same block pattern as A21) and the Schur complement
S = A22 - L21 L21' factored densely by LAPACK (it is small or dense in the models where this
kernel is chosen; MixedModels.jl's layout).  Same interface (``_kernel.Kernel``) as ``PLSKernel``.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport INFINITY, log, sqrt
from libc.string cimport memset
from scipy.linalg.cython_lapack cimport dpotrf
from scipy.linalg.cython_blas cimport dtrsm
from ._dense cimport lambda_t, small_chol, tkv_tm
from ._schur cimport schur_levels, schur_scalar
from ._types cimport i64
from ._codes cimport sort_i64
from ._kernel cimport count_factorization

from ..design.ordering import locality_order
from ._checks import check_length

cnp.import_array()

cdef inline double* _cross_block(BlockedKernel K, Py_ssize_t c, Py_ssize_t* pk, Py_ssize_t* st) noexcept nogil:
    """L21 block c (p_k x p0, row-major; the solves' view of it): its values, p_k and its first
    internal row."""
    pk[0] = K.term_p[K.blk_term[K.cross_row[c]]]
    st[0] = K.blk_start[K.cross_row[c]]
    return &K.L21[K.cross_lofs[c]]


cdef class BlockedKernel:
    """Objective-evaluation kernel: blockwise elimination of the first term, dense rest."""

    def __init__(self, blocks):
        tp = np.asarray(blocks.term_p, dtype=np.int32)
        if tp.shape[0] == 1:  # the common small model: nothing but diagonal blocks
            self._one_term(blocks, tp)
            return
        self._general(blocks, tp)

    def _general(self, blocks, tp):
        """Set-up for several terms: the pairs sorted into the first term's diagonal blocks, its
        cross blocks (by first-term level, then by internal row) and the rest, in C loops
        (the numpy version cost ~150 µs on a small crossed fit)."""
        cdef const int[::1] tpv = tp
        cdef Py_ssize_t nt = tpv.shape[0], k, b, c, r, j, m, s, npairs, ncross = 0, nrest = 0, ndiag = 0
        cdef i64 tsize = 0, q1, lofs
        tofs_a = np.empty(nt, dtype=np.int32)
        cdef int[::1] tofs = tofs_a
        for k in range(nt):
            tofs[k] = <int> tsize
            tsize += <i64> tpv[k] * tpv[k]
        self._layout(blocks.q, blocks.WtW.shape[0], tsize)
        self.term_p, self.tofs = tp, tofs_a
        bt_a = np.ascontiguousarray(blocks.blk_term, dtype=np.int32)
        cdef const int[::1] bt = bt_a
        self.blk_term = bt_a
        self.nblocks = bt.shape[0]
        self.p0 = tpv[0]
        nlev_a = np.zeros(nt, dtype=np.int32)
        cdef int[::1] nlev = nlev_a
        for b in range(self.nblocks):
            if bt[b] < 0 or bt[b] >= nt:
                raise ValueError("a block's term out of range")
            nlev[bt[b]] += 1
        self.nlev = nlev_a
        self.nlev0 = nlev[0]
        q1 = self.nlev0 * self.p0
        self.q1, self.q2 = q1, self.q - q1
        row_a = np.ascontiguousarray(blocks.pair_row, dtype=np.int32)
        col_a = np.ascontiguousarray(blocks.pair_col, dtype=np.int32)
        cdef const int[::1] row = row_a
        cdef const int[::1] col = col_a
        npairs = row.shape[0]
        cdef const i64[::1] vofs = np.ascontiguousarray(blocks.pair_vofs, dtype=np.int64)
        if col.shape[0] != npairs or vofs.shape[0] < npairs:
            raise ValueError("pair_row, pair_col and pair_vofs differ in length")
        diag_a = np.full(self.nlev0, -1, dtype=np.int64)
        cdef i64[::1] diag = diag_a
        colptr_a = np.zeros(self.nlev0 + 1, dtype=np.int32)
        cdef int[::1] colptr = colptr_a
        for k in range(npairs):  # classify: diagonal of the first term, cross, rest
            r, c = row[k], col[k]
            if r < 0 or c < 0 or r >= self.nblocks or c >= self.nblocks:
                raise ValueError("a pair's block out of range")
            if c >= self.nlev0:
                nrest += 1
            elif r == c:
                if diag[c] != -1:
                    raise ValueError("every first-term level needs one diagonal block")
                diag[c] = vofs[k]
                ndiag += 1
            elif r >= self.nlev0:
                colptr[c + 1] += 1
                ncross += 1
            else:
                raise ValueError("first-term blocks must not co-occur with each other")
        if ndiag != self.nlev0:
            raise ValueError("every first-term level needs a diagonal block")
        self.diag_vofs = diag_a
        istart_a = locality_order(np.asarray(blocks.blk_start), bt_a, tp, row_a, col_a, self.nlev0)
        cdef const int[::1] istart = istart_a
        cdef const int[::1] bstart = np.ascontiguousarray(blocks.blk_start, dtype=np.int32)
        self.blk_start = istart_a
        perm_a = np.empty(self.q, dtype=np.int64)
        cdef i64[::1] perm = perm_a
        if bstart.shape[0] != self.nblocks or istart.shape[0] != self.nblocks:
            raise ValueError("blk_start needs one start per block")
        for b in range(self.nblocks):
            if bstart[b] < 0 or bstart[b] + tpv[bt[b]] > self.q or istart[b] < 0 or istart[b] + tpv[bt[b]] > self.q:
                raise ValueError("a block's rows out of range")
            for k in range(tpv[bt[b]]):
                perm[bstart[b] + k] = istart[b] + k
        self.perm_rows = perm_a
        for c in range(self.nlev0):
            colptr[c + 1] += colptr[c]
        # cross pairs by first-term level (counting sort), then by internal row (sort of
        # istart·npairs + pair within each level: the keys are distinct)
        keys_a = np.empty(max(ncross, 1), dtype=np.int64)
        cdef i64[::1] keys = keys_a
        fill_a = np.array(colptr_a[: self.nlev0], dtype=np.int64)
        cdef i64[::1] fill = fill_a
        for k in range(npairs):
            r, c = row[k], col[k]
            if c < self.nlev0 and r >= self.nlev0:
                keys[fill[c]] = <i64> istart[r] * npairs + k
                fill[c] += 1
        for c in range(self.nlev0):
            if colptr[c + 1] - colptr[c] > 1:
                sort_i64(&keys[colptr[c]], colptr[c + 1] - colptr[c])
        cvofs_a = np.empty(ncross, dtype=np.int64)
        crow_a = np.empty(ncross, dtype=np.int32)
        clofs_a = np.empty(ncross + 1, dtype=np.int64)
        cdef i64[::1] cvofs = cvofs_a, clofs = clofs_a
        cdef int[::1] crow = crow_a
        lofs, m = 0, 0
        clofs[0] = 0
        for j in range(ncross):
            k = keys[j] % npairs
            cvofs[j], crow[j] = vofs[k], row[k]
            lofs += <i64> tpv[bt[row[k]]] * self.p0
            clofs[j + 1] = lofs
            m += tpv[bt[row[k]]]
        # L21 of one first-term level: its pairs' p_k x p0 blocks stacked, one row per column
        # of the other terms, each row at an S position (increasing within the level); with a
        # scalar first term each row is one entry and the Schur update runs entry by entry
        cpos_a = np.empty(m, dtype=np.int32)
        cdef int[::1] cpos = cpos_a
        m = 0
        for j in range(ncross):
            r = crow[j]
            for s in range(tpv[bt[r]]):
                cpos[m] = <int> (istart[r] - q1 + s)
                m += 1
        self.cross_vofs, self.cross_row, self.cross_lofs, self.cross_pos = cvofs_a, crow_a, clofs_a, cpos_a
        self.cross_colptr = colptr_a
        self.scalar = True
        for k in range(nt):
            if tpv[k] != 1:
                self.scalar = False
        rvofs_a = np.empty(nrest, dtype=np.int64)
        rrow_a = np.empty(nrest, dtype=np.int32)
        rcol_a = np.empty(nrest, dtype=np.int32)
        cdef i64[::1] rvofs = rvofs_a
        cdef int[::1] rrow = rrow_a, rcol = rcol_a
        j = 0
        for k in range(npairs):
            if col[k] >= self.nlev0:
                rvofs[j], rrow[j], rcol[j] = vofs[k], row[k], col[k]
                j += 1
        self.rest_vofs, self.rest_row, self.rest_col = rvofs_a, rrow_a, rcol_a
        self._buffers(blocks, tp)

    def _buffers(self, blocks, tp):
        """The kernel's value arrays and workspaces (after either index set-up)."""
        self.V = np.array(blocks.V, dtype=np.float64, order="C", copy=True)
        self.Ldiag = np.zeros(self.nlev0 * self.p0 * self.p0)
        self.L21 = np.zeros(max(int(self.cross_lofs[len(self.cross_lofs) - 1]), 1))
        self.S = np.zeros((max(self.q2, 1), max(self.q2, 1)), order="F")
        ztw = np.zeros_like(blocks.ZtW, order="F")
        ztw[self.perm_rows] = blocks.ZtW
        self.ZtW = ztw
        self.WtW = np.array(blocks.WtW, dtype=np.float64, order="C", copy=True)
        self.Mbuf = np.empty((self.ncol, self.ncol))
        self.C = np.zeros((self.q, self.ncol), order="F")
        self.Cm = self.Xm = self.C
        pmax = int(tp.max())
        self.work = np.zeros(3 * pmax * pmax + 2 * pmax)
        cdef Py_ssize_t c, rmax = 0
        if self.p0 > 1:  # rows of one level's L21
            for c in range(self.nlev0):
                rmax = max(rmax, (self.cross_lofs[self.cross_colptr[c + 1]] - self.cross_lofs[self.cross_colptr[c]]) // self.p0)
        self.gbuf = np.zeros(max(rmax * rmax, 1))  # one level's L21 L21' (dsyrk) or S⁻¹ rows
        self.logdet = np.nan
        self.Sinv = None

    def _one_term(self, blocks, tp):
        """Set-up for a single term: one diagonal block per level, no cross or dense part, u
        in the design's own order (few numpy calls: this runs on every small fit)."""
        cdef Py_ssize_t G = len(blocks.blk_term), p = tp[0], i
        cdef const int[::1] row = np.ascontiguousarray(blocks.pair_row, dtype=np.int32)
        cdef const int[::1] col = np.ascontiguousarray(blocks.pair_col, dtype=np.int32)
        if row.shape[0] != G or col.shape[0] != G:
            raise ValueError("a single term needs exactly one diagonal block per level")
        for i in range(G):
            if row[i] != i or col[i] != i:
                raise ValueError("a single term needs exactly one diagonal block per level")
        self._layout(blocks.q, blocks.WtW.shape[0], p * p)
        self.term_p, self.p0, self.nblocks, self.nlev0 = tp, p, G, G
        self.blk_term = np.zeros(G, dtype=np.int32)
        self.tofs = np.zeros(1, dtype=np.int32)
        self.nlev = np.full(1, G, dtype=np.int32)
        self.q1, self.q2 = self.q, 0
        i4, i8 = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
        self.diag_vofs = np.asarray(blocks.pair_vofs[:G], dtype=np.int64).copy()
        self.blk_start = np.asarray(blocks.blk_start, dtype=np.int32).copy()
        self.perm_rows = np.arange(self.q, dtype=np.int64)
        self.cross_vofs, self.cross_lofs, self.rest_vofs = i8, np.zeros(1, dtype=np.int64), i8
        self.cross_row, self.cross_pos, self.rest_row, self.rest_col = i4, i4, i4, i4
        self.cross_colptr = np.zeros(G + 1, dtype=np.int32)
        self.scalar = p == 1
        self._buffers(blocks, tp)

    @property
    def dense_size(self):
        return self.q2

    cdef int _factor(self, const double* T) noexcept nogil:
        cdef Py_ssize_t j, c, a, s, t, k, pk, pa, pb, ra, rb
        cdef Py_ssize_t p0 = self.p0
        cdef double* D
        cdef double* Lab
        cdef double* La
        cdef double* w = &self.work[0]
        cdef double* tmp = w + self.work.shape[0] // 2
        cdef double acc, ld = 0.0
        cdef const double* T0 = T
        cdef int info = 0, n2
        cdef double* L21p
        cdef char lo = b'L'
        count_factorization()
        # 1. diagonal blocks of the first term
        for j in range(self.nlev0):
            D = &self.Ldiag[j * p0 * p0]
            tkv_tm(T0, p0, &self.V[self.diag_vofs[j]], T0, p0, D, tmp)
            for s in range(p0):
                D[s * p0 + s] += 1.0
            if small_chol(D, p0) != 0:
                return -1
            for s in range(p0):
                ld += 2.0 * log(D[s * p0 + s])
        # 2. L21 blocks: (T_k' V T0) L_j^{-T}
        if self.scalar:  # one column per term: l_c = t_k v_c t_0 / d_j, plain pointers
            L21p = &self.L21[0]
            for j in range(self.nlev0):
                acc = T0[0] / self.Ldiag[j]
                for c in range(self.cross_colptr[j], self.cross_colptr[j + 1]):
                    L21p[c] = T[self.tofs[self.blk_term[self.cross_row[c]]]] * self.V[self.cross_vofs[c]] * acc
        elif p0 == 1:  # l = T_k' v_c t_0 / d_j for a k-term's p_k x 1 block v_c
            for j in range(self.nlev0):
                acc = T0[0] / self.Ldiag[j]
                for c in range(self.cross_colptr[j], self.cross_colptr[j + 1]):
                    k = self.blk_term[self.cross_row[c]]
                    pk = self.term_p[k]
                    Lab = &self.L21[self.cross_lofs[c]]
                    La = &self.V[self.cross_vofs[c]]
                    for s in range(pk):
                        ra = self.tofs[k] + s * pk  # column s of T_k: rows s..pk-1
                        tmp[0] = 0.0
                        for a in range(s, pk):
                            tmp[0] += T[ra + a] * La[a]
                        Lab[s] = tmp[0] * acc
        for j in range(self.nlev0 if p0 > 1 else 0):
            D = &self.Ldiag[j * p0 * p0]
            for c in range(self.cross_colptr[j], self.cross_colptr[j + 1]):
                k = self.blk_term[self.cross_row[c]]
                pk = self.term_p[k]
                Lab = &self.L21[self.cross_lofs[c]]
                tkv_tm(T + self.tofs[k], pk, &self.V[self.cross_vofs[c]], T0, p0, Lab, tmp)
                for s in range(pk):  # row s: solve L_j x = a (forward substitution)
                    for t in range(p0):
                        acc = Lab[s * p0 + t]
                        for a in range(t):
                            acc = acc - D[t * p0 + a] * Lab[s * p0 + a]
                        Lab[s * p0 + t] = acc / D[t * p0 + t]
        # 3. S = A22 - L21 L21'
        if self.q2 > 0:
            for j in range(self.q2):  # the lower triangle only: LAPACK reads no other part
                memset(&self.S[j, j], 0, (self.q2 - j) * sizeof(double))
            for c in range(self.rest_row.shape[0]):
                ra = self.rest_row[c]
                rb = self.rest_col[c]
                pa = self.term_p[self.blk_term[ra]]
                pb = self.term_p[self.blk_term[rb]]
                tkv_tm(T + self.tofs[self.blk_term[ra]], pa, &self.V[self.rest_vofs[c]],
                        T + self.tofs[self.blk_term[rb]], pb, w, tmp)
                ra = self.blk_start[ra] - self.q1
                rb = self.blk_start[rb] - self.q1
                for s in range(pa):  # lower triangle only (a diagonal block's upper half is
                    for t in range(pb):  # its mirror, which LAPACK does not read)
                        if ra + s >= rb + t:
                            self.S[ra + s, rb + t] += w[s * pb + t]
                        elif ra < rb:  # the internal order put x before y: the transpose is lower
                            self.S[rb + t, ra + s] += w[s * pb + t]
                if ra == rb:
                    for s in range(pa):
                        self.S[ra + s, ra + s] += 1.0
            if p0 == 1:  # S -= L21 L21' (_schur.pxd)
                if schur_scalar(&self.S[0, 0], self.q2, &self.L21[0], &self.cross_pos[0],
                                &self.cross_lofs[0], &self.cross_colptr[0], self.nlev0) != 0:
                    return -1
            else:
                schur_levels(&self.S[0, 0], self.q2, &self.L21[0], &self.cross_pos[0],
                             &self.cross_lofs[0], &self.cross_colptr[0], self.nlev0, p0, &self.gbuf[0])
            n2 = <int> self.q2
            dpotrf(&lo, &n2, &self.S[0, 0], &n2, &info)
            if info != 0:
                return -1
            for s in range(self.q2):
                ld += 2.0 * log(self.S[s, s])
        self.logdet = ld
        return 0

    cdef int _rhs(self, const double* T) noexcept nogil:
        """C = L⁻¹ Λ'Z'W (B = Λ'Z'W in the internal order, then the forward solve)."""
        lambda_t(T, &self.tofs[0], &self.term_p[0], &self.blk_term[0], &self.blk_start[0],
                 self.nblocks, &self.ZtW[0, 0], self.q, self.ncol, &self.Cm[0, 0])
        self._forward(&self.Cm[0, 0], self.ncol, self.q)
        return 0

    cdef void _forward(self, double* U, Py_ssize_t m, Py_ssize_t ldu) noexcept nogil:
        """U <- L⁻¹ U in place, U (q x m, column-major, leading dimension ldu, internal order):
        the first term's blocks and their L21 updates column by column, then one dtrsm."""
        cdef Py_ssize_t j, c, s, a, k, pk, st, p0 = self.p0
        cdef double acc
        cdef double* D
        cdef double* Lab
        cdef double* x
        cdef int n2 = <int> self.q2, nm = <int> m, ld = <int> ldu
        cdef double one = 1.0
        cdef char lo = b'L', no = b'N'
        for k in range(m):  # the first term's rows; the L21 updates touch only the rest
            x = U + k * ldu
            for j in range(self.nlev0):
                D = &self.Ldiag[j * p0 * p0]
                for s in range(p0):
                    acc = x[j * p0 + s]
                    for a in range(s):
                        acc = acc - D[s * p0 + a] * x[j * p0 + a]
                    x[j * p0 + s] = acc / D[s * p0 + s]
        if self.q2 == 0:
            return
        for k in range(m):
            x = U + k * ldu
            for j in range(self.nlev0):
                for c in range(self.cross_colptr[j], self.cross_colptr[j + 1]):
                    Lab = _cross_block(self, c, &pk, &st)
                    for s in range(pk):
                        acc = 0.0
                        for a in range(p0):
                            acc = acc + Lab[s * p0 + a] * x[j * p0 + a]
                        x[st + s] -= acc
        dtrsm(&lo, &lo, &no, &no, &n2, &nm, &one, &self.S[0, 0], &n2, U + self.q1, &ld)

    cdef _load_ztw(self, ZtW):
        np.asarray(self.ZtW)[self.perm_rows] = ZtW

    def _modes(self, r):
        """u = L⁻ᵀ r, back in the global order."""
        return self._solve_lt_internal(r)[self.perm_rows]

    def solve_lt_c(self, j):
        """L⁻ᵀ c_j for column j of C = L⁻¹Λ'Z'[X y] (for j < p: the columns of A⁻¹Λ'Z'X)."""
        if not 0 <= j < self.ncol:
            raise ValueError(f"column {j} of C out of range (C has {self.ncol} columns)")
        return self._solve_lt_internal(self.C[:, j])[self.perm_rows]

    def solve_lt(self, r):
        """u = L⁻ᵀ r (global order), after an ``update``."""
        if len(r) != self.q:
            check_length("r", len(r), self.q)
        x = np.empty(self.q)
        x[self.perm_rows] = r
        return self._solve_lt_internal(x)[self.perm_rows]

    def solve_l(self, r):
        """L⁻¹ r for r (q, or q x m) in global order, after an ``update``; the result is in the
        factor's own row order, like the rows of C (inner products with C's columns are
        meaningful).  Several right-hand sides share one dense triangular solve (dtrsm)."""
        r = np.asarray(r, dtype=np.float64)
        check_length("r", r.shape[0] if r.ndim else -1, self.q)
        one_rhs = r.ndim == 1
        cdef cnp.ndarray[double, ndim=2] U = np.empty((self.q, 1 if one_rhs else r.shape[1]), order="F")
        U[self.perm_rows] = r[:, None] if one_rhs else r
        cdef double[::1, :] u = U
        with nogil:
            self._forward(&u[0, 0], u.shape[1], self.q)
        return U[:, 0] if one_rhs else U

    def _solve_lt_internal(self, r):
        """L⁻ᵀ r for r (q, or q x m) in the factor's own row order; same order out."""
        r = np.asarray(r, dtype=np.float64)
        if r.shape[0] != self.q:
            check_length("r", r.shape[0], self.q)
        cdef cnp.ndarray[double, ndim=2] U = np.array(r.reshape(self.q, -1), order="F", copy=True)
        cdef double[::1, :] u = U
        if U.shape[1] > 0 and self.q > 0:
            with nogil:
                self._solve_lt(&u[0, 0], u.shape[1], self.q)
        return U[:, 0] if r.ndim == 1 else U

    cdef void _solve_lt(self, double* U, Py_ssize_t m, Py_ssize_t ldu) noexcept nogil:
        """U <- L⁻ᵀ U in place, U (q x m, column-major, leading dimension ldu, internal order):
        the dense part by one dtrsm, then the first term's blocks column by column."""
        cdef Py_ssize_t j, c, s, a, pk, st, col, p0 = self.p0
        cdef double acc
        cdef double* D
        cdef double* Lab
        cdef double* u
        cdef int n2 = <int> self.q2, nm = <int> m, ld = <int> ldu
        cdef double one = 1.0
        cdef char lo = b'L', tr = b'T', no = b'N'
        if self.q2 > 0:
            dtrsm(&lo, &lo, &tr, &no, &n2, &nm, &one, &self.S[0, 0], &n2, U + self.q1, &ld)
        for col in range(m):
            u = U + col * ldu
            for j in range(self.nlev0):
                for c in range(self.cross_colptr[j], self.cross_colptr[j + 1]):
                    Lab = _cross_block(self, c, &pk, &st)
                    for a in range(p0):
                        acc = 0.0
                        for s in range(pk):
                            acc = acc + Lab[s * p0 + a] * u[st + s]
                        u[j * p0 + a] -= acc
                D = &self.Ldiag[j * p0 * p0]
                for s in range(p0 - 1, -1, -1):
                    acc = u[j * p0 + s]
                    for a in range(s + 1, p0):
                        acc = acc - D[a * p0 + s] * u[j * p0 + a]
                    u[j * p0 + s] = acc / D[s * p0 + s]

    def solve(self, B):
        """A⁻¹B (u's global order) for a q-vector or q x m matrix, from the factor held now:
        L⁻¹ (``solve_l``, internal order) then L⁻ᵀ, back to the global order."""
        B = np.asarray(B, dtype=np.float64)
        check_length("B (rows)", B.shape[0] if B.ndim else -1, self.q)
        if B.size == 0:
            return np.zeros_like(B)
        cdef cnp.ndarray[double, ndim=2] U = self.solve_l(B.reshape(self.q, -1))
        cdef double[::1, :] u = U
        with nogil:
            self._solve_lt(&u[0, 0], u.shape[1], self.q)
        X = U[self.perm_rows]
        return X[:, 0] if B.ndim == 1 else X

    def schur_inverse(self):
        """S⁻¹ of the dense part (internal order: row i is u's internal row q - q2 + i), from
        the factor held now (``_selinv.schur_inverse``)."""
        from ._selinv import schur_inverse
        return schur_inverse(self)

    def trace_gradient(self, T, overwrite=False, general=False):
        """Per term k, the p_k x p_k matrix whose transpose, doubled, is d log|A| / dT_k, after
        an update (the selected inverse: ``_selinv.trace_gradient``)."""
        from ._selinv import trace_gradient
        if overwrite and self.q2 > 0:
            self.held = False  # S's factor becomes S⁻¹
        return trace_gradient(self, T, overwrite, general)

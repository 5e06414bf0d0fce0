# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Blocked Cholesky for PLS: the first term's block of A is block-diagonal and never fills.

A = [[A11, A21'], [A21, A22]] with A11 = blockdiag(L_j L_j') (one p0 x p0 block per level of
the first term), L21 = A21 L11⁻ᵀ (same block pattern as A21) and the Schur complement
S = A22 - L21 L21' factored densely by LAPACK (it is small or dense in the models where this
kernel is chosen; MixedModels.jl's layout).  Same interface as ``PLSKernel``.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport log, sqrt
from libc.string cimport memset
from scipy.linalg.cython_lapack cimport dpotrf
from scipy.linalg.cython_blas cimport dtrsm, dtrsv

cnp.import_array()


cdef inline void _tkv_tm(const double* Tk, Py_ssize_t pk, const double* V, const double* Tm,
                         Py_ssize_t pm, double* out, double* tmp) noexcept nogil:
    """out (pk x pm, row-major) = Tk' V Tm for lower-triangular column-major templates."""
    cdef Py_ssize_t a, b, s, t
    cdef double acc
    if pk == 1 and pm == 1:
        out[0] = Tk[0] * V[0] * Tm[0]
        return
    for a in range(pk):
        for t in range(pm):
            acc = 0.0
            for b in range(t, pm):
                acc = acc + V[a * pm + b] * Tm[b + t * pm]
            tmp[a * pm + t] = acc
    for s in range(pk):
        for t in range(pm):
            acc = 0.0
            for a in range(s, pk):
                acc = acc + Tk[a + s * pk] * tmp[a * pm + t]
            out[s * pm + t] = acc


cdef inline int _small_chol(double* D, Py_ssize_t p) noexcept nogil:
    """In-place lower Cholesky of a row-major p x p matrix; -1 if not positive definite."""
    cdef Py_ssize_t i, j, k
    cdef double acc
    for j in range(p):
        acc = D[j * p + j]
        for k in range(j):
            acc = acc - D[j * p + k] * D[j * p + k]
        if acc <= 0.0:
            return -1
        D[j * p + j] = sqrt(acc)
        for i in range(j + 1, p):
            acc = D[i * p + j]
            for k in range(j):
                acc = acc - D[i * p + k] * D[j * p + k]
            D[i * p + j] = acc / D[j * p + j]
    return 0


cdef class BlockedKernel:
    """Objective-evaluation kernel: blockwise elimination of the first term, dense rest."""

    cdef Py_ssize_t q, q1, q2, p0, nlev0, ncol, nblocks
    cdef int[::1] term_p, tofs, blk_term, blk_start
    # first-term diagonal pairs, cross pairs grouped by first-term level, rest pairs
    cdef long[::1] diag_vofs, cross_vofs, cross_lofs, rest_vofs
    cdef int[::1] cross_row, cross_colptr, rest_row, rest_col
    cdef double[::1] V, Ldiag, L21
    cdef double[::1, :] S, ZtW
    cdef double[:, ::1] WtW
    cdef readonly cnp.ndarray C
    cdef double[::1, :] Cm
    cdef double[::1] work
    cdef readonly double logdet

    def __init__(self, blocks):
        self.q = blocks.q
        self.ncol = blocks.WtW.shape[0]
        tp = np.asarray(blocks.term_p, dtype=np.int32)
        self.term_p = tp
        self.tofs = np.concatenate([[0], np.cumsum(tp.astype(np.int64) ** 2)[:-1]]).astype(np.int32)
        bt = np.asarray(blocks.blk_term, dtype=np.int32)
        self.blk_term = bt
        self.blk_start = np.asarray(blocks.blk_start, dtype=np.int32)
        self.nblocks = len(bt)
        self.p0 = tp[0]
        self.nlev0 = int(np.sum(bt == 0))
        self.q1 = self.nlev0 * self.p0
        self.q2 = self.q - self.q1
        row = np.asarray(blocks.pair_row)
        col = np.asarray(blocks.pair_col)
        vofs = np.asarray(blocks.pair_vofs[:-1] if len(blocks.pair_vofs) > len(row) else blocks.pair_vofs)
        is_diag0 = (row == col) & (col < self.nlev0)
        is_cross = (row >= self.nlev0) & (col < self.nlev0)
        is_rest = col >= self.nlev0
        if np.any(~(is_diag0 | is_cross | is_rest)):
            raise ValueError("first-term blocks must not co-occur with each other")
        d_idx = np.flatnonzero(is_diag0)
        d_idx = d_idx[np.argsort(col[d_idx])]
        if len(d_idx) != self.nlev0:
            raise ValueError("every first-term level needs a diagonal block")
        self.diag_vofs = vofs[d_idx].astype(np.int64)
        c_idx = np.flatnonzero(is_cross)
        c_idx = c_idx[np.lexsort((row[c_idx], col[c_idx]))]
        self.cross_vofs = vofs[c_idx].astype(np.int64)
        self.cross_row = row[c_idx].astype(np.int32)
        self.cross_colptr = np.concatenate(
            [[0], np.cumsum(np.bincount(col[c_idx], minlength=self.nlev0))]).astype(np.int32)
        sizes = tp[bt[row[c_idx]]].astype(np.int64) * self.p0
        self.cross_lofs = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        r_idx = np.flatnonzero(is_rest)
        self.rest_vofs = vofs[r_idx].astype(np.int64)
        self.rest_row = row[r_idx].astype(np.int32)
        self.rest_col = col[r_idx].astype(np.int32)
        self.V = np.array(blocks.V, dtype=np.float64, order="C", copy=True)
        self.Ldiag = np.zeros(self.nlev0 * self.p0 * self.p0)
        self.L21 = np.zeros(max(int(self.cross_lofs[len(self.cross_lofs) - 1]), 1))
        self.S = np.zeros((max(self.q2, 1), max(self.q2, 1)), order="F")
        self.ZtW = np.array(blocks.ZtW, dtype=np.float64, order="F", copy=True)
        self.WtW = np.array(blocks.WtW, dtype=np.float64, order="C", copy=True)
        self.C = np.zeros((self.q, self.ncol), order="F")
        self.Cm = self.C
        pmax = int(tp.max())
        self.work = np.zeros(3 * pmax * pmax + 2 * pmax)
        self.logdet = np.nan

    @property
    def dense_size(self):
        return self.q2

    cdef int _factor(self, const double* T) noexcept nogil:
        cdef Py_ssize_t j, c, a, b, s, t, k, pk, pa, pb, ra, rb, i
        cdef Py_ssize_t p0 = self.p0
        cdef double* D
        cdef double* Lab
        cdef double* La
        cdef double* Lb
        cdef double* w = &self.work[0]
        cdef double* tmp = w + self.work.shape[0] // 2
        cdef double acc, ld = 0.0
        cdef const double* T0 = T
        cdef int info = 0, n2
        cdef char lo = b'L'
        # 1. diagonal blocks of the first term
        for j in range(self.nlev0):
            D = &self.Ldiag[j * p0 * p0]
            _tkv_tm(T0, p0, &self.V[self.diag_vofs[j]], T0, p0, D, tmp)
            for s in range(p0):
                D[s * p0 + s] += 1.0
            if _small_chol(D, p0) != 0:
                return -1
            for s in range(p0):
                ld += 2.0 * log(D[s * p0 + s])
        # 2. L21 blocks: (T_k' V T0) L_j^{-T}
        for j in range(self.nlev0):
            D = &self.Ldiag[j * p0 * p0]
            for c in range(self.cross_colptr[j], self.cross_colptr[j + 1]):
                k = self.blk_term[self.cross_row[c]]
                pk = self.term_p[k]
                Lab = &self.L21[self.cross_lofs[c]]
                _tkv_tm(T + self.tofs[k], pk, &self.V[self.cross_vofs[c]], T0, p0, Lab, tmp)
                for s in range(pk):  # row s: solve L_j x = a (forward substitution)
                    for t in range(p0):
                        acc = Lab[s * p0 + t]
                        for a in range(t):
                            acc = acc - D[t * p0 + a] * Lab[s * p0 + a]
                        Lab[s * p0 + t] = acc / D[t * p0 + t]
        # 3. S = A22 - L21 L21'
        if self.q2 > 0:
            memset(&self.S[0, 0], 0, self.q2 * self.q2 * sizeof(double))
            for c in range(self.rest_row.shape[0]):
                ra = self.rest_row[c]
                rb = self.rest_col[c]
                pa = self.term_p[self.blk_term[ra]]
                pb = self.term_p[self.blk_term[rb]]
                _tkv_tm(T + self.tofs[self.blk_term[ra]], pa, &self.V[self.rest_vofs[c]],
                        T + self.tofs[self.blk_term[rb]], pb, w, tmp)
                ra = self.blk_start[ra] - self.q1
                rb = self.blk_start[rb] - self.q1
                for s in range(pa):
                    for t in range(pb):
                        self.S[ra + s, rb + t] += w[s * pb + t]
                if ra == rb:
                    for s in range(pa):
                        self.S[ra + s, ra + s] += 1.0
            for j in range(self.nlev0):
                for a in range(self.cross_colptr[j], self.cross_colptr[j + 1]):
                    La = &self.L21[self.cross_lofs[a]]
                    pa = self.term_p[self.blk_term[self.cross_row[a]]]
                    ra = self.blk_start[self.cross_row[a]] - self.q1
                    for b in range(self.cross_colptr[j], a + 1):
                        Lb = &self.L21[self.cross_lofs[b]]
                        pb = self.term_p[self.blk_term[self.cross_row[b]]]
                        rb = self.blk_start[self.cross_row[b]] - self.q1
                        # rows of a are >= rows of b (sorted by row within a column)
                        for s in range(pa):
                            for t in range(pb):
                                acc = 0.0
                                for i in range(p0):
                                    acc = acc + La[s * p0 + i] * Lb[t * p0 + i]
                                self.S[ra + s, rb + t] -= acc
            n2 = <int> self.q2
            dpotrf(&lo, &n2, &self.S[0, 0], &n2, &info)
            if info != 0:
                return -1
            for s in range(self.q2):
                ld += 2.0 * log(self.S[s, s])
        self.logdet = ld
        return 0

    cdef void _rhs(self, const double* T) noexcept nogil:
        """C = L⁻¹ Λ'Z'W, blockwise for the first term, then the dense part."""
        cdef Py_ssize_t blk, s, a, col, k, pk, st, j, c, p0 = self.p0, q = self.q
        cdef const double* Tk
        cdef double* D
        cdef double* Lab
        cdef double acc
        cdef double one = 1.0, mone = -1.0
        cdef int n2, nc, ldc
        cdef char lo = b'L', no = b'N'
        for blk in range(self.nblocks):  # B = Λ'Z'W
            k = self.blk_term[blk]
            pk = self.term_p[k]
            st = self.blk_start[blk]
            Tk = T + self.tofs[k]
            for col in range(self.ncol):
                for s in range(pk):
                    acc = 0.0
                    for a in range(s, pk):
                        acc = acc + Tk[a + s * pk] * self.ZtW[st + a, col]
                    self.Cm[st + s, col] = acc
        for j in range(self.nlev0):  # C1 = L11⁻¹ B1
            D = &self.Ldiag[j * p0 * p0]
            for col in range(self.ncol):
                for s in range(p0):
                    acc = self.Cm[j * p0 + s, col]
                    for a in range(s):
                        acc = acc - D[s * p0 + a] * self.Cm[j * p0 + a, col]
                    self.Cm[j * p0 + s, col] = acc / D[s * p0 + s]
        if self.q2 == 0:
            return
        for j in range(self.nlev0):  # B2 -= L21 C1
            for c in range(self.cross_colptr[j], self.cross_colptr[j + 1]):
                Lab = &self.L21[self.cross_lofs[c]]
                pk = self.term_p[self.blk_term[self.cross_row[c]]]
                st = self.blk_start[self.cross_row[c]]
                for col in range(self.ncol):
                    for s in range(pk):
                        acc = 0.0
                        for a in range(p0):
                            acc = acc + Lab[s * p0 + a] * self.Cm[j * p0 + a, col]
                        self.Cm[st + s, col] -= acc
        n2 = <int> self.q2
        nc = <int> self.ncol
        ldc = <int> q
        dtrsm(&lo, &lo, &no, &no, &n2, &nc, &one, &self.S[0, 0], &n2, &self.Cm[self.q1, 0], &ldc)

    def set_crossprods(self, V, ZtW, WtW):
        """Load new cross-products (same pattern), e.g. reweighted ones in PIRLS."""
        np.copyto(np.asarray(self.V), V)
        np.copyto(np.asarray(self.ZtW), ZtW)
        np.copyto(np.asarray(self.WtW), WtW)

    def update(self, T):
        """Evaluate at the templates T (flat, column-major per term): (log|A|, M)."""
        cdef double[::1] Tv = np.ascontiguousarray(T, dtype=np.float64)
        cdef cnp.ndarray[double, ndim=2] M = np.empty((self.ncol, self.ncol))
        cdef double[:, ::1] Mv = M
        cdef double[::1, :] Cv = self.Cm
        cdef Py_ssize_t i, c1, c2
        cdef double acc
        cdef int rc
        with nogil:
            rc = self._factor(&Tv[0])
            if rc == 0:
                self._rhs(&Tv[0])
                for c1 in range(self.ncol):
                    for c2 in range(c1, self.ncol):
                        acc = 0.0
                        for i in range(self.q):
                            acc = acc + Cv[i, c1] * Cv[i, c2]
                        Mv[c1, c2] = self.WtW[c1, c2] - acc
                        Mv[c2, c1] = Mv[c1, c2]
        if rc != 0:
            return np.inf, None
        return self.logdet, M

    def conditional_modes(self, beta):
        """Spherical random effects u at β from the last update: L'u = c_u - R_ZX β."""
        p = self.ncol - 1
        return self.solve_lt(self.C[:, p] - self.C[:, :p] @ beta)

    def solve_lt(self, r):
        """u = L⁻ᵀ r, after an ``update`` (conditional modes from the last factorisation)."""
        cdef double[::1] u = np.array(r, dtype=np.float64, copy=True)
        cdef Py_ssize_t j, c, s, a, pk, st, p0 = self.p0
        cdef double acc
        cdef double* D
        cdef double* Lab
        cdef int n2 = <int> self.q2, one = 1
        cdef char lo = b'L', tr = b'T', no = b'N'
        with nogil:
            if self.q2 > 0:
                dtrsv(&lo, &tr, &no, &n2, &self.S[0, 0], &n2, &u[self.q1], &one)
            for j in range(self.nlev0):
                for c in range(self.cross_colptr[j], self.cross_colptr[j + 1]):
                    Lab = &self.L21[self.cross_lofs[c]]
                    pk = self.term_p[self.blk_term[self.cross_row[c]]]
                    st = self.blk_start[self.cross_row[c]]
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
        return np.asarray(u)

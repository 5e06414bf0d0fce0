# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Penalised least squares on a CHOLMOD factor: one objective evaluation of an LMM.

Given the templates T_k (from θ), ``update`` writes A = Λ'Z'ZΛ + I into the factor's
values from the stored Z'Z sub-blocks, refactors (symbolic analysis reused), forms
B = Λ'Z'W, solves A X = B and returns log|A| and M = W'W - B'X, the (p+1) x (p+1)
matrix whose Cholesky factor holds R_X, c_β and the penalised residual sum of squares.
Everything after the argument checks runs without the GIL.
"""
import numpy as np
cimport numpy as cnp
from libc.stdlib cimport malloc, free

from ._cholmod cimport SparseCholesky
from ._kernel cimport Kernel
from .cholmod cimport CHOLMOD_A
from ._dense cimport downdate, profiled_result, tkv_tm
from ._checks import check_length, load_crossprods
from ._types cimport i64

cnp.import_array()


cdef void _fill_values(const double* T, const int* tofs, const int* term_p,
                       const int* blk_term, const int* pair_row, const int* pair_col,
                       const i64* pair_vofs, Py_ssize_t npairs, const double* V,
                       const i64* pos, double* values, double* tmp) noexcept nogil:
    """values <- lower(Λ'Z'ZΛ + I) from the Z'Z sub-blocks."""
    cdef Py_ssize_t pr, s, t, k, m, pk, pm
    cdef const double* Tk
    cdef const double* Tm
    cdef const double* Vp
    cdef const i64* pp
    for pr in range(npairs):
        k = blk_term[pair_row[pr]]
        m = blk_term[pair_col[pr]]
        pk = term_p[k]
        pm = term_p[m]
        Vp = V + pair_vofs[pr]
        pp = pos + pair_vofs[pr]
        Tk = T + tofs[k]
        Tm = T + tofs[m]
        tkv_tm(Tk, pk, Vp, Tm, pm, tmp, tmp + pk * pm)  # R = Tk' V Tm into tmp
        for s in range(pk):
            for t in range(pm):
                if pp[s * pm + t] >= 0:  # the lower triangle only
                    values[pp[s * pm + t]] = tmp[s * pm + t] + (
                        1.0 if pair_row[pr] == pair_col[pr] and s == t else 0.0)


cdef void _lambda_t(const double* T, const int* tofs, const int* term_p, const int* blk_term,
                    const int* blk_start, Py_ssize_t nblocks, const double* ZtW,
                    Py_ssize_t q, Py_ssize_t ncol, double* B) noexcept nogil:
    """B <- Λ' Z'W (column-major q x ncol)."""
    cdef Py_ssize_t blk, s, a, c, k, pk, st
    cdef const double* Tk
    cdef double acc
    for blk in range(nblocks):
        k = blk_term[blk]
        pk = term_p[k]
        st = blk_start[blk]
        Tk = T + tofs[k]
        for c in range(ncol):
            for s in range(pk):
                acc = 0.0
                for a in range(s, pk):
                    acc = acc + Tk[a + s * pk] * ZtW[st + a + c * q]
                B[st + s + c * q] = acc


cdef class PLSKernel(Kernel):
    """Objective-evaluation kernel of one LMM; owns its CHOLMOD factor (``Kernel``'s contract)."""

    cdef SparseCholesky chol
    cdef int[::1] term_p, tofs, blk_term, blk_start, pair_row, pair_col
    cdef i64[::1] pair_vofs, pos
    cdef double[::1] V
    cdef double[::1, :] ZtW
    cdef double[:, ::1] WtW
    cdef readonly cnp.ndarray B, X
    cdef double* tmp

    def __cinit__(self):
        self.tmp = NULL

    def __init__(self, blocks, supernodal=None):
        self._layout(blocks.q, blocks.WtW.shape[0],
                     int(np.sum(np.asarray(blocks.term_p, dtype=np.int64) ** 2)))
        self.term_p = np.ascontiguousarray(blocks.term_p, dtype=np.int32)
        self.tofs = np.ascontiguousarray(
            np.concatenate([[0], np.cumsum(blocks.term_p.astype(np.int64) ** 2)[:-1]]), dtype=np.int32)
        self.blk_term = np.ascontiguousarray(blocks.blk_term, dtype=np.int32)
        self.blk_start = np.ascontiguousarray(blocks.blk_start, dtype=np.int32)
        self.pair_row = np.ascontiguousarray(blocks.pair_row, dtype=np.int32)
        self.pair_col = np.ascontiguousarray(blocks.pair_col, dtype=np.int32)
        self.pair_vofs = np.ascontiguousarray(blocks.pair_vofs, dtype=np.int64)
        from ..design.blocks import csc_pattern
        indptr, indices, pos = csc_pattern(blocks)
        self.pos = np.ascontiguousarray(pos, dtype=np.int64)
        self.V = np.array(blocks.V, dtype=np.float64, order="C", copy=True)
        self.ZtW = np.array(blocks.ZtW, dtype=np.float64, order="F", copy=True)
        self.WtW = np.array(blocks.WtW, dtype=np.float64, order="C", copy=True)
        self.chol = SparseCholesky(indptr, indices, blocks.q, supernodal)
        self.B = np.zeros((self.q, self.ncol), order="F")
        self.X = np.zeros((self.q, self.ncol), order="F")
        pmax = int(max(blocks.term_p)) if len(blocks.term_p) else 1
        self.tmp = <double*> malloc(2 * pmax * pmax * sizeof(double))
        if self.tmp == NULL:
            raise MemoryError()

    def __dealloc__(self):
        if self.tmp != NULL:
            free(self.tmp)

    @property
    def factor(self):
        return self.chol

    def template_size(self):
        return self.tsize

    @property
    def logdet(self):
        """log|A| of the factor held now."""
        return self.chol.logdet

    def solve(self, B):
        """A⁻¹B (u's own order) for a q-vector or q x m matrix, from the factor held now."""
        return self.chol.solve(B)

    def conditional_modes(self, beta):
        """Spherical random effects u at β from the last update: u = A⁻¹(Λ'Z'y - Λ'Z'X β)."""
        p = self.ncol - 1
        if len(beta) != p:
            check_length("beta", len(beta), p)
        return self.X[:, p] - self.X[:, :p] @ beta

    def set_crossprods(self, V, ZtW, WtW):
        """Load new cross-products (same pattern), e.g. reweighted ones in PIRLS."""
        load_crossprods((np.asarray(self.V), np.asarray(self.ZtW), np.asarray(self.WtW)), V, ZtW, WtW)
        self.held = False

    def update(self, T):
        """Evaluate at the templates T (flat, column-major per term): (log|A|, M)."""
        cdef double[::1] Tv = np.ascontiguousarray(T, dtype=np.float64)
        if Tv.shape[0] != self.tsize:
            check_length("T", Tv.shape[0], self.tsize)
        cdef double[::1, :] Bv = self.B
        cdef double[::1, :] Xv = self.X
        cdef cnp.ndarray[double, ndim=2] M = np.empty((self.ncol, self.ncol))
        cdef double[:, ::1] Mv = M
        cdef int rc = 0
        cdef double* values = &self.chol.values[0]
        with nogil:
            _fill_values(&Tv[0], &self.tofs[0], &self.term_p[0], &self.blk_term[0],
                         &self.pair_row[0], &self.pair_col[0], &self.pair_vofs[0],
                         self.pair_row.shape[0], &self.V[0], &self.pos[0], values, self.tmp)
            rc = self.chol.refactor()
            if rc == 0:
                _lambda_t(&Tv[0], &self.tofs[0], &self.term_p[0], &self.blk_term[0],
                          &self.blk_start[0], self.blk_term.shape[0], &self.ZtW[0, 0],
                          self.q, self.ncol, &Bv[0, 0])
                rc = self.chol.solve_into(&Bv[0, 0], self.ncol, &Xv[0, 0], CHOLMOD_A)
            if rc == 0:
                downdate(&self.WtW[0, 0], &Bv[0, 0], &Xv[0, 0], self.q, self.ncol, &Mv[0, 0])
            self._hold(&Tv[0], rc == 0)
        if rc != 0:
            return np.inf, None
        return self.chol.logdet, M

    def profiled(self, T):
        """(log|A|, log|R_X|², r²) at T in the kernel's basis, or None where not positive
        definite: ``update`` and the Cholesky of M in one call (the LMM objective's path)."""
        ld, M = self.update(T)
        return profiled_result(ld, M)

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
from ._dense cimport lambda_t, tkv_tm
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


cdef class PLSKernel(Kernel):
    """Objective-evaluation kernel of one LMM; owns its CHOLMOD factor (``Kernel``'s contract)."""

    cdef SparseCholesky chol
    cdef int[::1] term_p, tofs, blk_term, blk_start, pair_row, pair_col
    cdef i64[::1] pair_vofs, pos
    cdef readonly cnp.ndarray B, X  # Λ'Z'W and A⁻¹Λ'Z'W (Kernel's Cm and Xm)
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
        self.C = self.X
        self.Cm, self.Xm = self.B, self.X
        self.Mbuf = np.empty((self.ncol, self.ncol))
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

    def solve(self, B):
        """A⁻¹B (u's own order) for a q-vector or q x m matrix, from the factor held now."""
        return self.chol.solve(B)

    def _modes(self, r):
        """u = A⁻¹(Λ'Z'y - Λ'Z'X β): X holds A⁻¹Λ'Z'[X y] already."""
        return r

    cdef int _factor(self, const double* T) noexcept nogil:
        """A's values from T, then CHOLMOD's numeric refactorisation (analysis kept)."""
        _fill_values(T, &self.tofs[0], &self.term_p[0], &self.blk_term[0],
                     &self.pair_row[0], &self.pair_col[0], &self.pair_vofs[0],
                     self.pair_row.shape[0], &self.V[0], &self.pos[0], &self.chol.values[0], self.tmp)
        cdef int rc = self.chol.refactor()
        self.logdet = self.chol.logdet
        return rc

    cdef int _rhs(self, const double* T) noexcept nogil:
        """B = Λ'Z'W and X = A⁻¹B."""
        lambda_t(T, &self.tofs[0], &self.term_p[0], &self.blk_term[0], &self.blk_start[0],
                 self.blk_term.shape[0], &self.ZtW[0, 0], self.q, self.ncol, &self.Cm[0, 0])
        return self.chol.solve_into(&self.Cm[0, 0], self.ncol, &self.Xm[0, 0], CHOLMOD_A)

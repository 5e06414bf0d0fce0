# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""A CHOLMOD factor of a symmetric positive-definite matrix with a fixed sparsity pattern.

The symbolic analysis (fill-reducing ordering, supernodes) is done once; ``refactor``
recomputes the numeric factor from new values with the GIL released.  The factor owns
its ``cholmod_common`` and frees everything on every path (no leaks on errors).
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport log, INFINITY
from libc.string cimport memcpy
from ._checks import check_length
from ._kernel cimport count_analysis, count_factorization
from ..errors import DataError

from .cholmod cimport (CHOLMOD_A, CHOLMOD_DOUBLE, CHOLMOD_INT, CHOLMOD_L, CHOLMOD_P,
                       CHOLMOD_REAL, CHOLMOD_SUPERNODAL, CHOLMOD_AUTO, CHOLMOD_OK,
                       cholmod_analyze, cholmod_dense, cholmod_factorize,
                       cholmod_finish, cholmod_free_dense, cholmod_free_factor,
                       cholmod_solve, cholmod_start)

cnp.import_array()

SYSTEMS = {"A": CHOLMOD_A, "L": CHOLMOD_L, "P": CHOLMOD_P}


cdef double _logdet(cholmod_factor* L) noexcept nogil:
    """log det of the factored matrix, from an LL' (simplicial or supernodal) or LDL' factor."""
    cdef double s = 0.0
    cdef double* x = <double*> L.x
    cdef int* p
    cdef int* sup
    cdef int* pi
    cdef int* px
    cdef size_t j, k, ncol, nrow
    if L.is_super:
        sup = <int*> L.super
        pi = <int*> L.pi
        px = <int*> L.px
        for k in range(L.nsuper):
            ncol = sup[k + 1] - sup[k]
            nrow = pi[k + 1] - pi[k]
            for j in range(ncol):
                s += 2.0 * log(x[px[k] + j * nrow + j])
    else:
        p = <int*> L.p
        for j in range(L.n):
            if L.is_ll:
                s += 2.0 * log(x[p[j]])
            else:
                s += log(x[p[j]])
    return s


cdef class SparseCholesky:
    """Factor of the n x n SPD matrix whose lower triangle has CSC pattern (indptr, indices)."""

    def __cinit__(self, indptr, indices, int n, supernodal=None):
        self.factor = NULL
        cholmod_start(&self.common)
        self.common.print = 0
        self.common.final_ll = 1
        self.common.quick_return_if_not_posdef = 1
        if supernodal is not None:
            self.common.supernodal = CHOLMOD_SUPERNODAL if supernodal else 0
        self.n = n
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int32)
        self.indices = np.ascontiguousarray(indices, dtype=np.int32)
        if self.indptr.shape[0] != n + 1:
            check_length("indptr", self.indptr.shape[0], n + 1)
        if self.indptr[0] != 0 or self.indptr[n] != self.indices.shape[0]:
            raise DataError("kernel argument 'indptr' must start at 0 and end at len(indices)")
        self.values = np.zeros(self.indices.shape[0], dtype=np.float64)
        for j in range(n):  # identity values so that the analysis sees a valid matrix
            if self.indptr[j + 1] > self.indptr[j]:
                self.values[self.indptr[j]] = 1.0
        self.A.nrow = n
        self.A.ncol = n
        self.A.nzmax = self.indices.shape[0]
        self.A.p = &self.indptr[0]
        self.A.i = &self.indices[0] if self.indices.shape[0] else NULL
        self.A.nz = NULL
        self.A.x = &self.values[0] if self.values.shape[0] else NULL
        self.A.z = NULL
        self.A.stype = -1
        self.A.itype = CHOLMOD_INT
        self.A.xtype = CHOLMOD_REAL
        self.A.dtype = CHOLMOD_DOUBLE
        self.A.sorted = 1
        self.A.packed = 1
        with nogil:
            self.factor = cholmod_analyze(&self.A, &self.common)
        count_analysis()
        if self.factor == NULL:
            raise MemoryError(f"CHOLMOD could not analyse the pattern (status {self.common.status})")
        self.logdet = np.nan

    def __dealloc__(self):
        if self.factor != NULL:
            cholmod_free_factor(&self.factor, &self.common)
        cholmod_finish(&self.common)

    @property
    def nnz(self):
        return self.indices.shape[0]

    @property
    def is_supernodal(self):
        return bool(self.factor.is_super)

    @property
    def values_view(self):
        """The matrix values (lower triangle, CSC order); kernels write into this array."""
        return np.asarray(self.values)

    cdef int refactor(self) noexcept nogil:
        """Numeric factorisation of the current values; 0 on success."""
        count_factorization()
        cdef int ok = cholmod_factorize(&self.A, self.factor, &self.common)
        if not ok or self.common.status != CHOLMOD_OK or self.factor.minor < self.factor.n:
            self.logdet = INFINITY
            return -1
        self.logdet = _logdet(self.factor)
        return 0

    cdef int solve_into(self, double* B, int ncol, double* out, int system) noexcept nogil:
        """out = op^{-1} B for B (n x ncol, column-major); op is A, L or P."""
        cdef cholmod_dense Bd
        cdef cholmod_dense* X
        Bd.nrow = self.n
        Bd.ncol = ncol
        Bd.nzmax = self.n * ncol
        Bd.d = self.n
        Bd.x = B
        Bd.z = NULL
        Bd.xtype = CHOLMOD_REAL
        Bd.dtype = CHOLMOD_DOUBLE
        X = cholmod_solve(system, self.factor, &Bd, &self.common)
        if X == NULL:
            return -1
        memcpy(out, X.x, self.n * ncol * sizeof(double))
        cholmod_free_dense(&X, &self.common)
        return 0

    def factorize(self, values=None):
        """Refactor (after writing new values) and return log det; inf if not positive definite."""
        if values is not None:
            if np.size(values) != self.values.shape[0]:
                check_length("values", np.size(values), self.values.shape[0])
            np.copyto(np.asarray(self.values), values)
        with nogil:
            self.refactor()
        return self.logdet

    def solve(self, B, system="A"):
        """Solve op(X) = B for a dense B (vector or n x k matrix)."""
        cdef cnp.ndarray[double, ndim=2, mode="fortran"] Bf
        cdef cnp.ndarray[double, ndim=2, mode="fortran"] out
        arr = np.asarray(B, dtype=np.float64)
        vec = arr.ndim == 1
        check_length("B (rows)", arr.shape[0] if arr.ndim else -1, self.n)
        Bf = np.asfortranarray(arr.reshape(self.n, -1))
        out = np.empty_like(Bf, order="F")
        cdef int sysc = SYSTEMS[system]
        cdef int rc
        if Bf.shape[1] == 0 or self.n == 0:
            return out.reshape(arr.shape)
        with nogil:
            rc = self.solve_into(&Bf[0, 0], Bf.shape[1], &out[0, 0], sysc)
        if rc != 0:
            raise MemoryError("CHOLMOD solve failed")
        return out.ravel() if vec else out

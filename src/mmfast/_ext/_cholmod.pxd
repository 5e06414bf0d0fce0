from .cholmod cimport cholmod_common, cholmod_factor, cholmod_sparse

cdef class SparseCholesky:
    cdef cholmod_common common
    cdef cholmod_factor* factor
    cdef cholmod_sparse A
    cdef int[::1] indptr
    cdef int[::1] indices
    cdef double[::1] values
    cdef readonly int n
    cdef readonly double logdet
    cdef int refactor(self) noexcept nogil
    cdef int solve_into(self, double* B, int ncol, double* out, int system) noexcept nogil

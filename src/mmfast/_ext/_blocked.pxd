"""The blocked kernel's layout, shared with the modules that work on its factor (_selinv)."""
cimport numpy as cnp
from ._types cimport i64
from ._kernel cimport Kernel


cdef class BlockedKernel(Kernel):  # q, ncol, tsize, logdet, V, ZtW, WtW, Mbuf, C, Cm (= Xm): Kernel's
    cdef Py_ssize_t q1, q2, p0, nlev0, nblocks
    cdef bint scalar  # every term has one column: fast paths without per-element index work
    cdef int[::1] cross_pos  # internal S position of each cross pair's row block (of each
    # L21 entry when the first term is scalar: then entries and pairs differ for vector terms)
    cdef int[::1] term_p, tofs, blk_term, blk_start  # blk_start: the kernel's internal order
    cdef int[::1] nlev  # levels (blocks) per term
    cdef readonly cnp.ndarray perm_rows  # internal row of every global u index
    # first-term diagonal pairs, cross pairs grouped by first-term level, rest pairs
    cdef i64[::1] diag_vofs, cross_vofs, cross_lofs, rest_vofs
    cdef int[::1] cross_row, cross_colptr, rest_row, rest_col
    cdef double[::1] Ldiag, L21
    cdef double[::1, :] S
    cdef double[::1] work, gbuf
    cdef double[::1, :] Sinv

    cdef void _forward(self, double* U, Py_ssize_t m, Py_ssize_t ldu) noexcept nogil
    cdef void _solve_lt(self, double* U, Py_ssize_t m, Py_ssize_t ldu) noexcept nogil

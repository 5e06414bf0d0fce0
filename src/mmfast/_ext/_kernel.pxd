"""The contract every PLS kernel shares (issue 15): its size, the templates its factor holds,
and the factorisation counters.  ``PLSKernel`` (CHOLMOD) and ``BlockedKernel`` derive from
``Kernel``; consumers (variance structures, A⁻¹ blocks, KR, Satterthwaite) read the factor a
fit left through ``factor_at`` / ``solve`` instead of factoring A again."""
from ._types cimport i64

# Process-wide counts of symbolic analyses and numeric factorisations of A (tests assert that
# inference after a fit adds none); plain increments, exact in single-threaded use.
cdef void count_analysis() noexcept nogil
cdef void count_factorization() noexcept nogil


cdef class Kernel:
    cdef readonly Py_ssize_t q, ncol, tsize  # size of u, columns of [X y], length of flat T
    cdef double[::1] Tfit  # the templates the factor holds (valid while `held`)
    cdef bint held

    cdef void _layout(self, Py_ssize_t q, Py_ssize_t ncol, Py_ssize_t tsize)
    cdef void _hold(self, const double* T, bint ok) noexcept nogil

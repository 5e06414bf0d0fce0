"""The contract every PLS kernel shares (issue 15): its size, the templates its factor holds,
and the factorisation counters, and the evaluation shells over the `_factor`/`_rhs` hooks.  ``PLSKernel``,
``NestedKernel`` and ``BlockedKernel`` derive from
``Kernel``; consumers (variance structures, A⁻¹ blocks, KR, Satterthwaite) read the factor a
fit left through ``factor_at`` / ``solve`` instead of factoring A again."""
cimport numpy as cnp
from ._types cimport i64

# Process-wide counts of symbolic analyses and numeric factorisations of A (tests assert that
# inference after a fit adds none); plain increments, exact in single-threaded use.
cdef void count_analysis() noexcept nogil
cdef void count_factorization() noexcept nogil


cdef class Kernel:
    cdef readonly Py_ssize_t q, ncol, tsize  # size of u, columns of [X y], length of flat T
    cdef double[::1] Tfit  # the templates the factor holds (valid while `held`)
    cdef bint held
    cdef readonly double logdet  # log|A| of the last factorisation (inf where it failed)
    cdef double[::1] V  # the Z'WZ sub-blocks
    cdef double[::1, :] ZtW  # Z'W[X y], rows in the kernel's own order
    cdef double[:, ::1] WtW, Mbuf  # [X y]'W[X y]; M of the last ``profiled``
    # after ``_rhs``: M = W'W - Cm'Xm (Xm = A⁻¹Λ'Z'W beside Cm = Λ'Z'W, or both L⁻¹Λ'Z'W)
    cdef double[::1, :] Cm, Xm
    cdef readonly cnp.ndarray C  # Xm as an array: the columns ``conditional_modes`` combines

    cdef void _layout(self, Py_ssize_t q, Py_ssize_t ncol, Py_ssize_t tsize)
    cdef void _hold(self, const double* T, bint ok) noexcept nogil
    # the hooks each kernel implements: factor A at T (sets logdet), then Cm and Xm; 0 or -1
    cdef int _factor(self, const double* T) noexcept nogil
    cdef int _rhs(self, const double* T) noexcept nogil
    cdef int _evaluate(self, const double* T, double* M) noexcept nogil
    cdef _load_ztw(self, ZtW)

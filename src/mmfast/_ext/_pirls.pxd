# The one PIRLS loop (_pirls.pyx) and the small interface its kernels implement: a kernel
# subclasses PirlsLoop and overrides the per-iteration linear algebra (the hooks below); the loop,
# step halving, convergence tests, warm starts, failure handling and the Laplace deviance are the
# base class's, once.  SingleTerm (_single_term.pyx) is the one-term specialisation, KernelLoop
# (_kernel_loop.pyx) runs a Python kernel (model/pirls_kernel.py) for several terms.
cimport cython
from ._glm cimport GlmResponse
from ._types cimport i64


cdef inline double laplace_deviance(double ldL2, double sqrL, double m2ll) noexcept nogil:
    """lme4's Laplace deviance at the conditional mode (``glmResp::Laplace``): -2 log p(y | u)
    + |u|² + log|L|², L the factor of A = Λ'Z'WZΛ + I at the working weights.  Its one assembly."""
    return ldL2 + sqrL + m2ll


cdef double[::1] carve(double[::1] buf, Py_ssize_t* pos, Py_ssize_t n)


cdef class PirlsLoop:
    cdef GlmResponse resp
    cdef readonly Py_ssize_t n, nu, px, ntheta
    cdef double[:, ::1] X, Binv
    cdef double[::1] off, u, beta, eta, base, T, w, zt, uold, bold, ugood, bgood, beta0, eta_start
    cdef readonly double ldL2, ldRX2, sqrL, dev, m2ll, agq_dev
    cdef readonly int fresh, nagq, last_rc
    cdef readonly i64 evaluations, iterations, failures
    cdef public double tol, ftol
    cdef public int maxit, newton

    cdef void _init_state(self, GlmResponse resp, X, off, eta0, Py_ssize_t nu, Py_ssize_t nT,
                          Py_ssize_t ntheta)
    # --- the kernel's hooks: the linear algebra of one iteration ---------------------------
    cdef void _set_theta(self, const double* th) noexcept nogil
    cdef void _set_beta(self, const double* delta) noexcept nogil
    cdef void _make_base(self) noexcept nogil
    cdef void _linpred(self) noexcept nogil
    cdef double _sqru(self) noexcept nogil
    cdef int _solve(self, int joint) noexcept nogil
    cdef int _refactor(self) noexcept nogil
    cdef double _agq(self) noexcept nogil
    cdef int _gradient(self, double[::1] g) except -1
    # --- the loop (final: direct calls, inlined by the C compiler) --------------------------
    @cython.final
    cdef void _working(self, int joint) noexcept nogil
    @cython.final
    cdef double _pdev(self) noexcept nogil
    @cython.final
    cdef int _pirls(self, int joint) noexcept nogil
    @cython.final
    cdef void _save(self) noexcept nogil
    @cython.final
    cdef void _restore(self, int joint) noexcept nogil
    @cython.final
    cdef double _value(self, int rc, int joint) noexcept nogil
    @cython.final
    cdef double _laplace_at(self, const double* x) noexcept nogil

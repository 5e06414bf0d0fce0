# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""``KernelLoop``: the one PIRLS loop (``PirlsLoop``, _pirls.pyx) running a Python kernel
(model/pirls_kernel.py, several random-effects terms on CHOLMOD or the blocked factorisation).
Its hooks take the GIL and call the kernel; the loop itself is the base class's."""
import numpy as np
cimport numpy as cnp

from ._checks import check_length
from ._glm cimport GlmResponse
from ._pirls cimport PirlsLoop
from ._types cimport i64

cnp.import_array()


cdef class KernelLoop(PirlsLoop):
    """The loop over a Python kernel (``model.pirls_kernel.PirlsKernel``: several terms on
    the LMM's CHOLMOD or blocked factorisation), which reads and writes this loop's state
    arrays in place (``state()``).  Each hook takes the GIL; per iteration that is noise
    beside the sparse factorisation."""
    cdef readonly object kernel
    cdef const i64[::1] tidx
    cdef object np_u, np_beta, np_base, np_off, np_X, np_Binv
    cdef object error
    cdef i64[::1] sc_theta, sc_start, sc_stop  # scalar terms: θ index, u range (warm starts)
    cdef int keep_u

    def __init__(self, GlmResponse resp, X, off, eta0, Py_ssize_t nu, Py_ssize_t nT, tidx,
                 Py_ssize_t ntheta):
        self._init_state(resp, X, off, eta0, nu, nT, ntheta)
        self.tidx = np.ascontiguousarray(tidx, dtype=np.int64)
        if self.tidx.shape[0] != ntheta:
            check_length("tidx", self.tidx.shape[0], ntheta)
        self.np_u, self.np_beta = np.asarray(self.u), np.asarray(self.beta)[:self.px]
        self.np_base, self.np_off, self.np_X = np.asarray(self.base), np.asarray(self.off), np.asarray(self.X)
        self.np_Binv = np.eye(self.px)
        self.error = None
        self.sc_theta = self.sc_start = self.sc_stop = np.zeros(0, dtype=np.int64)
        self.keep_u = 0

    def warm_start_in_b(self, theta_index, start, stop):
        """Scalar terms (θ entry ``theta_index[r]`` scales u[start[r]:stop[r]]): a new θ
        rescales the warm start u by θ_old / θ_new, so that b = Λu, which moves little with θ,
        is kept rather than u (fewer PIRLS iterations after BOBYQA's long steps in θ).  Not
        after ``set_state``: a state set by the caller is the start it asked for."""
        ti, st, sp = (np.ascontiguousarray(a, dtype=np.int64) for a in (theta_index, start, stop))
        if not (len(ti) == len(st) == len(sp)):
            check_length("start/stop", min(len(st), len(sp)), len(ti))
        if len(ti) and (ti.min() < 0 or ti.max() >= self.ntheta or st.min() < 0 or sp.max() > self.nu):
            raise IndexError("warm_start_in_b: θ index or u range out of bounds")
        self.sc_theta, self.sc_start, self.sc_stop = ti, st, sp

    def set_state(self, u, beta):
        PirlsLoop.set_state(self, u, beta)
        self.keep_u = 1

    def bind(self, kernel):
        """Attach the kernel (which holds views of ``state()``)."""
        self.kernel = kernel

    def state(self) -> dict:
        """Views of the loop's arrays the kernel reads and writes."""
        return {"u": self.np_u, "beta": self.np_beta, "eta": np.asarray(self.eta),
                "base": self.np_base, "off": self.np_off, "T": np.asarray(self.T),
                "w": np.asarray(self.w), "zt": np.asarray(self.zt), "X": self.np_X}

    def __getattr__(self, name):  # the kernel's: layout, tidx, frame, q, rx_matrix ...
        if name == "kernel" or self.kernel is None:
            raise AttributeError(name)
        return getattr(self.kernel, name)

    cdef void _set_theta(self, const double* th) noexcept nogil:
        cdef Py_ssize_t i, r, j
        cdef double old, f
        if not self.fresh and not self.keep_u:  # warm start: keep b = Λu (``warm_start_in_b``)
            for r in range(self.sc_theta.shape[0]):
                old = self.T[self.tidx[self.sc_theta[r]]]
                if old > 0.0 and th[self.sc_theta[r]] > 0.0 and old != th[self.sc_theta[r]]:
                    f = old / th[self.sc_theta[r]]
                    for j in range(self.sc_start[r], self.sc_stop[r]):
                        self.u[j] = self.u[j] * f
        self.keep_u = 0
        for i in range(self.ntheta):
            self.T[self.tidx[i]] = th[i]

    # β, base and |u|² by numpy here, not the base class's loops: BLAS sums in another order,
    # and these several-term fits are kept identical to the bit to the former Python engine
    # (with the loops, grouseticks' last-bit differences take 79 evaluations instead of 73).
    cdef void _set_beta(self, const double* delta) noexcept nogil:
        with gil:
            d = np.asarray(<double[:self.px]> <double*> delta)
            self.np_beta[:] = np.asarray(self.beta0)[:self.px] + self.np_Binv @ d

    cdef void _make_base(self) noexcept nogil:
        with gil:
            np.add(self.np_off, self.np_X @ self.np_beta, out=self.np_base)

    cdef void _linpred(self) noexcept nogil:
        with gil:
            self.kernel.linpred()

    cdef double _sqru(self) noexcept nogil:
        with gil:
            return float(self.np_u @ self.np_u)

    cdef int _solve(self, int joint) noexcept nogil:
        with gil:
            try:
                res = self.kernel.solve(bool(joint))
            except Exception as e:  # re-raised by the caller (``_check``)
                self.error = e
                return -1
            if res is None:
                return -1
            self.ldL2 = res[0]
            if res[1] is not None:
                self.ldRX2 = res[1]
            return 0

    cdef int _refactor(self) noexcept nogil:
        with gil:
            try:
                ld = self.kernel.refactor()
            except Exception as e:
                self.error = e
                return -1
            if ld is None:
                return -1
            self.ldL2 = ld
            return 0

    cdef int _gradient(self, double[::1] g) except -1:
        try:
            np.asarray(g)[:] = self.kernel.gradient(self.resp, self.np_Binv)
        except np.linalg.LinAlgError:  # a numerically singular Schur complement
            np.asarray(g)[:] = np.nan
        return 0

    def _check(self, val):
        if self.error is not None:
            e, self.error = self.error, None
            raise e
        return val

    def laplace(self, x, grad=None):
        return self._check(PirlsLoop.laplace(self, x))

    def joint(self, theta, grad=None):
        return self._check(PirlsLoop.joint(self, theta))

    @property
    def has_gradient(self):
        """The kernel's analytic gradient applies (``laplace_gradient.supports``)."""
        return self.kernel.has_gradient and self.nagq == 1

    def set_transform(self, beta0, Binv):
        PirlsLoop.set_transform(self, beta0, Binv)
        self.np_Binv = np.array(Binv, dtype=float).reshape(self.px, self.px)

    def rx_matrix(self):
        """X'WX - X'WZΛ A⁻¹ Λ'Z'WX at the current eta (the kernel's)."""
        self._working(1)
        return self.kernel.rx_matrix()

    def ainv_blocks(self):
        """Diagonal blocks of A⁻¹ per term at the current eta (the kernel's)."""
        self._working(0)
        return self.kernel.ainv_blocks()

    def set_agq(self, z, w):
        raise ValueError("adaptive Gauss-Hermite quadrature needs a single scalar random-effects term")

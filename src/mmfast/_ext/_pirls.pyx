# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The one PIRLS loop for GLMMs: the conditional mode u of the random effects at (θ, β).

``PirlsLoop`` owns the state (u, β, η, warm starts, counters), the iteration (step halving,
convergence and stall tests, the Newton shortcut for canonical links), the failure handling and
the Laplace/AGQ objective; a kernel subclass supplies one iteration's linear algebra through the
hooks declared in _pirls.pxd.  ``SingleTerm`` (_single_term.pyx) is the one-term kernel, all in
Cython; ``KernelLoop`` (_kernel_loop.pyx) calls a Python kernel (model/pirls_kernel.py) for several
terms."""
import numpy as np
cimport numpy as cnp
from libc.math cimport fabs, INFINITY, NAN, isfinite
from libc.string cimport memcpy

from ._glm cimport GlmResponse
from ._checks import check_length
from ._types cimport i64

# PIRLS tuning constants: their one definition, read by the loop below (tests read them through
# ``pirls_constants()``; tests/test_pirls_constants.py).
cdef double PIRLS_TOL = 1e-10     # max |step| in u (relative in β): not lme4's tolPwrss criterion
cdef int PIRLS_MAXIT = 100        # iterations per evaluation (lme4's glmer maxit = 100L)
cdef int MAX_HALVINGS = 30        # step halvings per iteration (lme4's maxstephalfit is 20)
cdef double HALVING_SLACK = 1e-10  # relative pdev increase tolerated without halving (roundoff)
cdef double STALL_STEP = 1e-3     # with ftol: a step at least this large that the deviance ignores
cdef double NEWTON_STEP = 1e-6    # canonical link: the last step is skipped once |step| < this
cdef double NEWTON_RATIO = 1e-11  # ... and |step|³ < this * |previous step|² (quadratic rate)


def pirls_constants() -> dict:
    """The PIRLS tuning constants above (one definition, for tests and documentation)."""
    return {"tol": PIRLS_TOL, "maxit": PIRLS_MAXIT, "max_halvings": MAX_HALVINGS,
            "halving_slack": HALVING_SLACK, "stall_step": STALL_STEP,
            "newton_step": NEWTON_STEP, "newton_ratio": NEWTON_RATIO}

cnp.import_array()


cdef double[::1] carve(double[::1] buf, Py_ssize_t* pos, Py_ssize_t n):
    """The next n values of ``buf`` from ``pos`` (advanced): a kernel's many small work vectors
    from one allocation (a millisecond fit builds its kernel every time)."""
    cdef double[::1] v = buf[pos[0]:pos[0] + n]
    pos[0] += n
    return v


cdef class PirlsLoop:
    """PIRLS for a GLMM over a kernel (a subclass): Laplace, nAGQ = 0 and AGQ objectives.

    State: u (spherical), beta, eta.  Each evaluation starts from the last u (warm start).
    ``laplace(x)`` takes x = [theta, delta] with beta = beta0 + Binv delta (whitened fixed
    effects, ``set_transform``); ``joint(theta)`` estimates beta inside PIRLS (lme4's nAGQ = 0).
    """

    cdef void _init_state(self, GlmResponse resp, X, off, eta0, Py_ssize_t nu, Py_ssize_t nT,
                          Py_ssize_t ntheta):
        """Allocate the state for n rows, nu spherical effects, a template vector of nT."""
        self.resp = resp
        self.n = resp.n
        Xa = np.array(X, dtype=np.float64, order="C", copy=True)  # the length read off the copy
        if Xa.ndim == 2 and Xa.shape[0] != self.n:
            check_length("X (rows)", Xa.shape[0], self.n)
        self.X = Xa.reshape(self.n, -1)
        self.off = np.array(off, dtype=np.float64, order="C", copy=True)
        if self.off.shape[0] != self.n:
            check_length("off", self.off.shape[0], self.n)
        if len(eta0) != self.n:
            check_length("eta0", len(eta0), self.n)
        cdef Py_ssize_t px = self.X.shape[1], pb = max(px, 1), pos = 0
        self.px, self.nu, self.ntheta = px, nu, ntheta
        cdef double[::1] buf = np.zeros(3 * nu + 4 * pb + nT + 2 * self.n)  # the zeroed vectors
        self.u, self.uold, self.ugood = carve(buf, &pos, nu), carve(buf, &pos, nu), carve(buf, &pos, nu)
        self.beta, self.bold, self.bgood = carve(buf, &pos, pb), carve(buf, &pos, pb), carve(buf, &pos, pb)
        self.beta0 = carve(buf, &pos, pb)
        self.T = carve(buf, &pos, nT)
        self.w, self.zt = carve(buf, &pos, self.n), carve(buf, &pos, self.n)
        self.Binv = np.eye(pb)
        self.eta = np.array(eta0, dtype=np.float64, copy=True)
        self.eta_start = np.array(eta0, dtype=np.float64, copy=True)
        self.base = np.array(self.off, copy=True)
        self.nagq = 1
        self.fresh = 1
        self.tol = PIRLS_TOL
        self.ftol = 0.0
        self.maxit = PIRLS_MAXIT

    # --- hooks (the kernel's linear algebra); defaults are the dense per-row loops ---------
    cdef void _set_theta(self, const double* th) noexcept nogil:
        """θ -> the template vector T."""
        pass

    cdef void _set_beta(self, const double* delta) noexcept nogil:
        """beta = beta0 + Binv delta."""
        cdef Py_ssize_t k, l
        cdef double acc
        for k in range(self.px):
            acc = self.beta0[k]
            for l in range(self.px):
                acc = acc + self.Binv[k, l] * delta[l]
            self.beta[k] = acc

    cdef void _make_base(self) noexcept nogil:
        """base = offset + X beta."""
        cdef Py_ssize_t i, k
        cdef double acc
        for i in range(self.n):
            acc = self.off[i]
            for k in range(self.px):
                acc = acc + self.X[i, k] * self.beta[k]
            self.base[i] = acc

    cdef void _linpred(self) noexcept nogil:
        """eta = base + ZΛu."""
        pass

    cdef double _sqru(self) noexcept nogil:
        """|u|²."""
        cdef Py_ssize_t i
        cdef double s = 0.0
        for i in range(self.nu):
            s += self.u[i] * self.u[i]
        return s

    cdef int _solve(self, int joint) noexcept nogil:
        """One penalised weighted least-squares solve at the working weights w, zt: new u (and
        beta if joint), ldL2 (and ldRX2); 0, or -1 if not positive definite."""
        return -1

    cdef int _refactor(self) noexcept nogil:
        """Factor A at the working weights for ldL2 only, u kept (the Newton shortcut)."""
        cdef int rc
        memcpy(&self.uold[0], &self.u[0], self.nu * sizeof(double))
        rc = self._solve(0)
        memcpy(&self.u[0], &self.uold[0], self.nu * sizeof(double))
        return rc

    cdef double _agq(self) noexcept nogil:
        """The AGQ deviance at the converged mode (kernels that support it)."""
        return NAN

    cdef int _gradient(self, double[::1] g) except -1:
        """d/dx of the Laplace deviance at the converged state into g."""
        raise ValueError("no analytic gradient for this model")

    # --- the loop -------------------------------------------------------------------------
    cdef void _working(self, int joint) noexcept nogil:
        """Working weights and response at eta (mu, mu' from the last set_eta); joint: relative
        to the offset (beta is re-estimated), else to base = offset + X beta."""
        if joint:
            self.resp.working(&self.eta[0], &self.off[0], &self.w[0], &self.zt[0])
        else:
            self.resp.working(&self.eta[0], &self.base[0], &self.w[0], &self.zt[0])

    cdef double _pdev(self) noexcept nogil:
        """The penalised deviance at the current u (and base): eta, mu and dev follow."""
        self._linpred()
        self.dev = self.resp.set_eta(&self.eta[0], 1)
        return self.dev + self._sqru()

    cdef int _pirls(self, int joint) noexcept nogil:
        """Iterate to convergence (max |step| < tol) with step halving; 0 on success, -1 (not
        positive definite), -2 (halving failed), -3 (no convergence within maxit).

        With ``ftol`` > 0 (a fallback, off by default) a step larger than STALL_STEP that
        changes the penalised deviance by less than ftol (relative) ends the iteration, and is
        not taken (small steps near a mode change it little too: those go on): where
        the mode is at infinity (separation: a fixed effect diverges inside PIRLS) the
        iteration stops at a finite point and warm starts do not drift further out."""
        cdef double pdev_old, pdev, dmax, d, slack, prev = -1.0
        cdef int it, k, fresh = self.fresh
        cdef Py_ssize_t i, nu = self.nu, px = self.px if joint else 0
        pdev_old = INFINITY  # as lme4: no step halving in the first iteration
        if not fresh:
            if px:  # beta may have been restored after a failure: base must follow it
                self._make_base()
            self._linpred()
        if self.ftol > 0.0 and not fresh:
            pdev_old = self.resp.set_eta(&self.eta[0], 1) + self._sqru()
        else:
            self.resp.set_eta(&self.eta[0], 0)
        for it in range(self.maxit):
            self.iterations += 1
            memcpy(&self.uold[0], &self.u[0], nu * sizeof(double))
            if px:
                memcpy(&self.bold[0], &self.beta[0], px * sizeof(double))
            self._working(joint)
            if self._solve(joint) != 0:
                return -1
            if px:
                self._make_base()
            pdev = self._pdev()
            k = 0  # halve only on a real increase: a roundoff-level one would stall the iteration
            slack = HALVING_SLACK * (1.0 + fabs(pdev_old)) if isfinite(pdev_old) else 0.0
            while not (pdev <= pdev_old + slack) and k < MAX_HALVINGS:
                for i in range(nu):
                    self.u[i] = 0.5 * (self.uold[i] + self.u[i])
                if px:
                    for i in range(px):
                        self.beta[i] = 0.5 * (self.bold[i] + self.beta[i])
                    self._make_base()
                pdev = self._pdev()
                k += 1
            if not (pdev <= pdev_old + slack):
                return -2
            dmax = 0.0
            for i in range(nu):
                d = fabs(self.u[i] - self.uold[i])
                if d > dmax:
                    dmax = d
            for i in range(px):
                d = fabs(self.beta[i] - self.bold[i]) / (1.0 + fabs(self.beta[i]))
                if d > dmax:
                    dmax = d
            # stalled: a large step that leaves the deviance where it was (a diverging β)
            if (self.ftol > 0.0 and dmax > STALL_STEP
                    and fabs(pdev_old - pdev) <= self.ftol * (1.0 + fabs(pdev))):
                memcpy(&self.u[0], &self.uold[0], nu * sizeof(double))
                if px:
                    memcpy(&self.beta[0], &self.bold[0], px * sizeof(double))
                    self._make_base()
                self._pdev()
                self.fresh = 0
                return 0
            pdev_old = pdev
            if k == 0 and not (fresh and it == 0):
                if dmax < self.tol:
                    self.fresh = 0
                    return 0
                # Canonical link (Newton): the error after this step is about dmax³/prev²; when
                # negligible, refactor at u for log|A| instead of one more full step.
                if (self.newton and not joint and prev > 0.0 and dmax < NEWTON_STEP
                        and dmax * dmax * dmax < NEWTON_RATIO * prev * prev):
                    self._working(0)
                    if self._refactor() != 0:
                        return -1
                    self.fresh = 0
                    return 0
            prev = dmax if k == 0 else -1.0
        self.fresh = 0
        return -3

    cdef void _save(self) noexcept nogil:
        memcpy(&self.ugood[0], &self.u[0], self.nu * sizeof(double))
        memcpy(&self.bgood[0], &self.beta[0], self.beta.shape[0] * sizeof(double))

    cdef void _restore(self, int joint) noexcept nogil:
        memcpy(&self.u[0], &self.ugood[0], self.nu * sizeof(double))
        memcpy(&self.beta[0], &self.bgood[0], self.beta.shape[0] * sizeof(double))
        if joint and self.px:
            self._make_base()

    cdef double _value(self, int rc, int joint) noexcept nogil:
        """The criterion after PIRLS returned rc: inf (state restored) when it failed, else
        the Laplace deviance or (nAGQ > 1) the AGQ one; rc -3 (not converged within the
        iterations) still gives a value, counted as a failure."""
        self.last_rc = rc
        if rc == -1 or rc == -2:
            self.failures += 1
            self._restore(joint)
            if self.fresh:  # eta is the failed iterate's: back to the starting one
                memcpy(&self.eta[0], &self.eta_start[0], self.n * sizeof(double))
            return INFINITY
        if rc == -3:
            self.failures += 1
        self.sqrL = self._sqru()
        self.m2ll = self.resp.m2loglik(self.dev)
        if not joint and self.nagq > 1:
            self.agq_dev = self._agq()
            return self.agq_dev + self.m2ll - self.dev
        return laplace_deviance(self.ldL2, self.sqrL, self.m2ll)

    # --- the objectives -------------------------------------------------------------------
    def laplace(self, x, grad=None):
        """Laplace deviance at x = [theta, delta] (the proper AGQ one if nAGQ > 1)."""
        cdef const double[::1] xv = np.ascontiguousarray(x, dtype=np.float64)
        cdef double val
        if xv.shape[0] != self.ntheta + self.px:
            check_length("x", xv.shape[0], self.ntheta + self.px)
        with nogil:
            val = self._laplace_at(&xv[0])
        return val

    cdef double _laplace_at(self, const double* x) noexcept nogil:
        """``laplace`` at x (ntheta + px values, the caller's length check)."""
        self.evaluations += 1
        self._save()
        self._set_theta(x)
        if self.px:
            self._set_beta(&x[self.ntheta])
        self._make_base()
        return self._value(self._pirls(0), 0)

    def joint(self, theta, grad=None):
        """lme4's nAGQ = 0 deviance at theta: beta and u from PIRLS jointly."""
        cdef const double[::1] tv = np.ascontiguousarray(theta, dtype=np.float64)
        cdef double val
        if tv.shape[0] != self.ntheta:
            check_length("theta", tv.shape[0], self.ntheta)
        with nogil:
            self.evaluations += 1
            self._save()
            if self.ntheta:
                self._set_theta(&tv[0])
            val = self._value(self._pirls(1), 1)
        return val

    def laplace_grad(self, x, double[::1] grad):
        """``laplace(x)``, with its gradient written into ``grad`` (needs ``has_gradient``;
        left untouched when the value is not finite)."""
        if grad.shape[0] != self.ntheta + self.px:
            check_length("grad", grad.shape[0], self.ntheta + self.px)
        if not self.has_gradient:
            raise ValueError("no analytic gradient for this model")
        cdef double val = self.laplace(x)
        if isfinite(val):
            self._gradient(grad)
        return val

    @property
    def has_gradient(self):
        return False

    # --- state access ---------------------------------------------------------------------
    @property
    def u_(self):
        return np.array(self.u, copy=True)

    @property
    def beta_(self):
        return np.array(self.beta[:self.px], copy=True)

    @property
    def eta_(self):
        return np.array(self.eta, copy=True)

    @property
    def weights_(self):
        return np.array(self.w, copy=True)

    def set_state(self, u, beta):
        """Set u and beta (eta follows at the next evaluation); typed copies, as the Hessian
        check calls it before each of its evaluations."""
        cdef const double[::1] uv = np.ascontiguousarray(u, dtype=np.float64)
        cdef const double[::1] bv
        if uv.shape[0] != self.nu:
            check_length("u", uv.shape[0], self.nu)
        if self.nu:
            memcpy(&self.u[0], &uv[0], self.nu * sizeof(double))
        if self.px:
            bv = np.ascontiguousarray(beta, dtype=np.float64)
            if bv.shape[0] != self.px:
                check_length("beta", bv.shape[0], self.px)
            memcpy(&self.beta[0], &bv[0], self.px * sizeof(double))
        self.fresh = 0

    def reset(self, GlmResponse resp, eta0):
        """A new response on the same design (a refit): u = 0, beta = 0, eta = eta0, counters
        zeroed, as a new engine would start; the transform and quadrature rule are kept."""
        cdef const double[::1] e = np.ascontiguousarray(eta0, dtype=np.float64)
        if resp.n != self.n:
            check_length("response", resp.n, self.n)
        if e.shape[0] != self.n:
            check_length("eta0", e.shape[0], self.n)
        self.resp = resp
        self.eta_start[:] = e
        self.restart()
        self.evaluations = self.iterations = self.failures = 0
        self.last_rc = 0

    def restart(self):
        """Back to the starting state (u = 0, beta = 0, the starting eta), counters kept."""
        self.eta[:] = self.eta_start
        self.base[:] = self.off
        self.u[:] = 0.0
        self.beta[:] = 0.0
        self.fresh = 1

    def set_transform(self, beta0, Binv):
        """beta = beta0 + Binv delta in ``laplace``."""
        if self.px:
            if len(beta0) != self.px:
                check_length("beta0", len(beta0), self.px)
            if np.size(Binv) != self.px * self.px:
                check_length("Binv", np.size(Binv), self.px * self.px)
            np.asarray(self.beta0)[:self.px] = np.asarray(beta0, dtype=np.float64)
            self.Binv = np.array(Binv, dtype=np.float64, order="C").reshape(self.px, self.px)


# --- the finite-difference Hessian of the Laplace deviance (model/pirls.py's fd_hessian) --------
cdef double _fd_eval(object eng, PirlsLoop loop, double[::1] xx, double[::1] ustart,
                     double[::1] beta, double[::1] uout) except? -1.0:
    """laplace(xx) from u = ustart, β = beta (``set_state``), its mode into uout: by the loop's
    own methods (``loop``), else (a wrapper or a Python kernel) through the engine's."""
    cdef double val
    cdef Py_ssize_t nu = ustart.shape[0], px = beta.shape[0]
    if loop is None:
        eng.set_state(np.asarray(ustart), np.asarray(beta))
        val = eng.laplace(np.array(xx))
        np.asarray(uout)[:] = eng.u_
        return val
    if nu:
        memcpy(&loop.u[0], &ustart[0], nu * sizeof(double))
    if px:
        memcpy(&loop.beta[0], &beta[0], px * sizeof(double))
    loop.fresh = 0
    val = loop._laplace_at(&xx[0])
    if nu:
        memcpy(&uout[0], &loop.u[0], nu * sizeof(double))
    return val


def fd_hessian_core(eng, x, double fx, idx, h):
    """Central differences of ``eng.laplace`` at x (value fx) over the coordinates ``idx`` with
    steps ``h``: (gradient, Hessian), the algorithm ``model.pirls.fd_hessian`` documents (n² + n
    evaluations, each warm-started from the linear extrapolation of the modes already found; the
    state (u, β) restored at the end).  A loop whose ``laplace``/``set_state`` are PirlsLoop's
    own is driven directly, any other engine through its Python methods (same values)."""
    cdef const double[::1] xv = np.ascontiguousarray(x, dtype=np.float64)
    cdef const i64[::1] iv = np.ascontiguousarray(idx, dtype=np.int64)
    cdef const double[::1] hv = np.ascontiguousarray(h, dtype=np.float64)
    cdef Py_ssize_t m = iv.shape[0], nx = xv.shape[0], k, a, b, j
    if hv.shape[0] != m:
        check_length("h", hv.shape[0], m)
    cdef PirlsLoop loop = None
    if (isinstance(eng, PirlsLoop) and type(eng).laplace is PirlsLoop.laplace
            and type(eng).set_state is PirlsLoop.set_state):
        loop = eng
        if nx != loop.ntheta + loop.px:
            check_length("x", nx, loop.ntheta + loop.px)
    cdef double[::1] beta = np.array(eng.beta_, dtype=np.float64)
    cdef double[::1] u0 = np.array(eng.u_, dtype=np.float64)
    cdef Py_ssize_t nu = u0.shape[0]
    cdef double[:, ::1] up = np.empty((m, nu)), um = np.empty((m, nu))
    cdef double[::1] us = np.empty(nu), junk = np.empty(nu), xx = np.empty(nx)
    cdef double[::1] fp = np.empty(m), fm = np.empty(m), g = np.empty(m)
    H_arr = np.empty((m, m))
    cdef double[:, ::1] H = H_arr
    cdef double fpp, fmm, num
    for k in range(m):
        for j in range(nx):
            xx[j] = xv[j] + (hv[k] if j == iv[k] else 0.0)
        fp[k] = _fd_eval(eng, loop, xx, u0, beta, up[k])
        for j in range(nx):
            xx[j] = xv[j] - (hv[k] if j == iv[k] else 0.0)
        for j in range(nu):
            us[j] = 2.0 * u0[j] - up[k, j]
        fm[k] = _fd_eval(eng, loop, xx, us, beta, um[k])
    for k in range(m):
        H[k, k] = (fp[k] - 2.0 * fx + fm[k]) / (hv[k] * hv[k])
    for a in range(m):
        for b in range(a):
            for j in range(nx):
                xx[j] = xv[j] + (hv[a] if j == iv[a] else (hv[b] if j == iv[b] else 0.0))
            for j in range(nu):
                us[j] = up[a, j] + up[b, j] - u0[j]
            fpp = _fd_eval(eng, loop, xx, us, beta, junk)
            for j in range(nx):
                xx[j] = xv[j] - (hv[a] if j == iv[a] else (hv[b] if j == iv[b] else 0.0))
            for j in range(nu):
                us[j] = um[a, j] + um[b, j] - u0[j]
            fmm = _fd_eval(eng, loop, xx, us, beta, junk)
            num = fpp - fp[a] - fp[b] + 2.0 * fx - fm[a] - fm[b] + fmm
            H[a, b] = num / (2.0 * hv[a] * hv[b])
            H[b, a] = H[a, b]
    eng.set_state(np.asarray(u0), np.asarray(beta))
    for k in range(m):
        g[k] = (fp[k] - fm[k]) / (2.0 * hv[k])
    return np.asarray(g), H_arr

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The whole PIRLS for a GLMM with one random-effects term, where A = Λ'Z'WZΛ + I is block
diagonal (one p x p block per level): an objective evaluation is a single call, warm-started
from the last u, including adaptive Gauss-Hermite quadrature for a scalar term."""
import numpy as np
cimport numpy as cnp
from libc.math cimport exp, log, log1p, expm1, sqrt, erfc, atan, fabs, lgamma, INFINITY, NAN, isfinite
from libc.string cimport memset, memcpy

from ._glm cimport GlmResponse, _devres, _linkinv, BINOMIAL, POISSON, LOGIT, LOG
from ._dense cimport small_chol
from ._scalar_laplace cimport agq_deviance, laplace_gradient
from ._checks import check_length
from ..errors import DataError
from ._types cimport i64

# PIRLS tuning constants: their one definition.  SingleTerm reads them here, model/pirls.py's
# KernelPIRLS through ``pirls_constants()``; tests/test_pirls_constants.py checks both sides.
cdef double PIRLS_TOL = 1e-10     # max |step| in u (relative in β): not lme4's tolPwrss criterion
cdef int PIRLS_MAXIT = 100        # iterations per evaluation (lme4's glmer maxit = 100L)
cdef int MAX_HALVINGS = 30        # step halvings per iteration (lme4's maxstephalfit is 20)
cdef double HALVING_SLACK = 1e-10  # relative pdev increase tolerated without halving (roundoff)
cdef double STALL_STEP = 1e-3     # with ftol: a step at least this large that the deviance ignores
cdef double NEWTON_STEP = 1e-6    # canonical link: the last step is skipped once |step| < this
cdef double NEWTON_RATIO = 1e-11  # ... and |step|³ < this * |previous step|² (quadratic rate)


def pirls_constants() -> dict:
    """The PIRLS tuning constants above, for the Python engine (one definition for both)."""
    return {"tol": PIRLS_TOL, "maxit": PIRLS_MAXIT, "max_halvings": MAX_HALVINGS,
            "halving_slack": HALVING_SLACK, "stall_step": STALL_STEP,
            "newton_step": NEWTON_STEP, "newton_ratio": NEWTON_RATIO}

cnp.import_array()


cdef class SingleTerm:
    """PIRLS, Laplace and adaptive Gauss-Hermite deviances of a GLMM with one random-effects term.

    State: u (nlev x p, spherical), beta, eta.  Each evaluation starts from the last u
    (warm start).  ``laplace(x)`` takes x = [theta, delta] with beta = beta0 + Binv delta
    (whitened fixed effects, ``set_transform``); ``joint(theta)`` estimates beta inside PIRLS
    (lme4's nAGQ = 0 stage).
    """

    cdef GlmResponse resp
    cdef readonly Py_ssize_t n, p, nlev, px, ntheta
    cdef int[::1] codes
    cdef double[:, ::1] Zx, X
    cdef double[::1] off, u, beta, eta, base, T, w, zt, G, L, h, H, C, cv, XtWX, XtWz, M, Mraw, mv
    cdef double[::1] uold, bold, ugood, bgood, tmp, beta0, gsum, mult, eta_start
    cdef double[:, ::1] Binv
    cdef double[::1] agq_z, agq_w
    cdef readonly double ldL2, ldRX2, sqrL, dev, m2ll, agq_dev
    cdef readonly int fresh, nagq, last_rc
    cdef readonly i64 evaluations, iterations, failures
    cdef public double tol, ftol
    cdef public int maxit, newton

    def __init__(self, GlmResponse resp, codes, Zx, X, off, eta0, int ntheta):
        self.resp = resp
        self.codes = np.array(codes, dtype=np.int32, order="C", copy=True)
        if np.ndim(X) == 2:
            if np.shape(X)[0] != self.codes.shape[0]:
                check_length("X (rows)", np.shape(X)[0], self.codes.shape[0])
        self.Zx = np.array(Zx, dtype=np.float64, order="C", copy=True)
        self.X = np.array(X, dtype=np.float64, order="C", copy=True).reshape(len(self.codes), -1)
        self.off = np.array(off, dtype=np.float64, order="C", copy=True)
        self.n = self.codes.shape[0]
        self.p = self.Zx.shape[1]
        self.px = self.X.shape[1]
        self.nlev = int(np.max(codes)) + 1 if self.n else 0
        self.ntheta = ntheta
        if self.Zx.shape[0] != self.n:
            check_length("Zx (rows)", self.Zx.shape[0], self.n)
        if self.off.shape[0] != self.n:
            check_length("off", self.off.shape[0], self.n)
        if len(eta0) != self.n:
            check_length("eta0", len(eta0), self.n)
        if resp.n != self.n:
            check_length("response", resp.n, self.n)
        if self.n and np.min(codes) < 0:
            raise DataError("kernel argument 'codes' has a negative level code")
        cdef Py_ssize_t p = self.p, px = self.px, nl = self.nlev
        self.u = np.zeros(nl * p)
        self.uold = np.zeros(nl * p)
        self.ugood = np.zeros(nl * p)
        self.beta = np.zeros(max(px, 1))
        self.bold = np.zeros(max(px, 1))
        self.bgood = np.zeros(max(px, 1))
        self.beta0 = np.zeros(max(px, 1))
        self.Binv = np.eye(max(px, 1))
        self.eta = np.array(eta0, dtype=np.float64, copy=True)
        self.eta_start = np.array(eta0, dtype=np.float64, copy=True)
        self.base = np.array(off, dtype=np.float64, copy=True)
        self.T = np.eye(p).ravel()
        self.w = np.zeros(self.n)
        self.zt = np.zeros(self.n)
        self.G = np.zeros(nl * p * p)
        self.L = np.zeros(nl * p * p)
        self.h = np.zeros(nl * p)
        self.cv = np.zeros(nl * p)
        self.H = np.zeros(max(nl * p * px, 1))
        self.C = np.zeros(max(nl * p * px, 1))
        self.XtWX = np.zeros(max(px * px, 1))
        self.M = np.zeros(max(px * px, 1))
        self.Mraw = np.zeros(max(px * px, 1))
        self.XtWz = np.zeros(max(px, 1))
        self.mv = np.zeros(max(px, 1))
        self.tmp = np.zeros(p * p + 2 * p + 2)
        self.gsum = np.zeros(max(nl, 1))
        self.mult = np.zeros(max(nl, 1))
        self.agq_z = np.zeros(1)
        self.agq_w = np.ones(1)
        self.nagq = 1
        self.fresh = 1
        self.tol = PIRLS_TOL
        self.ftol = 0.0
        self.maxit = PIRLS_MAXIT

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

    def factor_blocks(self):
        """The per-level Cholesky factors L_j of A_j = T'G_jT + I (levels, p, p), last solve."""
        return np.array(self.L, copy=True).reshape(self.nlev, self.p, self.p)

    def set_state(self, u, beta):
        """Set u and beta (eta follows at the next evaluation)."""
        if len(u) != self.u.shape[0]:
            check_length("u", len(u), self.u.shape[0])
        check_length("beta", len(beta) if self.px else self.px, self.px)
        np.asarray(self.u)[:] = np.asarray(u, dtype=np.float64)
        if self.px:
            np.asarray(self.beta)[:self.px] = np.asarray(beta, dtype=np.float64)
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
        self.eta[:] = e
        self.eta_start[:] = e
        self.base[:] = self.off
        self.u[:] = 0.0
        self.beta[:] = 0.0
        self.fresh = 1
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
            self.Binv = np.ascontiguousarray(Binv, dtype=np.float64).reshape(self.px, self.px)

    def set_agq(self, z, w):
        """Gauss-Hermite nodes and weights for the standard normal (weights sum to 1)."""
        if len(w) != len(z):
            check_length("w", len(w), len(z))
        if len(z) == 0:
            raise DataError("kernel argument 'z' is empty (at least one quadrature node)")
        self.agq_z = np.ascontiguousarray(z, dtype=np.float64)
        self.agq_w = np.ascontiguousarray(w, dtype=np.float64)
        self.nagq = len(z)

    # --- internals ------------------------------------------------------------------------
    cdef void _set_theta(self, const double* th) noexcept nogil:
        cdef Py_ssize_t i, j, k = 0, p = self.p
        for j in range(p):
            for i in range(p):
                if i >= j:
                    self.T[i + j * p] = th[k]
                    k += 1
                else:
                    self.T[i + j * p] = 0.0

    cdef void _make_base(self) noexcept nogil:
        cdef Py_ssize_t i, k
        cdef double acc
        for i in range(self.n):
            acc = self.off[i]
            for k in range(self.px):
                acc = acc + self.X[i, k] * self.beta[k]
            self.base[i] = acc

    cdef void _linpred(self) noexcept nogil:
        """eta = base + Z T u (per level b_j = T u_j)."""
        cdef Py_ssize_t i, j, s, t, p = self.p
        cdef double acc, bs
        cdef double* b = &self.tmp[0]
        if p == 1:
            for i in range(self.n):
                self.eta[i] = self.base[i] + self.Zx[i, 0] * self.T[0] * self.u[self.codes[i]]
            return
        for i in range(self.n):
            j = self.codes[i]
            acc = self.base[i]
            for s in range(p):
                bs = 0.0
                for t in range(s + 1):
                    bs = bs + self.T[s + t * p] * self.u[j * p + t]
                acc = acc + self.Zx[i, s] * bs
            self.eta[i] = acc

    cdef double _sqru(self) noexcept nogil:
        cdef Py_ssize_t i
        cdef double s = 0.0
        for i in range(self.nlev * self.p):
            s += self.u[i] * self.u[i]
        return s

    cdef int _solve(self, int joint) noexcept nogil:
        """One penalised weighted least-squares solve at the current eta: new u (and beta)."""
        cdef Py_ssize_t i, j, s, t, a, k, l, p = self.p, nl = self.nlev
        cdef Py_ssize_t px = self.px if joint else 0
        cdef double wi, xs, acc, ld = 0.0, ldx = 0.0
        cdef double* Gj
        cdef double* Lj
        cdef double* tmp = &self.tmp[0]
        cdef double* T = &self.T[0]
        if joint:  # mu, mu' at eta are stored by the last set_eta
            self.resp.working(&self.eta[0], &self.off[0], &self.w[0], &self.zt[0])
        else:
            self.resp.working(&self.eta[0], &self.base[0], &self.w[0], &self.zt[0])
        memset(&self.G[0], 0, nl * p * p * sizeof(double))
        memset(&self.h[0], 0, nl * p * sizeof(double))
        if px:
            memset(&self.H[0], 0, nl * p * px * sizeof(double))
            memset(&self.XtWX[0], 0, px * px * sizeof(double))
            memset(&self.XtWz[0], 0, px * sizeof(double))
        for i in range(self.n):
            wi = self.w[i]
            if wi == 0.0:
                continue
            j = self.codes[i]
            for s in range(p):
                xs = wi * self.Zx[i, s]
                self.h[j * p + s] += xs * self.zt[i]
                for t in range(p):
                    self.G[(j * p + s) * p + t] += xs * self.Zx[i, t]
                for k in range(px):
                    self.H[(j * p + s) * px + k] += xs * self.X[i, k]
            for k in range(px):
                xs = wi * self.X[i, k]
                self.XtWz[k] += xs * self.zt[i]
                for l in range(k + 1):
                    self.XtWX[k * px + l] += xs * self.X[i, l]
        for j in range(nl):
            Gj = &self.G[j * p * p]
            Lj = &self.L[j * p * p]
            if p == 1:
                Lj[0] = sqrt(T[0] * Gj[0] * T[0] + 1.0)
            else:
                for a in range(p):  # tmp = G_j T
                    for t in range(p):
                        acc = 0.0
                        for k in range(t, p):
                            acc = acc + Gj[a * p + k] * T[k + t * p]
                        tmp[a * p + t] = acc
                for s in range(p):  # L_j <- T' tmp + I
                    for t in range(p):
                        acc = 0.0
                        for a in range(s, p):
                            acc = acc + T[a + s * p] * tmp[a * p + t]
                        Lj[s * p + t] = acc + (1.0 if s == t else 0.0)
                if small_chol(Lj, p) != 0:
                    return -1
            for s in range(p):
                ld += 2.0 * log(Lj[s * p + s])
            # c_j = L_j^{-1} T' h_j ; C_j = L_j^{-1} T' H_j
            for s in range(p):
                acc = 0.0
                for a in range(s, p):
                    acc = acc + T[a + s * p] * self.h[j * p + a]
                for a in range(s):
                    acc = acc - Lj[s * p + a] * self.cv[j * p + a]
                self.cv[j * p + s] = acc / Lj[s * p + s]
            for k in range(px):
                for s in range(p):
                    acc = 0.0
                    for a in range(s, p):
                        acc = acc + T[a + s * p] * self.H[(j * p + a) * px + k]
                    for a in range(s):
                        acc = acc - Lj[s * p + a] * self.C[(j * p + a) * px + k]
                    self.C[(j * p + s) * px + k] = acc / Lj[s * p + s]
        self.ldL2 = ld
        if px:
            for k in range(px):  # M = X'WX - sum C_j'C_j (lower), mv = X'Wz - sum C_j'c_j
                for l in range(k + 1):
                    acc = self.XtWX[k * px + l]
                    for i in range(nl * p):
                        acc = acc - self.C[i * px + k] * self.C[i * px + l]
                    self.M[k * px + l] = acc
                    self.Mraw[k * px + l] = acc
                    self.Mraw[l * px + k] = acc
                acc = self.XtWz[k]
                for i in range(nl * p):
                    acc = acc - self.C[i * px + k] * self.cv[i]
                self.mv[k] = acc
            if small_chol(&self.M[0], px) != 0:
                return -1
            for k in range(px):
                ldx += 2.0 * log(self.M[k * px + k])
            self.ldRX2 = ldx
            for k in range(px):  # forward then backward solve: beta = M^{-1} mv
                acc = self.mv[k]
                for l in range(k):
                    acc = acc - self.M[k * px + l] * self.beta[l]
                self.beta[k] = acc / self.M[k * px + k]
            for k in range(px - 1, -1, -1):
                acc = self.beta[k]
                for l in range(k + 1, px):
                    acc = acc - self.M[l * px + k] * self.beta[l]
                self.beta[k] = acc / self.M[k * px + k]
            for i in range(nl * p):  # r = c - C beta
                acc = self.cv[i]
                for k in range(px):
                    acc = acc - self.C[i * px + k] * self.beta[k]
                self.cv[i] = acc
        for j in range(nl):  # u_j = L_j^{-T} r_j
            Lj = &self.L[j * p * p]
            for s in range(p - 1, -1, -1):
                acc = self.cv[j * p + s]
                for a in range(s + 1, p):
                    acc = acc - Lj[a * p + s] * self.u[j * p + a]
                self.u[j * p + s] = acc / Lj[s * p + s]
        return 0

    cdef int _pirls(self, int joint) noexcept nogil:
        """Iterate to convergence (max |step| < tol) with step halving; 0 on success.

        With ``ftol`` > 0 (a fallback, off by default) a step larger than STALL_STEP that
        changes the penalised deviance by less than ftol (relative) ends the iteration, and is
        not taken (small steps near a mode change it little too: those go on): where
        the mode is at infinity (separation: a fixed effect diverges inside PIRLS) the
        iteration stops at a finite point and warm starts do not drift further out."""
        cdef double pdev_old, pdev, dmax, d, slack, prev = -1.0
        cdef int it, k, fresh = self.fresh
        cdef Py_ssize_t i, nu = self.nlev * self.p, px = self.px if joint else 0
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
            if self._solve(joint) != 0:
                return -1
            if px:
                self._make_base()
            self._linpred()
            self.dev = self.resp.set_eta(&self.eta[0], 1)
            pdev = self.dev + self._sqru()
            k = 0  # halve only on a real increase: a roundoff-level one would stall the iteration
            slack = HALVING_SLACK * (1.0 + fabs(pdev_old)) if isfinite(pdev_old) else 0.0
            while not (pdev <= pdev_old + slack) and k < MAX_HALVINGS:
                for i in range(nu):
                    self.u[i] = 0.5 * (self.uold[i] + self.u[i])
                if px:
                    for i in range(px):
                        self.beta[i] = 0.5 * (self.bold[i] + self.beta[i])
                    self._make_base()
                self._linpred()
                self.dev = self.resp.set_eta(&self.eta[0], 1)
                pdev = self.dev + self._sqru()
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
                self._linpred()
                self.dev = self.resp.set_eta(&self.eta[0], 1)
                self.fresh = 0
                self.sqrL = self._sqru()
                self.m2ll = self.resp.m2loglik(self.dev)
                return 0
            pdev_old = pdev
            if k == 0 and not (fresh and it == 0):
                if dmax < self.tol:
                    self.fresh = 0
                    self.sqrL = self._sqru()
                    self.m2ll = self.resp.m2loglik(self.dev)
                    return 0
                # Canonical link (Newton): the error after this step is about dmax³/prev²; when
                # negligible, refactor at u for log|A| instead of one more full step.
                if (self.newton and not joint and prev > 0.0 and dmax < NEWTON_STEP
                        and dmax * dmax * dmax < NEWTON_RATIO * prev * prev):
                    memcpy(&self.uold[0], &self.u[0], nu * sizeof(double))
                    if self._solve(0) != 0:
                        return -1
                    memcpy(&self.u[0], &self.uold[0], nu * sizeof(double))
                    self.fresh = 0
                    self.sqrL = self._sqru()
                    self.m2ll = self.resp.m2loglik(self.dev)
                    return 0
            prev = dmax if k == 0 else -1.0
        return -3

    cdef double _agq(self) noexcept nogil:
        """lme4's AGQ deviance at the converged mode (scalar term): _scalar_laplace's."""
        return agq_deviance(self.n, self.nlev, self.nagq, &self.codes[0], &self.eta[0],
                            &self.base[0], &self.Zx[0, 0], self.Zx.shape[1], self.T[0],
                            &self.u[0], &self.L[0], &self.agq_z[0], &self.agq_w[0],
                            self.resp.fam, self.resp.link, &self.resp.y[0], &self.resp.pw[0],
                            &self.gsum[0], &self.mult[0], &self.h[0], &self.cv[0]) + self.ldL2

    # --- objectives -----------------------------------------------------------------------
    cdef void _save(self) noexcept nogil:
        memcpy(&self.ugood[0], &self.u[0], self.nlev * self.p * sizeof(double))
        memcpy(&self.bgood[0], &self.beta[0], self.beta.shape[0] * sizeof(double))

    cdef void _restore(self) noexcept nogil:
        memcpy(&self.u[0], &self.ugood[0], self.nlev * self.p * sizeof(double))
        memcpy(&self.beta[0], &self.bgood[0], self.beta.shape[0] * sizeof(double))

    cdef double _value(self, int rc, int use_agq) noexcept nogil:
        """The criterion after PIRLS returned rc: inf (state restored) when it failed, else
        -2 log p(y|u) + |u|² + log|L|² (Laplace) or the AGQ deviance; rc -3 (not converged
        within the iterations) still gives a value, counted as a failure."""
        self.last_rc = rc
        if rc == -1 or rc == -2:
            self.failures += 1
            self._restore()
            if self.fresh:  # eta is the failed iterate's: back to the starting one
                memcpy(&self.eta[0], &self.eta_start[0], self.n * sizeof(double))
            return INFINITY
        if rc == -3:
            self.failures += 1
            self.sqrL = self._sqru()
            self.m2ll = self.resp.m2loglik(self.dev)
        if use_agq and self.nagq > 1:
            self.agq_dev = self._agq()
            return self.agq_dev + self.m2ll - self.dev
        return self.ldL2 + self.sqrL + self.m2ll

    def laplace(self, x, grad=None):
        """Laplace deviance at x = [theta, delta] (lme4's, or the proper AGQ one if nAGQ > 1)."""
        cdef const double[::1] xv = np.ascontiguousarray(x, dtype=np.float64)
        cdef Py_ssize_t k, l, nth = self.ntheta, px = self.px
        cdef double acc, val
        if xv.shape[0] != nth + px:
            check_length("x", xv.shape[0], nth + px)
        with nogil:
            self.evaluations += 1
            self._save()
            self._set_theta(&xv[0])
            for k in range(px):
                acc = self.beta0[k]
                for l in range(px):
                    acc = acc + self.Binv[k, l] * xv[nth + l]
                self.beta[k] = acc
            self._make_base()
            val = self._value(self._pirls(0), 1)
        return val

    @property
    def has_gradient(self):
        """``laplace_grad`` applies: a scalar term and a canonical link (binomial-logit,
        Poisson-log), where d w / d eta is simple and u*'s derivatives have a closed form."""
        return self.p == 1 and self.nagq == 1 and (
            (self.resp.fam == BINOMIAL and self.resp.link == LOGIT)
            or (self.resp.fam == POISSON and self.resp.link == LOG))

    cdef void _gradient(self, double* g) noexcept nogil:
        """d/dx of the Laplace deviance at the converged mode: _scalar_laplace's."""
        laplace_gradient(self.n, self.nlev, self.px, &self.codes[0], &self.Zx[0, 0],
                         self.Zx.shape[1], &self.X[0, 0], self.X.shape[1], &self.Binv[0, 0],
                         self.Binv.shape[1], self.T[0], &self.u[0],
                         self.resp.fam == BINOMIAL, &self.resp.y[0], &self.resp.pw[0],
                         &self.resp.mu[0], &self.G[0], &self.h[0], &self.cv[0], &self.H[0],
                         &self.C[0], &self.mv[0], g)

    def laplace_grad(self, x, double[::1] grad):
        """``laplace(x)``, with its gradient written into ``grad`` (needs ``has_gradient``;
        left untouched when the value is not finite)."""
        if grad.shape[0] != 1 + self.px:
            check_length("grad", grad.shape[0], 1 + self.px)
        if not self.has_gradient:
            raise ValueError("no analytic gradient for this model")
        cdef double val = self.laplace(x)
        if isfinite(val):
            with nogil:
                self._gradient(&grad[0])
        return val

    def joint(self, theta, grad=None):
        """lme4's nAGQ = 0 deviance at theta: beta and u from PIRLS jointly."""
        cdef const double[::1] tv = np.ascontiguousarray(theta, dtype=np.float64)
        cdef double val
        if tv.shape[0] != self.ntheta:
            check_length("theta", tv.shape[0], self.ntheta)
        with nogil:
            self.evaluations += 1
            self._save()
            self._set_theta(&tv[0])
            val = self._value(self._pirls(1), 0)
        return val

    def rx_matrix(self):
        """X'WX - X'WZΛ A⁻¹ Λ'Z'WX at the current eta (R_X'R_X; lme4's RX-based vcov)."""
        cdef int rc
        if self.px == 0:
            return np.zeros((0, 0))
        self._save()
        with nogil:
            rc = self._solve(1)
            self._restore()
        if rc != 0:
            raise FloatingPointError("the fixed-effects cross-product is not positive definite")
        return np.array(self.Mraw[:self.px * self.px], copy=True).reshape(self.px, self.px)


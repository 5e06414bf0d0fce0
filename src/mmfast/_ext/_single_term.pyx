# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The one-term PIRLS kernel: with one random-effects term A = Λ'Z'WZΛ + I is block diagonal
(one p x p block per level), so an iteration's linear algebra is a pass over the rows and a small
Cholesky per level, in Cython; the loop is ``PirlsLoop``'s (_pirls.pyx).  Adaptive Gauss-Hermite
quadrature and the analytic gradient (scalar term) are functions of the converged state
(_scalar_laplace.pxd)."""
import numpy as np
cimport numpy as cnp
from libc.math cimport log, sqrt
from libc.string cimport memset

from ._glm cimport GlmResponse, BINOMIAL, POISSON, LOGIT, LOG
from ._dense cimport small_chol
from ._pirls cimport PirlsLoop, carve
from ._scalar_laplace cimport agq_deviance, laplace_gradient
from ._checks import check_length
from ._codes cimport code_range
from ._types cimport i64
from ..errors import DataError

cnp.import_array()


cdef class SingleTerm(PirlsLoop):
    """The PIRLS kernel of a GLMM with one random-effects term (``PirlsLoop``'s interface)."""

    cdef readonly Py_ssize_t p, nlev
    cdef int[::1] codes
    cdef double[:, ::1] Zx
    cdef double[::1] G, L, h, H, C, cv, XtWX, XtWz, M, Mraw, mv, tmp, gsum, mult
    cdef double[::1] agq_z, agq_w

    def __init__(self, GlmResponse resp, codes, Zx, X, off, eta0, int ntheta):
        self.codes = np.array(codes, dtype=np.int32, order="C", copy=True)
        cdef Py_ssize_t n = self.codes.shape[0]
        if resp.n != n:
            check_length("response", resp.n, n)
        self.Zx = np.array(Zx, dtype=np.float64, order="C", copy=True)
        if self.Zx.shape[0] != n:
            check_length("Zx (rows)", self.Zx.shape[0], n)
        cdef i64 lo, hi
        code_range(self.codes, &lo, &hi)
        if n and lo < 0:
            raise DataError("kernel argument 'codes' has a negative level code")
        cdef Py_ssize_t p = self.Zx.shape[1], nl = hi + 1 if n else 0
        self.p, self.nlev = p, nl
        self._init_state(resp, X, off, eta0, nl * p, p * p, ntheta)
        cdef Py_ssize_t px = self.px, pos = 0
        cdef Py_ssize_t npp = nl * p * p, nbx = max(nl * p * px, 1), pp = max(px * px, 1)
        cdef Py_ssize_t p1 = max(px, 1), nl1 = max(nl, 1), nt = p * p + 2 * p + 2
        cdef double[::1] buf = np.zeros(2 * npp + 2 * nl * p + 2 * nbx + 3 * pp + 2 * p1 + nt + 2 * nl1)
        self.T = np.eye(p).ravel()
        self.G, self.L = carve(buf, &pos, npp), carve(buf, &pos, npp)
        self.h, self.cv = carve(buf, &pos, nl * p), carve(buf, &pos, nl * p)
        self.H, self.C = carve(buf, &pos, nbx), carve(buf, &pos, nbx)
        self.XtWX, self.M, self.Mraw = carve(buf, &pos, pp), carve(buf, &pos, pp), carve(buf, &pos, pp)
        self.XtWz, self.mv = carve(buf, &pos, p1), carve(buf, &pos, p1)
        self.tmp = carve(buf, &pos, nt)
        self.gsum, self.mult = carve(buf, &pos, nl1), carve(buf, &pos, nl1)
        self.agq_z = np.zeros(1)
        self.agq_w = np.ones(1)

    def factor_blocks(self):
        """The per-level Cholesky factors L_j of A_j = T'G_jT + I (levels, p, p), last solve."""
        return np.array(self.L, copy=True).reshape(self.nlev, self.p, self.p)

    def set_agq(self, z, w):
        """Gauss-Hermite nodes and weights for the standard normal (weights sum to 1)."""
        if len(w) != len(z):
            check_length("w", len(w), len(z))
        if len(z) == 0:
            raise DataError("kernel argument 'z' is empty (at least one quadrature node)")
        self.agq_z = np.ascontiguousarray(z, dtype=np.float64)
        self.agq_w = np.ascontiguousarray(w, dtype=np.float64)
        self.nagq = len(z)

    # --- the hooks -------------------------------------------------------------------------
    cdef void _set_theta(self, const double* th) noexcept nogil:
        cdef Py_ssize_t i, j, k = 0, p = self.p
        for j in range(p):
            for i in range(p):
                if i >= j:
                    self.T[i + j * p] = th[k]
                    k += 1
                else:
                    self.T[i + j * p] = 0.0

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

    cdef int _solve(self, int joint) noexcept nogil:
        """One penalised weighted least-squares solve at the working weights: new u (and beta),
        the factors L_j per level, ldL2 (and ldRX2)."""
        cdef Py_ssize_t i, j, s, t, a, k, l, p = self.p, nl = self.nlev
        cdef Py_ssize_t px = self.px if joint else 0
        cdef double wi, xs, acc, ld = 0.0, ldx = 0.0
        cdef double* Gj
        cdef double* Lj
        cdef double* tmp = &self.tmp[0]
        cdef double* T = &self.T[0]
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

    cdef double _agq(self) noexcept nogil:
        """lme4's AGQ deviance at the converged mode (scalar term): _scalar_laplace's."""
        return agq_deviance(self.n, self.nlev, self.nagq, &self.codes[0], &self.eta[0],
                            &self.base[0], &self.Zx[0, 0], self.Zx.shape[1], self.T[0],
                            &self.u[0], &self.L[0], &self.agq_z[0], &self.agq_w[0],
                            self.resp.fam, self.resp.link, &self.resp.y[0], &self.resp.pw[0],
                            &self.gsum[0], &self.mult[0], &self.h[0], &self.cv[0],
                            self.resp.disp) + self.ldL2

    @property
    def has_gradient(self):
        """``laplace_grad`` applies: a scalar term and a canonical link (binomial-logit,
        Poisson-log), where d w / d eta is simple and u*'s derivatives have a closed form."""
        return self.p == 1 and self.nagq == 1 and (
            (self.resp.fam == BINOMIAL and self.resp.link == LOGIT)
            or (self.resp.fam == POISSON and self.resp.link == LOG))

    cdef int _gradient(self, double[::1] g) except -1:
        """d/dx of the Laplace deviance at the converged mode: _scalar_laplace's."""
        with nogil:
            laplace_gradient(self.n, self.nlev, self.px, &self.codes[0], &self.Zx[0, 0],
                             self.Zx.shape[1], &self.X[0, 0], self.X.shape[1], &self.Binv[0, 0],
                             self.Binv.shape[1], self.T[0], &self.u[0],
                             self.resp.fam == BINOMIAL, &self.resp.y[0], &self.resp.pw[0],
                             &self.resp.mu[0], &self.G[0], &self.h[0], &self.cv[0], &self.H[0],
                             &self.C[0], &self.mv[0], &g[0])
        return 0

    def rx_matrix(self):
        """X'WX - X'WZΛ A⁻¹ Λ'Z'WX at the current eta (R_X'R_X; lme4's RX-based vcov)."""
        cdef int rc
        if self.px == 0:
            return np.zeros((0, 0))
        self._save()
        with nogil:
            self._working(1)
            rc = self._solve(1)
            self._restore(0)
        if rc != 0:
            raise FloatingPointError("the fixed-effects cross-product is not positive definite")
        return np.array(self.Mraw[:self.px * self.px], copy=True).reshape(self.px, self.px)


# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Per-row work of penalised iteratively reweighted least squares (PIRLS) for GLMMs.

* ``GlmResponse``: mu, working weights w = pw mu'^2 / V(mu), working response, deviance
  residuals and -2 log p(y | mu) for the families/links of ``mmfast.families`` (selected by
  integer codes, with lme4's clamping), all without the GIL.
* ``Crossprods``: for the general (several-term) path, Z'WZ as the block structure's
  sub-blocks (from its ``row_pair`` table), Z'W[X z] and [X z]'W[X z] reweighted in one pass
  over the rows, and the linear predictor from u; the factorisation itself is the LMM kernel's.
* ``SingleTerm``: the whole PIRLS for a model with one random-effects term, where
  A = Λ'Z'WZΛ + I is block diagonal (one p x p block per level): an objective evaluation is a
  single call (warm-started from the last u), including adaptive Gauss-Hermite quadrature
  for a scalar term.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport exp, log, log1p, expm1, sqrt, erfc, atan, fabs, lgamma, INFINITY, NAN, isfinite
from libc.string cimport memset, memcpy

cnp.import_array()

cdef double EPS = 2.220446049250313e-16
cdef double SQRT1_2 = 0.7071067811865476
cdef double INV_SQRT2PI = 0.3989422804014327
cdef double PI = 3.141592653589793

# link and family codes (mmfast.families)
cdef enum:
    LOGIT = 0
    PROBIT = 1
    CLOGLOG = 2
    LOG = 3
    INVERSE = 4
    IDENTITY = 5
    SQRT = 6
    CAUCHIT = 7

cdef enum:
    BINOMIAL = 0
    POISSON = 1
    GAMMA = 2


cdef inline double _linkinv(int link, double eta) noexcept nogil:
    cdef double e, r
    if link == LOGIT:
        if eta >= 0:
            r = 1.0 / (1.0 + exp(-eta))
        else:
            e = exp(eta)
            r = e / (1.0 + e)
        return r if r < 1.0 - EPS else 1.0 - EPS
    elif link == PROBIT:
        r = 0.5 * erfc(-eta * SQRT1_2)
        return r if r < 1.0 - EPS else 1.0 - EPS
    elif link == CLOGLOG:
        r = -expm1(-exp(eta))
        if r < EPS:
            return EPS
        return r if r < 1.0 - EPS else 1.0 - EPS
    elif link == LOG:
        r = exp(eta)
        return r if r > EPS else EPS
    elif link == INVERSE:
        return 1.0 / eta
    elif link == IDENTITY:
        return eta
    elif link == SQRT:
        return eta * eta
    r = 0.5 + atan(eta) / PI
    return r if r < 1.0 - EPS else 1.0 - EPS


cdef inline double _mu_eta(int link, double eta) noexcept nogil:
    cdef double e, r
    if link == LOGIT:
        e = exp(-fabs(eta))
        r = e / ((1.0 + e) * (1.0 + e))
        return r if r > EPS else EPS
    elif link == PROBIT:
        return INV_SQRT2PI * exp(-0.5 * eta * eta)
    elif link == CLOGLOG:
        if eta > 700.0:
            return EPS
        r = exp(eta - exp(eta))
        return r if r > EPS else EPS
    elif link == LOG:
        r = exp(eta)
        return r if r > EPS else EPS
    elif link == INVERSE:
        return -1.0 / (eta * eta)
    elif link == IDENTITY:
        return 1.0
    elif link == SQRT:
        return 2.0 * eta
    return 1.0 / (PI * (1.0 + eta * eta))


cdef inline double _variance(int fam, double mu) noexcept nogil:
    cdef double v
    if fam == BINOMIAL:
        v = mu * (1.0 - mu)
        return v if v > EPS else EPS
    elif fam == POISSON:
        return mu
    return mu * mu


cdef inline double _ylogy(double y, double mu) noexcept nogil:
    if y == 0.0:
        return 0.0
    return y * log(y / mu)


cdef inline double _devres(int fam, double y, double mu, double wt) noexcept nogil:
    if fam == BINOMIAL:
        return 2.0 * wt * (_ylogy(y, mu) + _ylogy(1.0 - y, 1.0 - mu))
    elif fam == POISSON:
        return 2.0 * wt * (_ylogy(y, mu) - (y - mu))
    return -2.0 * wt * (log(y / mu) - (y - mu) / mu)


cdef inline void _mu_me(int link, double eta, double* mu, double* me) noexcept nogil:
    """mu = linkinv(eta) and mu' = d mu / d eta, sharing the exponential where they can."""
    cdef double e, r
    if link == LOGIT:
        e = exp(-fabs(eta))
        r = 1.0 / (1.0 + e) if eta >= 0 else e / (1.0 + e)
        mu[0] = r if r < 1.0 - EPS else 1.0 - EPS
        r = e / ((1.0 + e) * (1.0 + e))
        me[0] = r if r > EPS else EPS
    elif link == LOG:
        e = exp(eta)
        mu[0] = e if e > EPS else EPS
        me[0] = mu[0]
    else:
        mu[0] = _linkinv(link, eta)
        me[0] = _mu_eta(link, eta)


cdef class GlmResponse:
    """The response side of PIRLS: family/link codes, y, prior weights, log-likelihood constants.

    ``set_eta`` stores mu and mu' at eta (and returns the deviance); ``working`` and
    ``m2loglik`` then use the stored values (no second pass of exponentials).
    """

    cdef readonly int fam, link
    cdef readonly Py_ssize_t n
    cdef double[::1] y, pw, a, b, c, mu, me
    cdef double wsum, alogy, sat
    cdef int exact

    def __init__(self, int fam, int link, y, pw, a, b, c, double sat=0.0, int exact=0):
        self.fam = fam
        self.link = link
        self.y = np.array(y, dtype=np.float64, order="C", copy=True)
        self.pw = np.array(pw, dtype=np.float64, order="C", copy=True)
        self.a = np.array(a, dtype=np.float64, order="C", copy=True)
        self.b = np.array(b, dtype=np.float64, order="C", copy=True)
        self.c = np.array(c, dtype=np.float64, order="C", copy=True)
        self.n = self.y.shape[0]
        self.mu = np.zeros(self.n)
        self.me = np.ones(self.n)
        self.wsum = float(np.sum(pw))
        self.alogy = float(np.sum(a)) if fam == GAMMA else 0.0
        self.sat = sat      # sum of (-2 log p - deviance residual): constant when exact
        self.exact = exact  # binomial/Poisson with integral counts: -2 log p = dev + sat

    cdef double set_eta(self, const double* eta, int need_dev) noexcept nogil:
        """Store mu, mu' at eta; return the sum of deviance residuals (0 unless need_dev)."""
        cdef Py_ssize_t i
        cdef double s = 0.0
        cdef double* mu = &self.mu[0]
        cdef double* me = &self.me[0]
        cdef const double* y = &self.y[0]
        cdef const double* pw = &self.pw[0]
        cdef int fam = self.fam, link = self.link
        for i in range(self.n):
            _mu_me(link, eta[i], &mu[i], &me[i])
        if need_dev:
            for i in range(self.n):
                s += _devres(fam, y[i], mu[i], pw[i])
            if link == SQRT:  # mu = eta^2 folds: keep eta > 0 (R's valideta), else a mirror mode
                for i in range(self.n):
                    if eta[i] <= 0.0:
                        return NAN
        return s

    cdef void working(self, const double* eta, const double* base, double* w,
                      double* zt) noexcept nogil:
        """w = pw mu'^2 / V(mu); zt = eta - base + (y - mu) / mu' (mu, mu' from set_eta)."""
        cdef Py_ssize_t i
        cdef double* mu = &self.mu[0]
        cdef double* me = &self.me[0]
        cdef const double* y = &self.y[0]
        cdef const double* pw = &self.pw[0]
        cdef int fam = self.fam
        for i in range(self.n):
            w[i] = pw[i] * me[i] * me[i] / _variance(fam, mu[i])
            zt[i] = eta[i] - base[i] + (y[i] - mu[i]) / me[i]

    cdef double m2loglik(self, double dev) noexcept nogil:
        """-2 log p(y | mu) at the stored mu: R's family$aic (Gamma: dispersion dev/sum(pw), +2)."""
        cdef Py_ssize_t i
        cdef double s = 0.0, mu, k, disp, slogmu = 0.0, sratio = 0.0
        if self.exact:
            return dev + self.sat
        if self.fam == GAMMA:
            for i in range(self.n):
                mu = self.mu[i]
                slogmu += self.pw[i] * log(mu)
                sratio += self.pw[i] * self.y[i] / mu
            disp = dev / self.wsum
            k = 1.0 / disp
            return (2.0 * lgamma(k) * self.wsum + 2.0 * k * slogmu + 2.0 * k * log(disp) * self.wsum
                    - 2.0 * (k - 1.0) * self.alogy + 2.0 * k * sratio + 2.0)
        for i in range(self.n):
            mu = self.mu[i]
            s += self.c[i]
            if self.a[i] != 0.0:
                s -= 2.0 * self.a[i] * log(mu)
            if self.fam == BINOMIAL:
                if self.b[i] != 0.0:
                    s -= 2.0 * self.b[i] * log1p(-mu)
            else:
                s += 2.0 * self.b[i] * mu
        return s

    # --- Python access (the kernel path, results, tests) ----------------------------------
    def py_set_eta(self, eta, bint need_dev=True):
        cdef const double[::1] e = np.ascontiguousarray(eta, dtype=np.float64)
        if e.shape[0] != self.n:
            raise ValueError("eta has the wrong length")
        return self.set_eta(&e[0], need_dev)

    def py_m2loglik(self, double dev):
        return self.m2loglik(dev)

    def working_into(self, const double[::1] eta, const double[::1] base, double[::1] w,
                     double[::1] zt):
        with nogil:
            self.working(&eta[0], &base[0], &w[0], &zt[0])


cdef class Crossprods:
    """Reweighted cross-products in the layout of ``design.blocks.BlockStructure`` (several terms).

    Z is held row-wise: ``zval`` (n x sum p_k) the terms' model-matrix columns and ``zbase``
    (n x nterms) the first u index of each row's block per term; ``vidx`` (npieces x n) the
    offset in V of the sub-block each row adds to, per term pair.
    """

    cdef Py_ssize_t n, nterms, npieces, nzc, q
    cdef double[:, ::1] zval
    cdef long[:, ::1] zbase, vidx
    cdef int[::1] term_p, term_col, tofs, piece_k, piece_m, ones
    cdef double[::1] acc

    def __init__(self, blocks, terms):
        self.n = blocks.row_pair.shape[1]
        self.nterms = len(terms)
        self.q = blocks.q
        self.zval = np.ascontiguousarray(np.column_stack([t.X for t in terms]), dtype=np.float64)
        self.nzc = self.zval.shape[1]
        self.zbase = np.ascontiguousarray(np.column_stack(
            [t.offset + t.factor.codes.astype(np.int64) * t.p for t in terms]), dtype=np.int64)
        tp = np.array([t.p for t in terms], dtype=np.int32)
        self.term_p = tp
        self.term_col = (np.cumsum(tp) - tp).astype(np.int32)
        self.tofs = (np.cumsum(tp.astype(np.int64) ** 2) - tp.astype(np.int64) ** 2).astype(np.int32)
        self.ones = np.array([t.p == 1 and bool(np.all(t.X == 1.0)) for t in terms], dtype=np.int32)
        self.piece_k = np.array([k for k, m in blocks.pieces], dtype=np.int32)
        self.piece_m = np.array([m for k, m in blocks.pieces], dtype=np.int32)
        self.npieces = len(blocks.pieces)
        self.vidx = np.ascontiguousarray(np.asarray(blocks.pair_vofs)[np.asarray(blocks.row_pair)],
                                         dtype=np.int64)
        self.acc = np.zeros(64)

    def reweight(self, const double[::1] w, const double[::1] zt, X, double[::1] V,
                 double[::1, :] ZtW, double[:, ::1] WtW):
        """V <- Z'WZ sub-blocks, ZtW <- Z'W[X zt], WtW <- [X zt]'W[X zt] (X may be None)."""
        cdef const double[:, ::1] Xv
        cdef Py_ssize_t px = 0
        if X is not None:
            Xv = X
            px = Xv.shape[1]
        else:
            Xv = np.zeros((1, 1))
        if ZtW.shape[1] != px + 1 or WtW.shape[0] != px + 1:
            raise ValueError("ZtW / WtW do not match the number of columns of [X zt]")
        if (px + 1) * (px + 1) > self.acc.shape[0]:
            self.acc = np.zeros((px + 1) * (px + 1))
        cdef Py_ssize_t i, r, k, m, s, t, pk, pm, ck, cm, c1, c2, n = self.n, nzc = self.nzc
        cdef Py_ssize_t ldz = ZtW.shape[0], npc = px + 1, nt = self.nterms
        cdef long vo, row
        cdef double wi, xs, wz, acc
        cdef const long* vid
        cdef const double* zv = &self.zval[0, 0]
        cdef const long* zb = &self.zbase[0, 0]
        cdef const int* tp = &self.term_p[0]
        cdef const int* tc = &self.term_col[0]
        cdef const int* ones = &self.ones[0]
        cdef const int* pks = &self.piece_k[0]
        cdef const int* pms = &self.piece_m[0]
        cdef const double* Xp = &Xv[0, 0]
        cdef const double* wp = &w[0]
        cdef const double* zp = &zt[0]
        cdef double* Vp = &V[0]
        cdef double* Zp = &ZtW[0, 0]
        cdef double* Zy = Zp + px * ldz
        cdef double* A = &self.acc[0]
        cdef int allscalar = 1
        for k in range(nt):
            if tp[k] != 1:
                allscalar = 0
        with nogil:
            memset(Vp, 0, V.shape[0] * sizeof(double))
            memset(Zp, 0, ldz * npc * sizeof(double))
            memset(A, 0, npc * npc * sizeof(double))
            for r in range(self.npieces):
                k = pks[r]
                m = pms[r]
                pk = tp[k]
                pm = tp[m]
                ck = tc[k]
                cm = tc[m]
                vid = &self.vidx[r, 0]
                if ones[k] and ones[m]:  # sum runs of equal targets in a register
                    vo = vid[0]
                    wz = 0.0
                    for i in range(n):
                        if vid[i] != vo:
                            Vp[vo] += wz
                            vo = vid[i]
                            wz = 0.0
                        wz = wz + wp[i]
                    Vp[vo] += wz
                elif pk == 1 and pm == 1:
                    for i in range(n):
                        Vp[vid[i]] += wp[i] * zv[i * nzc + ck] * zv[i * nzc + cm]
                else:
                    for i in range(n):
                        vo = vid[i]
                        wi = wp[i]
                        for s in range(pk):
                            xs = wi * zv[i * nzc + ck + s]
                            for t in range(pm):
                                Vp[vo + s * pm + t] += xs * zv[i * nzc + cm + t]
            if allscalar:  # Z'W[X zt] with one column per term (nzc == nt)
                for k in range(nt):
                    row = zb[k]
                    acc = 0.0
                    for i in range(n):
                        xs = zv[i * nt + k] * wp[i]
                        if zb[i * nt + k] != row:
                            Zy[row] += acc
                            row = zb[i * nt + k]
                            acc = 0.0
                        acc = acc + xs * zp[i]
                        for c1 in range(px):
                            Zp[row + c1 * ldz] += xs * Xp[i * px + c1]
                    Zy[row] += acc
            else:
                for i in range(n):
                    wi = wp[i]
                    wz = wi * zp[i]
                    for k in range(nt):
                        pk = tp[k]
                        ck = tc[k]
                        row = zb[i * nt + k]
                        for s in range(pk):
                            xs = zv[i * nzc + ck + s]
                            Zy[row + s] += xs * wz
                            for c1 in range(px):
                                Zp[row + s + c1 * ldz] += xs * wi * Xp[i * px + c1]
            acc = 0.0
            for i in range(n):
                wi = wp[i]
                for c1 in range(px):
                    xs = wi * Xp[i * px + c1]
                    for c2 in range(c1, px):
                        A[c1 * npc + c2] += xs * Xp[i * px + c2]
                    A[c1 * npc + px] += xs * zp[i]
                acc = acc + wi * zp[i] * zp[i]
            A[px * npc + px] = acc
            for c1 in range(npc):
                for c2 in range(c1, npc):
                    WtW[c1, c2] = A[c1 * npc + c2]
                    WtW[c2, c1] = A[c1 * npc + c2]

    def linpred(self, const double[::1] base, const double[::1] u, const double[::1] T,
                double[::1] out):
        """out = base + Z Λ u, Λ from the flat column-major templates T."""
        cdef Py_ssize_t i, k, s, t, pk, ck, nzc = self.nzc, nt = self.nterms
        cdef long row
        cdef double acc, bs
        cdef const double* zv = &self.zval[0, 0]
        cdef const long* zb = &self.zbase[0, 0]
        cdef const int* tp = &self.term_p[0]
        cdef const int* tc = &self.term_col[0]
        cdef const int* to = &self.tofs[0]
        cdef const double* Tp = &T[0]
        cdef const double* up = &u[0]
        cdef const double* bp = &base[0]
        cdef double* op = &out[0]
        with nogil:
            for i in range(self.n):
                acc = bp[i]
                for k in range(nt):
                    pk = tp[k]
                    ck = tc[k]
                    row = zb[i * nt + k]
                    if pk == 1:
                        acc = acc + zv[i * nzc + ck] * Tp[to[k]] * up[row]
                        continue
                    for s in range(pk):
                        bs = 0.0  # (T_k u_blk)[s] = sum_{t <= s} T_k[s, t] u[t]
                        for t in range(s + 1):
                            bs = bs + Tp[to[k] + s + t * pk] * up[row + t]
                        acc = acc + zv[i * nzc + ck + s] * bs
                op[i] = acc


cdef inline int _chol(double* D, Py_ssize_t p) noexcept nogil:
    """In-place lower Cholesky of a row-major p x p matrix (lower triangle read); -1 if not PD."""
    cdef Py_ssize_t i, j, k
    cdef double acc
    for j in range(p):
        acc = D[j * p + j]
        for k in range(j):
            acc = acc - D[j * p + k] * D[j * p + k]
        if not acc > 0.0:
            return -1
        D[j * p + j] = sqrt(acc)
        for i in range(j + 1, p):
            acc = D[i * p + j]
            for k in range(j):
                acc = acc - D[i * p + k] * D[j * p + k]
            D[i * p + j] = acc / D[j * p + j]
    return 0


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
    cdef double[::1] uold, bold, ugood, bgood, tmp, beta0, gsum, mult
    cdef double[:, ::1] Binv
    cdef double[::1] agq_z, agq_w
    cdef readonly double ldL2, ldRX2, sqrL, dev, m2ll, agq_dev
    cdef readonly int fresh, nagq, last_rc
    cdef readonly long evaluations, iterations, failures
    cdef public double tol
    cdef public int maxit, newton

    def __init__(self, GlmResponse resp, codes, Zx, X, off, eta0, int ntheta):
        self.resp = resp
        self.codes = np.array(codes, dtype=np.int32, order="C", copy=True)
        self.Zx = np.array(Zx, dtype=np.float64, order="C", copy=True)
        self.X = np.array(X, dtype=np.float64, order="C", copy=True).reshape(len(self.codes), -1)
        self.off = np.array(off, dtype=np.float64, order="C", copy=True)
        self.n = self.codes.shape[0]
        self.p = self.Zx.shape[1]
        self.px = self.X.shape[1]
        self.nlev = int(np.max(codes)) + 1 if self.n else 0
        self.ntheta = ntheta
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
        self.tol = 1e-10
        self.maxit = 100

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
        np.asarray(self.u)[:] = np.asarray(u, dtype=np.float64)
        if self.px:
            np.asarray(self.beta)[:self.px] = np.asarray(beta, dtype=np.float64)
        self.fresh = 0

    def set_transform(self, beta0, Binv):
        """beta = beta0 + Binv delta in ``laplace``."""
        if self.px:
            np.asarray(self.beta0)[:self.px] = np.asarray(beta0, dtype=np.float64)
            self.Binv = np.ascontiguousarray(Binv, dtype=np.float64).reshape(self.px, self.px)

    def set_agq(self, z, w):
        """Gauss-Hermite nodes and weights for the standard normal (weights sum to 1)."""
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
                if _chol(Lj, p) != 0:
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
            if _chol(&self.M[0], px) != 0:
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
        """Iterate to convergence (max |step| < tol) with step halving; 0 on success."""
        cdef double pdev_old, pdev, dmax, d, slack, prev = -1.0
        cdef int it, k, fresh = self.fresh
        cdef Py_ssize_t i, nu = self.nlev * self.p, px = self.px if joint else 0
        pdev_old = INFINITY  # as lme4: no step halving in the first iteration
        if not fresh:
            self._linpred()
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
            slack = 1e-10 * (1.0 + fabs(pdev_old)) if isfinite(pdev_old) else 0.0
            while not (pdev <= pdev_old + slack) and k < 30:
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
            pdev_old = pdev
            if k == 0 and not (fresh and it == 0):
                if dmax < self.tol:
                    self.fresh = 0
                    self.sqrL = self._sqru()
                    self.m2ll = self.resp.m2loglik(self.dev)
                    return 0
                # Canonical link (Newton): the error after this step is about dmax³/prev²; when
                # negligible, refactor at u for log|A| instead of one more full step.
                if (self.newton and not joint and prev > 0.0 and dmax < 1e-6
                        and dmax * dmax * dmax < 1e-11 * prev * prev):
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
        """lme4's AGQ deviance (deviance-residual scale) at the converged mode; scalar term."""
        cdef Py_ssize_t i, j, k, nl = self.nlev
        cdef double z, th = self.T[0], s = 0.0, mu
        cdef double* g = &self.gsum[0]
        cdef double* m = &self.mult[0]
        cdef double* dc0 = &self.h[0]  # reuse: per-level devc0
        memset(dc0, 0, nl * sizeof(double))
        memset(m, 0, nl * sizeof(double))
        for i in range(self.n):
            mu = _linkinv(self.resp.link, self.eta[i])
            dc0[self.codes[i]] += _devres(self.resp.fam, self.resp.y[i], mu, self.resp.pw[i])
        for j in range(nl):
            dc0[j] += self.u[j] * self.u[j]
        for k in range(self.nagq):
            z = self.agq_z[k]
            if z == 0.0:
                for j in range(nl):
                    m[j] += self.agq_w[k]
                continue
            for j in range(nl):
                g[j] = self.u[j] + z / self.L[j]
                self.cv[j] = g[j] * g[j]
            for i in range(self.n):
                j = self.codes[i]
                mu = _linkinv(self.resp.link, self.base[i] + self.Zx[i, 0] * th * g[j])
                self.cv[j] += _devres(self.resp.fam, self.resp.y[i], mu, self.resp.pw[i])
            for j in range(nl):
                m[j] += self.agq_w[k] * exp(-0.5 * (self.cv[j] - dc0[j]) + 0.5 * z * z)
        for j in range(nl):
            s += dc0[j] - 2.0 * log(m[j])
        return s + self.ldL2

    # --- objectives -----------------------------------------------------------------------
    cdef void _save(self) noexcept nogil:
        memcpy(&self.ugood[0], &self.u[0], self.nlev * self.p * sizeof(double))
        memcpy(&self.bgood[0], &self.beta[0], self.beta.shape[0] * sizeof(double))

    cdef void _restore(self) noexcept nogil:
        memcpy(&self.u[0], &self.ugood[0], self.nlev * self.p * sizeof(double))
        memcpy(&self.beta[0], &self.bgood[0], self.beta.shape[0] * sizeof(double))

    def laplace(self, x, grad=None):
        """Laplace deviance at x = [theta, delta] (lme4's, or the proper AGQ one if nAGQ > 1)."""
        cdef const double[::1] xv = np.ascontiguousarray(x, dtype=np.float64)
        cdef Py_ssize_t k, l, nth = self.ntheta, px = self.px
        cdef double acc, val
        cdef int rc
        if xv.shape[0] != nth + px:
            raise ValueError("parameter vector has the wrong length")
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
            rc = self._pirls(0)
            self.last_rc = rc
            if rc == -1 or rc == -2:
                self.failures += 1
                self._restore()
                val = INFINITY
            else:
                if rc == -3:
                    self.failures += 1
                    self.sqrL = self._sqru()
                    self.m2ll = self.resp.m2loglik(self.dev)
                if self.nagq > 1:
                    self.agq_dev = self._agq()
                    val = self.agq_dev + self.m2ll - self.dev
                else:
                    val = self.ldL2 + self.sqrL + self.m2ll
        return val

    def joint(self, theta, grad=None):
        """lme4's nAGQ = 0 deviance at theta: beta and u from PIRLS jointly."""
        cdef const double[::1] tv = np.ascontiguousarray(theta, dtype=np.float64)
        cdef int rc
        cdef double val
        if tv.shape[0] != self.ntheta:
            raise ValueError("theta has the wrong length")
        with nogil:
            self.evaluations += 1
            self._save()
            self._set_theta(&tv[0])
            rc = self._pirls(1)
            self.last_rc = rc
            if rc == -1 or rc == -2:
                self.failures += 1
                self._restore()
                val = INFINITY
            else:
                if rc == -3:
                    self.failures += 1
                    self.sqrL = self._sqru()
                    self.m2ll = self.resp.m2loglik(self.dev)
                val = self.ldL2 + self.sqrL + self.m2ll
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

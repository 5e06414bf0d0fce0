# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The response side of PIRLS for GLMMs: mu, working weights w = pw mu'^2 / V(mu), working
response, deviance residuals and -2 log p(y | mu) for the families/links of ``mmfast.families``
(integer codes, lme4's clamping), all without the GIL."""
import numpy as np
cimport numpy as cnp
from libc.math cimport exp, log, log1p, lgamma, rint, fabs, NAN, INFINITY
from scipy.special.cython_special cimport gammaln
from ._checks import check_length

cnp.import_array()

cdef class GlmResponse:
    """The response side of PIRLS: family/link codes, y, prior weights, log-likelihood constants.

    ``set_eta`` stores mu and mu' at eta (and returns the deviance); ``working`` and
    ``m2loglik`` then use the stored values (no second pass of exponentials).
    """


    def __init__(self, int fam, int link, y, pw, a, b, c, double sat=0.0, int exact=0,
                 double disp=0.0, int observed=1):
        self.fam = fam
        self.link = link
        self.y = np.array(y, dtype=np.float64, order="C", copy=True)
        self.pw = np.array(pw, dtype=np.float64, order="C", copy=True)
        self.a = np.array(a, dtype=np.float64, order="C", copy=True)
        self.b = np.array(b, dtype=np.float64, order="C", copy=True)
        self.c = np.array(c, dtype=np.float64, order="C", copy=True)
        self.n = self.y.shape[0]
        for name, arr in (("pw", self.pw), ("a", self.a), ("b", self.b), ("c", self.c)):
            if arr.shape[0] != self.n:  # the Python check only builds the message
                check_length(name, arr.shape[0], self.n)
        self.mu = np.zeros(self.n)
        self.me = np.ones(self.n)
        self.wsum = float(np.sum(pw))
        self.alogy = float(np.sum(a)) if fam == GAMMA else 0.0
        self.sat = sat      # sum of (-2 log p - deviance residual): constant when exact
        self.exact = exact  # binomial/Poisson with integral counts: -2 log p = dev + sat
        self.observed = observed
        if fam >= NBINOM2:
            self.set_dispersion(disp)

    def set_dispersion(self, double disp):
        """Set the family's dispersion parameter (nbinom2: theta, nbinom1/beta: phi; > 0).
        -2 log p is then the deviance plus, for nbinom2, the saturated model's -2 log p(y | mu
        = y, theta), computed here (nbinom1/beta: their deviance is -2 log p)."""
        cdef Py_ssize_t i
        cdef double sat = 0.0
        if self.fam < NBINOM2:
            raise ValueError(f"family code {self.fam} has no dispersion parameter")
        if not disp > 0.0:
            raise ValueError(f"the dispersion parameter must be positive, not {disp}")
        self.disp = disp
        if self.fam == NBINOM2:
            for i in range(self.n):
                sat += _nb2_m2logp(self.y[i], self.y[i], self.pw[i], disp)
        self.sat = sat
        self.exact = 1

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
                s += _devres_d(fam, y[i], mu[i], pw[i], self.disp)
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
        cdef double sc, h
        if fam >= NBINOM2:  # score and information (not a GLM for nbinom1/beta)
            for i in range(self.n):
                _score_info(fam, y[i], mu[i], me[i], self.disp, self.observed, &sc, &h)
                w[i] = pw[i] * h
                zt[i] = eta[i] - base[i] + (sc / h if h != 0.0 else 0.0)
            return
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
    @property
    def y_(self):
        """The response (read-only view)."""
        a = np.asarray(self.y)
        a.flags.writeable = False
        return a

    @property
    def pw_(self):
        """The prior weights (read-only view)."""
        a = np.asarray(self.pw)
        a.flags.writeable = False
        return a

    def py_set_eta(self, eta, bint need_dev=True):
        cdef const double[::1] e = np.ascontiguousarray(eta, dtype=np.float64)
        if e.shape[0] != self.n:
            check_length("eta", e.shape[0], self.n)
        return self.set_eta(&e[0], need_dev)

    def py_m2loglik(self, double dev):
        return self.m2loglik(dev)

    def working_into(self, const double[::1] eta, const double[::1] base, double[::1] w,
                     double[::1] zt):
        """w, zt at eta (``working``) into the given arrays, all of the response's length."""
        if eta.shape[0] != self.n:
            check_length("eta", eta.shape[0], self.n)
        if base.shape[0] != self.n:
            check_length("base", base.shape[0], self.n)
        if w.shape[0] != self.n:
            check_length("w", w.shape[0], self.n)
        if zt.shape[0] != self.n:
            check_length("zt", zt.shape[0], self.n)
        with nogil:
            self.working(&eta[0], &base[0], &w[0], &zt[0])


    def saturate(self, sat=None):
        """From now on -2 log p = deviance + sat (binomial/Poisson with integral counts); sat
        by default -2 log p(y | mu = y), where the deviance residuals vanish (R's aic at mu = y).
        Returns sat."""
        cdef double s
        if sat is None:
            self.mu[:] = self.y
            self.exact = 0
            s = self.m2loglik(0.0)
            self.mu[:] = 0.0
        else:
            s = sat
        self.sat, self.exact = s, 1
        return s

    def py_set_mu(self, mu):
        """Store mu (mu' is not needed by m2loglik) for ``Family.aic``."""
        cdef const double[::1] m = np.ascontiguousarray(mu, dtype=np.float64)
        if m.shape[0] != self.n:
            check_length("mu", m.shape[0], self.n)
        self.mu[:] = m


# --- vectorised access for mmfast.families (the Python classes are thin wrappers) ----------
def _flat(x):
    """(array of x as float64, a C-contiguous 1-D copy or view of it, an output of its shape)."""
    a = np.asarray(x, dtype=np.float64)
    return a, np.ascontiguousarray(a).reshape(-1), np.empty(a.shape)


def _result(a, out):
    return out if a.ndim else out[()]


ctypedef double (*_elementwise1)(int, double, double) noexcept nogil


cdef double _linkfun_e(int link, double x, double par) noexcept nogil:
    return _linkfun(link, x)


cdef double _linkinv_e(int link, double x, double par) noexcept nogil:
    return _linkinv(link, x)


cdef double _mu_eta_e(int link, double x, double par) noexcept nogil:
    return _mu_eta(link, x)


cdef object _map1(_elementwise1 f, int code, x, double par):
    """f(code, x_i, par) elementwise over x (any shape)."""
    a, flat, out = _flat(x)
    cdef const double[::1] v = flat
    cdef double[::1] o = out.reshape(-1)
    cdef Py_ssize_t i, n = v.shape[0]
    with nogil:
        for i in range(n):
            o[i] = f(code, v[i], par)
    return _result(a, out)


def link_apply(int link, int what, x):
    """what = 0: linkfun(mu), 1: linkinv(eta), 2: mu_eta(eta), elementwise (any shape)."""
    if not 0 <= link <= CAUCHIT or not 0 <= what <= 2:
        raise ValueError(f"unknown link code {link} or function code {what}")
    cdef _elementwise1 f = _linkfun_e
    if what == 1:
        f = _linkinv_e
    elif what == 2:
        f = _mu_eta_e
    return _map1(f, link, x, 0.0)


def family_variance(int fam, mu, double disp=0.0):
    """V(mu) of the family (at dispersion parameter ``disp`` where it has one), elementwise."""
    if not 0 <= fam <= BETA:
        raise ValueError(f"unknown family code {fam}")
    return _map1(_variance_d, fam, mu, disp)


def _flat3(a, b, c):
    """Three arrays broadcast together: (shape template, flat C-contiguous copies of each)."""
    arrs = [np.asarray(x, dtype=np.float64) for x in (a, b, c)]
    if not arrs[0].shape == arrs[1].shape == arrs[2].shape:  # equal shapes (a fit's case) skip
        arrs = np.broadcast_arrays(*arrs)  # numpy's Python-level broadcasting machinery
    return arrs[0], [np.ascontiguousarray(x).reshape(-1) for x in arrs]


ctypedef double (*_elementwise)(int, double, double, double, double) noexcept nogil


cdef double _nb2_element(int fam, double y, double mu, double wt, double theta) noexcept nogil:
    return _nb2_m2logp(y, mu, wt, theta)


cdef object _map3(_elementwise f, int fam, y, mu, wt, double par):
    """f(fam, y_i, mu_i, wt_i, par) over y, mu, wt broadcast together, in their shape."""
    ya, flat = _flat3(y, mu, wt)
    out = np.empty(ya.shape)
    cdef const double[::1] yv = flat[0], mv = flat[1], wv = flat[2]
    cdef double[::1] o = out.reshape(-1)
    cdef Py_ssize_t i, n = yv.shape[0]
    with nogil:
        for i in range(n):
            o[i] = f(fam, yv[i], mv[i], wv[i], par)
    return _result(ya, out)


def family_dev_resids(int fam, y, mu, wt, double disp=0.0):
    """Deviance residuals (R's ``dev.resids``) of y at mu with prior weights wt (broadcast), at
    the dispersion parameter ``disp`` where the family has one."""
    if not 0 <= fam <= BETA:
        raise ValueError(f"unknown family code {fam}")
    return _map3(_devres_d, fam, y, mu, wt, disp)


def score_info(int fam, y, mu, me, double disp, int observed=1):
    """(d log p / d eta, information) of a dispersion family, elementwise (``_score_info``)."""
    if not NBINOM2 <= fam <= BETA:
        raise ValueError(f"family code {fam} has no dispersion parameter")
    ya, flat = _flat3(y, mu, me)
    out_s, out_h = np.empty(ya.shape), np.empty(ya.shape)
    cdef const double[::1] yv = flat[0], mv = flat[1], ev = flat[2]
    cdef double[::1] os = out_s.reshape(-1)
    cdef double[::1] oh = out_h.reshape(-1)
    cdef Py_ssize_t i, n = yv.shape[0]
    with nogil:
        for i in range(n):
            _score_info(fam, yv[i], mv[i], ev[i], disp, observed, &os[i], &oh[i])
    return out_s, out_h


def nb2_m2logp(y, mu, wt, double theta):
    """-2 wt log p(y | mu, theta) of the negative binomial (nbinom2), elementwise (broadcast)."""
    return _map3(_nb2_element, 0, y, mu, wt, theta)


def binomial_terms(y, m, wt):
    """The binomial's per-row constants (a, b, c) of -2 log p with m trials a row (R's
    ``binomial()$aic``): k = round(m y) successes, coef = wt / m (0 where m = 0), a = coef k,
    b = coef (m - k), c = -2 coef log choose(m, k) (all m = 1: a = wt y, b = wt (1 - y), c = 0);
    then whether the counts m y and m are integral (to 1e-9: -2 log p is then the deviance plus
    a constant) and whether some y is strictly between 0 and 1.  One pass (a GLMM's set-up)."""
    ya, flat = _flat3(y, m, wt)
    cdef const double[::1] yv = flat[0], mv = flat[1], wv = flat[2]
    cdef Py_ssize_t i, n = yv.shape[0]
    oa, ob, oc = np.empty(ya.shape), np.empty(ya.shape), np.empty(ya.shape)
    cdef double[::1] a = oa.reshape(-1)
    cdef double[::1] b = ob.reshape(-1)
    cdef double[::1] c = oc.reshape(-1)
    cdef double k, mr, coef, my
    cdef bint ones = True, exact = True, fractional = False
    with nogil:
        for i in range(n):
            if mv[i] != 1.0:
                ones = False
            my = mv[i] * yv[i]
            if not (fabs(my - rint(my)) < 1e-9 * (mv[i] if mv[i] > 1.0 else 1.0)
                    and fabs(mv[i] - rint(mv[i])) < 1e-9):
                exact = False
            if yv[i] > 0.0 and yv[i] < 1.0:
                fractional = True
        for i in range(n):
            if ones:  # 0/1 data, unit weights: log choose(1, k) = 0
                a[i] = wv[i] * yv[i]
                b[i] = wv[i] * (1.0 - yv[i])
                c[i] = 0.0
                continue
            k = rint(mv[i] * yv[i])
            mr = rint(mv[i])
            coef = wv[i] / mv[i] if mv[i] > 0.0 else 0.0
            a[i] = coef * k
            b[i] = coef * (mr - k)
            c[i] = -2.0 * coef * (gammaln(mr + 1.0) - gammaln(k + 1.0) - gammaln(mr - k + 1.0))
    return oa, ob, oc, bool(exact), bool(fractional)


def mean_at_bounds(int fam, int link, eta, double edge):
    """Rows whose mean linkinv(eta) is below ``edge`` (binomial: or above 1 - edge), as a
    boolean array: ``separation.at_bounds`` in one pass (no mean array, no errstate)."""
    if not 0 <= link <= CAUCHIT:
        raise ValueError(f"unknown link code {link}")
    cdef const double[::1] e = np.ascontiguousarray(eta, dtype=np.float64).reshape(-1)
    cdef Py_ssize_t i, n = e.shape[0]
    out = np.zeros(n, dtype=bool)
    cdef cnp.npy_bool[::1] o = out
    cdef double mu, hi = 1.0 - edge
    cdef bint two = fam == BINOMIAL
    with nogil:
        for i in range(n):
            mu = _linkinv(link, e[i])
            o[i] = mu < edge or (two and mu > hi)
    return out


def binomial_start(y, w):
    """R's ``binomial()$initialize`` for a proportion y with w trials, in one pass: (index of
    the first y outside [0, 1] or -1, whether some w y is not within 1e-3 of an integer,
    mustart = (w y + 1/2) / (w + 1))."""
    ya, flat = _flat3(y, w, w)
    cdef const double[::1] yv = flat[0], wv = flat[1]
    cdef Py_ssize_t i, n = yv.shape[0], bad = -1
    cdef bint nonint = False
    cdef double m
    out = np.empty(ya.shape)
    cdef double[::1] o = out.reshape(-1)
    with nogil:
        for i in range(n):
            if bad < 0 and (yv[i] < 0.0 or yv[i] > 1.0):
                bad = i
            m = wv[i] * yv[i]
            if fabs(m - rint(m)) > 1e-3:
                nonint = True
            o[i] = (wv[i] * yv[i] + 0.5) / (wv[i] + 1.0)
    return bad, bool(nonint), out

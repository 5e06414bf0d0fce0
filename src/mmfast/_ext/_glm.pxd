# Families and links as C inline functions (codes as in mmfast.families), and the response object
# shared by the PIRLS kernels.  The only implementation: mmfast.families' Python classes call the
# vectorised wrappers of _glm.pyx, so the kernel and the Python API cannot drift apart.
from libc.math cimport exp, log, log1p, expm1, sqrt, erfc, atan, tan, fabs, lgamma
from scipy.special.cython_special cimport ndtri, psi

cdef extern from *:
    """
    #define MMF_EPS 2.220446049250313e-16
    #define MMF_SQRT1_2 0.7071067811865476
    #define MMF_INV_SQRT2PI 0.3989422804014327
    #define MMF_PI 3.141592653589793
    """
    double EPS "MMF_EPS"
    double SQRT1_2 "MMF_SQRT1_2"
    double INV_SQRT2PI "MMF_INV_SQRT2PI"
    double PI "MMF_PI"

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
    GAUSSIAN = 3
    NBINOM2 = 4  # negative binomial, var = mu + mu^2 / theta (disp = theta), log link
    NBINOM1 = 5  # glmmTMB's nbinom1, var = mu (1 + phi) (disp = phi), log link
    BETA = 6     # glmmTMB's beta_family, mean mu, precision phi (disp), var = mu (1 - mu) / (1 + phi)


cdef inline double _linkfun(int link, double mu) noexcept nogil:
    """eta = g(mu); logit as scipy.special.logit (log1p form near 1/2 for precision)."""
    cdef double s
    if link == LOGIT:
        if mu < 0.3 or mu > 0.65:
            return log(mu / (1.0 - mu))
        s = 2.0 * (mu - 0.5)
        return log1p(s) - log1p(-s)
    elif link == PROBIT:
        return ndtri(mu)
    elif link == CLOGLOG:
        return log(-log1p(-mu))
    elif link == LOG:
        return log(mu)
    elif link == INVERSE:
        return 1.0 / mu
    elif link == IDENTITY:
        return mu
    elif link == SQRT:
        return sqrt(mu)
    # cauchit: R's qcauchy; tan(pi (mu - 1/2)) loses the digits of a small mu or 1 - mu
    if mu < 0.5:
        return -1.0 / tan(PI * mu)
    return 1.0 / tan(PI * (1.0 - mu))


cdef inline double _linkinv(int link, double eta) noexcept nogil:
    cdef double e, r
    if link == LOGIT:
        if eta >= 0:
            r = 1.0 / (1.0 + exp(-eta))
        else:
            e = exp(eta)
            r = e / (1.0 + e)
        return r if r < 1.0 - EPS else 1.0 - EPS
    elif link == PROBIT:  # R's probit: mu in [eps, 1 - eps], mu.eta at least eps
        r = 0.5 * erfc(-eta * SQRT1_2)
        if r < EPS:
            return EPS
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
    # cauchit: R's pcauchy (atan(-1/eta)/pi below -1 keeps the tail's digits), in [eps, 1 - eps]
    r = atan(-1.0 / eta) / PI if eta < -1.0 else 0.5 + atan(eta) / PI
    if r < EPS:
        return EPS
    return r if r < 1.0 - EPS else 1.0 - EPS


cdef inline double _mu_eta(int link, double eta) noexcept nogil:
    cdef double e, r
    if link == LOGIT:
        e = exp(-fabs(eta))
        r = e / ((1.0 + e) * (1.0 + e))
        return r if r > EPS else EPS
    elif link == PROBIT:
        r = INV_SQRT2PI * exp(-0.5 * eta * eta)
        return r if r > EPS else EPS
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
    r = 1.0 / (PI * (1.0 + eta * eta))  # cauchit: R's dcauchy, at least eps
    return r if r > EPS else EPS


cdef inline double _variance(int fam, double mu) noexcept nogil:
    cdef double v
    if fam == BINOMIAL:
        v = mu * (1.0 - mu)
        return v if v > EPS else EPS
    elif fam == POISSON:
        return mu
    elif fam == GAUSSIAN:
        return 1.0
    return mu * mu


cdef inline double _variance_d(int fam, double mu, double disp) noexcept nogil:
    """V(mu) for every family, the dispersion-parametrised ones at their parameter ``disp``."""
    if fam == NBINOM2:
        return _nb2_variance(mu, disp)
    elif fam == NBINOM1:
        return mu * (1.0 + disp)
    elif fam == BETA:
        return mu * (1.0 - mu) / (1.0 + disp)
    return _variance(fam, mu)


cdef inline double _trigamma(double x) noexcept nogil:
    """psi'(x), x > 0: the recurrence up to x >= 6, then the asymptotic series (error < 1e-14)."""
    cdef double s = 0.0, r, r2
    while x < 6.0:
        s += 1.0 / (x * x)
        x += 1.0
    r = 1.0 / x
    r2 = r * r
    return s + r + 0.5 * r2 + r * r2 * (1.0 / 6.0 - r2 * (1.0 / 30.0 - r2 * (1.0 / 42.0 - r2 / 30.0)))


cdef inline double _nb1_m2logp(double y, double mu, double wt, double phi) noexcept nogil:
    """-2 wt log p(y | mu, phi) of glmmTMB's nbinom1: size mu/phi, var = mu (1 + phi)."""
    cdef double k = mu / phi
    return -2.0 * wt * (lgamma(y + k) - lgamma(k) - lgamma(y + 1.0) - (k + y) * log1p(phi)
                        + (y * log(phi) if y != 0.0 else 0.0))


cdef inline double _beta_m2logp(double y, double mu, double wt, double phi) noexcept nogil:
    """-2 wt log p(y | mu, phi) of the beta with mean mu and precision phi (glmmTMB's beta_family)."""
    cdef double a = mu * phi, b = (1.0 - mu) * phi
    return -2.0 * wt * (lgamma(phi) - lgamma(a) - lgamma(b) + (a - 1.0) * log(y)
                        + (b - 1.0) * log1p(-y))


cdef inline void _score_info(int fam, double y, double mu, double me, double disp, int observed,
                             double* s, double* h) noexcept nogil:
    """d log p / d eta (s) and the information -d² log p / d eta² (observed) or its expectation
    (h) at mu, mu' = me, for the dispersion families (log link for NB, logit for beta).  The
    observed information of nbinom1 and beta can be negative in a row (y far in a tail): kept,
    as the exact Laplace approximation needs it (A = I + Λ'Z'WZΛ stays positive definite near
    the mode; where it does not, PIRLS fails and the objective is infinite there)."""
    cdef double r, k, d1, d2, fisher
    if fam == NBINOM2:  # log link: s = theta (y - mu) / (mu + theta)
        r = mu + disp
        s[0] = disp * (y - mu) / r
        h[0] = disp * mu * (y + disp) / (r * r) if observed else disp * mu / r
    elif fam == NBINOM1:  # log link, k = mu / phi
        k = mu / disp
        d1 = (psi(y + k) - psi(k) - log1p(disp)) / disp  # d log p / d mu
        d2 = (_trigamma(y + k) - _trigamma(k)) / (disp * disp)  # d² log p / d mu²
        s[0] = mu * d1
        h[0] = -(mu * mu * d2 + mu * d1)
    else:  # beta, logit link: me = mu (1 - mu), d me / d eta = me (1 - 2 mu)
        d1 = disp * (log(y) - log1p(-y) - psi(mu * disp) + psi((1.0 - mu) * disp))
        fisher = me * me * disp * disp * (_trigamma(mu * disp) + _trigamma((1.0 - mu) * disp))
        s[0] = me * d1
        h[0] = fisher - me * (1.0 - 2.0 * mu) * d1 if observed else fisher


cdef inline double _ylogy(double y, double mu) noexcept nogil:
    if y == 0.0:
        return 0.0
    if y == 1.0:  # 0/1 data: no division
        return -log(mu)
    return y * log(y / mu)


# --- negative binomial (nbinom2: size theta, mean mu): formulas in the Poisson limit's stable form
cdef inline double _lgamma_ratio(double y, double theta) noexcept nogil:
    """lgamma(y + theta) - lgamma(theta) - y log(theta), finite as theta -> infinity (then -> 0):
    Stirling's series (error < 1e-20 relative) once theta > 1e5, lgamma's difference below."""
    cdef double t2, s2
    if theta <= 1e5:
        return lgamma(y + theta) - lgamma(theta) - y * log(theta)
    t2 = theta + y
    s2 = (1.0 / t2 - 1.0 / theta) / 12.0 - (1.0 / (t2 * t2 * t2) - 1.0 / (theta * theta * theta)) / 360.0
    return (t2 - 0.5) * log1p(y / theta) - y + s2


cdef inline double _nb2_variance(double mu, double theta) noexcept nogil:
    """V(mu) = mu + mu^2 / theta."""
    return mu + mu * mu / theta


cdef inline double _nb2_devres(double y, double mu, double wt, double theta) noexcept nogil:
    """MASS's negative.binomial(theta)$dev.resids: 2 wt (y log(y/mu) - (y + theta)
    log((y + theta)/(mu + theta))), the second term as log1p (Poisson's as theta -> infinity)."""
    return 2.0 * wt * (_ylogy(y, mu) - (y + theta) * log1p((y - mu) / (mu + theta)))


cdef inline double _nb2_m2logp(double y, double mu, double wt, double theta) noexcept nogil:
    """-2 wt log p(y | mu, theta) (MASS's negative.binomial(theta)$aic per row), written as
    lgamma(y+1) - lgamma_ratio + (y + theta) log1p(mu/theta) - y log mu: Poisson's in the limit."""
    cdef double s = lgamma(y + 1.0) - _lgamma_ratio(y, theta) + (y + theta) * log1p(mu / theta)
    if y != 0.0:
        s -= y * log(mu)
    return 2.0 * wt * s


cdef inline double _devres(int fam, double y, double mu, double wt) noexcept nogil:
    if fam == BINOMIAL:
        return 2.0 * wt * (_ylogy(y, mu) + _ylogy(1.0 - y, 1.0 - mu))
    elif fam == POISSON:
        return 2.0 * wt * (_ylogy(y, mu) - (y - mu))
    elif fam == GAUSSIAN:
        return wt * (y - mu) * (y - mu)
    return -2.0 * wt * (log(y / mu) - (y - mu) / mu)


cdef inline double _devres_d(int fam, double y, double mu, double wt, double disp) noexcept nogil:
    """Deviance residual for every family, the dispersion-parametrised ones at ``disp``
    (nbinom1 and beta have no saturated model in closed form: their -2 log p itself)."""
    if fam == NBINOM2:
        return _nb2_devres(y, mu, wt, disp)
    elif fam == NBINOM1:
        return _nb1_m2logp(y, mu, wt, disp)
    elif fam == BETA:
        return _beta_m2logp(y, mu, wt, disp)
    return _devres(fam, y, mu, wt)


cdef inline void _mu_me(int link, double eta, double* mu, double* me) noexcept nogil:
    """mu = linkinv(eta) and mu' = d mu / d eta, sharing the exponential where they can."""
    cdef double e, r
    cdef double d
    if link == LOGIT:  # one exponential, one division
        e = exp(-fabs(eta))
        d = 1.0 / (1.0 + e)
        r = d if eta >= 0 else e * d
        mu[0] = r if r < 1.0 - EPS else 1.0 - EPS
        r = e * d * d
        me[0] = r if r > EPS else EPS
    elif link == LOG:
        e = exp(eta)
        mu[0] = e if e > EPS else EPS
        me[0] = mu[0]
    else:
        mu[0] = _linkinv(link, eta)
        me[0] = _mu_eta(link, eta)


cdef class GlmResponse:
    cdef readonly int fam, link
    cdef readonly Py_ssize_t n
    cdef double[::1] y, pw, a, b, c, mu, me
    cdef double wsum, alogy, sat
    cdef readonly double disp  # the family's dispersion parameter (nbinom2: theta), else 0
    cdef public int observed   # dispersion families: PIRLS weights = observed information
    cdef int exact
    cdef double set_eta(self, const double* eta, int need_dev) noexcept nogil
    cdef void working(self, const double* eta, const double* base, double* w,
                      double* zt) noexcept nogil
    cdef double m2loglik(self, double dev) noexcept nogil

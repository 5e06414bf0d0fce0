# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Negative binomial (nbinom2, log link) GLMMs with one scalar random intercept, fitted for many
responses (genes) that share one design: X, offset and the grouping codes are read once, each
gene is a row of Y.  Everything per gene runs without the GIL.

Per gene the parameters are x = (β, σ, κ = log θ_NB).  The per-gene Laplace objective is in
_nblaplace.pxd (inline functions): the Gene struct, the conditional modes u_j by per-level
safeguarded Newton, glmmTMB's Laplace deviance D(x) = Σ_j [2 h_j(û_j) + log H_j] with its
analytic gradient, and the count-histogram θ terms; its header comment gives the formulas.
This module holds the outer problem and the Python-facing functions.

The outer problem is Newton's method on x with a Hessian from forward differences of the
gradient of D, an Armijo line search, κ kept in [κ_lo, κ_hi] (an active bound is the Poisson
limit, θ → ∞, or its opposite), σ unconstrained (D is even in σ: σ̂ is |σ|, 0 for a singular
fit).  The Hessian of D/2 at the optimum (central differences) gives the standard errors, as
glmmTMB's sdreport does.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport exp, log, sqrt, fabs, INFINITY, NAN, isfinite
from libc.string cimport memset, memcpy

from ._types cimport i64
from ._nblaplace cimport Gene, NSUM, evaluate, gene_counts, reported_deviance
from ._checks import check_length, check_shape
from ..errors import DataError

cnp.import_array()

cdef enum:
    MAXLS = 40       # line-search halvings

cdef double BFGS_DEC = 1e-2  # Newton decrement below which BFGS updates replace new Hessians
cdef int MAXBFGS = 4  # BFGS updates in a row before the Hessian is computed again
cdef double KAPPA_JUMP = 9.2  # a Newton step beyond log θ = 9.2 (θ = 1e4) tries the upper bound first

# status codes (mmfast.pipeline.nb names them)
cdef enum:
    ST_OK = 0
    ST_MAXIT = 1
    ST_ZERO = 2
    ST_KAPPA_HI = 3
    ST_KAPPA_LO = 4
    ST_NONFINITE = 5
    ST_LINESEARCH = 6


cdef int chol_solve(Py_ssize_t q, double* A, double* b) noexcept nogil:
    """Solve A z = b in place (A: q x q SPD, overwritten by its Cholesky factor); 1 if not PD."""
    cdef Py_ssize_t i, j, m
    cdef double s
    for j in range(q):
        s = A[j * q + j]
        for m in range(j):
            s -= A[j * q + m] * A[j * q + m]
        if not (s > 0.0):
            return 1
        A[j * q + j] = sqrt(s)
        for i in range(j + 1, q):
            s = A[i * q + j]
            for m in range(j):
                s -= A[i * q + m] * A[j * q + m]
            A[i * q + j] = s / A[j * q + j]
    for i in range(q):
        s = b[i]
        for m in range(i):
            s -= A[i * q + m] * b[m]
        b[i] = s / A[i * q + i]
    for i in range(q - 1, -1, -1):
        s = b[i]
        for m in range(i + 1, q):
            s -= A[m * q + i] * b[m]
        b[i] = s / A[i * q + i]
    return 0


cdef void hessian(Gene* g, const double* x, const double* g0, double* H, double* xt, double* gt,
                  double* ubase, int central) noexcept nogil:
    """H (q x q) of D by differences of the gradient (forward from g0, or central), symmetrised;
    the modes are restored to ubase before each evaluation."""
    cdef Py_ssize_t a, b, q = g.q
    cdef double h, v
    for a in range(q):
        h = (1e-4 if central else 1e-5) * (1.0 if fabs(x[a]) < 1.0 else fabs(x[a]))
        memcpy(xt, x, q * sizeof(double))
        xt[a] = x[a] + h
        memcpy(g.u, ubase, g.nl * sizeof(double))
        evaluate(g, xt, gt)
        if central:
            for b in range(q):
                H[b * q + a] = gt[b]
            xt[a] = x[a] - h
            memcpy(g.u, ubase, g.nl * sizeof(double))
            evaluate(g, xt, gt)
            for b in range(q):
                H[b * q + a] = (H[b * q + a] - gt[b]) / (2.0 * h)
        else:
            for b in range(q):
                H[b * q + a] = (gt[b] - g0[b]) / h
    for a in range(q):
        for b in range(a):
            v = 0.5 * (H[a * q + b] + H[b * q + a])
            H[a * q + b] = v
            H[b * q + a] = v
    memcpy(g.u, ubase, g.nl * sizeof(double))


cdef int poisson_start(Gene* g, double* x, double* A, double* b) noexcept nogil:
    """Start: β of the Poisson GLM with the offset (IRLS from μ = y + 0.1), σ and κ by moments."""
    cdef Py_ssize_t i, c, e, it, n = g.n, p = g.p, q = g.q
    cdef double eta, mu, wz, z, s1 = 0.0, s2 = 0.0
    cdef const double* xi
    for it in range(8):
        memset(A, 0, p * p * sizeof(double))
        memset(b, 0, p * sizeof(double))
        for i in range(n):
            xi = g.X + i * p
            if it == 0:
                mu = g.y[i] + 0.1
                eta = log(mu)
            else:
                eta = g.off[i]
                for c in range(p):
                    eta += xi[c] * x[c]
                mu = exp(eta)
            z = eta - g.off[i] + (g.y[i] - mu) / mu
            for c in range(p):
                wz = mu * xi[c]
                b[c] += wz * z
                for e in range(c + 1):
                    A[c * p + e] += wz * xi[e]
        for c in range(p):
            for e in range(c):
                A[e * p + c] = A[c * p + e]
        if chol_solve(p, A, b):
            return 1
        memcpy(x, b, p * sizeof(double))
    # σ from the spread of the levels' log(observed / fitted), θ from the moments about the
    # level-adjusted fit
    cdef double* ys = g.lo
    cdef double* ms = g.hi
    cdef double m1 = 0.0, m2 = 0.0, r
    memset(ys, 0, g.nl * sizeof(double))
    memset(ms, 0, g.nl * sizeof(double))
    for i in range(n):
        eta = g.off[i]
        xi = g.X + i * p
        for c in range(p):
            eta += xi[c] * x[c]
        g.xb[i] = exp(eta)
        ys[g.codes[i]] += g.y[i]
        ms[g.codes[i]] += g.xb[i]
    for c in range(g.nl):
        r = log((ys[c] + 0.5) / (ms[c] + 0.5))
        ms[c] = exp(r)
        m1 += r
        m2 += r * r
    m1 /= g.nl
    r = m2 / g.nl - m1 * m1
    x[p] = sqrt(r) if r > 0.0025 else 0.05
    if x[p] > 3.0:
        x[p] = 3.0
    for i in range(n):
        mu = g.xb[i] * ms[g.codes[i]]
        s1 += (g.y[i] - mu) * (g.y[i] - mu) - mu
        s2 += mu * mu
    x[p + 1] = -log(s1 / s2) if s1 > 0.0 and s2 > 0.0 else 5.0
    return 0


cdef int newton_direction(Py_ssize_t q, Py_ssize_t kk, int free_k, const double* B,
                          const double* g0, double* A, double* d, double* tau_out) noexcept nogil:
    """d = -(B + τI)⁻¹ g with the smallest τ (0, then growing) that makes B + τI positive
    definite; coordinate kk (κ) held when not free_k.  1 if no τ works."""
    cdef Py_ssize_t a
    cdef double tau = 0.0, diagmax = 0.0
    for a in range(q):
        if fabs(B[a * q + a]) > diagmax:
            diagmax = fabs(B[a * q + a])
    while True:
        memcpy(A, B, q * q * sizeof(double))
        for a in range(q):
            A[a * q + a] += tau
            d[a] = -g0[a]
        if not free_k:
            for a in range(q):
                A[kk * q + a] = 0.0
                A[a * q + kk] = 0.0
            A[kk * q + kk] = 1.0
            d[kk] = 0.0
        if not chol_solve(q, A, d):
            tau_out[0] = tau
            return 0
        tau = 1e-8 * diagmax if tau == 0.0 else 10.0 * tau
        if not (tau < 1e12 * (diagmax + 1.0)):
            return 1


cdef int fit_gene(Gene* g, double* x, double* D_out, double* Hout, double klo, double khi,
                  Py_ssize_t maxit, double tol, double* work, i64* nit) noexcept nogil:
    """Quasi-Newton on D over x (see the module docstring); returns a status code.

    Newton steps with the Hessian by forward differences of the gradient while the Newton
    decrement exceeds BFGS_DEC, then BFGS updates of the last one; the Hessian is computed
    again after MAXBFGS updates, when the decrement grows, or when a line search fails with
    an updated matrix."""
    cdef Py_ssize_t q = g.q, p = g.p, a, b, it, ls
    cdef double* g0 = work
    cdef double* B = work + q
    cdef double* dvec = B + q * q
    cdef double* xt = dvec + q
    cdef double* gt = xt + q
    cdef double* ubase = gt + q
    cdef double* A = ubase + g.nl
    cdef double* sv = A + q * q
    cdef double* yv = sv + q
    cdef double* Bs = yv + q
    cdef double D0, D1, dec, alpha, slope, sy, sBs, tau = 0.0
    cdef int free_k, fresh, status = ST_MAXIT, nbfgs = 0
    cdef double prev_dec = INFINITY, dec_last = INFINITY
    if x[p + 1] > khi:
        x[p + 1] = khi
    if x[p + 1] < klo:
        x[p + 1] = klo
    memset(g.u, 0, g.nl * sizeof(double))
    D0 = evaluate(g, x, g0)
    if not isfinite(D0):
        return ST_NONFINITE
    memcpy(ubase, g.u, g.nl * sizeof(double))
    hessian(g, x, g0, B, xt, gt, ubase, 0)
    fresh = 1
    it = 0
    while it < maxit:
        nit[0] = it + 1
        if not fresh and (nbfgs >= MAXBFGS or prev_dec < dec_last):
            # BFGS is drifting (or a long run of updates since the Hessian): compute it again
            hessian(g, x, g0, B, xt, gt, ubase, 0)
            fresh = 1
        # κ at a bound with the gradient pushing out of it: held there (the others move)
        free_k = not ((x[p + 1] >= khi and g0[p + 1] < 0.0) or (x[p + 1] <= klo and g0[p + 1] > 0.0))
        if newton_direction(q, p + 1, free_k, B, g0, A, dvec, &tau):
            return ST_NONFINITE
        slope = 0.0
        for a in range(q):
            slope += g0[a] * dvec[a]
        dec = -slope
        prev_dec, dec_last = dec_last, dec
        if fresh:
            nbfgs = 0
        if dec < tol and fresh:
            status = ST_OK
            break
        alpha = 1.0
        for ls in range(MAXLS):
            for a in range(q):
                xt[a] = x[a] + alpha * dvec[a]
            if ls == 0 and dvec[p + 1] > 0.0 and xt[p + 1] > KAPPA_JUMP:
                xt[p + 1] = khi  # heading for the Poisson limit: try the bound itself first
            if xt[p + 1] > khi:
                xt[p + 1] = khi
            if xt[p + 1] < klo:
                xt[p + 1] = klo
            memcpy(g.u, ubase, g.nl * sizeof(double))
            D1 = evaluate(g, xt, gt)
            if isfinite(D1) and D1 <= D0 + 1e-4 * alpha * slope:
                break
            alpha *= 0.5
        else:
            memcpy(g.u, ubase, g.nl * sizeof(double))
            if fresh:
                status = ST_OK if dec < 1e3 * tol else ST_LINESEARCH
                break
            hessian(g, x, g0, B, xt, gt, ubase, 0)  # the updates went wrong: start afresh
            fresh = 1
            it += 1
            continue
        if dec < tol:  # a converged step taken with an updated matrix
            memcpy(x, xt, q * sizeof(double))
            memcpy(g0, gt, q * sizeof(double))
            D0 = D1
            status = ST_OK
            break
        # BFGS update of B with s = xt - x, y = gt - g0 (skipped without positive curvature)
        sy = 0.0
        sBs = 0.0
        for a in range(q):
            sv[a] = xt[a] - x[a]
            yv[a] = gt[a] - g0[a]
            sy += sv[a] * yv[a]
        for a in range(q):
            Bs[a] = 0.0
            for b in range(q):
                Bs[a] += B[a * q + b] * sv[b]
            sBs += sv[a] * Bs[a]
        if dec > BFGS_DEC or tau > 0.0 or not (sy > 1e-12 * sBs and sBs > 0.0):
            # far from the optimum, an indefinite matrix or no positive curvature along the
            # step: a new Hessian at the new point
            memcpy(x, xt, q * sizeof(double))
            memcpy(g0, gt, q * sizeof(double))
            memcpy(ubase, g.u, g.nl * sizeof(double))
            D0 = D1
            hessian(g, x, g0, B, xt, gt, ubase, 0)
            fresh = 1
            it += 1
            continue
        for a in range(q):
            for b in range(q):
                B[a * q + b] += yv[a] * yv[b] / sy - Bs[a] * Bs[b] / sBs
        fresh = 0
        nbfgs += 1
        memcpy(x, xt, q * sizeof(double))
        memcpy(g0, gt, q * sizeof(double))
        memcpy(ubase, g.u, g.nl * sizeof(double))
        D0 = D1
        it += 1
    D_out[0] = D0
    memcpy(ubase, g.u, g.nl * sizeof(double))
    hessian(g, x, g0, Hout, xt, gt, ubase, 1)
    evaluate(g, x, NULL)  # leave the modes and level sums of x
    D_out[0] = reported_deviance(g, x)
    if status == ST_OK:
        if x[p + 1] >= khi:
            status = ST_KAPPA_HI
        elif x[p + 1] <= klo:
            status = ST_KAPPA_LO
    x[p] = fabs(x[p])
    return status


cdef class _Scratch:
    """The arrays a Gene points into (kept alive while it is used)."""
    cdef double[::1] xb, u, lo, hi, sums
    cdef i64[::1] big

    def __init__(self, Py_ssize_t n, Py_ssize_t p, Py_ssize_t nl):
        self.xb, self.u, self.lo, self.hi = np.zeros(n), np.zeros(nl), np.zeros(nl), np.zeros(nl)
        self.sums = np.zeros(nl * (NSUM + 3 * p) + 2 * nl)
        self.big = np.zeros(n, dtype=np.int64)


cdef void init_gene(Gene* g, _Scratch s, const double[:, ::1] X, const double[::1] offset,
                    const i64[::1] codes, Py_ssize_t nl, double tol_inner):
    """The shared design and the scratch arrays of a Gene (its y is set per gene)."""
    g.n, g.p, g.nl = X.shape[0], X.shape[1], nl
    g.q = g.p + 2
    g.X = &X[0, 0] if g.p else NULL
    g.off = &offset[0]
    g.codes = &codes[0]
    g.big = &s.big[0]
    g.xb, g.u, g.lo, g.hi, g.sums = &s.xb[0], &s.u[0], &s.lo[0], &s.hi[0], &s.sums[0]
    g.tol_inner = tol_inner


def fit_nb_genes(const double[:, ::1] Y, const double[:, ::1] X, const double[::1] offset,
                 const i64[::1] codes, i64 nlevels, double[:, ::1] par, double[::1] deviance,
                 double[:, :, ::1] hess, i64[::1] status, i64[::1] iterations,
                 bint start_given=False, double kappa_lo=-9.2103403719761836,
                 double kappa_hi=18.420680743952367, i64 maxit=100, double tol=1e-10,
                 double tol_inner=1e-12):
    """Fit every row of ``Y`` (G, n), non-negative integer counts, to the shared design.

    ``par`` (G, p + 2): (β, σ, log θ_NB) per gene, the start when ``start_given`` (else a Poisson
    GLM start) and the estimates on return (σ >= 0); ``deviance`` (G,): -2 log-likelihood
    (Laplace); ``hess`` (G, q, q): the Hessian of the deviance in (β, σ, log θ); ``status``,
    ``iterations`` (G,): see mmfast.pipeline.nb.  log θ is kept in [kappa_lo, kappa_hi].
    """
    cdef Py_ssize_t G = Y.shape[0], n = Y.shape[1], p = X.shape[1], q = p + 2, nl = nlevels
    check_length("X (rows)", X.shape[0], n)
    check_length("offset", offset.shape[0], n)
    check_length("codes", codes.shape[0], n)
    check_shape("par", par, (G, q))
    check_length("deviance", deviance.shape[0], G)
    check_shape("hess", hess, (G, q, q))
    check_length("status", status.shape[0], G)
    check_length("iterations", iterations.shape[0], G)
    if nl < 1:
        raise DataError("kernel argument 'nlevels' must be at least 1")
    if n and (np.min(codes) < 0 or np.max(codes) >= nl):
        raise DataError(f"kernel argument 'codes' has a level outside 0..{nl - 1}")
    if G == 0 or n == 0:
        return
    cdef _Scratch scratch = _Scratch(n, p, nl)
    cdef double[::1] work = np.zeros(7 * q + q * q + nl + max(q * q, p * p + p) + 8)
    cdef Gene gene
    cdef Py_ssize_t r, i
    cdef double tot
    cdef i64 nit
    init_gene(&gene, scratch, X, offset, codes, nl, tol_inner)
    with nogil:
        for r in range(G):
            gene.y = &Y[r, 0]
            nit = 0
            tot = 0.0
            for i in range(n):
                tot += gene.y[i]
            if tot == 0.0:
                status[r] = ST_ZERO
                deviance[r] = NAN
                iterations[r] = 0
                continue
            gene_counts(&gene)
            if not start_given:
                if poisson_start(&gene, &par[r, 0], &work[0], &work[p * p]):
                    status[r] = ST_NONFINITE
                    deviance[r] = NAN
                    iterations[r] = 0
                    continue
            status[r] = fit_gene(&gene, &par[r, 0], &deviance[r], &hess[r, 0, 0], kappa_lo,
                                 kappa_hi, maxit, tol, &work[0], &nit)
            iterations[r] = nit


def nb_laplace_deviance(const double[::1] y, const double[:, ::1] X, const double[::1] offset,
                        const i64[::1] codes, i64 nlevels, const double[::1] x, bint gradient=True):
    """The Laplace deviance (and its gradient) of one gene at x = (β, σ, log θ): the kernel's
    objective, for checks; returns (D, grad or None, modes u)."""
    cdef Py_ssize_t n = y.shape[0], p = X.shape[1], q = p + 2, nl = nlevels
    check_length("X (rows)", X.shape[0], n)
    check_length("offset", offset.shape[0], n)
    check_length("codes", codes.shape[0], n)
    check_length("x", x.shape[0], q)
    if n == 0 or nl < 1 or np.min(codes) < 0 or np.max(codes) >= nl:
        raise DataError("kernel argument 'codes' must hold levels 0..nlevels-1 of at least one row")
    cdef _Scratch scratch = _Scratch(n, p, nl)
    cdef double[::1] grad = np.zeros(q)
    cdef Gene gene
    cdef double D
    init_gene(&gene, scratch, X, offset, codes, nl, 1e-13)
    gene.y = &y[0]
    gene_counts(&gene)
    with nogil:
        D = evaluate(&gene, &x[0], &grad[0] if gradient else NULL)
    return D, (np.asarray(grad) if gradient else None), np.asarray(scratch.u)

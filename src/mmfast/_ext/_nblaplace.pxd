# The per-gene Laplace objective of _nbgenes.pyx (the batched NB GLMM kernel), split out by
# concept: the Gene struct (the shared design, one gene's counts and the scratch), the conditional
# modes by per-level safeguarded Newton, the Laplace deviance D(β, σ, κ) with its analytic
# gradient, the deviance reported by _glm's nbinom2 formula, and the count-histogram θ terms.
# Inline over raw arrays, as _scalar_laplace.pxd, so _nbgenes.pyx's outer Newton calls them
# without a module boundary; everything runs without the GIL.  _nbgenes.pyx holds the outer
# problem (Hessians, starts, quasi-Newton) and the Python-facing functions.
#
# With one scalar term the conditional modes separate by level given x = (β, σ, κ = log θ_NB):
# u_j minimises h_j(u) = Σ_{i in j} ℓ_i(η_i) + u²/2, η_i = o_i + x_i'β + σ u,
# ℓ_i = -log NB(y_i | μ_i = e^η_i, θ), a one-dimensional convex problem solved by safeguarded
# Newton for all levels at once.  The Laplace deviance is glmmTMB's (the exact Hessian of h_j,
# not lme4's Fisher weights):
#
#     D(x) = Σ_j [2 h_j(û_j) + log H_j],   H_j = 1 + σ² Σ_{i in j} ℓ''_i
#
# and its gradient is analytic (envelope theorem for h, the implicit derivative of û_j for
# log H_j, which brings in ℓ''').
#
# Σ_i log Γ(y_i + θ) - log Γ(θ) and its θ-derivative use the count histogram of each gene:
# Σ_m N_{>m} log(θ + m) for m < VMAX (N_{>m}: cells with y > m), lgamma/digamma beyond, so an
# evaluation costs O(n) exponentials and logarithms and O(VMAX) for the θ terms.
from libc.math cimport exp, log, log1p, lgamma, fabs, INFINITY, NAN, isfinite
from libc.string cimport memset
from scipy.special.cython_special cimport psi

from ._types cimport i64
from ._glm cimport _nb2_m2logp

cdef extern from *:
    """
    #define MMF_NB_QUAD_STEP 1e-7
    """
    double QUAD_STEP "MMF_NB_QUAD_STEP"  # a mode step below this ends the inner iteration

cdef enum:
    VMAX = 64        # counts below this: the histogram sums; at or above: lgamma/digamma per cell
    NSUM = 7         # per-level sums besides the 3 p of the fixed effects: F S1 S2 S3 K0 K1 K2
    MAXIN = 100      # inner Newton iterations


cdef struct Gene:
    # the shared design
    Py_ssize_t n, p, q, nl
    const double* X        # (n, p)
    const double* off      # (n,)
    const i64* codes       # (n,)
    # this gene
    const double* y        # (n,)
    double ntail[VMAX]     # N_{>m}, m < VMAX
    Py_ssize_t mtop        # largest m with ntail > 0, plus 1 (<= VMAX)
    Py_ssize_t nbig        # cells with y >= VMAX, their indices in big
    i64* big
    double lgy1            # Σ log Γ(y_i + 1)
    # scratch
    double* xb             # (n,) o + Xβ
    double* u              # (nl,) current modes (warm start)
    double* lo
    double* hi
    double* sums           # (nl, NSUM + 3p)
    double tol_inner


cdef inline double theta_terms(Gene* g, double k, double* dk) noexcept nogil:
    """Σ_i [log Γ(y_i + k) - log Γ(k)] and (in dk) k d/dk of it."""
    cdef Py_ssize_t m, i
    cdef double s = 0.0, d = 0.0, yi, top
    for m in range(g.mtop):
        s += g.ntail[m] * log(k + m)
        d += g.ntail[m] / (k + m)
    if g.nbig:
        top = k + VMAX
        for m in range(g.nbig):
            yi = g.y[g.big[m]]
            s += lgamma(yi + k) - lgamma(top)
            d += psi(yi + k) - psi(top)
    dk[0] = k * d
    return s


cdef inline int inner_modes(Gene* g, double s, double k) noexcept nogil:
    """Conditional modes u_j at (β via xb, σ = s, θ = k), warm-started from g.u; 0 on success."""
    cdef Py_ssize_t i, j, it, n = g.n, nl = g.nl
    cdef double eta, mu, d, yi, gj, Hj, step, un, maxstep, cap
    cdef double* G1 = g.sums
    cdef double* G2 = g.sums + nl
    if s == 0.0:
        memset(g.u, 0, nl * sizeof(double))
        return 0
    cap = 3.0 / fabs(s)  # η moves by at most 3 per step
    for j in range(nl):
        g.lo[j] = -INFINITY
        g.hi[j] = INFINITY
    for it in range(MAXIN):
        memset(G1, 0, 2 * nl * sizeof(double))
        for i in range(n):
            j = g.codes[i]
            eta = g.xb[i] + s * g.u[j]
            mu = exp(eta)
            d = k + mu
            yi = g.y[i]
            G1[j] += k * (mu - yi) / d
            G2[j] += (yi + k) * k * mu / (d * d)
        maxstep = 0.0
        for j in range(nl):
            gj = g.u[j] + s * G1[j]
            Hj = 1.0 + s * s * G2[j]
            if not (isfinite(gj) and isfinite(Hj)):
                return 1
            if gj > 0.0:
                if g.u[j] < g.hi[j]:
                    g.hi[j] = g.u[j]
            elif gj < 0.0:
                if g.u[j] > g.lo[j]:
                    g.lo[j] = g.u[j]
            step = -gj / Hj
            if step > cap:
                step = cap
            elif step < -cap:
                step = -cap
            un = g.u[j] + step
            if (un <= g.lo[j] or un >= g.hi[j]) and isfinite(g.lo[j]) and isfinite(g.hi[j]):
                un = 0.5 * (g.lo[j] + g.hi[j])
            if fabs(un - g.u[j]) > maxstep:
                maxstep = fabs(un - g.u[j])
            g.u[j] = un
        # Newton converges quadratically: after a step below QUAD_STEP the next would be far
        # below tol_inner, so no pass is spent confirming it
        if maxstep <= g.tol_inner * (1.0 + fabs(s)) or maxstep <= QUAD_STEP:
            return 0
    return 1


cdef inline double evaluate(Gene* g, const double* x, double* grad) noexcept nogil:
    """The Laplace deviance D at x = (β, σ, κ) and (grad != NULL) its gradient; NaN on failure.
    Starts the inner modes from g.u and leaves the converged ones there."""
    cdef Py_ssize_t i, j, c, n = g.n, p = g.p, nl = g.nl, w = NSUM + 3 * p
    cdef double s = x[p], k = exp(x[p + 1]), eta, mu, d, yi, l1, l2, l3, xv, Hj, D = 0.0
    cdef double dkt, tsum, du, dH, uj
    cdef double* r
    cdef const double* xi
    for i in range(n):
        eta = g.off[i]
        xi = g.X + i * p
        for c in range(p):
            eta += xi[c] * x[c]
        g.xb[i] = eta
    if inner_modes(g, s, k):
        return NAN
    memset(g.sums, 0, nl * w * sizeof(double))
    for i in range(n):
        j = g.codes[i]
        r = g.sums + j * w
        eta = g.xb[i] + s * g.u[j]
        mu = exp(eta)
        d = k + mu
        yi = g.y[i]
        l1 = k * (mu - yi) / d
        l2 = (yi + k) * k * mu / (d * d)
        l3 = l2 * (k - mu) / d
        r[0] += k * log1p(mu / k)
        if yi > 0.0:
            r[0] += yi * log1p(k / mu)
        r[1] += l1
        r[2] += l2
        r[3] += l3
        if grad != NULL:
            r[4] += k * log1p(mu / k) + k * (yi - mu) / d
            r[5] += k * (mu - yi) * mu / (d * d)
            r[6] += k * mu * (yi * (mu - k) + 2.0 * k * mu) / (d * d * d)
            xi = g.X + i * p
            for c in range(p):
                xv = xi[c]
                r[NSUM + c] += l1 * xv
                r[NSUM + p + c] += l2 * xv
                r[NSUM + 2 * p + c] += l3 * xv
    tsum = theta_terms(g, k, &dkt)
    D = 2.0 * (g.lgy1 - tsum)
    if grad != NULL:
        memset(grad, 0, g.q * sizeof(double))
        grad[p + 1] = -2.0 * dkt
    for j in range(nl):
        r = g.sums + j * w
        uj = g.u[j]
        Hj = 1.0 + s * s * r[2]
        D += 2.0 * r[0] + uj * uj + log(Hj)
        if grad != NULL:
            # β_c: 2 ∂h/∂β + (∂H/∂β + ∂H/∂u dû/dβ) / H, dû/dβ = -σ Σℓ''x / H
            for c in range(p):
                du = -s * r[NSUM + p + c] / Hj
                dH = s * s * r[NSUM + 2 * p + c] + s * s * s * r[3] * du
                grad[c] += 2.0 * r[NSUM + c] + dH / Hj
            du = -(r[1] + s * uj * r[2]) / Hj
            dH = 2.0 * s * r[2] + s * s * uj * r[3] + s * s * s * r[3] * du
            grad[p] += 2.0 * uj * r[1] + dH / Hj
            du = -s * r[5] / Hj
            dH = s * s * r[6] + s * s * s * r[3] * du
            grad[p + 1] += 2.0 * r[4] + dH / Hj
    return D


cdef inline double reported_deviance(Gene* g, const double* x) noexcept nogil:
    """The deviance at x with -2 log p(y | mu) by _glm's nbinom2 formula (the one the families
    use), from the modes and level sums ``evaluate`` left: equal to ``evaluate``'s rearranged
    sum (tests/test_nb_pipeline.py checks it), reported so that every NB log-likelihood in mmfast
    comes from one formula."""
    cdef Py_ssize_t i, j, w = NSUM + 3 * g.p
    cdef double s = x[g.p], k = exp(x[g.p + 1]), D = 0.0, Hj
    for i in range(g.n):
        D += _nb2_m2logp(g.y[i], exp(g.xb[i] + s * g.u[g.codes[i]]), 1.0, k)
    for j in range(g.nl):
        Hj = 1.0 + s * s * g.sums[j * w + 2]
        D += g.u[j] * g.u[j] + log(Hj)
    return D


cdef inline void gene_counts(Gene* g) noexcept nogil:
    """The histogram sums of y (N_{>m}, cells at or above VMAX) and Σ log Γ(y + 1)."""
    cdef Py_ssize_t i, m, yi
    memset(g.ntail, 0, VMAX * sizeof(double))
    g.nbig = 0
    g.mtop = 0
    g.lgy1 = 0.0
    for i in range(g.n):
        yi = <Py_ssize_t>g.y[i]
        if yi >= VMAX:
            g.big[g.nbig] = i
            g.nbig += 1
            yi = VMAX
        if yi > g.mtop:
            g.mtop = yi
        if yi > 0:
            g.ntail[yi - 1] += 1.0
            g.lgy1 += lgamma(g.y[i] + 1.0)
    for m in range(VMAX - 2, -1, -1):  # counts of y = m + 1 -> cells with y > m
        g.ntail[m] += g.ntail[m + 1]

# The scalar-term GLMM's quantities that are functions of the converged PIRLS state (issue 15:
# AGQ and the gradient beside the loop, not inside it): lme4's adaptive Gauss-Hermite deviance and
# the analytic Laplace gradient.  Inline over raw arrays, as _dense.pxd, so SingleTerm (_pirls.pyx)
# calls them without a module boundary; they read the state and write only the scratch given.
from libc.math cimport exp, log
from libc.string cimport memset

from ._glm cimport _devres_d, _linkinv


cdef inline double agq_deviance(Py_ssize_t n, Py_ssize_t nl, Py_ssize_t nagq, const int* codes,
                                const double* eta, const double* base, const double* zx,
                                Py_ssize_t zstride, double th, const double* u, const double* L,
                                const double* agq_z, const double* agq_w, int fam, int link,
                                const double* y, const double* pw, double* g, double* m,
                                double* dc0, double* cv, double disp) noexcept nogil:
    """lme4's AGQ deviance (deviance-residual scale) at the converged mode u of a scalar term,
    without log|L|²: sum over levels of devc0 - 2 log(sum_k w_k exp(-(dev(u + z_k/L) - devc0)/2
    + z_k²/2)).  ``g``, ``m``, ``dc0``, ``cv``: scratch of nl values each."""
    cdef Py_ssize_t i, j, k
    cdef double z, mu, s = 0.0
    memset(dc0, 0, nl * sizeof(double))
    memset(m, 0, nl * sizeof(double))
    for i in range(n):
        mu = _linkinv(link, eta[i])
        dc0[codes[i]] += _devres_d(fam, y[i], mu, pw[i], disp)
    for j in range(nl):
        dc0[j] += u[j] * u[j]
    for k in range(nagq):
        z = agq_z[k]
        if z == 0.0:
            for j in range(nl):
                m[j] += agq_w[k]
            continue
        for j in range(nl):
            g[j] = u[j] + z / L[j]
            cv[j] = g[j] * g[j]
        for i in range(n):
            j = codes[i]
            mu = _linkinv(link, base[i] + zx[i * zstride] * th * g[j])
            cv[j] += _devres_d(fam, y[i], mu, pw[i], disp)
        for j in range(nl):
            m[j] += agq_w[k] * exp(-0.5 * (cv[j] - dc0[j]) + 0.5 * z * z)
    for j in range(nl):
        s += dc0[j] - 2.0 * log(m[j])
    return s


cdef inline void laplace_gradient(Py_ssize_t n, Py_ssize_t nl, Py_ssize_t px, const int* codes,
                                  const double* zx, Py_ssize_t zstride, const double* X,
                                  Py_ssize_t xstride, const double* Binv, Py_ssize_t bstride,
                                  double th, const double* u, int binom, const double* y,
                                  const double* pw, const double* mu_, double* G, double* S,
                                  double* K, double* H, double* Q, double* gx,
                                  double* g) noexcept nogil:
    """d/dx of the Laplace deviance at the converged mode, x = [theta, delta], canonical link.

    dev + |u|^2 by the envelope theorem (u is its minimiser); log|A| = sum_j log D_j,
    D_j = 1 + theta^2 G_j(eta), also moves with eta through u*(theta, beta), whose
    derivatives are u_j' = (S_j - theta G_j u_j) / D_j along theta and -theta H_jk / D_j
    along beta_k (S_j = sum r z, r = pw (y - mu); G_j = sum w z^2; H_jk = sum w z x_k).
    Scratch: G, S, K (nl), H, Q (nl * px), gx (px); result in g (1 + px)."""
    cdef Py_ssize_t i, j, k, l
    cdef double wi, wd, mu, z, ri, up, a, gth = 0.0
    memset(G, 0, nl * sizeof(double))
    memset(S, 0, nl * sizeof(double))
    memset(K, 0, nl * sizeof(double))
    if px:
        memset(H, 0, nl * px * sizeof(double))
        memset(Q, 0, nl * px * sizeof(double))
        memset(gx, 0, px * sizeof(double))
    for i in range(n):
        mu = mu_[i]
        wi = pw[i] * (mu * (1.0 - mu) if binom else mu)
        wd = wi * (1.0 - 2.0 * mu) if binom else wi  # d w / d eta
        ri = pw[i] * (y[i] - mu)
        z = zx[i * zstride]
        j = codes[i]
        G[j] += wi * z * z
        S[j] += ri * z
        K[j] += wd * z * z * z
        for k in range(px):
            H[j * px + k] += wi * z * X[i * xstride + k]
            Q[j * px + k] += wd * z * z * X[i * xstride + k]
            gx[k] -= 2.0 * ri * X[i * xstride + k]
    for j in range(nl):
        a = 1.0 + th * th * G[j]
        up = (S[j] - th * G[j] * u[j]) / a
        gth += (-2.0 * u[j] * S[j]
                + (2.0 * th * G[j] + th * th * (u[j] + th * up) * K[j]) / a)
        for k in range(px):
            up = -th * H[j * px + k] / a
            gx[k] += th * th / a * (Q[j * px + k] + th * up * K[j])
    g[0] = gth
    for l in range(px):  # beta = beta0 + Binv delta
        a = 0.0
        for k in range(px):
            a = a + Binv[k * bstride + l] * gx[k]
        g[1 + l] = a

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Per-level least squares for the moment start (model/start.py): one pass over the rows for
the per-level cross-products, then a p x p Cholesky solve per level."""
import numpy as np
cimport numpy as cnp
from ._types cimport i64
from ._codes cimport code_range
from ._checks import check_length
from ..errors import DataError

cnp.import_array()


cdef inline void _chol_solve(double[:, ::1] L, double* x, Py_ssize_t p) noexcept nogil:
    """x <- (L L')⁻¹ x for a lower-triangular L (p x p), in place."""
    cdef Py_ssize_t a, k
    cdef double acc
    for a in range(p):
        acc = x[a]
        for k in range(a):
            acc = acc - L[a, k] * x[k]
        x[a] = acc / L[a, a]
    for a in range(p - 1, -1, -1):
        acc = x[a]
        for k in range(a + 1, p):
            acc = acc - L[k, a] * x[k]
        x[a] = acc / L[a, a]


def level_regressions(const double[:, ::1] X, const int[::1] codes, Py_ssize_t G,
                      const double[::1] r):
    """Regress r on the columns of X within each of the G levels.

    Returns (b, inv_mean, ssr, df, XtX): the coefficients of the m usable levels (m x p; a
    level is usable with at least p rows and a Cholesky of X_g'X_g whose pivots stay above
    1e-10 of its largest diagonal), the mean of their (X_g'X_g)⁻¹, their residual sum of
    squares and degrees of freedom, and X'X over all rows.
    """
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1], i, g, a, c, k, m = 0
    if codes.shape[0] != n:
        check_length("codes", codes.shape[0], n)
    if r.shape[0] != n:
        check_length("r", r.shape[0], n)
    cdef i64 lo, hi
    code_range(codes, &lo, &hi)
    if n and (lo < 0 or hi >= G):  # once per fit, O(n) like the rest
        raise DataError(f"kernel argument 'codes' has a level outside 0..{G - 1}")
    cdef cnp.ndarray[double, ndim=3] xtx_a = np.zeros((G, p, p))
    cdef cnp.ndarray[double, ndim=2] xtr_a = np.zeros((G, p))
    cdef double[:, :, ::1] xtx = xtx_a
    cdef double[:, ::1] xtr = xtr_a
    cdef double[::1] rr = np.zeros(G)
    cdef i64[::1] cnt = np.zeros(G, dtype=np.int64)
    b_a = np.zeros((G, p))
    inv_a = np.zeros((p, p))
    tot_a = np.zeros((p, p))
    cdef double[:, ::1] b = b_a
    cdef double[:, ::1] inv = inv_a
    cdef double[:, ::1] tot = tot_a
    cdef double[:, ::1] L = np.zeros((p, p))
    cdef double[::1] e = np.zeros(p)
    cdef double xa, acc, dmax, ssr = 0.0
    cdef i64 df = 0
    cdef bint ok
    with nogil:
        for i in range(n):
            g = codes[i]
            rr[g] += r[i] * r[i]
            cnt[g] += 1
            for a in range(p):
                xa = X[i, a]
                xtr[g, a] += xa * r[i]
                for c in range(a + 1):
                    xtx[g, a, c] += xa * X[i, c]
        for g in range(G):
            for a in range(p):
                for c in range(a + 1):
                    tot[a, c] += xtx[g, a, c]
            if cnt[g] < p:
                continue
            dmax = 0.0
            for a in range(p):
                if xtx[g, a, a] > dmax:
                    dmax = xtx[g, a, a]
            ok = dmax > 0.0
            for a in range(p):  # Cholesky, lower, of the level's X'X
                if not ok:
                    break
                for c in range(a + 1):
                    acc = xtx[g, a, c]
                    for k in range(c):
                        acc = acc - L[a, k] * L[c, k]
                    if a == c:
                        if acc <= 1e-10 * dmax:
                            ok = False
                            break
                        L[a, a] = acc ** 0.5
                    else:
                        L[a, c] = acc / L[c, c]
            if not ok:
                continue
            for a in range(p):  # b = (L L')⁻¹ X'r, in row m
                b[m, a] = xtr[g, a]
            _chol_solve(L, &b[m, 0], p)
            acc = rr[g]
            for a in range(p):
                acc = acc - b[m, a] * xtr[g, a]
            ssr += acc
            df += cnt[g] - p
            for c in range(p):  # column c of (X'X)⁻¹, added to the sum
                for a in range(p):
                    e[a] = 1.0 if a == c else 0.0
                _chol_solve(L, &e[0], p)
                for a in range(p):
                    inv[a, c] += e[a]
            m += 1
        for a in range(p):
            for c in range(a + 1, p):
                tot[a, c] = tot[c, a]
    if m:
        inv_a /= m
    return b_a[:m], inv_a, ssr, df, tot_a

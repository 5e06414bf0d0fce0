# Small dense linear algebra shared by the kernels (inline: no call overhead in the inner loops).
from libc.math cimport INFINITY, log, sqrt


cdef inline int small_chol(double* D, Py_ssize_t p) noexcept nogil:
    """In-place lower Cholesky of a row-major p x p matrix; -1 if not positive definite (or NaN)."""
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


cdef inline void tkv_tm(const double* Tk, Py_ssize_t pk, const double* V, const double* Tm,
                        Py_ssize_t pm, double* out, double* tmp) noexcept nogil:
    """out (pk x pm, row-major) = Tk' V Tm for lower-triangular column-major templates."""
    cdef Py_ssize_t a, b, s, t
    cdef double acc
    if pk == 1 and pm == 1:
        out[0] = Tk[0] * V[0] * Tm[0]
        return
    for a in range(pk):
        for t in range(pm):
            acc = 0.0
            for b in range(t, pm):
                acc = acc + V[a * pm + b] * Tm[b + t * pm]
            tmp[a * pm + t] = acc
    for s in range(pk):
        for t in range(pm):
            acc = 0.0
            for a in range(s, pk):
                acc = acc + Tk[a + s * pk] * tmp[a * pm + t]
            out[s * pm + t] = acc


cdef inline void lambda_t(const double* T, const int* tofs, const int* term_p, const int* blk_term,
                          const int* blk_start, Py_ssize_t nblocks, const double* ZtW,
                          Py_ssize_t q, Py_ssize_t ncol, double* B) noexcept nogil:
    """B <- Λ' Z'W (column-major q x ncol): each block's rows times its term's template T_k'."""
    cdef Py_ssize_t blk, s, a, c, k, pk, st
    cdef const double* Tk
    cdef double acc
    for blk in range(nblocks):
        k = blk_term[blk]
        pk = term_p[k]
        st = blk_start[blk]
        Tk = T + tofs[k]
        for c in range(ncol):
            for s in range(pk):
                acc = 0.0
                for a in range(s, pk):
                    acc = acc + Tk[a + s * pk] * ZtW[st + a + c * q]
                B[st + s + c * q] = acc


cdef inline void downdate(const double* WtW, const double* U, const double* V, Py_ssize_t q,
                          Py_ssize_t ncol, double* M) noexcept nogil:
    """M = W'W - U'V (symmetric, ncol x ncol, row-major); U, V column-major q x ncol."""
    cdef Py_ssize_t i, c1, c2
    cdef double acc
    for c1 in range(ncol):
        for c2 in range(c1, ncol):
            acc = 0.0
            for i in range(q):
                acc = acc + U[i + c1 * q] * V[i + c2 * q]
            M[c1 * ncol + c2] = WtW[c1 * ncol + c2] - acc
            M[c2 * ncol + c1] = M[c1 * ncol + c2]


cdef inline int profile_cross(double* M, Py_ssize_t m, double* out) noexcept nogil:
    """Cholesky of the m x m cross-product M = [[R_X'R_X, .], [c_b', r^2 + |c_b|^2]] (row-major,
    overwritten): out = (log|R_X|^2, r^2); -1 if it is not positive definite."""
    cdef Py_ssize_t k
    cdef double ld = 0.0
    if small_chol(M, m) != 0:
        return -1
    for k in range(m - 1):
        ld += 2.0 * log(M[k * m + k])
    out[0] = ld
    out[1] = M[m * m - 1] * M[m * m - 1]
    return 0 if out[1] > 0.0 else -1


cdef inline object profiled_result(double ld, object M):
    """A kernel's ``update`` result (log|A|, M) -> (log|A|, log|R_X|², r²), or None."""
    cdef double out[2]
    cdef double[:, ::1] Mv
    cdef int rc
    if M is None or not ld < INFINITY:
        return None
    Mv = M
    with nogil:
        rc = profile_cross(&Mv[0, 0], Mv.shape[0], out)
    return None if rc != 0 else (ld, out[0], out[1])

# Small dense linear algebra shared by the kernels (inline: no call overhead in the inner loops).
from libc.math cimport sqrt


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

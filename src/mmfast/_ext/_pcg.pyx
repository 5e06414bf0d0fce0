# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Sparse products of the iterative solver (model/iterative.py) with one CSR cross-product
block C (rows: the eliminated term's levels, columns: the other levels), on row-major blocks
of k vectors.  Each works on a row range without the GIL, so callers split C's rows over
threads with one output per thread for the scattering ones.  Shapes are checked per call
against C's ``ncol``; that every column index is below ``ncol`` is the caller's invariant
(checked once where C is built, as it is O(nnz)).

``gather``: out[i] = Σ_j C_ij Y[j] (C Y); ``scatter``: out[j] += C_ij^s X[i] (C'X, s = 1 or 2);
``gather_scatter``: out[j] += C_ij w_i Σ_l C_il Y[l] (C' diag(w) C Y in one pass over C).
"""
import numpy as np
from ._checks import check_length
from ..errors import DataError
from ._types cimport i64


cdef inline void _check(const i64[::1] indptr, const int[::1] indices, const double[::1] data,
                        i64 r0, i64 r1) except *:
    nrow = indptr.shape[0] - 1
    if not (0 <= r0 <= r1 <= nrow):
        raise DataError(f"row range [{r0}, {r1}) outside C's {nrow} rows")
    check_length("indices", indices.shape[0], indptr[nrow])
    check_length("data", data.shape[0], indptr[nrow])


cdef inline void _gather_row(i64 a, i64 b, const int* idx, const double* val, const double* Y,
                             Py_ssize_t k, double* t) noexcept nogil:
    """t = Σ_{p in [a, b)} val[p] Y[idx[p], :] (Y row-major with k columns)."""
    cdef Py_ssize_t c
    cdef i64 p
    cdef const double* y
    for c in range(k):
        t[c] = 0.0
    for p in range(a, b):
        y = Y + <i64>idx[p] * k
        for c in range(k):
            t[c] += val[p] * y[c]


cdef inline void _scatter_row(i64 a, i64 b, const int* idx, const double* val, const double* x,
                              Py_ssize_t k, double* out, bint squared) noexcept nogil:
    """out[idx[p], :] += val[p] x (val[p]² with ``squared``) for p in [a, b)."""
    cdef Py_ssize_t c
    cdef i64 p
    cdef double v
    cdef double* o
    for p in range(a, b):
        v = val[p] * val[p] if squared else val[p]
        o = out + <i64>idx[p] * k
        for c in range(k):
            o[c] += v * x[c]


def gather(const i64[::1] indptr, const int[::1] indices, const double[::1] data, i64 ncol,
           const double[:, ::1] Y, double[:, ::1] out, i64 r0, i64 r1):
    """out[i, :] = Σ_j C_ij Y[j, :] for rows i in [r0, r1) (C: ncol columns)."""
    _check(indptr, indices, data, r0, r1)
    check_length("Y", Y.shape[0], ncol)
    check_length("out rows", out.shape[0], indptr.shape[0] - 1)
    check_length("out columns", out.shape[1], Y.shape[1])
    cdef Py_ssize_t k = Y.shape[1]
    cdef i64 i
    if k == 0 or data.shape[0] == 0:
        out[r0:r1, :] = 0.0
        return
    with nogil:
        for i in range(r0, r1):
            _gather_row(indptr[i], indptr[i + 1], &indices[0], &data[0], &Y[0, 0], k, &out[i, 0])


def scatter(const i64[::1] indptr, const int[::1] indices, const double[::1] data, i64 ncol,
            const double[:, ::1] X, double[:, ::1] out, i64 r0, i64 r1, bint squared=False):
    """out[j, :] += C_ij X[i, :] (C_ij² with ``squared``) for rows i in [r0, r1)."""
    _check(indptr, indices, data, r0, r1)
    check_length("X", X.shape[0], indptr.shape[0] - 1)
    check_length("out rows", out.shape[0], ncol)
    check_length("out columns", out.shape[1], X.shape[1])
    cdef Py_ssize_t k = X.shape[1]
    cdef i64 i
    if k == 0 or data.shape[0] == 0:
        return
    with nogil:
        for i in range(r0, r1):
            _scatter_row(indptr[i], indptr[i + 1], &indices[0], &data[0], &X[i, 0], k, &out[0, 0], squared)


def gather_scatter(const i64[::1] indptr, const int[::1] indices, const double[::1] data, i64 ncol,
                   const double[::1] w, const double[:, ::1] Y, double[:, ::1] out, i64 r0, i64 r1):
    """out[j, :] += C_ij w_i Σ_l C_il Y[l, :] for rows i in [r0, r1): C' diag(w) C Y, C read once."""
    _check(indptr, indices, data, r0, r1)
    check_length("w", w.shape[0], indptr.shape[0] - 1)
    check_length("Y", Y.shape[0], ncol)
    check_length("out rows", out.shape[0], ncol)
    check_length("out columns", out.shape[1], Y.shape[1])
    cdef Py_ssize_t k = Y.shape[1], c
    cdef i64 i
    if k == 0 or data.shape[0] == 0:
        return
    cdef double[::1] t = np.empty(k)
    with nogil:
        for i in range(r0, r1):
            _gather_row(indptr[i], indptr[i + 1], &indices[0], &data[0], &Y[0, 0], k, &t[0])
            for c in range(k):
                t[c] *= w[i]
            _scatter_row(indptr[i], indptr[i + 1], &indices[0], &data[0], &t[0], k, &out[0, 0], False)

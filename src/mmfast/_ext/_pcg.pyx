# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Sparse products of the iterative solver (model/iterative.py) with one CSR cross-product
block C (rows: the eliminated term's levels, columns: the other levels), on row-major blocks
of k vectors.  Each works on a row range without the GIL, so callers split C's rows over
threads with one output per thread for the scattering ones.  Shapes are checked per call;
that every column index is below the other side's length is the caller's invariant (checked
once where C is built, as it is O(nnz)).

``gather``: out[i] = Σ_j C_ij Y[j] (C Y); ``scatter``: out[j] += C_ij^s X[i] (C'X, s = 1 or 2);
``gather_scatter``: out[j] += C_ij w_i Σ_l C_il Y[l] (C' diag(w) C Y in one pass over C).
"""
import numpy as np
from ._checks import check_length
from ._types cimport i64


cdef inline void _check(const i64[::1] indptr, const int[::1] indices, const double[::1] data,
                        i64 r0, i64 r1) except *:
    nrow = indptr.shape[0] - 1
    if not (0 <= r0 <= r1 <= nrow):
        raise IndexError(f"row range [{r0}, {r1}) outside C's {nrow} rows")
    check_length("indices", indices.shape[0], indptr[nrow])
    check_length("data", data.shape[0], indptr[nrow])


def gather(const i64[::1] indptr, const int[::1] indices, const double[::1] data,
           const double[:, ::1] Y, double[:, ::1] out, i64 r0, i64 r1):
    """out[i, :] = Σ_j C_ij Y[j, :] for rows i in [r0, r1) (column indices must be < len(Y))."""
    _check(indptr, indices, data, r0, r1)
    check_length("out rows", out.shape[0], indptr.shape[0] - 1)
    check_length("out columns", out.shape[1], Y.shape[1])
    cdef Py_ssize_t k = Y.shape[1], c
    cdef i64 i, p
    cdef const double* y
    cdef double* o
    cdef double v
    with nogil:
        for i in range(r0, r1):
            o = &out[i, 0]
            for c in range(k):
                o[c] = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                v = data[p]
                y = &Y[indices[p], 0]
                for c in range(k):
                    o[c] += v * y[c]


def scatter(const i64[::1] indptr, const int[::1] indices, const double[::1] data,
            const double[:, ::1] X, double[:, ::1] out, i64 r0, i64 r1, bint squared=False):
    """out[j, :] += C_ij X[i, :] (C_ij² with ``squared``) for rows i in [r0, r1)."""
    _check(indptr, indices, data, r0, r1)
    check_length("X", X.shape[0], indptr.shape[0] - 1)
    check_length("out columns", out.shape[1], X.shape[1])
    cdef Py_ssize_t k = X.shape[1], c
    cdef i64 i, p
    cdef const double* x
    cdef double* o
    cdef double v
    with nogil:
        for i in range(r0, r1):
            x = &X[i, 0]
            for p in range(indptr[i], indptr[i + 1]):
                v = data[p] * data[p] if squared else data[p]
                o = &out[indices[p], 0]
                for c in range(k):
                    o[c] += v * x[c]


def gather_scatter(const i64[::1] indptr, const int[::1] indices, const double[::1] data,
                   const double[::1] w, const double[:, ::1] Y, double[:, ::1] out, i64 r0, i64 r1):
    """out[j, :] += C_ij w_i Σ_l C_il Y[l, :] for rows i in [r0, r1): C' diag(w) C Y, C read once."""
    _check(indptr, indices, data, r0, r1)
    check_length("w", w.shape[0], indptr.shape[0] - 1)
    check_length("out rows", out.shape[0], Y.shape[0])
    check_length("out columns", out.shape[1], Y.shape[1])
    cdef Py_ssize_t k = Y.shape[1], c
    cdef i64 i, p
    cdef const double* y
    cdef double* o
    cdef double v
    if k == 0:
        return
    cdef double[::1] t = np.empty(k)
    cdef double* tp = &t[0]
    with nogil:
        for i in range(r0, r1):
            for c in range(k):
                tp[c] = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                v = data[p]
                y = &Y[indices[p], 0]
                for c in range(k):
                    tp[c] += v * y[c]
            for c in range(k):
                tp[c] *= w[i]
            for p in range(indptr[i], indptr[i + 1]):
                v = data[p]
                o = &out[indices[p], 0]
                for c in range(k):
                    o[c] += v * tp[c]

"""BLAS on one thread where OpenBLAS's second thread only costs: many small dense products.

OpenBLAS wakes its threads for every call, which pays on a 1,000 x 1,000 factorisation and
loses on thousands of 50 x 50 ones (measured: big_nested 0.15 s with two threads, 0.09 s with
one).  ``one_blas_thread()`` is a threadpoolctl context (the controller is built once).
"""
from __future__ import annotations

import contextlib

__all__ = ["one_blas_thread", "small_blas_work"]

SMALL_DENSE = 400  # dense blocks below this order: one BLAS thread is faster
_CONTROLLER = None


def one_blas_thread():
    """A context with every loaded BLAS on one thread."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


def small_blas_work(dense_size: int, q: int, min_q: int = 1000):
    """``one_blas_thread()`` for a fit with many random effects (q >= min_q) and a small dense
    part; a null context otherwise (a 19 µs context is not worth it on a 3 ms fit)."""
    if q >= min_q and dense_size < SMALL_DENSE:
        return one_blas_thread()
    return contextlib.nullcontext()

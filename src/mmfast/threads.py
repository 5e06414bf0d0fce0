"""BLAS on one thread where OpenBLAS's second thread only costs.

OpenBLAS wakes its threads for every call, which pays on a 1,000 x 1,000 factorisation and
loses on thousands of 50 x 50 ones (measured: big_nested 0.15 s with two threads, 0.09 s with
one).  After a call its workers spin for a while before they sleep, so numpy's BLAS (a
separate OpenBLAS in the wheels) working on n-row vectors leaves a thread spinning on the core
the kernels' LAPACK (scipy's, or CHOLMOD's system BLAS) needs next (measured: InstEval's first
evaluation 0.06-0.15 s instead of 0.045).  The contexts are threadpoolctl's (its controller is
built once).
"""
from __future__ import annotations

import contextlib

__all__ = ["one_blas_thread", "small_blas_work", "large_data_blas"]

SMALL_DENSE = 400  # dense blocks below this order: one BLAS thread is faster
LARGE_N = 10_000  # rows from which numpy's BLAS may go multi-threaded on the n-row arrays
_CONTROLLER = None
_NUMPYS = None


def _controller():
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def one_blas_thread():
    """A context with every loaded BLAS on one thread."""
    return _controller().limit(limits=1, user_api="blas")


def _numpys_own_blas():
    """numpy's private BLAS (the copy its wheels bundle), or None when numpy shares a BLAS
    with scipy or CHOLMOD (then it is the kernels' BLAS too and keeps its threads)."""
    global _NUMPYS
    if _NUMPYS is None:
        import os
        import numpy

        root = os.path.dirname(os.path.dirname(os.path.realpath(numpy.__file__)))
        own = (os.path.join(root, "numpy.libs"), os.path.join(root, "numpy"))
        libs = [lib.filepath for lib in _controller().select(user_api="blas").lib_controllers
                if os.path.realpath(lib.filepath).startswith(own)]
        _NUMPYS = _controller().select(filepath=libs) if libs else False
    return _NUMPYS or None


def large_data_blas(n: int):
    """For a fit on n >= LARGE_N rows: numpy's own BLAS on one thread (its work there is
    products with the n-row arrays, and its spinning workers would slow the kernels'
    factorisations); a null context otherwise."""
    own = _numpys_own_blas() if n >= LARGE_N else None
    return own.limit(limits=1) if own is not None else contextlib.nullcontext()


def small_blas_work(dense_size: int, q: int, min_q: int = 1000):
    """``one_blas_thread()`` for a fit with many random effects (q >= min_q) and a small dense
    part; a null context otherwise (a 19 µs context is not worth it on a 3 ms fit)."""
    if q >= min_q and dense_size < SMALL_DENSE:
        return one_blas_thread()
    return contextlib.nullcontext()

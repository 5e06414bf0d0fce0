"""BLAS on one thread where OpenBLAS's second thread only costs.

OpenBLAS wakes its threads for every call, which pays on a 1,000 x 1,000 factorisation and
loses on thousands of 50 x 50 ones (measured: big_nested 0.15 s with two threads, 0.09 s with
one).  After a call its workers spin for a while before they sleep, so numpy's BLAS (a
separate OpenBLAS in the wheels) working on n-row vectors leaves a thread spinning on the core
the kernels' LAPACK (scipy's, or CHOLMOD's system BLAS) needs next (measured: InstEval's first
evaluation 0.06-0.15 s instead of 0.045).  When other processes keep the cores busy, every
extra thread is worse still: a thread that spins waiting for a partner the scheduler has not
run makes each factorisation wait for a time slice (InstEval: 0.22 s idle, 10-30 s with two
BLAS threads on a loaded machine, 1.4 s with one).  So a fit gets ``fit_threads`` threads: one
for a small dense part, else one per ``SMALL_DENSE`` rows of it, never more than the cores
other processes leave free at the start of the fit.  The contexts are threadpoolctl's (its
controller is built once).
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["one_blas_thread", "fit_threads", "limit_fit_threads", "large_data_blas", "usable_cores", "busy_cores"]

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
        libs = [
            lib.filepath
            for lib in _controller().select(user_api="blas").lib_controllers
            if os.path.realpath(lib.filepath).startswith(own)
        ]
        _NUMPYS = _controller().select(filepath=libs) if libs else False
    return _NUMPYS or None


def large_data_blas(n: int):
    """For a fit on n >= LARGE_N rows: numpy's own BLAS on one thread (its work there is
    products with the n-row arrays, and its spinning workers would slow the kernels'
    factorisations); a null context otherwise."""
    own = _numpys_own_blas() if n >= LARGE_N else None
    return own.limit(limits=1) if own is not None else contextlib.nullcontext()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def busy_cores() -> int:
    """Threads of other processes runnable right now (Linux: /proc/loadavg's running count
    less this process's own running threads); 0 where that cannot be read."""
    try:
        with open("/proc/loadavg") as fh:
            running = int(fh.read().split()[3].split("/")[0])
        own = 0
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/stat") as fh:
                own += fh.read().rsplit(")", 1)[1].split()[0] == "R"
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - max(own, 1))


def fit_threads(dense_size: int | None, q: int, min_q: int = 1000) -> int | None:
    """BLAS/OpenMP threads for one fit: None for a small problem (q < min_q and a small dense
    part: the libraries stay on one thread by themselves and a limit is not worth its cost);
    1 for many random effects around a small dense part; else one per SMALL_DENSE rows of the
    dense part (all cores when its order is unknown), at most the cores not busy elsewhere."""
    small = dense_size is not None and dense_size < SMALL_DENSE
    if small and q < min_q:
        return None
    if small:
        return 1
    cores = usable_cores()
    helps = cores if dense_size is None else max(1, dense_size // SMALL_DENSE)
    return max(1, min(cores, helps, cores - busy_cores()))


def limit_fit_threads(dense_size: int | None, q: int, min_q: int = 1000):
    """A context holding every BLAS and OpenMP pool at ``fit_threads(...)`` threads for the fit;
    a null context when that is no limit."""
    k = fit_threads(dense_size, q, min_q)
    if k is None:
        return contextlib.nullcontext()
    ctl = _controller()
    if all(lib.num_threads <= k for lib in ctl.lib_controllers):
        return contextlib.nullcontext()
    return ctl.limit(limits=k)

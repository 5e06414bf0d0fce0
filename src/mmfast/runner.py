"""The one parallel runner: many independent calls in this process, in loky worker processes
(joblib) or on Dask, used by ``resample`` (seeded Monte-Carlo chunks) and ``pipeline``
(``fit_many``'s tasks).

``n_jobs`` means the same everywhere (joblib's convention): None or 1 runs in this process,
-1 on all cores, -2 on all but one, k on k workers; 0 is an error.  The calls are fixed before a
backend is chosen, so no result depends on ``n_jobs``, the backend or the completion order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .errors import ArgumentError
from .progress import counted

__all__ = ["BACKENDS", "effective_n_jobs", "run_calls"]

BACKENDS = ("loky", "dask", "serial")


def effective_n_jobs(n_jobs: int | None) -> int:
    """The number of worker processes ``n_jobs`` asks for (1: run here)."""
    if n_jobs is None:
        return 1
    n_jobs = int(n_jobs)
    if n_jobs == 0:
        raise ArgumentError("n_jobs must not be 0 (None or 1: serial, -1: all cores)")
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return n_jobs


def run_calls(
    func: Callable[..., Any],
    calls: Sequence[tuple],
    n_jobs: int | None = 1,
    backend: str = "loky",
    ordered: bool = True,
    progress: bool | None = None,
    desc: str = "",
    size: Callable[[Any], int] = lambda result: 1,
    total: int | None = None,
    unit: str = "it",
) -> Iterator:
    """Yield ``func(*args)`` for each ``args`` in ``calls``: in their order (``ordered``) or
    as they complete.  ``func`` and the arguments must pickle for the worker backends
    (module-level functions, plain objects).  The progress bar counts ``size(result)`` per
    finished call out of ``total`` (default: one per call)."""
    if backend not in BACKENDS:
        raise ArgumentError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, not {backend!r}")
    jobs = effective_n_jobs(n_jobs)
    calls = list(calls)
    if not calls:
        return iter(())
    if backend == "dask":
        results = _dask(func, calls, jobs, ordered)
    elif backend == "serial" or jobs == 1 or len(calls) == 1:
        results = (func(*args) for args in calls)
    else:
        results = _loky(func, calls, min(jobs, len(calls)), ordered)
    return counted(results, len(calls) if total is None else total, desc, progress, unit, size)


def _loky(func, calls, jobs: int, ordered: bool) -> Iterator:
    from joblib import Parallel, delayed

    parallel = Parallel(
        n_jobs=jobs,
        backend="loky",
        batch_size=1,
        pre_dispatch="2*n_jobs",
        return_as="generator" if ordered else "generator_unordered",
    )
    yield from parallel(delayed(func)(*args) for args in calls)


def _dask(func, calls, jobs: int, ordered: bool) -> Iterator:
    """On the current ``dask.distributed`` client, or on a LocalCluster of ``jobs``
    single-threaded processes started for this call."""
    try:
        from distributed import Client, LocalCluster, as_completed, get_client
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("backend='dask' needs dask.distributed: pip install 'mmfast[dask]'") from exc
    own = None
    try:
        client = get_client()
    except ValueError:
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        own = (client, cluster)
    try:
        futures = [client.submit(func, *args, pure=False) for args in calls]
        for fut in futures if ordered else as_completed(futures):
            yield fut.result()
            fut.release()
    finally:
        if own is not None:
            own[0].close()
            own[1].close()

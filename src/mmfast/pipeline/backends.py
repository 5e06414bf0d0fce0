"""Where the tasks run: in this process, in loky worker processes (joblib), or on Dask.

``run_tasks`` yields each task's result as soon as it is done (in completion order; the
caller sorts), so results can be written while the others are still running.  A task's
result never depends on where it ran: the chunks are fixed before any backend is chosen.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from .tasks import run_task
from ..errors import ArgumentError

__all__ = ["run_tasks", "BACKENDS", "effective_jobs"]

BACKENDS = ("loky", "dask", "serial")


def effective_jobs(n_jobs: int | None) -> int:
    """joblib's convention: -1 all cores, -2 all but one, ...; None means 1."""
    if n_jobs is None:
        return 1
    n_jobs = int(n_jobs)
    if n_jobs == 0:
        raise ArgumentError("n_jobs must not be 0")
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return n_jobs


def run_tasks(tasks: list, n_jobs: int | None = 1, backend: str = "loky") -> Iterator:
    """Run ``tasks`` (each has ``.run()``), yielding results as they complete."""
    if backend not in BACKENDS:
        raise ArgumentError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, "
                            f"not {backend!r}")
    if not tasks:
        return iter(())
    if backend == "dask":
        return _dask(tasks, n_jobs)
    jobs = effective_jobs(n_jobs)
    if backend == "serial" or jobs == 1 or len(tasks) == 1:
        return (run_task(t) for t in tasks)
    return _loky(tasks, min(jobs, len(tasks)))


def _loky(tasks: Iterable, jobs: int) -> Iterator:
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered",
                        batch_size=1, pre_dispatch="2*n_jobs")
    yield from parallel(delayed(run_task)(t) for t in tasks)


def _dask(tasks: list, n_jobs: int | None) -> Iterator:
    """On the current ``dask.distributed`` client, or on a LocalCluster started for this call."""
    try:
        from distributed import Client, LocalCluster, as_completed, get_client
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("backend='dask' needs dask.distributed: "
                          "pip install 'mmfast[dask]'") from exc
    own = None
    try:
        client = get_client()
    except ValueError:  # no client: a local cluster of n_jobs single-threaded processes
        cluster = LocalCluster(n_workers=effective_jobs(n_jobs), threads_per_worker=1,
                               processes=True, dashboard_address=None)
        client = Client(cluster)
        own = (client, cluster)
    try:
        futures = client.map(run_task, tasks, pure=False)
        for fut in as_completed(futures):
            yield fut.result()
            fut.release()
    finally:
        if own is not None:
            own[0].close()
            own[1].close()

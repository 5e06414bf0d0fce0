"""Seeded, n_jobs-independent execution of many small Monte-Carlo tasks.

Every task ``i`` (a simulation, a bootstrap replicate, a permutation) gets its own random
stream, ``SeedSequence(seed).spawn(n)[i]``, and starts from the same fitted model, never
from another task's answer.  So task ``i``'s result depends on ``seed`` and ``i`` only: not on
``n_jobs``, the chunking or the order in which chunks finish.

Tasks run in chunks (one pickled payload per chunk, not per task) through ``mmfast.runner``
(loky worker processes or Dask for ``n_jobs != 1``, this process otherwise), with its progress
bar (``mmfast.progress``: by default on a terminal, for runs over a couple of seconds).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import ArgumentError
from ..runner import effective_n_jobs, run_calls

__all__ = ["as_seed_sequence", "task_generators", "run_tasks", "TaskFailure", "effective_n_jobs", "seed_entropy"]


@dataclass(frozen=True)
class TaskFailure:
    """A task that raised: the exception's type and message (counted, never dropped)."""

    index: int
    error: str

    def __str__(self) -> str:
        return f"task {self.index}: {self.error}"


def as_seed_sequence(seed) -> np.random.SeedSequence:
    """A SeedSequence from None (fresh entropy), an int, a SeedSequence or a Generator."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int(seed.integers(0, 2**63)))
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, (int, np.integer)) and int(seed) >= 0:
        return np.random.SeedSequence(int(seed))
    raise ArgumentError(f"seed must be None, a non-negative int, a SeedSequence or a Generator, not {seed!r}")


def seed_entropy(ss: np.random.SeedSequence):
    """What reproduces the run: the int to pass back as ``seed``."""
    return ss.entropy


def task_generators(seed, n: int) -> list[np.random.Generator]:
    """One independent Generator per task (the i-th child of the seed's SeedSequence)."""
    return [np.random.default_rng(s) for s in as_seed_sequence(seed).spawn(n)]


def _run_chunk(fn, payload, indices, seeds):
    """Run tasks ``indices`` with their seeds in one process; exceptions become TaskFailure."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular fits etc.: the callers count what matters
        for i, s in zip(indices, seeds):
            try:
                out.append(fn(payload, np.random.default_rng(s)))
            except Exception as exc:  # noqa: BLE001 - a failed refit is a result, not a crash
                out.append(TaskFailure(int(i), f"{type(exc).__name__}: {exc}"))
    return out


def run_tasks(
    fn,
    payload,
    n_tasks: int,
    seed,
    n_jobs: int | None = 1,
    chunk_size: int | None = None,
    progress=None,
    desc: str = "",
    backend: str = "loky",
) -> list:
    """``[fn(payload, rng_i) for i in range(n_tasks)]``, rng_i from child i of ``seed``.

    ``fn`` and ``payload`` must be picklable for ``n_jobs != 1`` (module-level functions and
    plain objects).  A task that raises yields a ``TaskFailure`` in its place.  ``backend``:
    ``mmfast.runner``'s ("loky", "dask" or "serial").
    """
    n_tasks = int(n_tasks)
    if n_tasks < 0:
        raise ValueError(f"the number of tasks must be >= 0 (got {n_tasks})")
    seeds = as_seed_sequence(seed).spawn(n_tasks)
    jobs = effective_n_jobs(n_jobs)
    if chunk_size is None:
        # parallel: ~4 chunks per process; serial: chunks only pace the progress bar
        chunk_size = max(1, -(-n_tasks // (4 * jobs))) if jobs > 1 else min(25, max(1, n_tasks // 40))
    starts = list(range(0, n_tasks, chunk_size))
    chunks = [(list(range(a, min(n_tasks, a + chunk_size))), seeds[a : a + chunk_size]) for a in starts]
    return [
        r
        for part in run_calls(
            _run_chunk,
            [(fn, payload, idx, ss) for idx, ss in chunks],
            n_jobs=jobs,
            backend=backend,
            progress=progress,
            desc=desc,
            size=len,
            total=n_tasks,
            unit="task",
        )
        for r in part
    ]

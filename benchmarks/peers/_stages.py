"""Per-evaluation time of a fitted model's objective, shared by the Python adapters that
expose one (the scaling series reports it beside the set-up time)."""

from __future__ import annotations

import statistics
import time


def per_call(fn, calls: int = 5, warm: int = 1) -> float:
    """Median seconds of ``calls`` calls of ``fn()`` (after ``warm`` untimed calls)."""
    for _ in range(warm):
        fn()
    seconds = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)

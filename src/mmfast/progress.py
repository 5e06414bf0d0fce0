"""tqdm progress bars for long runs (bootstrap, permutations, profiles, fit_many).

``progress=None`` (the default everywhere): a bar only when stderr is a terminal, and only once
the run has lasted ``DELAY`` seconds (short runs never show one); ``True``: a bar at once,
wherever stderr goes; ``False``: never.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .errors import ArgumentError

__all__ = ["progress_bar", "counted", "check_progress", "DELAY"]

DELAY = 2.0  # seconds before a default (progress=None) bar appears


def check_progress(progress: Any) -> bool | None:
    """``progress`` as None/True/False, or ArgumentError."""
    if progress is None or isinstance(progress, bool):
        return progress
    raise ArgumentError(f"progress must be None, True or False, not {progress!r}")


def _stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(total: int, desc: str = "", progress: bool | None = None, unit: str = "it"):
    """A tqdm bar over ``total`` steps (``.update(k)``, ``.close()``), or None for no bar."""
    progress = check_progress(progress)
    if progress is False or (progress is None and not _stderr_is_terminal()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency; a broken install: no bar
        return None
    return tqdm(
        total=total, desc=desc or None, delay=0.0 if progress else DELAY, leave=False, unit=unit, file=sys.stderr
    )


def counted(
    results: Iterable,
    total: int,
    desc: str = "",
    progress: bool | None = None,
    unit: str = "it",
    size: Callable[[Any], int] = lambda result: 1,
) -> Iterator:
    """``results`` passed through, the bar advancing by ``size(r)`` after each one."""
    bar = progress_bar(total, desc, progress, unit)
    if bar is None:
        yield from results
        return
    try:
        for r in results:
            bar.update(size(r))
            yield r
    finally:
        bar.close()

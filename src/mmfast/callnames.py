"""The names a caller gave to objects (R prints ``deparse(substitute(x))``; Python has no such
expression, so we look the objects up in the first stack frame outside mmfast).

A fit records only where it was called from (``CallLabels``): the scan of the caller's
variables, ~5-25 µs with a script's or notebook's globals, runs when ``summary`` or ``anova``
first reads a label, not on every fit of a loop that never prints."""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterator, Mapping

__all__ = ["CallLabels", "call_labels", "caller_names"]

_USER_CODE = ("mmfast.demo",)  # modules of the package written as a user's script
_KEYS = ("data", "weights", "offset")


def _caller_frame():
    """The first frame outside mmfast (None if there is none); the test is inline, as this runs
    on every fit (a helper per frame cost a Python call each)."""
    frame = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module.split(".")[0] != "mmfast" or module in _USER_CODE:
            break
        frame = frame.f_back
    return frame


def _hits(obj, scope) -> list[str]:
    """The public variables of ``scope`` bound to ``obj``."""
    return [k for k, v in list(scope.items()) if v is obj and not k.startswith("_")]


def _name_in(obj, scopes) -> str | None:
    """The one public variable bound to ``obj`` in the first scope that has any, else None."""
    for scope in scopes:
        hits = _hits(obj, scope)
        if hits:
            return hits[0] if len(hits) == 1 else None
    return None


def caller_names(*objects) -> list[str | None]:
    """For each object, the one public variable of the calling code bound to it, else None."""
    frame = _caller_frame()
    try:
        if frame is None:
            return [None] * len(objects)
        scopes = [frame.f_locals, frame.f_globals]
        return [_name_in(obj, scopes) for obj in objects]
    finally:
        del frame


class CallLabels(Mapping):
    """What lme4's summary shows of a fit's call (``Data:``, ``Weights:``, ``Offset:``), looked
    up on first read: the caller's variable names, or a column name given as a string.

    Until then it holds the caller's global scope (a module's dictionary, alive anyway) and weak
    references to the objects, never the objects themselves; a function's local scope is
    scanned at once (it is small, and its frame is gone later).  An object that cannot be
    weakly referenced (a dict of columns) is looked up at once.  Pickled as the resolved dict."""

    __slots__ = ("_labels", "_pending", "_scope")

    def __init__(self, data, weights=None, offset=None):
        args = dict(zip(_KEYS, (data, weights, offset)))
        self._labels: dict[str, str | None] = dict.fromkeys(_KEYS)
        self._pending: dict[str, weakref.ref] = {}
        frame = _caller_frame()
        try:
            local = None if frame is None or frame.f_locals is frame.f_globals else frame.f_locals
            self._scope = None if frame is None else frame.f_globals
            for key, v in args.items():
                if v is None or isinstance(v, str) or frame is None:
                    self._labels[key] = v
                    continue
                hits = [] if local is None else _hits(v, local)
                if hits:  # bound in the function: its name (None if several)
                    self._labels[key] = hits[0] if len(hits) == 1 else None
                    continue
                try:
                    self._pending[key] = weakref.ref(v)
                except TypeError:
                    self._labels[key] = _name_in(v, [frame.f_globals])
        finally:
            del frame

    def _resolve(self) -> dict[str, str | None]:
        if self._pending:
            scope = self._scope or {}
            for key, ref in self._pending.items():
                obj = ref()
                self._labels[key] = None if obj is None else _name_in(obj, [scope])
            self._pending.clear()
        self._scope = None
        return self._labels

    def __getitem__(self, key: str) -> str | None:
        return self._resolve()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return len(_KEYS)

    def __reduce__(self):
        return (dict, (dict(self._resolve()),))

    def __repr__(self) -> str:
        return f"CallLabels({dict(self._resolve())!r})"


def call_labels(data, weights=None, offset=None) -> CallLabels:
    """The labels of a fit's call (``CallLabels``), read from the caller's scopes on first use."""
    return CallLabels(data, weights, offset)

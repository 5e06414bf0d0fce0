"""The names a caller gave to objects (R prints ``deparse(substitute(x))``; Python has no such
expression, so we look the objects up in the first stack frame outside mmfast)."""

from __future__ import annotations

import inspect

__all__ = ["call_labels", "caller_names"]

_USER_CODE = ("mmfast.demo",)  # modules of the package written as a user's script


def _library_frame(frame) -> bool:
    module = str(frame.f_globals.get("__name__", ""))
    return module.split(".")[0] == "mmfast" and module not in _USER_CODE


def caller_names(*objects) -> list[str | None]:
    """For each object, the one public variable of the calling code bound to it, else None."""
    frame = inspect.currentframe()
    try:
        while frame is not None and _library_frame(frame):
            frame = frame.f_back
        if frame is None:
            return [None] * len(objects)
        scopes = [frame.f_locals, frame.f_globals]
        out = []
        for obj in objects:
            name = None
            for scope in scopes:
                hits = [k for k, v in list(scope.items()) if v is obj and not k.startswith("_")]
                if hits:
                    name = hits[0] if len(hits) == 1 else None
                    break
            out.append(name)
        return out
    finally:
        del frame


def call_labels(data, weights=None, offset=None) -> dict[str, str | None]:
    """What lme4's summary shows of a fit's call (``Data:``, ``Weights:``, ``Offset:``): the
    caller's variable names, or a column name given as a string."""
    args = {"data": data, "weights": weights, "offset": offset}
    looked_up = iter(caller_names(*[v for v in args.values() if v is not None and not isinstance(v, str)]))
    return {k: (None if v is None else v if isinstance(v, str) else next(looked_up)) for k, v in args.items()}

"""Argument checks of the Cython kernels' public entries: a wrong length is a DataError naming
the argument and both lengths, never an out-of-bounds read (the kernels run without bounds
checks).  O(1) per call: shapes only, never the values; on the per-evaluation paths the kernels
compare the lengths inline and call these only on a mismatch (to build the message)."""

from __future__ import annotations


from ..errors import DataError


def check_length(name: str, got: int, expected: int) -> None:
    """Raise DataError unless ``got == expected`` (an argument's length)."""
    if got != expected:
        raise DataError(f"kernel argument '{name}' has length {got}, expected {expected}")


def check_shape(name: str, arr, shape: tuple) -> None:
    """Raise DataError unless the array's shape is ``shape`` (None entries match anything)."""
    got = getattr(arr, "shape", None)
    if got is None or len(got) != len(shape) or any(e is not None and g != e for g, e in zip(got, shape)):
        raise DataError(
            f"kernel argument '{name}' has shape {got}, expected {tuple('any' if e is None else e for e in shape)}"
        )


def check_crossprods(nv: int, q: int, ncol: int, V, ZtW, WtW) -> None:
    """The cross-products a kernel loads: V (nv,), Z'W[X y] (q, ncol), [X y]'W[X y] (ncol, ncol)."""
    check_shape("V", V, (nv,))
    check_shape("ZtW", ZtW, (q, ncol))
    check_shape("WtW", WtW, (ncol, ncol))

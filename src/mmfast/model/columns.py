"""The data columns a model uses, each fetched once, and the rows complete in all of them.

A pandas column access costs ~10 µs and ``data[cols].copy()`` ~0.25 ms, more than the whole
optimisation of a small model; the frame builders only need a few columns as Series or
arrays, so they get this read-only view instead of a copied DataFrame.  The DataFrame of the
used columns (``ModelFrame.data``, for refits and predictions) is built on first use from the
Series fetched at set-up (``complete_rows`` fetches every column).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["Columns", "complete_rows"]

_COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3 or getattr(pd.options.mode, "copy_on_write", False) is True


class Columns:
    """A DataFrame-like view (``columns``, ``[name]``, ``len``, ``in``) of some columns of
    ``data`` plus extra arrays such as ``(weights)``."""

    def __init__(self, data: pd.DataFrame, names: list[str], extra: dict | None = None):
        self._data = data
        self._extra = dict(extra or {})
        self.columns = list(names) + [c for c in self._extra if c not in names]
        self._names = list(names)
        self._series: dict = {}
        self._frame: pd.DataFrame | None = None

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "Columns":
        """A view of every column of an already-built frame (0..n-1 index)."""
        view = cls(frame, list(frame.columns))
        view._frame = frame
        return view

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, name) -> bool:
        return name in self.columns

    def __getitem__(self, name) -> pd.Series:
        s = self._series.get(name)
        if s is None:
            if name in self._extra:
                s = pd.Series(self._extra[name], index=self._data.index, name=name)
            elif name in self._names:
                s = self._data[name]
                if not _COPY_ON_WRITE:  # pandas 2 without copy-on-write: a view, copy it
                    s = s.copy()
            else:
                raise KeyError(name)
            self._series[name] = s
        return s

    def values(self, name) -> np.ndarray:
        """Column ``name`` as a numpy array: an extra array as it is (no Series built for it),
        a data column by ``to_numpy``."""
        if name in self._extra:
            return self._extra[name]
        return self[name].to_numpy()

    def frame(self) -> pd.DataFrame:
        """The columns as a DataFrame with index 0..n-1 (built once, on first use), from the
        Series fetched when the model was set up: pandas' copy-on-write keeps them as they were
        even if the caller changes the data frame afterwards."""
        if self._frame is None:
            df = pd.DataFrame({name: self[name] for name in self.columns})
            if not isinstance(df.index, pd.RangeIndex) or df.index.start != 0:
                df = df.reset_index(drop=True)
            self._frame = df
        return self._frame


def _scan(s: pd.Series | np.ndarray):
    """(missing mask or None, infinite mask or None) of one column (a Series, or an extra
    column's array), by its dtype."""
    dt = s.dtype
    if isinstance(s, np.ndarray):  # an extra column (weights, offset): numbers
        s = pd.Series(s) if dt.kind not in "iubfc" else s
    if isinstance(dt, pd.CategoricalDtype):
        miss = s.array.codes < 0
        return (miss if miss.any() else None), None
    if isinstance(dt, np.dtype) and dt.kind in "iub":
        return None, None
    if isinstance(dt, np.dtype) and dt.kind in "fc":
        a = s if isinstance(s, np.ndarray) else s.to_numpy()
        fin = np.isfinite(a)
        if fin.all():
            return None, None
        nan = np.isnan(a)
        return (nan if nan.any() else None), (~fin & ~nan)
    miss = np.asarray(s.array.isna())  # strings, nullable integers, dates, ...: the array's
    return (miss if miss.any() else None), None  # own mask (Series.hasnans costs ~20 µs)


def complete_rows(view: Columns) -> np.ndarray | None:
    """The rows without a missing value in any column, or None when all are complete.

    Infinite values in the complete rows are an error that names the column.
    """
    complete, infinite = None, []
    for name in view.columns:
        miss, inf = _scan(view._extra[name] if name in view._extra else view[name])
        if miss is not None:
            complete = ~miss if complete is None else complete & ~miss
        if inf is not None:
            infinite.append((name, inf))
    for name, inf in infinite:
        if np.any(inf if complete is None else inf & complete):
            raise DataError(f"column '{name}' has infinite values")
    return complete


def with_column(view: Columns, name: str, values: np.ndarray) -> Columns:
    """``view`` with column ``name`` replaced by ``values`` (a refit's new response); the other
    columns are shared, the DataFrame is rebuilt on first use."""
    out = Columns(view._data, view._names, {**view._extra, name: values})
    out.columns = list(view.columns)
    out._series = {k: s for k, s in view._series.items() if k != name}
    return out

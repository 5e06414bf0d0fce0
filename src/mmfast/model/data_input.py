"""The ``data`` (and ``newdata``) a user passes, as the pandas DataFrame the rest of mmfast reads.

Accepted: a pandas DataFrame (used as it is, no copy), a polars DataFrame or LazyFrame, a
pyarrow Table or RecordBatch, or a dict of equal-length columns (arrays, lists, Series).
polars and pyarrow are imported only when such an object arrives.  Anything else, duplicate
column names, and date/time columns used by a formula are ``DataError``s naming the problem.
"""

from __future__ import annotations

from collections.abc import Mapping

from functools import lru_cache

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["as_frame", "model_data", "check_numeric_time", "numeric_names", "missing_columns", "time_dtype_error"]

_ACCEPTED = "a pandas DataFrame, a polars DataFrame, a pyarrow Table or a dict of columns"


def _module(obj) -> str:
    return type(obj).__module__.split(".")[0]


def as_frame(data, what: str = "data", allow_empty: bool = True) -> pd.DataFrame:
    """``data`` as a pandas DataFrame with unique column names (pandas input: not copied)."""
    if isinstance(data, pd.DataFrame):
        frame = data
    elif _module(data) == "polars" and hasattr(data, "to_pandas"):
        frame = _converted(data, what, "polars")
    elif _module(data) == "polars" and hasattr(data, "collect"):  # LazyFrame
        frame = _converted(data.collect(), what, "polars")
    elif _module(data) == "pyarrow" and hasattr(data, "to_pandas") and hasattr(data, "schema"):
        frame = _converted(data, what, "pyarrow")
    elif isinstance(data, Mapping):
        frame = _from_mapping(data, what)
    elif data is None:
        raise DataError(f"{what} is missing: pass {_ACCEPTED}")
    else:
        raise DataError(f"{what} must be {_ACCEPTED} (got {type(data).__module__}.{type(data).__name__})")
    if not frame.columns.is_unique:
        dup = frame.columns[frame.columns.duplicated()].unique()
        raise DataError(
            f"{what} has duplicate column names: {', '.join(map(repr, dup))} (each column needs its own name)"
        )
    if not allow_empty and len(frame) == 0:
        raise DataError(f"{what} has no rows")
    return frame


def _converted(obj, what: str, library: str) -> pd.DataFrame:
    try:
        frame = obj.to_pandas()
    except Exception as exc:  # noqa: BLE001 - e.g. pyarrow missing for polars' conversion
        raise DataError(f"{what}: cannot convert the {library} table to pandas ({exc})") from exc
    if isinstance(frame, pd.Series):  # a polars Series or pyarrow Array-like
        frame = frame.to_frame()
    return frame


def _from_mapping(data: Mapping, what: str) -> pd.DataFrame:
    """A dict of columns: every value one-dimensional, all the same length."""
    lengths = {}
    for k, v in data.items():
        if not isinstance(k, str):
            raise DataError(f"{what}: column names must be strings (got {k!r})")
        if isinstance(v, (str, bytes)) or np.ndim(v) != 1:
            raise DataError(
                f"{what}: column {k!r} must be a one-dimensional array or list "
                f"(got {type(v).__name__}{'' if np.ndim(v) == 1 else f' with {np.ndim(v)} dimensions'})"
            )
        lengths[k] = len(v)
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise DataError(f"{what}: the columns have different lengths ({detail})")
    return pd.DataFrame({k: (v.to_numpy() if isinstance(v, pd.Series) else v) for k, v in data.items()})


# --- what a model may use ----------------------------------------------------------------------
def model_data(data, formula: str, weights=None, offset=None) -> pd.DataFrame:
    """``data`` for a model: converted, not empty, and no date/time column where the formula
    needs numbers (response, covariates, slopes, offsets, weights; a grouping factor may be a
    date).  Cost: a cached formula scan and the frame's dtypes, ~1 µs."""
    frame = as_frame(data)
    if len(frame) == 0:
        raise DataError("data has no rows")
    names = list(numeric_names(formula)) if isinstance(formula, str) else []
    names += [v for v in (weights, offset) if isinstance(v, str)]
    check_numeric_time(frame, names)
    for what, v in (("weights", weights), ("offset", offset)):
        _check_numeric_argument(frame, what, v)
    return frame


def _check_numeric_argument(frame: pd.DataFrame, what: str, value) -> None:
    """``weights``/``offset``: a numeric column name or numbers (text is a DataError)."""
    if value is None:
        return
    if isinstance(value, str):
        if value in frame.columns:
            dt = _dtypes(frame)[frame.columns.get_loc(value)]
            if getattr(dt, "kind", "O") not in "biuf":
                raise DataError(f"{what} column {value!r} must be numeric (got {dt} values)")
        return
    try:
        np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numbers ({exc})") from exc


def missing_columns(parsed, used, newdata: pd.DataFrame, random: bool = True) -> list:
    """The data columns a prediction needs (fixed part, offsets and, with ``random``, the
    random-effects terms; of ``used``, the columns the fit used) that ``newdata`` lacks."""
    from ..formula.parse import identifiers

    exprs = [parsed.fixed, *parsed.offsets]
    if random:
        exprs += [b.lhs for b in parsed.bars] + [f for b in parsed.bars for f in b.factors]
    need = dict.fromkeys(n for e in exprs for n in identifiers(e) if n in used)
    return [c for c in need if c not in newdata.columns]


@lru_cache(maxsize=256)
def numeric_names(formula: str) -> tuple:
    """The names in the parts of ``formula`` that are arithmetic (all but grouping factors)."""
    from ..formula import parse_formula
    from ..formula.parse import identifiers

    parsed = parse_formula(formula)
    exprs = [parsed.response, parsed.fixed, *parsed.offsets] + [b.lhs for b in parsed.bars]
    return tuple(dict.fromkeys(n for e in exprs for n in identifiers(e)))


def _dtypes(frame: pd.DataFrame):
    """The column dtypes, in column order (pandas' block manager: ~0.3 µs, where
    ``frame.dtypes`` builds a Series, ~25 µs)."""
    try:
        return frame._mgr.get_dtypes()
    except AttributeError:  # pragma: no cover - another pandas layout
        return frame.dtypes.to_numpy()


def time_dtype_error(name, dtype) -> DataError | None:
    """The error for a date/time column in a model (no arithmetic a model can use; R refuses
    them too), or None: O(1), from the dtype alone."""
    kind = getattr(dtype, "kind", "O")
    if kind in "mM" or isinstance(dtype, (pd.DatetimeTZDtype, pd.PeriodDtype)):
        what = "timedelta" if kind == "m" else "datetime"
        hint = "e.g. t / pd.Timedelta(days=1)" if kind == "m" else "e.g. (t - t.min()) / pd.Timedelta(days=1)"
        return DataError(
            f"column {name!r} holds {what} values ({dtype}): a model needs numbers; convert it first, {hint}"
        )
    return None


def check_numeric_time(frame: pd.DataFrame, columns) -> None:
    """``time_dtype_error`` for each of ``columns`` in ``frame`` (others are ignored), and
    object columns holding dates."""
    dtypes, index = _dtypes(frame), frame.columns
    for c in columns:
        if c not in index:
            continue
        dt = dtypes[index.get_loc(c)]
        err = time_dtype_error(c, dt)
        if err is not None:
            raise err
        if dt == object and len(frame) and _is_time_object(frame[c]):  # noqa: E721 - a dtype
            raise DataError(
                f"column {c!r} holds date/time objects: a model needs numbers; "
                "convert it first (e.g. days since the start)"
            )


def _is_time_object(col: pd.Series) -> bool:
    """An object column of dates/timedeltas (checked on its first non-missing value only)."""
    import datetime as _dt

    i = col.first_valid_index()
    if i is None:
        return False
    v = col[i]
    return isinstance(v, (_dt.date, _dt.time, _dt.timedelta, np.datetime64, np.timedelta64))

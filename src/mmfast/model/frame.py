"""From (formula, data) to the model's ingredients: y, X, the random-effects terms, weights.

This is lme4's ``lFormula``/``glFormula``: validation with errors that name the column,
rows with missing values in used columns dropped (and counted), the fixed-effects matrix
with aliased columns dropped as lme4 does, and the terms in lme4's order.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.linalg.lapack import dgeqrf

from ..design.remat import RandomTerm, build_terms
from .columns import Columns, complete_rows
from .data_input import model_data
from ..errors import DataError, FormulaError, RankDeficiencyWarning
from ..formula import ParsedFormula, build_matrix, parse_formula
from ..formula.fixed import ModelFrameSpec, R_FUNCTIONS, r_to_formulaic

__all__ = ["ModelFrame", "model_frame", "evaluate", "keep_full_rank"]


@dataclass
class ModelFrame:
    """Everything a model needs from its formula and data (rows already filtered)."""

    parsed: ParsedFormula
    table: Columns  # used columns only, complete rows
    y: np.ndarray
    X: np.ndarray
    fixef_names: list[str]
    fixed_spec: ModelFrameSpec
    terms: list[RandomTerm]
    weights: np.ndarray | None = None
    offset: np.ndarray | None = None
    n_dropped: int = 0
    dropped_columns: list[str] = field(default_factory=list)
    y_extra: np.ndarray | None = None  # e.g. binomial trials from cbind(s, f)

    @property
    def nobs(self) -> int:
        return len(self.y)

    @property
    def data(self) -> pd.DataFrame:
        """The used columns of the complete rows, index 0..n-1 (built on first use)."""
        return self.table.frame()

    @data.setter
    def data(self, frame: pd.DataFrame) -> None:
        self.table = Columns.of(frame)


def evaluate(expr: str, data: pd.DataFrame) -> np.ndarray:
    """Evaluate an R expression over the data columns (``log(y)``, ``s/n``, ``size - incidence``)."""
    py = r_to_formulaic(expr, data.columns).replace("`", "")
    names = {c: data[c].to_numpy() for c in data.columns if isinstance(c, str)}
    if expr.strip("` ") in data.columns:
        return data[expr.strip("` ")].to_numpy()
    try:
        out = eval(py, {"__builtins__": {}}, {**R_FUNCTIONS, **names})  # noqa: S307
    except NameError as exc:
        raise FormulaError(f"cannot evaluate '{expr}': {exc} (not a column of the data)") from exc
    except Exception as exc:  # noqa: BLE001
        raise FormulaError(f"cannot evaluate '{expr}': {exc}") from exc
    return np.broadcast_to(np.asarray(out), (len(data),)).copy()


def keep_full_rank(X: np.ndarray, names: list[str], tol: float = 1e-7) -> np.ndarray:
    """Indices of columns to keep: later columns in the span of earlier ones are dropped.

    With the columns scaled to unit length, |R_jj| of an unpivoted Householder QR is the
    distance of column j from the span of the columns before it (dropped ones add nothing to
    that span), so one backward-stable ``qr(mode="r")`` decides every column.
    """
    if X.shape[1] == 0:
        return np.arange(0)
    scale = np.sqrt((X ** 2).sum(axis=0))
    nz = scale > 0
    Xs = X[:, nz] / scale[nz]
    d = np.abs(np.diag(dgeqrf(Xs)[0])) if Xs.shape[1] else np.zeros(0)  # R on and above it
    cols = np.flatnonzero(nz)
    if len(d) < len(cols):  # fewer rows than columns: the trailing ones are dependent
        d = np.concatenate([d, np.zeros(len(cols) - len(d))])
    return cols[d > tol].astype(int)


def model_frame(formula: str, data: pd.DataFrame, weights=None, offset=None,
                check_nobs_vs_nre: str = "stop", check_nlev: str = "stop",
                response_kind: str = "numeric") -> ModelFrame:
    """Parse, validate and build the design of a mixed model."""
    data = model_data(data, formula, weights, offset)  # pandas, polars, pyarrow, dict; checked
    parsed = parse_formula(formula)
    used = list(_used_columns(formula, tuple(data.columns)))
    extra = {}
    for name, val in (("(weights)", weights), ("(offset)", offset)):
        if val is None:
            continue
        if isinstance(val, str):
            if val not in data.columns:
                raise DataError(f"{name[1:-1]} column '{val}' is not a column of the data")
            extra[name] = data[val].to_numpy(dtype=float)
        else:
            arr = np.asarray(val, dtype=float).ravel()
            if len(arr) != len(data):
                raise DataError(f"{name[1:-1]} has {len(arr)} values for {len(data)} rows")
            extra[name] = arr
    frame = Columns(data, used, extra)
    complete = complete_rows(frame)
    n_dropped = 0
    if complete is not None:  # else the rows are used as they are: no copy
        n_dropped = int((~complete).sum())
        if not complete.any():
            bad = [c for c in frame.columns if frame[c].isna().all()]
            raise DataError("no rows left after dropping missing values"
                            + (f" (all missing in: {', '.join(map(str, bad))})" if bad else ""))
        frame = Columns.of(frame.frame().loc[complete].reset_index(drop=True))
    y, y_extra = _response(parsed.response, frame, response_kind)
    X, names, spec = build_matrix(parsed.fixed, frame)
    if not np.all(np.isfinite(X)):
        raise DataError("the fixed-effects model matrix has non-finite values")
    keep = keep_full_rank(X, names)
    dropped = [names[j] for j in range(len(names)) if j not in set(keep)]
    if dropped:
        warnings.warn(f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
                      f"column{'s' if len(dropped) > 1 else ''} / coefficient"
                      f"{'s' if len(dropped) > 1 else ''} ({', '.join(dropped)})",
                      RankDeficiencyWarning, stacklevel=3)
    X = np.ascontiguousarray(X[:, keep])
    names = [names[j] for j in keep]
    terms = build_terms(parsed.bars, frame, check_nobs_vs_nre, check_nlev) if parsed.bars else []
    w = extra.get("(weights)")
    if w is not None:
        w = frame["(weights)"].to_numpy()
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise DataError("weights must be finite and non-negative")
    off = frame["(offset)"].to_numpy() if "(offset)" in frame else None
    for expr in parsed.offsets:
        o = evaluate(expr, frame).astype(float)
        if not np.all(np.isfinite(o)):
            raise DataError(f"offset({expr}) has non-finite values")
        off = o if off is None else off + o
    return ModelFrame(parsed=parsed, table=frame, y=y, X=X, fixef_names=names,
                      fixed_spec=ModelFrameSpec(spec, names, keep), terms=terms, weights=w,
                      offset=off, n_dropped=n_dropped, dropped_columns=dropped, y_extra=y_extra)


@lru_cache(maxsize=256)
def _used_columns(formula: str, columns: tuple) -> tuple:
    """The columns the formula uses, after checking that every name in it is a column or a
    known function (cached: a pipeline checks the same formula and columns for every fit)."""
    parsed = parse_formula(formula)
    for b in parsed.bars:
        for fac in b.factors:
            if fac.strip("`") not in columns:
                raise FormulaError(f"grouping factor '{fac}' in ({b}) is not a column of the data")
    _check_names_exist(parsed, columns)
    return tuple(parsed.variables(columns))


def _check_names_exist(parsed: ParsedFormula, columns) -> None:
    """Name the first identifier that is neither a column nor a known function."""
    from ..formula.parse import identifiers
    known = set(R_FUNCTIONS) | {"factor", "as.factor", "C", "I", "offset", "cbind", "as.numeric",
                                "poly", "scale", "np", "T", "F", "TRUE", "FALSE"}
    exprs = [parsed.response, parsed.fixed, *parsed.offsets] + [b.lhs for b in parsed.bars]
    for expr in exprs:
        for tok in identifiers(expr):
            if tok in columns or tok in known or tok.replace(".", "").isdigit():
                continue
            if tok.lower() in ("inf", "nan", "pi", "e"):
                continue
            raise DataError(f"'{tok}' in the formula is not a column of the data")


def _column_or_evaluate(expr: str, frame: pd.DataFrame) -> np.ndarray:
    """A bare column directly (the common response), anything else through ``evaluate``."""
    name = expr.strip().strip("`")
    if name in frame.columns:
        return frame[name].to_numpy()
    return evaluate(expr, frame)


def _response(expr: str, frame: pd.DataFrame, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The response: numeric vector, or (successes, trials) from ``cbind(s, f)``."""
    expr = expr.strip()
    if expr.startswith("cbind(") and expr.endswith(")"):
        from ..formula.parse import split_top
        parts = [t for _, t in split_top(expr[6:-1], ",")]
        if len(parts) != 2:
            raise FormulaError(f"cbind() response needs two columns, got '{expr}'")
        s = _column_or_evaluate(parts[0], frame).astype(float)
        f = _column_or_evaluate(parts[1], frame).astype(float)
        return s, s + f
    raw = _column_or_evaluate(expr, frame)
    if raw.dtype.kind == "b":
        raw = raw.astype(float)
    if raw.dtype.kind not in "iuf":
        if kind == "binary" and raw.dtype.kind in "OUS":
            levels = sorted(set(map(str, raw)))
            if len(levels) == 2:  # R: first level is failure, others success
                return (raw.astype(str) != levels[0]).astype(float), None
        raise DataError(f"response '{expr}' must be numeric (got {raw.dtype} values)")
    y = raw.astype(float)
    if not np.all(np.isfinite(y)):
        raise DataError(f"response '{expr}' has non-finite values")
    return y, None

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
from ..formula.evaluate import check_names, column_values, evaluate_expr
from ..formula.expr import parse_expr
from ..formula.fixed import ModelFrameSpec

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
    # the caller's row labels (all rows) and which rows were complete (None: all): fitted,
    # residuals and predict() come back on them, NaN where a row was dropped (R's na.exclude)
    row_index: pd.Index | None = None
    complete: np.ndarray | None = None

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


def evaluate(expr: str, data) -> np.ndarray:
    """Evaluate an R expression over the data columns (``log(y)``, ``s/n``, ``size - incidence``):
    parsed and interpreted with the allow-listed functions, never executed; numbers in float64."""
    name = expr.strip().strip("`")
    if name in data.columns:
        return column_values(data, name)
    return evaluate_expr(expr, data)


def keep_full_rank(X: np.ndarray, names: list[str], tol: float = 1e-7) -> np.ndarray:
    """Indices of columns to keep: later columns in the span of earlier ones are dropped.

    With the columns scaled to unit length, |R_jj| of an unpivoted Householder QR is the
    distance of column j from the span of the columns before it (dropped ones add nothing to
    that span), so one backward-stable ``qr(mode="r")`` decides every column.
    """
    if X.shape[1] == 0:
        return np.arange(0)
    scale = np.sqrt(np.einsum("ij,ij->j", X, X))
    if X.shape[0] <= RANK_CHUNK and X.shape[0] >= X.shape[1] and scale.all():
        # the common small case in one QR: no column selection, R's diagonal read in place
        d = np.abs(dgeqrf(X / scale)[0].diagonal())
        return np.flatnonzero(d > tol)
    nz = scale > 0
    cols = np.flatnonzero(nz)
    d = np.abs(np.diag(_stacked_r(X, cols, scale[nz]))) if len(cols) else np.zeros(0)
    if len(d) < len(cols):  # fewer rows than columns: the trailing ones are dependent
        d = np.concatenate([d, np.zeros(len(cols) - len(d))])
    return cols[d > tol].astype(int)


RANK_CHUNK = 1 << 16  # rows per QR in keep_full_rank: no n-length scaled copy of X


def _stacked_r(X: np.ndarray, cols: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """R of the Householder QR of X[:, cols] / scale, by blocks of rows (a tall-skinny QR:
    the R so far stacked on the next block), so that no n-length copy of X is made; one
    block, the plain QR, up to ``RANK_CHUNK`` rows."""
    R = None
    for start in range(0, X.shape[0], RANK_CHUNK):
        blk = X[start : start + RANK_CHUNK, cols] / scale
        if R is not None:
            blk = np.vstack([R, blk])
        qr = dgeqrf(blk)[0]
        R = np.triu(qr[: min(qr.shape)])
    return R


def model_frame(
    formula: str,
    data: pd.DataFrame,
    weights=None,
    offset=None,
    check_nobs_vs_nre: str = "stop",
    level_checks: dict | None = None,
    response_kind: str = "lmm",
) -> ModelFrame:
    """Parse, validate and build the design of a mixed model.

    ``response_kind``: "lmm" (lmer, lm: one numeric response), "binary" (binomial glmer: also
    ``cbind(s, f)`` and factors) or "numeric" (other glmer families).  ``level_checks``: further
    keywords of ``design.remat.build_terms`` (glmer's checks)."""
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
    row_index = data.index  # a reference: O(1)
    frame = Columns(data, used, extra)
    complete = complete_rows(frame)
    n_dropped = 0
    if complete is not None:  # else the rows are used as they are: no copy
        n_dropped = int((~complete).sum())
        if not complete.any():
            bad = [c for c in frame.columns if frame[c].isna().all()]
            raise DataError(
                "no rows left after dropping missing values"
                + (f" (all missing in: {', '.join(map(str, bad))})" if bad else "")
            )
        frame = Columns.of(frame.frame().loc[complete].reset_index(drop=True))
    y, y_extra = _response(parsed.response, frame, response_kind)
    X, names, spec = build_matrix(parsed.fixed, frame)
    if not np.all(np.isfinite(X)):
        raise DataError("the fixed-effects model matrix has non-finite values")
    keep = keep_full_rank(X, names)
    dropped = [names[j] for j in range(len(names)) if j not in set(keep)]
    if dropped:
        warnings.warn(
            f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
            f"column{'s' if len(dropped) > 1 else ''} / coefficient"
            f"{'s' if len(dropped) > 1 else ''} ({', '.join(dropped)})",
            RankDeficiencyWarning,
            stacklevel=3,
        )
    X = np.ascontiguousarray(X if len(keep) == X.shape[1] else X[:, keep])  # full rank: no n x p copies
    names = [names[j] for j in keep]
    terms = build_terms(parsed.bars, frame, check_nobs_vs_nre, **(level_checks or {})) if parsed.bars else []
    w = extra.get("(weights)")
    if w is not None:
        w = frame.values("(weights)")
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise DataError("weights must be finite and non-negative")
    off = frame.values("(offset)") if "(offset)" in frame else None
    for expr in parsed.offsets:
        o = evaluate(expr, frame)
        if not isinstance(o, np.ndarray) or o.ndim != 1 or o.dtype.kind not in "biuf":
            raise DataError(f"offset({expr}) must be numeric")
        o = o.astype(np.float64)
        if not np.all(np.isfinite(o)):
            raise DataError(f"offset({expr}) has non-finite values")
        off = o if off is None else off + o
    return ModelFrame(
        parsed=parsed,
        table=frame,
        y=y,
        X=X,
        fixef_names=names,
        fixed_spec=ModelFrameSpec(spec, names, keep),
        terms=terms,
        weights=w,
        offset=off,
        n_dropped=n_dropped,
        dropped_columns=dropped,
        y_extra=y_extra,
        row_index=row_index,
        complete=complete,
    )


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
    """Name the first identifier that is neither a column nor a known constant, and the first
    function that is not allow-listed (nothing is evaluated)."""
    exprs = [parsed.response, parsed.fixed, *parsed.offsets] + [b.lhs for b in parsed.bars]
    for expr in exprs:
        check_names(parse_expr(expr), columns)


def _response(expr: str, frame, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The response: a numeric vector, or (successes, trials) from a binomial ``cbind(s, f)``.

    Binomial (``kind="binary"``) follows R's factor rule: a factor's first level (a pandas
    Categorical's first used category, text's first sorted value) is failure, every other level
    success; logicals are 0/1."""
    node = parse_expr(expr)
    if node.kind == "call" and node.value == "cbind":
        if kind == "lmm":
            raise FormulaError(
                f"a cbind() response ('{expr}') is for binomial models (glmer with "
                "family='binomial'); lmer/lm need one numeric response"
            )
        if len(node.args) != 2 or node.kwargs:
            raise FormulaError(f"cbind() response needs two columns (successes, failures), got '{expr}'")
        s, f = (_numeric_response(evaluate_expr(a, frame), expr) for a in node.args)
        return s, s + f
    raw = evaluate(expr, frame)
    if isinstance(raw, pd.Categorical) or (isinstance(raw, np.ndarray) and raw.dtype.kind in "OUS"):
        if kind != "binary":
            raise DataError(f"response '{expr}' must be numeric (got text/factor values)")
        return _factor_response(raw), None
    if isinstance(raw, np.ndarray) and raw.ndim == 2:
        raise FormulaError(f"response '{expr}' has {raw.shape[1]} columns; one is needed")
    return _numeric_response(raw, expr), None


def _numeric_response(raw, expr: str) -> np.ndarray:
    if not isinstance(raw, np.ndarray) or raw.dtype.kind not in "biuf":
        raise DataError(f"response '{expr}' must be numeric (got text/factor values)")
    y = raw.astype(np.float64)
    if not np.all(np.isfinite(y)):
        raise DataError(f"response '{expr}' has non-finite values")
    return y


def _factor_response(raw) -> np.ndarray:
    """R's binomial factor response: first level failure (0), all others success (1)."""
    if isinstance(raw, pd.Categorical):
        codes = raw.codes
        used = np.unique(codes[codes >= 0])
        return (codes != used[0]).astype(np.float64)
    text = raw.astype(str)
    return (text != min(set(text))).astype(np.float64)


def with_response(frame: ModelFrame, y) -> ModelFrame:
    """``frame`` with another response, everything else (rows, X, terms, weights) shared: what
    ``refit(y)`` fits.  ``y`` is copied (the caller may reuse its array); the response's column
    in ``frame.data`` is replaced too when the response is a bare column (for ``cbind(s, f)``:
    s = y and, if f is a column, f = trials - y), so refits by formula see the new response."""
    import dataclasses

    from .columns import with_column

    y = np.array(y, dtype=float).ravel()
    if y.shape != frame.y.shape:
        raise DataError(f"new response has {y.size} values, the model has {frame.nobs} rows")
    if not np.all(np.isfinite(y)):
        raise DataError("new response has non-finite values")
    table, expr = frame.table, frame.parsed.response.strip()
    node = parse_expr(expr)
    if node.kind == "call" and node.value == "cbind" and frame.y_extra is not None:
        parts = [a.value if a.kind == "name" else None for a in node.args]
        values = [y, frame.y_extra - y]
    else:
        parts, values = [node.value if node.kind == "name" else None], [y]
    for name, val in zip(parts, values):
        if name in table.columns:
            table = with_column(table, name, val)
    return dataclasses.replace(frame, y=y, table=table)


def frame_for_formula(
    frame: ModelFrame, formula: str, options: dict | None = None, response_kind: str = "lmm"
) -> ModelFrame:
    """The model frame of another formula on ``frame``'s rows, weights and offset argument (for
    refit_ml, drop1, anova); ``frame``'s response carries over when the response expression is
    the same (a refit's y is not in the data as the formula reads it).  ``options``: the
    model's options; those that are ``model_frame`` arguments are passed on."""
    import inspect

    table = frame.data
    data = table.drop(columns=[c for c in ("(weights)", "(offset)") if c in table])
    offset = table["(offset)"].to_numpy() if "(offset)" in table else None
    params = inspect.signature(model_frame).parameters
    passed = {
        k: v
        for k, v in (options or {}).items()
        if k in params and k not in ("formula", "data", "weights", "offset", "response_kind")
    }
    new = model_frame(formula, data, weights=frame.weights, offset=offset, response_kind=response_kind, **passed)
    if new.parsed.response.strip() == frame.parsed.response.strip():
        new = with_response(new, frame.y)
    if new.complete is None and new.nobs == frame.nobs:  # same rows: the caller's labels
        new.row_index, new.complete = frame.row_index, frame.complete
    return new

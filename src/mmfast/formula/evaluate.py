"""Evaluate a parsed R expression over data columns, with an allow-listed function table.

Only column names, a few constants (TRUE, FALSE, T, F, pi, Inf, NA, NaN) and the functions in
``FUNCTIONS`` exist; anything else is an error that names it.  Numbers are computed in
float64 whatever the column's dtype (R's doubles: int8 columns do not overflow in ``x^2``).
Data-dependent calls (``factor``, ``scale``, ``poly``, ``ns``) store their training state in
``state`` under the call's deparsed text, so ``predict(newdata)`` rebuilds the same basis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from . import transforms
from .expr import Node, deparse, parse_expr

__all__ = ["evaluate_expr", "evaluate_node", "FUNCTIONS", "check_names", "column_values", "r_label"]

_PACKAGES = {"base", "stats", "splines"}
_CONSTANTS = {
    "TRUE": True,
    "T": True,
    "FALSE": False,
    "F": False,
    "pi": np.pi,
    "Inf": np.inf,
    "NA": np.nan,
    "NaN": np.nan,
    "NA_real_": np.nan,
}


def r_label(v) -> str:
    """R's ``as.character`` of a factor level (2.0 -> "2", True -> "TRUE")."""
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (float, np.floating)):
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{float(v):.15g}"
    return str(v)


def column_values(data, name: str):
    """A column as the evaluator sees it: float64, bool, or a pandas Categorical / object array."""
    s = data[name]
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return s.array
    if isinstance(dt, np.dtype) and dt.kind == "b":
        return s.to_numpy()
    if isinstance(dt, np.dtype) and dt.kind in "iuf":
        return s.to_numpy(dtype=np.float64)
    if isinstance(dt, np.dtype) and dt.kind in "mM":
        raise DataError(f"column '{name}' holds dates/times: convert it to numbers first")
    if pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable integers
    if pd.api.types.is_bool_dtype(dt):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    return s.to_numpy(dtype=object)


def _is_factorish(v) -> bool:
    return isinstance(v, pd.Categorical) or (isinstance(v, np.ndarray) and v.dtype.kind in "OUS")


def _numeric(v, node: Node) -> np.ndarray | float:
    if isinstance(v, (bool, np.bool_, int, float, np.floating, np.integer)):
        return float(v)
    if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
        return v.astype(np.float64, copy=False)
    what = "text" if isinstance(v, str) else "a factor or text"
    raise DataError(f"'{deparse(node)}' is {what}, not numeric: it cannot be used in arithmetic")


def _logical(v, node: Node):
    if isinstance(v, (bool, np.bool_)) or (isinstance(v, np.ndarray) and v.dtype.kind == "b"):
        return v
    return _numeric(v, node) != 0


class _Ctx:
    """One evaluation: the data, the transforms' state and whether to learn it (training)."""

    def __init__(self, data, state: dict | None):
        self.data = data
        self.fit = state is None or "__frozen__" not in state
        self.state = {} if state is None else state
        self.n = len(data)

    def remember(self, key: str, make):
        if self.fit and key not in self.state:
            self.state[key] = make()
        if key not in self.state:
            raise DataError(f"no training state for '{key}' (refit the model)")
        return self.state[key]


def evaluate_node(node: Node, ctx: _Ctx):
    k = node.kind
    if k == "num":
        return node.value
    if k == "str":
        return node.value
    if k == "name":
        if node.value in ctx.data.columns:
            return column_values(ctx.data, node.value)
        if node.value in _CONSTANTS:
            return _CONSTANTS[node.value]
        raise DataError(f"'{node.value}' in the formula is not a column of the data")
    if k == "paren":
        return evaluate_node(node.args[0], ctx)
    if k == "unary":
        v = evaluate_node(node.args[0], ctx)
        if node.value == "!":
            return np.logical_not(_logical(v, node.args[0]))
        if node.value == "-":
            return -_numeric(v, node.args[0])
        if node.value == "+":
            return _numeric(v, node.args[0])
        raise FormulaError(f"'{deparse(node)}': a formula cannot be a value")
    if k == "binary":
        return _binary(node, ctx)
    return _call(node, ctx)


_ARITH = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
    "^": np.power,
    "%%": np.mod,
    "%/%": np.floor_divide,
}
_COMPARE = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    ">": np.greater,
    "<=": np.less_equal,
    ">=": np.greater_equal,
}


def _binary(node: Node, ctx: _Ctx):
    op = node.value
    a, b = (evaluate_node(x, ctx) for x in node.args)
    if op in _ARITH:
        with np.errstate(all="ignore"):
            return _ARITH[op](_numeric(a, node.args[0]), _numeric(b, node.args[1]))
    if op in _COMPARE:
        if _is_factorish(a) or _is_factorish(b) or isinstance(a, str) or isinstance(b, str):
            a = np.asarray(a, dtype=object).astype(str) if not isinstance(a, str) else a
            b = np.asarray(b, dtype=object).astype(str) if not isinstance(b, str) else b
            return _COMPARE[op](a, b)
        return _COMPARE[op](_numeric(a, node.args[0]), _numeric(b, node.args[1]))
    if op in ("&", "&&"):
        return np.logical_and(_logical(a, node.args[0]), _logical(b, node.args[1]))
    if op in ("|", "||"):
        raise FormulaError(
            f"'{deparse(node)}': a random-effects bar '|' is not a value "
            "(random-effects terms go in parentheses right of '~')"
        )
    if op == "~":
        raise FormulaError(f"'{deparse(node)}': '~' may appear only once, between response and terms")
    if op == ":":
        raise FormulaError(
            f"'{deparse(node)}': ':' (interaction) is a formula operator, not arithmetic here (use I() or *)"
        )
    raise FormulaError(f"operator '{op}' is not supported in '{deparse(node)}'")


# --- functions ------------------------------------------------------------------------------
def _args(node: Node, ctx: _Ctx, names: list[str], required: int = 1) -> dict:
    """Match positional and named arguments to ``names`` (R's matching, exact names only)."""
    fn = node.value
    if len(node.args) > len(names):
        raise FormulaError(f"too many arguments in '{deparse(node)}'")
    out = {names[i]: a for i, a in enumerate(node.args)}
    for name, val in node.kwargs:
        if name not in names:
            raise FormulaError(f"'{fn}()' has no argument '{name}' (in '{deparse(node)}')")
        if name in out:
            raise FormulaError(f"argument '{name}' given twice in '{deparse(node)}'")
        out[name] = val
    for name in names[:required]:
        if name not in out:
            raise FormulaError(f"'{deparse(node)}' needs the argument '{name}'")
    return {k: evaluate_node(v, ctx) for k, v in out.items()}


def _scalar(v, node: Node, what: str) -> float:
    if isinstance(v, (bool, int, float, np.floating, np.integer)):
        return float(v)
    if isinstance(v, np.ndarray) and v.size >= 1 and v.dtype.kind in "biuf" and np.all(v == v.flat[0]):
        return float(v.flat[0])
    raise FormulaError(f"'{what}' in '{deparse(node)}' must be a number")


def _math(fn):
    def run(node, ctx):
        a = _args(node, ctx, ["x"])
        with np.errstate(all="ignore"):
            return fn(_numeric(a["x"], node))

    return run


def _log(node, ctx):
    a = _args(node, ctx, ["x", "base"])
    with np.errstate(all="ignore"):
        out = np.log(_numeric(a["x"], node))
        if "base" in a:
            out = out / np.log(_scalar(a["base"], node, "base"))
    return out


def _round(node, ctx):
    a = _args(node, ctx, ["x", "digits"])
    return np.round(_numeric(a["x"], node), int(_scalar(a.get("digits", 0), node, "digits")))


def _minmax(fn):
    def run(node, ctx):
        if node.kwargs:
            raise FormulaError(f"'{deparse(node)}': named arguments are not supported")
        vals = [_numeric(evaluate_node(x, ctx), x) for x in node.args]
        if not vals:
            raise FormulaError(f"'{deparse(node)}' needs arguments")
        out = vals[0]
        for v in vals[1:]:
            out = fn(out, v)
        return out

    return run


def _as_numeric(node, ctx):
    v = _args(node, ctx, ["x"])["x"]
    if isinstance(v, pd.Categorical):  # R: the level codes, 1-based
        return np.where(v.codes < 0, np.nan, v.codes + 1.0)
    if isinstance(v, np.ndarray) and v.dtype.kind in "OUS":
        try:
            return v.astype(np.float64)
        except ValueError:
            raise DataError(f"'{deparse(node)}': text that is not a number") from None
    return _numeric(v, node)


def _identity(node, ctx):
    return _args(node, ctx, ["x"])["x"]


def _ifelse(node, ctx):
    a = _args(node, ctx, ["test", "yes", "no"], required=3)
    return np.where(_logical(a["test"], node), _numeric(a["yes"], node), _numeric(a["no"], node))


def _c(node, ctx):
    if node.kwargs:
        raise FormulaError(f"'{deparse(node)}': named arguments are not supported")
    vals = [evaluate_node(x, ctx) for x in node.args]
    if all(isinstance(v, str) for v in vals):
        return np.array(vals, dtype=object)
    return np.array([_scalar(v, node, "c()") for v in vals])


def _factor_levels(x, explicit=None) -> tuple[list, list[str]]:
    """(level values, R labels): a Categorical's used categories in order, numbers sorted
    numerically, text by code point, logicals FALSE < TRUE."""
    if explicit is not None:
        values = list(explicit)
    elif isinstance(x, pd.Categorical):
        used = np.unique(x.codes[x.codes >= 0])
        values = [x.categories[i] for i in used]
    else:
        arr = np.asarray(x)
        keep = pd.notna(arr)
        vals = arr[keep]
        if arr.dtype.kind in "biuf":
            values = sorted(set(vals.tolist()))
        else:
            values = sorted(set(map(str, vals)))
    return values, [r_label(v) for v in values]


def to_factor(x, values: list, labels: list[str], what: str) -> pd.Categorical:
    """``x`` coded by the training levels; a value not among them is an error naming it."""
    if isinstance(x, pd.Categorical):
        raw = np.asarray(x.astype(object))
    else:
        raw = np.asarray(x)
    if raw.dtype.kind not in "biuf":
        raw = np.array([v if pd.isna(v) else str(v) for v in raw], dtype=object)
        values = [str(v) for v in values]
    codes = pd.Index(values).get_indexer(raw)
    miss = pd.isna(raw)
    if np.any((codes < 0) & ~miss):
        bad = sorted({r_label(v) for v in raw[(codes < 0) & ~miss]})
        raise DataError(f"new levels in {what}: {', '.join(bad[:5])}")
    return pd.Categorical.from_codes(np.where(miss, -1, codes), categories=labels)


def _factor(node, ctx):
    a = _args(node, ctx, ["x", "levels"])
    x = a["x"]
    key = deparse(node)
    values, labels = ctx.remember(key, lambda: _factor_levels(x, a.get("levels")))
    return to_factor(x, values, labels, f"'{key}'")


def _relevel(node, ctx):
    a = _args(node, ctx, ["x", "ref"], required=2)
    x, ref = a["x"], a["ref"]
    key = deparse(node)

    def levels():
        values, labels = _factor_levels(x)
        if isinstance(ref, str):
            if ref not in labels:
                raise DataError(
                    f"'{key}': '{ref}' is not a level of {deparse(node.args[0])} (levels: {', '.join(labels[:8])})"
                )
            i = labels.index(ref)
        else:  # R: a number is the position of the reference level
            i = int(_scalar(ref, node, "ref")) - 1
            if not 0 <= i < len(labels):
                raise DataError(f"'{key}': ref = {i + 1} is out of range (1..{len(labels)})")
        return [values[i]] + values[:i] + values[i + 1 :], [labels[i]] + labels[:i] + labels[i + 1 :]

    values, labels = ctx.remember(key, levels)
    return to_factor(x, values, labels, f"'{key}'")


def _scale(node, ctx):
    a = _args(node, ctx, ["x", "center", "scale"])
    x = _numeric(a["x"], node)
    key = deparse(node)

    def fit():
        c = float(np.nanmean(x)) if a.get("center", True) is True else 0.0
        s = (
            float(np.sqrt(np.nansum((x - c) ** 2) / max(np.sum(~np.isnan(x)) - 1, 1)))
            if a.get("scale", True) is True
            else 1.0
        )
        return c, s

    c, s = ctx.remember(key, fit)
    return (x - c) / s


def _poly(node, ctx):
    a = _args(node, ctx, ["x", "degree", "coefs", "raw"])
    x = _numeric(a["x"], node)
    degree = int(_scalar(a.get("degree", 1), node, "degree"))
    if a.get("raw", False) is True:
        return np.column_stack([x**k for k in range(1, degree + 1)])
    if np.any(np.isnan(x)):
        raise DataError(f"'{deparse(node)}': missing values are not allowed in poly()")
    st = ctx.remember(deparse(node), lambda: transforms.poly_fit(x, degree))
    return transforms.poly_apply(x, st)


def _ns(node, ctx):
    a = _args(node, ctx, ["x", "df", "knots", "intercept", "Boundary.knots"])
    x = _numeric(a["x"], node)
    st = ctx.remember(
        deparse(node),
        lambda: transforms.ns_fit(
            x,
            df=a.get("df"),
            knots=a.get("knots"),
            intercept=a.get("intercept", False) is True,
            boundary=a.get("Boundary.knots"),
        ),
    )
    return transforms.ns_apply(x, st)


def _not_here(what: str):
    def run(node, ctx):
        raise FormulaError(f"'{deparse(node)}': {what}")

    return run


FUNCTIONS = {
    "log": _log,
    "exp": _math(np.exp),
    "sqrt": _math(np.sqrt),
    "abs": _math(np.abs),
    "log2": _math(np.log2),
    "log10": _math(np.log10),
    "log1p": _math(np.log1p),
    "expm1": _math(np.expm1),
    "sin": _math(np.sin),
    "cos": _math(np.cos),
    "tan": _math(np.tan),
    "floor": _math(np.floor),
    "ceiling": _math(np.ceil),
    "trunc": _math(np.trunc),
    "sign": _math(np.sign),
    "round": _round,
    "pmin": _minmax(np.fmin),
    "pmax": _minmax(np.fmax),
    "as.numeric": _as_numeric,
    "as.double": _as_numeric,
    "I": _identity,
    "ifelse": _ifelse,
    "c": _c,
    "factor": _factor,
    "as.factor": _factor,
    "relevel": _relevel,
    "scale": _scale,
    "poly": _poly,
    "ns": _ns,
    "cbind": _not_here("cbind() is allowed only as the response of a binomial glmer"),
    "offset": _not_here("offset() is allowed only as a term of the formula"),
}


def _function(name: str):
    fn = name
    if "::" in name:
        pkg, fn = name.split("::", 1)
        if pkg not in _PACKAGES:
            raise FormulaError(
                f"'{name}': package '{pkg}' is not allowed in formulas (allowed: {', '.join(sorted(_PACKAGES))})"
            )
    if fn not in FUNCTIONS:
        raise FormulaError(
            f"function '{name}()' is not supported in formulas (supported: "
            + ", ".join(sorted(k for k in FUNCTIONS if k not in ("cbind", "offset")))
            + ")"
        )
    return FUNCTIONS[fn]


def _call(node: Node, ctx: _Ctx):
    return _function(node.value)(node, ctx)


def check_names(node: Node, columns) -> None:
    """Every function allow-listed and every name a column or a constant (nothing evaluated)."""
    cols = set(columns)
    stack = [node]
    while stack:
        n = stack.pop()
        if n.kind == "call":
            _function(n.value)
        elif n.kind == "name" and n.value not in cols and n.value not in _CONSTANTS:
            raise DataError(f"'{n.value}' in the formula is not a column of the data")
        stack.extend(n.args)
        stack.extend(v for _, v in n.kwargs)


def evaluate_expr(expr, data, state: dict | None = None):
    """Evaluate R expression text (or a parsed Node) over ``data``; scalars are broadcast.

    ``state``: None (fresh), a dict to fill with the transforms' training state, or a dict
    with ``"__frozen__"`` set to apply a stored state (prediction)."""
    node = parse_expr(expr) if isinstance(expr, str) else expr
    check_names(node, data.columns)
    out = evaluate_node(node, _Ctx(data, state))
    if isinstance(out, str):
        raise DataError(f"'{deparse(node)}' is a text constant, not a variable")
    if np.ndim(out) == 0:
        out = np.full(len(data), out, dtype=np.float64 if not isinstance(out, bool) else bool)
    return out

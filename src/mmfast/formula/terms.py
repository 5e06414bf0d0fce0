"""Model matrices of general R right-hand sides: variables evaluated here, terms by formulaic.

formulaic never sees user text: every variable of the formula (a column, ``log(x + 1)``,
``factor(g)``, ``poly(x, 2)``) is evaluated by ``formula.evaluate`` into a synthetic column
``_v0``, ``_v1``, ... and formulaic receives only those names and the formula operators
(``+ - * : / ^``, 0, 1, parentheses).  Its column names are mapped back to R's
(``poly(x, 2)1:fb``, ``(Intercept)``).  ``get_model_matrix(newdata)`` re-evaluates with the
training state (poly/ns/scale coefficients, factor levels).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from formulaic import model_matrix

from ..errors import DataError, FormulaError
from .evaluate import _Ctx, check_names, evaluate_node
from .expr import Node, deparse, parse_expr

__all__ = ["TermSpec"]

_PIECE = re.compile(r"^(_v\d+)(?:\[(T\.)?(.*)\])?$", re.S)
_SPLIT = re.compile(r":(?=_v\d+(?:\[|:|$))")


class TermSpec:
    """A right-hand side's variables (AST + training state) and formulaic's spec of its terms."""

    def __init__(self, rhs: str):
        self.rhs = rhs
        self.vars: dict[str, tuple[str, Node]] = {}  # R name -> (alias, node)
        self.kinds: dict[str, str] = {}  # alias -> "num", "mat", "fac", "raw"
        self.state: dict = {}
        self.text = self._render(parse_expr(rhs))
        self.spec = None
        self.r_names: dict[str, str] = {a: r for r, (a, _) in self.vars.items()}

    def _render(self, node: Node) -> str:
        k = node.kind
        if k == "binary" and node.value in ("+", "-", "*", ":", "/"):
            a, b = (self._render(x) for x in node.args)
            return f"{a} {node.value} {b}"
        if k == "binary" and node.value == "^":
            p = node.args[1]
            if p.kind != "num" or p.value != int(p.value) or p.value < 1:
                raise FormulaError(
                    f"'{deparse(node)}': the power of a formula term must be a "
                    "positive integer (use I() for arithmetic)"
                )
            return f"({self._render(node.args[0])})**{int(p.value)}"
        if k == "unary" and node.value == "-" and node.args[0].kind != "num":
            return f"-{self._render(node.args[0])}"  # a removed term, as x - z
        if k == "binary" and node.value in ("|", "||"):
            raise FormulaError(f"random-effects term '{deparse(node)}' must be in parentheses")
        if k == "paren":
            return f"({self._render(node.args[0])})"
        if k == "unary" and node.value in "+-":
            inner = self._render(node.args[0])
            return inner if node.value == "+" else f"-{inner}"
        if k == "num":
            if node.value in (0.0, 1.0):
                return str(int(node.value))
            raise FormulaError(f"'{deparse(node)}' is not a formula term (only 0 or 1)")
        if k in ("name", "call") or k == "binary" and node.value not in ("~", "^", "%in%"):
            if k == "call" and node.value == "offset":
                raise FormulaError("offset() must be a top-level term of the formula")
            name = deparse(node)
            if name not in self.vars:
                self.vars[name] = (f"_v{len(self.vars)}", node)
            return self.vars[name][0]
        if k == "str":
            raise FormulaError(f"text {deparse(node)} is not a formula term")
        raise FormulaError(f"'{deparse(node)}' is not a formula term (wrap arithmetic in I())")

    def _columns(self, data, fit: bool):
        """(frame of the 1-column variables, context of the matrix-valued ones)."""
        if fit:
            for _alias, node in self.vars.values():
                check_names(node, data.columns)
        ctx = _Ctx(data, self.state if fit else {**self.state, "__frozen__": True})
        cols, context = {}, {}
        for alias, node in self.vars.values():
            if node.kind == "name":
                v = _plain_column(data, node.value)
            else:
                v = evaluate_node(node, ctx)
                if np.ndim(v) == 0:
                    v = np.full(len(data), v)
            if isinstance(v, np.ndarray) and v.dtype.kind == "b":
                v = pd.Categorical.from_codes(v.astype(np.int8), categories=["FALSE", "TRUE"])
                kind = "fac"
            elif isinstance(v, np.ndarray) and v.ndim == 2:
                kind = "mat"
            elif isinstance(v, pd.Categorical):
                kind = "fac"
            elif isinstance(v, np.ndarray) and v.dtype.kind == "f":
                kind = "num"
            else:
                kind = "raw"  # text column: formulaic's categorical rules
            if fit:
                self.kinds[alias] = kind
            (context if kind == "mat" else cols)[alias] = v
        frame = pd.DataFrame(cols, index=pd.RangeIndex(len(data)))
        return frame, context

    def fit(self, data) -> tuple[np.ndarray, list[str]]:
        """The training matrix and R's column names (sets the spec used by ``predict``)."""
        frame, context = self._columns(data, fit=True)
        try:
            mm = model_matrix(self.text, frame, context=context, na_action="ignore")
        except Exception as exc:  # noqa: BLE001 - formulaic raises many types
            raise FormulaError(f"cannot build the model matrix for '{self.rhs}': {exc}") from exc
        self.spec = mm.model_spec
        names = []
        for term, sl in self.spec.term_slices.items():
            for col in list(mm.columns)[sl]:
                names.append("(Intercept)" if str(term) == "1" else self._r_name(str(col)))
        return _dense(mm, len(data)), names

    def _r_name(self, col: str) -> str:
        out = []
        for piece in _SPLIT.split(col):
            m = _PIECE.match(piece)
            if m is None:
                return col
            alias, _, level = m.groups()
            name = self.r_names.get(alias, alias)
            if level is not None and self.kinds.get(alias) == "mat":
                level = str(int(level) + 1)
            out.append(name + (level or ""))
        return ":".join(out)

    # formulaic's ModelSpec attributes used by inference.fixed_terms
    @property
    def term_slices(self):
        return self.spec.term_slices

    @property
    def encoder_state(self):
        return self.spec.encoder_state

    def get_model_matrix(self, data) -> np.ndarray:
        frame, context = self._columns(data, fit=False)
        try:
            mm = self.spec.get_model_matrix(frame, context=context, na_action="ignore")
        except Exception as exc:  # noqa: BLE001 - e.g. unseen levels in newdata
            raise DataError(f"cannot build the model matrix of '{self.rhs}' on the new data: {exc}") from exc
        return _dense(mm, len(data))


def _plain_column(data, name: str):
    if name not in data.columns:
        raise DataError(f"'{name}' in the formula is not a column of the data")
    s = data[name]
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iu":
        return s.to_numpy(dtype=np.float64)  # R's doubles: no integer overflow in x*z
    if isinstance(s.dtype, np.dtype) and s.dtype.kind == "b":
        return s.to_numpy()
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "mM":
        raise DataError(f"column '{name}' holds dates/times: convert it to numbers first")
    if (
        pd.api.types.is_numeric_dtype(s.dtype)
        and not pd.api.types.is_bool_dtype(s.dtype)
        and not isinstance(s.dtype, np.dtype)
    ):  # nullable integers/floats
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    return s.to_numpy() if isinstance(s.dtype, np.dtype) else s.array


def _dense(mm, n: int) -> np.ndarray:
    X = np.asarray(mm, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] != n:  # an intercept-only matrix can come back with one row
        X = np.broadcast_to(X, (n, X.shape[1])).copy()
    return X

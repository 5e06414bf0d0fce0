"""A fast path for main-effects-only right-hand sides (``x + f``, ``0 + factor(g)``).

Most models people fit have only plain numeric columns and factors; building their design
directly with numpy costs microseconds where a general formula library costs milliseconds,
which dominates the fit of a small model.  Anything else (interactions, calls other than
``factor()``, logicals) returns None and goes to formulaic.  The coding follows R: treatment
contrasts, sorted levels (a pandas Categorical keeps its order), and with no intercept the
first factor gets a column for every level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError
from .expr import deparse, parse_expr
from .parse import split_top

__all__ = ["simple_matrix", "SimpleSpec"]

_IDENT = re.compile(r"`[^`]+`|[A-Za-z_.][A-Za-z0-9_.]*")
_FACTOR = re.compile(r"(?:as\.)?factor\(\s*(`[^`]+`|[A-Za-z_.][A-Za-z0-9_.]*)\s*\)")


@dataclass
class _Term:
    column: str
    name: str  # R's name of the variable part (column, or factor(column))
    levels: list | None  # None for a numeric column
    full: bool = False  # all levels (no intercept, first factor)


def _levels(s: pd.Series, as_factor: bool) -> list | None:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.dtype.categories.tolist()
    if s.dtype.kind in "iuf" and not as_factor:
        return None
    if s.dtype.kind in "iuf":
        return list(np.unique(s.to_numpy()))
    if s.dtype.kind in "OUS" or isinstance(s.dtype, pd.StringDtype):
        return sorted(set(s.astype(str)))
    raise TypeError  # logicals, dates, ...: leave them to formulaic


def _label(level) -> str:
    if isinstance(level, (float, np.floating)) and float(level).is_integer():
        return str(int(level))
    return str(level)


class SimpleSpec:
    """Rebuilds the same columns on new data (for ``predict``)."""

    def __init__(self, intercept: bool, terms: list[_Term]):
        self.intercept = intercept
        self.terms = terms

    def names(self) -> list[str]:
        out = ["(Intercept)"] if self.intercept else []
        for t in self.terms:
            if t.levels is None:
                out.append(t.name)
            else:
                lv = t.levels if t.full else t.levels[1:]
                out += [t.name + _label(v) for v in lv]
        return out

    def term_columns(self) -> list[tuple[str, bool, range]]:
        """(R label, numeric?, columns of the full matrix) per term: R's ``assign``."""
        out, j = [], int(self.intercept)
        for t in self.terms:
            width = 1 if t.levels is None else len(t.levels) - (0 if t.full else 1)
            out.append((t.name, t.levels is None, range(j, j + width)))
            j += width
        return out

    def get_model_matrix(self, data: pd.DataFrame) -> np.ndarray:
        """The n x k model matrix, its columns written into one array (no per-column copies:
        at 10^7 rows each n-length temporary costs 80 MB)."""
        n = len(data)
        blocks = []  # (first column, values or per-level codes) per term
        j = int(self.intercept)
        for t in self.terms:
            s = data[t.column]
            if t.levels is None:
                blocks.append((j, s.to_numpy(dtype=float), None))
                j += 1
                continue
            if isinstance(s.dtype, pd.CategoricalDtype):  # map the categories, not every row
                cat_pos = pd.Index(t.levels).get_indexer(s.dtype.categories)
                raw = s.array.codes
                codes = np.where(raw >= 0, cat_pos[raw], -1)
            else:
                values = s.to_numpy() if s.dtype.kind in "iuf" else s.astype(str).to_numpy()
                codes = pd.Index(t.levels).get_indexer(values)  # hashing; -1 = unseen
            if np.any(codes < 0):
                values = s.to_numpy()
                bad = sorted({_label(v) for v in values[codes < 0]})
                raise DataError(f"new levels of '{t.column}' in the data: {', '.join(bad[:5])}")
            lv = range(len(t.levels)) if t.full else range(1, len(t.levels))
            blocks.append((j, codes, lv))
            j += len(lv)
        X = np.empty((n, j))
        if self.intercept:
            X[:, 0] = 1.0
        for j0, vals, lv in blocks:
            if lv is None:
                X[:, j0] = vals
            else:
                for c, k in enumerate(lv):
                    np.equal(vals, k, out=X[:, j0 + c], casting="unsafe")
        return X


def simple_matrix(rhs: str, data: pd.DataFrame):
    """(X, names, spec) for a main-effects-only right-hand side, or None to use formulaic."""
    pieces = [(sign, term.strip()) for sign, term in split_top(rhs)]
    intercept = not any(t == "0" or (t == "1" and sign == "-") for sign, t in pieces)
    terms, seen_factor = [], False
    for sign, t in pieces:
        if t in ("0", "1"):
            continue
        if sign == "-":
            return None
        m = _FACTOR.fullmatch(t)
        col = (m.group(1) if m else t).strip("`")
        if not (m or _IDENT.fullmatch(t)) or col not in data.columns:
            return None
        try:
            levels = _levels(data[col], as_factor=bool(m))
        except TypeError:
            return None
        name = deparse(parse_expr(t))  # R's name: `a b` keeps its backticks
        full = levels is not None and not intercept and not seen_factor
        seen_factor = seen_factor or levels is not None
        terms.append(_Term(col, name, levels, full))
    if any(t.column in {u.column for u in terms[:i]} for i, t in enumerate(terms)):
        return None  # a repeated variable: let formulaic apply R's rules
    spec = SimpleSpec(intercept, terms)
    return spec.get_model_matrix(data), spec.names(), spec

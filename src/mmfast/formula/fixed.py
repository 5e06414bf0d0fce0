"""Model matrices for R formula terms through formulaic, with R's column names.

R syntax is translated for formulaic (``factor(x)`` -> ``C(x)``, ``I(x^2)`` ->
``I(x**2)``, ``log``/``exp``/``sqrt`` from numpy) and formulaic's names are mapped
back to R's (``C(x)[T.2]`` -> ``factor(x)2``, ``Intercept`` -> ``(Intercept)``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix

from ..errors import FormulaError
from .simple import simple_matrix

__all__ = ["ModelFrameSpec", "r_to_formulaic", "build_matrix", "R_FUNCTIONS"]

# R functions users write inside formulas, evaluated with numpy.
R_FUNCTIONS: dict[str, Any] = {
    "log": np.log, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs, "log2": np.log2,
    "log10": np.log10, "log1p": np.log1p, "sin": np.sin, "cos": np.cos, "np": np,
    "as_numeric": np.asarray,
}
_FACTOR_CALL = re.compile(r"\b(?:as\.factor|factor)\(")


def _matching_paren(text: str, open_pos: int) -> int:
    depth = 0
    for i in range(open_pos, len(text)):
        depth += text[i] == "("
        depth -= text[i] == ")"
        if depth == 0:
            return i
    raise FormulaError(f"unbalanced parentheses in {text!r}")


def _calls(text: str) -> list[str]:
    """Top-level function-call substrings such as ``factor(x)`` or ``I(x^2)``."""
    out, i = [], 0
    pattern = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*\(")
    while True:
        m = pattern.search(text, i)
        if not m:
            return out
        end = _matching_paren(text, m.end() - 1)
        out.append(text[m.start(): end + 1])
        i = end + 1


def r_to_formulaic(text: str, columns) -> str:
    """Translate an R formula right-hand side into formulaic's dialect."""
    out = _FACTOR_CALL.sub("C(", text)
    out = re.sub(r"\bas\.numeric\(", "as_numeric(", out)
    out = out.replace("^", "**")
    # column names that are not Python identifiers need backticks
    for col in sorted((c for c in columns if isinstance(c, str) and not c.isidentifier()),
                      key=len, reverse=True):
        out = re.sub(r"(?<![`\w.])" + re.escape(col) + r"(?![\w.`])", f"`{col}`", out)
    return out


def _r_deparse(call: str) -> str:
    """R's deparse spacing for a call: ``I(x ^ 2)`` -> ``I(x^2)``."""
    call = re.sub(r"\s*\^\s*", "^", call)
    call = re.sub(r"\(\s+", "(", call)
    return re.sub(r"\s+\)", ")", call)


def _nospace(text: str) -> str:
    return re.sub(r"\s+", "", text)


@lru_cache(maxsize=512)
def _canonical(py: str) -> str:
    """formulaic's own rendering of a single-call expression (cached: parsing is slow)."""
    try:
        terms = Formula(py).rhs
        return str(terms[-1]) if len(terms) else py
    except Exception:  # noqa: BLE001 - naming only; evaluation reports real errors
        return py


def _name_map(text: str, columns) -> dict[str, str]:
    """formulaic's rendering of each call in ``text`` -> the R name of that call."""
    mapping = {}
    for call in _calls(text):
        py = r_to_formulaic(call, columns)
        canon = _canonical(py)
        mapping[_nospace(canon)] = _r_deparse(call)
        mapping[_nospace(py)] = _r_deparse(call)
    return mapping


def _split_colon(name: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(name):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == ":" and depth == 0:
            parts.append(name[start:i])
            start = i + 1
    parts.append(name[start:])
    return parts


_LEVEL = re.compile(r"^(.*)\[(?:T\.)?(.*)\]$", re.S)


def _r_column_name(name: str, mapping: dict[str, str]) -> str:
    if name == "Intercept":
        return "(Intercept)"
    pieces = []
    for piece in _split_colon(name):
        m = _LEVEL.match(piece)
        expr, level = (m.group(1), m.group(2)) if m else (piece, "")
        expr = mapping.get(_nospace(expr), expr).strip("`")
        pieces.append(expr + level)
    return ":".join(pieces)


@dataclass
class ModelFrameSpec:
    """What is needed to rebuild a model matrix on new data (for ``predict``)."""

    spec: Any  # formulaic ModelSpec
    names: list[str]  # R names of all columns formulaic produced
    keep: np.ndarray  # indices of the columns kept (after dropping aliased ones)

    def matrix(self, data: pd.DataFrame) -> np.ndarray:
        mm = self.spec.get_model_matrix(data)
        return np.asarray(mm, dtype=float)[:, self.keep]


class InterceptSpec:
    """The model spec of ``~ 1`` (a column of ones), without a trip through formulaic."""

    def get_model_matrix(self, data: pd.DataFrame) -> np.ndarray:
        return np.ones((len(data), 1))


def build_matrix(rhs: str, data: pd.DataFrame) -> tuple[np.ndarray, list[str], Any]:
    """Dense model matrix, R column names and formulaic's spec for an R right-hand side."""
    if rhs.strip() == "1":  # the commonest random-effects term, (1 | g)
        return np.ones((len(data), 1)), ["(Intercept)"], InterceptSpec()
    fast = simple_matrix(rhs, data)  # main effects only: numpy, no formula library
    if fast is not None:
        return fast
    py = r_to_formulaic(rhs, data.columns)
    if not isinstance(data, pd.DataFrame):  # a model frame's column view
        data = data.frame()
    try:
        mm = model_matrix(py, data, context=R_FUNCTIONS, na_action="ignore")
    except Exception as exc:  # formulaic raises many types; report the formula term
        raise FormulaError(f"cannot build the model matrix for '{rhs}': {exc}") from exc
    mapping = _name_map(rhs, data.columns)
    names = [_r_column_name(str(c), mapping) for c in mm.columns]
    X = np.asarray(mm, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.shape[0] != len(data):  # an intercept-only matrix can come back with one row
        X = np.broadcast_to(X, (len(data), X.shape[1])).copy()
    return X, names, mm.model_spec

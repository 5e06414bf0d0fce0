"""lmer's design on a subset of a frame's rows, selected (X, the terms' columns and codes,
weights, offset) instead of running the formula again, which is ~10x cheaper.

Selecting gives exactly what ``lmer`` on the smaller data would build only when:

* no data-dependent transformation is in the formula (``scale``, ``poly``, splines, ...):
  only the stateless functions of ``STATELESS`` may appear;
* every factor in the fixed part or the random-effects terms keeps all its levels (a
  level that disappears changes the contrasts, not just a column);
* X stays of full rank, every grouping factor keeps >= 2 levels and fewer levels than
  rows, there are more rows than random effects, and the terms keep lme4's order.

``subset_frame`` returns None otherwise (the caller then runs the formula on the rows).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from ..design.remat import GroupingFactor
from ..errors import DataError
from ..formula.parse import identifiers
from .columns import Columns
from .frame import ModelFrame, frame_for_formula, keep_full_rank

__all__ = ["STATELESS", "subset_allowed", "subset_frame", "subset_rows", "row_mask", "frame_on_rows"]

STATELESS = {
    "I",
    "log",
    "log2",
    "log10",
    "log1p",
    "exp",
    "sqrt",
    "abs",
    "sin",
    "cos",
    "as.numeric",
    "factor",
    "as.factor",
}
_CALL = re.compile(r"([A-Za-z_.][A-Za-z0-9_.]*)\s*\(")
_FACTOR_ARG = re.compile(r"\b(?:as\.factor|factor)\(\s*`?([A-Za-z_.][A-Za-z0-9_.]*)`?\s*\)")


def subset_allowed(parsed) -> bool:
    """No data-dependent transformations in the fixed part or the terms' left-hand sides."""
    text = " ".join([parsed.fixed] + [b.lhs for b in parsed.bars])
    return all(name in STATELESS for name in _CALL.findall(text))


def _factor_columns(parsed, frame_data) -> list[str]:
    """Columns whose levels shape the design: non-numeric ones and those inside factor()."""
    text = " ".join([parsed.fixed] + [b.lhs for b in parsed.bars])
    used = {c for c in identifiers(text) if c in frame_data.columns}
    out = {c for c in used if frame_data[c].dtype.kind not in "biuf"}
    out |= {c for c in _FACTOR_ARG.findall(text) if c in frame_data.columns}
    return sorted(out)


def row_mask(rows, nobs: int) -> np.ndarray:
    """``rows`` (a boolean mask or integer positions of the frame's rows) as a boolean mask."""
    r = np.asarray(rows)
    if r.dtype == bool:
        if r.shape != (nobs,):
            raise DataError(f"a row mask needs {nobs} values (got {r.size})")
        return r
    if r.ndim != 1 or (r.size and r.dtype.kind not in "iu"):
        raise DataError("rows must be a boolean mask or integer positions of the model's rows")
    if r.size and (r.min() < -nobs or r.max() >= nobs):
        raise DataError(f"row positions must lie in 0..{nobs - 1}")
    keep = np.zeros(nobs, dtype=bool)
    keep[r] = True
    return keep


def subset_frame(f: ModelFrame, keep: np.ndarray, check_nobs_vs_nre: str = "stop") -> ModelFrame | None:
    """``f``'s design on the rows ``keep`` (bool), or None when that is not lmer's design."""
    if not subset_allowed(f.parsed):
        return None
    n = int(keep.sum())
    for c in _factor_columns(f.parsed, f.data):
        col = f.data[c]
        if col[keep].nunique(dropna=False) != col.nunique(dropna=False):
            return None
    X = f.X[keep]
    if len(keep_full_rank(X, f.fixef_names)) != X.shape[1]:
        return None
    terms, off = [], 0
    for t in f.terms:
        codes = t.factor.codes[keep]
        used, new_codes = np.unique(codes, return_inverse=True)
        q = len(used) * t.p
        if len(used) < 2 or len(used) >= n or (n <= q and check_nobs_vs_nre != "ignore"):
            return None
        factor = GroupingFactor(t.factor.name, new_codes.astype(np.int32), [t.factor.levels[i] for i in used])
        terms.append(dataclasses.replace(t, factor=factor, X=np.ascontiguousarray(t.X[keep]), offset=off))
        off += q
    nlev = [t.nlevels for t in terms]
    if any(a <= b for a, b in zip(nlev, nlev[1:])) and nlev != [t.nlevels for t in f.terms]:
        return None  # lme4's term order could change: rebuild from the formula
    return subset_rows(f, keep, X=np.ascontiguousarray(X), terms=terms)


def subset_rows(f: ModelFrame, keep: np.ndarray, **design) -> ModelFrame:
    """``f``'s per-row values (data table, y, weights, offset) on the rows ``keep``; the
    design (X, terms) is ``design``'s, else ``f``'s (stale: for ``frame_for_formula``, which
    reads the rows only)."""
    return dataclasses.replace(
        f,
        table=Columns.of(f.data[keep].reset_index(drop=True)),
        y=f.y[keep],
        weights=None if f.weights is None else f.weights[keep],
        offset=None if f.offset is None else f.offset[keep],
        n_dropped=0,
        y_extra=None if f.y_extra is None else f.y_extra[keep],
        row_index=None,
        complete=None,
        **design,
    )


def frame_on_rows(frame: ModelFrame, rows, options: dict, response_kind: str = "lmm") -> ModelFrame:
    """The frame ``lmer``/``glmer`` build on ``rows`` (a boolean mask or positions of
    ``frame``'s rows): selected from ``frame`` where that is exactly the formula's design
    (``subset_frame``), else the formula run on those rows (``options``: the model's)."""
    keep = row_mask(rows, frame.nobs)
    new = subset_frame(frame, keep, options.get("check_nobs_vs_nre", "stop"))
    if new is None:
        new = frame_for_formula(subset_rows(frame, keep), frame.parsed.formula, options, response_kind=response_kind)
    return new

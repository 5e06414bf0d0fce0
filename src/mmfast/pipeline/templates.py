"""Template models: the shared design of a class of groups, built once, unfitted.

``build_template`` runs the model frame (formula, checks, model matrices) on one group's
rows with a placeholder response.  Groups of a class that miss some responses need the
same design without those rows; ``subset_template`` derives it from the class's template
by selecting rows (``X``, the terms' columns and codes, weights, offset) instead of running
the formula again, which is ~10x cheaper.  It does so only when that gives exactly what
``lmer`` on the smaller data would build, and returns None otherwise (the caller then
builds the template from the rows):

* no data-dependent transformation in the formula (``scale``, ``poly``, splines, ...):
  only the stateless functions of ``STATELESS`` may appear;
* every factor in the fixed part or the random-effects terms keeps all its levels (a
  level that disappears changes the contrasts, not just a column);
* X stays of full rank, every grouping factor keeps >= 2 levels and fewer levels than
  rows, there are more rows than random effects, and the terms keep lme4's order.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np

__all__ = ["build_template", "subset_template", "subset_allowed"]

STATELESS = {"I", "log", "log2", "log10", "log1p", "exp", "sqrt", "abs", "sin", "cos",
             "as.numeric", "factor", "as.factor"}
_CALL = re.compile(r"([A-Za-z_.][A-Za-z0-9_.]*)\s*\(")
_FACTOR_ARG = re.compile(r"\b(?:as\.factor|factor)\(\s*`?([A-Za-z_.][A-Za-z0-9_.]*)`?\s*\)")
PLACEHOLDER_SEED = 20240601


def build_template(parsed, data, rows, needed, response_only, reml, kwargs, optctrl):
    """The design of ``data.iloc[rows]`` as an unfitted LinearMixedModel (placeholder y)."""
    from ..model.frame import model_frame
    from ..model.lmm import LinearMixedModel
    sub = data.iloc[rows][needed].reset_index(drop=True)
    rng = np.random.default_rng(PLACEHOLDER_SEED)
    for c in response_only:  # placeholder response: positive, never constant
        sub[c] = 1.0 + rng.random(len(sub))
    nobs_check = kwargs.get("check_nobs_vs_nre", "stop")
    frame = model_frame(parsed.formula, sub, weights=kwargs.get("weights"),
                        offset=kwargs.get("offset"), check_nobs_vs_nre=nobs_check)
    return LinearMixedModel(frame, reml=reml, options={"check_nobs_vs_nre": nobs_check, **optctrl})


def subset_allowed(parsed) -> bool:
    """No data-dependent transformations in the fixed part or the terms' left-hand sides."""
    text = " ".join([parsed.fixed] + [b.lhs for b in parsed.bars])
    return all(name in STATELESS for name in _CALL.findall(text))


def _factor_columns(parsed, frame_data) -> list[str]:
    """Columns whose levels shape the design: non-numeric ones and those inside factor()."""
    text = " ".join([parsed.fixed] + [b.lhs for b in parsed.bars])
    from ..formula.parse import identifiers
    used = {c for c in identifiers(text) if c in frame_data.columns}
    out = {c for c in used if frame_data[c].dtype.kind not in "biuf"}
    out |= {c for c in _FACTOR_ARG.findall(text) if c in frame_data.columns}
    return sorted(out)


def subset_template(model, keep: np.ndarray, check_nobs_vs_nre: str = "stop"):
    """``model``'s design on the rows ``keep`` (bool), or None when that is not lmer's design."""
    from ..design.remat import GroupingFactor
    from ..model.columns import Columns
    from ..model.frame import keep_full_rank
    from ..model.lmm import LinearMixedModel
    f = model.frame
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
        factor = GroupingFactor(t.factor.name, new_codes.astype(np.int32),
                                [t.factor.levels[i] for i in used])
        terms.append(dataclasses.replace(t, factor=factor, X=np.ascontiguousarray(t.X[keep]),
                                         offset=off))
        off += q
    nlev = [t.nlevels for t in terms]
    if any(a <= b for a, b in zip(nlev, nlev[1:])) and nlev != [t.nlevels for t in f.terms]:
        return None  # lme4's term order could change: rebuild from the formula
    frame = dataclasses.replace(
        f, table=Columns.of(f.data[keep].reset_index(drop=True)), y=f.y[keep],
        X=np.ascontiguousarray(X),
        terms=terms, weights=None if f.weights is None else f.weights[keep],
        offset=None if f.offset is None else f.offset[keep], n_dropped=0)
    return LinearMixedModel(frame, reml=model.reml, options=dict(model.options),
                            control=model.control)

"""The fixed-effects terms of a model as R's ``terms`` object describes them.

R labels (``factor(treatment_idx)``, ``age:Sex``), the columns of X each term owns (R's
``assign``), which variables are numeric, the containment relations used by lmerTest's
Type II/III contrasts and R's ``drop.scope``, and the over-parameterised design (one
indicator per level, no contrasts; lmerTest's ``get_rdX``) behind Type III contrasts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ArgumentError

__all__ = ["FixedTerm", "FixedTerms", "fixed_terms"]


@dataclass
class FixedTerm:
    label: str  # R's term label
    variables: list[str]  # R expressions of its variables, in label order
    numeric: list[bool]  # per variable: numeric (True) or factor
    columns: np.ndarray  # indices into the model's X (after dropping aliased columns)

    @property
    def numerics(self) -> frozenset:
        return frozenset(v for v, num in zip(self.variables, self.numeric) if num)


@dataclass
class FixedTerms:
    intercept: bool
    terms: list[FixedTerm]
    X: np.ndarray
    names: list[str]
    data: object  # the model frame's data (complete rows)

    @property
    def labels(self) -> list[str]:
        return [t.label for t in self.terms]

    def __getitem__(self, label: str) -> FixedTerm:
        for t in self.terms:
            if t.label == label:
                return t
        raise ArgumentError(f"no fixed-effects term {label!r}; terms are {self.labels}")

    def containment(self) -> dict[str, list[str]]:
        """lmerTest: term A is contained in B if vars(A) ⊂ vars(B) strictly and both have the
        same numeric variables.  Returns, per term, the terms that contain it."""
        out = {}
        for a in self.terms:
            va = set(a.variables)
            out[a.label] = [
                b.label
                for b in self.terms
                if va <= set(b.variables) and len(set(b.variables) - va) > 0 and a.numerics == b.numerics
            ]
        return out

    def droppable(self) -> list[str]:
        """R's ``drop.scope``: terms whose variables are in no other (higher-order) term."""
        out = []
        for a in self.terms:
            va = set(a.variables)
            if not any(b is not a and va < set(b.variables) for b in self.terms):
                out.append(a.label)
        return out

    def overparameterised(self) -> tuple[np.ndarray, list[int]]:
        """(rdX, term index of each column; -1 for the intercept): lmerTest's ``get_rdX``."""
        from ..formula import build_matrix

        cols, owner = [], []
        if self.intercept:
            cols.append(np.ones((self.X.shape[0], 1)))
            owner.append(-1)
        cache: dict[str, np.ndarray] = {}
        for k, t in enumerate(self.terms):
            block = np.ones((self.X.shape[0], 1))
            for var in t.variables:
                if var not in cache:
                    cache[var] = build_matrix("0 + " + var, self.data)[0]
                mat = cache[var]
                # R's column order: the first variable varies fastest
                block = (mat[:, :, None] * block[:, None, :]).reshape(len(block), -1)
            cols.append(block)
            owner += [k] * block.shape[1]
        rdX = np.column_stack(cols) if cols else np.zeros((self.X.shape[0], 0))
        return rdX, owner


def fixed_terms(frame) -> FixedTerms:
    """Describe the fixed part of a ModelFrame (from formulaic's model spec)."""
    from ..formula.simple import SimpleSpec

    spec = frame.fixed_spec.spec
    keep = np.asarray(frame.fixed_spec.keep)
    pos_of_full = {int(j): i for i, j in enumerate(keep)}
    mapping = getattr(spec, "r_names", {})  # synthetic variable -> R expression
    enc = getattr(spec, "encoder_state", {}) or {}
    intercept = False
    terms = []
    if isinstance(spec, SimpleSpec):  # the formula layer's main-effects fast path
        for label, numeric, full in spec.term_columns():
            columns = np.array([pos_of_full[j] for j in full if j in pos_of_full], dtype=int)
            terms.append(FixedTerm(label, [label], [numeric], columns))
        return FixedTerms(
            intercept=spec.intercept,
            terms=terms,
            X=np.asarray(frame.X, dtype=float),
            names=list(frame.fixef_names),
            data=frame.data,
        )
    slices = getattr(spec, "term_slices", None)
    if slices is None:  # the formula layer's shortcut spec for intercept-only models
        X = np.asarray(frame.X, dtype=float)
        intercept = X.shape[1] == 1 and bool(np.all(X == 1.0))
        slices = {}
    for term, sl in slices.items():
        factors = list(term.factors)
        full = range(sl.start, sl.stop)
        columns = np.array([pos_of_full[j] for j in full if j in pos_of_full], dtype=int)
        if len(factors) == 1 and str(factors[0].expr) == "1":
            intercept = True
            continue
        variables, numeric = [], []
        for f in factors:
            expr = str(f.expr)
            rname = mapping.get(expr, expr)
            variables.append(rname)
            kind = enc.get(expr, (None,))[0]
            numeric.append(str(getattr(kind, "value", kind)) != "categorical")
        terms.append(FixedTerm(":".join(variables), variables, numeric, columns))
    return FixedTerms(
        intercept=intercept,
        terms=terms,
        X=np.asarray(frame.X, dtype=float),
        names=list(frame.fixef_names),
        data=frame.data,
    )

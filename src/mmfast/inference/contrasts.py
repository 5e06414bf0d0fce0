"""The hypothesis matrices of lmerTest's Type I, II and III F tests, one per fixed term.

* Type I (sequential): the rows of the unit upper-triangular factor U of X'X = U'DU
  (Doolittle) belonging to the term: each term adjusted for the terms before it.
* Type II: terms contained in no other term get their own coefficients (identity rows);
  a contained term is tested after moving it and the terms containing it to the end of X
  and taking its rows of that reordered Doolittle factor.
* Type III (SAS style, independent of the contrast coding): with the over-parameterised
  design rdX (an indicator per level, lmerTest's ``get_rdX``), L = (X⁺ rdX)' expresses each
  over-parameterised effect in X's coefficients; a term's columns of L are made orthogonal
  to those of the terms containing it (higher-order terms first), and the rows of L that are
  X's own columns give the term's hypothesis.

Models with a single term (or a single column) use Type I for all three types, as lmerTest.
Type III assumes treatment contrasts (the coding the formula layer produces).
"""

from __future__ import annotations

import numpy as np

from .fixed_terms import FixedTerms
from ..errors import ArgumentError

__all__ = ["doolittle_upper", "contrasts_type1", "contrasts_type2", "contrasts_type3", "term_contrasts", "zapsmall"]


def zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest entry."""
    x = np.asarray(x, dtype=float)
    mx = np.max(np.abs(x)) if x.size else 0.0
    dec = max(0, digits - int(np.ceil(np.log10(mx)))) if mx > 0 else digits
    return np.round(x, dec)


def doolittle_upper(S: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Unit upper-triangular U' with S = LU (L unit lower, Doolittle); entries below eps set to 0.

    For symmetric S, row i of the result is row i of the eliminated matrix divided by its pivot.
    A pivot below eps (an aliased column) gives a zero column in L.
    """
    n = S.shape[0]
    if n == 1:
        return np.ones((1, 1))
    L = np.eye(n)
    U = np.zeros((n, n))
    for i in range(n):
        U[i, :] = S[i, :] - L[i, :i] @ U[:i, :]
        if i + 1 < n:
            col = S[i + 1 :, i] - L[i + 1 :, :i] @ U[:i, i]
            L[i + 1 :, i] = 0.0 if abs(U[i, i]) < eps else col / U[i, i]
    L[np.abs(L) < eps] = 0.0
    return L.T


def _type1_all(ft: FixedTerms) -> dict[str, np.ndarray]:
    p = ft.X.shape[1]
    if p == 0 or not ft.terms:
        return {t.label: np.zeros((0, p)) for t in ft.terms}
    U = doolittle_upper(ft.X.T @ ft.X)
    return {t.label: U[t.columns] for t in ft.terms}


def _trivial(ft: FixedTerms) -> bool:
    return ft.X.shape[1] <= 1 or len(ft.terms) <= 1


def contrasts_type1(ft: FixedTerms) -> dict[str, np.ndarray]:
    return _type1_all(ft)


def contrasts_type2(ft: FixedTerms) -> dict[str, np.ndarray]:
    if _trivial(ft):
        return _type1_all(ft)
    p = ft.X.shape[1]
    contained = ft.containment()
    out = {}
    for t in ft.terms:
        if not contained[t.label]:
            out[t.label] = np.eye(p)[t.columns]
            continue
        moved = np.concatenate([t.columns] + [ft[c].columns for c in contained[t.label]])
        rest = np.setdiff1d(np.arange(p), moved)
        order = np.concatenate([rest, moved]).astype(int)
        Xn = ft.X[:, order]
        U = doolittle_upper(Xn.T @ Xn)
        rows = [np.flatnonzero(order == c)[0] for c in t.columns]
        back = np.argsort(order)  # column j of X sits at position back[j] of Xn
        out[t.label] = U[rows][:, back]
    return out


def contrasts_type3(ft: FixedTerms) -> dict[str, np.ndarray]:
    if _trivial(ft):
        return _type1_all(ft)
    X = ft.X
    rdX, owner = ft.overparameterised()
    B = np.linalg.lstsq(X, rdX, rcond=None)[0]  # X⁺ rdX, p x m
    L = zapsmall(B.T)  # rows: over-parameterised effects, columns: X's coefficients
    # which row of L is each column of X: the identical column of rdX within the same term
    col_term = np.full(X.shape[1], -1)
    for k, t in enumerate(ft.terms):
        col_term[t.columns] = k
    rows = []
    for j in range(X.shape[1]):
        cand = [
            i
            for i, o in enumerate(owner)
            if o == col_term[j] and np.allclose(rdX[:, i], X[:, j], rtol=1e-10, atol=1e-12)
        ]
        if not cand:
            raise NotImplementedError(
                f"Type III contrasts need treatment-coded factors; column {ft.names[j]!r} of X "
                "is not an indicator of the over-parameterised design"
            )
        rows.append(cand[0])
    contained = ft.containment()
    order = sorted(range(len(ft.terms)), key=lambda k: -len(ft.terms[k].variables))
    for k in order:
        t = ft.terms[k]
        cont = contained[t.label]
        if not cont or len(t.columns) == 0:
            continue
        Xc = L[:, np.concatenate([ft[c].columns for c in cont])]
        Y = L[:, t.columns]
        coef = np.linalg.lstsq(Xc, Y, rcond=None)[0]
        L[:, t.columns] = zapsmall(Y - Xc @ coef)
    L = L[rows]
    out = {}
    for t in ft.terms:
        Lt = L[:, t.columns].T
        out[t.label] = Lt[np.sum(np.abs(Lt), axis=1) > 1e-8]
    return out


def term_contrasts(ft: FixedTerms, type: int | str = 3) -> dict[str, np.ndarray]:
    """{term label: hypothesis matrix (rows x p)} for anova Type 1, 2 or 3 (or 'I'..'III')."""
    t = {"1": 1, "I": 1, "2": 2, "II": 2, "3": 3, "III": 3}.get(str(type).upper())
    if t is None:
        raise ArgumentError(f"type must be 1, 2 or 3 (or 'I', 'II', 'III'), not {type!r}")
    return {1: contrasts_type1, 2: contrasts_type2, 3: contrasts_type3}[t](ft)

"""nlme's "between-within" denominator degrees of freedom (Pinheiro & Bates 2000, sec. 2.4.2).

The grouping factors must be nested: strata from the outermost grouping level to the
residual (observation) level, with ν_1 = m_1 and ν_j = m_j - m_{j-1} (m_j groups at level j,
m_{Q+1} = N).  A column of X is estimated in the stratum just inside the innermost level
within whose groups it varies (the outermost stratum if it is constant within all groups),
and each stratum loses one df per column (term) estimated in it; the intercept takes one
df from the outermost stratum and gets the largest df.  For ex1 (24 mice, 1200 cells)
the treatment contrasts vary between mice only: 24 - 1 - 4 = 19 df; the intercept 1176.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelSpecError
from .fixed_terms import FixedTerms, fixed_terms

__all__ = ["between_within_df"]


def _is_constant(x: np.ndarray, tol: float = np.sqrt(np.finfo(float).eps)) -> bool:
    if x[0] == 0:
        return bool(np.all(np.abs(x) < tol))
    return bool(np.all(np.abs(x / x[0] - 1) < tol))


def _varies_within(x: np.ndarray, codes: np.ndarray) -> bool:
    """Does x take more than one value inside some group?"""
    order = np.argsort(codes, kind="stable")
    c, v = codes[order], x[order]
    same = c[1:] == c[:-1]
    return bool(np.any(same & (v[1:] != v[:-1])))


def _nested_levels(model) -> list[tuple[str, np.ndarray, int]]:
    """Distinct grouping factors, outermost first, checked to be nested."""
    seen = {}
    for t in model.frame.terms:
        seen.setdefault(t.factor.name, (np.asarray(t.factor.codes), t.factor.nlevels))
    levels = sorted(((name, codes, nl) for name, (codes, nl) in seen.items()), key=lambda z: z[2])
    for (n_out, c_out, _), (n_in, c_in, nl_in) in zip(levels[:-1], levels[1:]):
        outer_of = np.full(nl_in, -1)
        outer_of[c_in] = c_out
        if np.any(outer_of[c_in] != c_out):
            raise ModelSpecError(
                f"between-within df need nested grouping factors; '{n_in}' is not nested in "
                f"'{n_out}' (use ddf='satterthwaite' or 'kenward-roger' for crossed designs)"
            )
    return levels


def between_within_df(model, ft: FixedTerms | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """(df per coefficient, df per term label) as ``nlme::lme`` assigns them."""
    ft = fixed_terms(model.frame) if ft is None else ft
    X = ft.X
    N, p = X.shape
    levels = _nested_levels(model)
    ngr = np.array([nl for _, _, nl in levels] + [N])
    dfx = ngr - np.concatenate([[0], ngr[:-1]])  # per stratum (outermost group ... residual)
    df_terms = dfx.copy()
    not_const = np.array([not _is_constant(X[:, j]) for j in range(p)], dtype=bool)
    stratum = np.zeros(p, dtype=int)
    for j in np.flatnonzero(not_const):
        s = 0
        for i, (_, codes, _) in enumerate(levels):
            if _varies_within(X[:, j], codes):
                s = i + 1
        stratum[j] = s
    for j in np.flatnonzero(not_const):
        dfx[stratum[j]] -= 1
    term_stratum = {}
    for t in ft.terms:
        cols = [c for c in t.columns if not_const[c]]
        if cols:
            term_stratum[t.label] = int(max(stratum[c] for c in cols))
            df_terms[term_stratum[t.label]] -= len(t.columns)
    if not np.all(not_const):
        dfx[0] -= 1
        df_terms[0] -= 1
    else:
        dfx[1:] += 1
        df_terms[1:] += 1
    col_df = np.where(not_const, dfx[stratum], np.max(dfx)).astype(float)
    term_df = {
        t.label: float(df_terms[term_stratum[t.label]]) if t.label in term_stratum else float(np.max(df_terms))
        for t in ft.terms
    }
    return col_df, term_df

"""Intraclass correlation: the share of the total variance that a grouping factor explains.

For a random-intercept model y = Xβ + Σ_k b_k[g_k] + ε the ICC of factor k is
σ_k² / (Σ_j σ_j² + σ²) (the correlation of two observations sharing only level g_k).
``icc_by_group`` refits a random-intercept model within each level of another variable,
as the lecture tabulates per treatment group (ex1 reference: ``lmer(res ~ 1 + (1|midx))``
on each group's rows, icc = var_mouse / (var_mouse + var_resid)).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..arguments import boolean, validated
from ..errors import DataError, ModelSpecError

__all__ = ["icc", "icc_by_group"]


def _intercept_terms(model):
    bad = [str(t.bar) for t in model.frame.terms if t.p != 1 or t.names != ["(Intercept)"]]
    if bad:
        raise ModelSpecError(
            f"the ICC is defined for random-intercept models; these terms have random slopes: {', '.join(bad)}"
        )
    return model.frame.terms


def icc(model) -> pd.Series:
    """ICC of each grouping factor of a random-intercept LMM (index: lme4's group names)."""
    terms = _intercept_terms(model)
    var = np.array([float(S[0, 0]) for S in model.term_covariances()])
    total = var.sum() + model.sigma**2
    return pd.Series(var / total, index=[t.group for t in terms], name="icc")


@validated(reml=boolean)
def icc_by_group(formula: str, data: pd.DataFrame, by: str, reml: bool = True) -> pd.DataFrame:
    """Fit ``formula`` (random intercepts only) within each level of ``by``; variances and ICCs.

    Parameters
    ----------
    formula : str
        An intercept-only mixed model, e.g. ``"res ~ 1 + (1 | midx)"``.
    data : DataFrame or dict
        pandas or polars DataFrame, pyarrow Table or a dict of columns.
    by : str
        The column whose levels are fitted separately (the lecture's treatment groups).
    reml : bool, default True
        REML or (False) maximum-likelihood fits.

    Returns
    -------
    DataFrame
        Index: the levels of ``by``.  Columns ``nobs``, ``n_<g>`` (levels of each grouping
        factor g), ``var_<g>``, ``var_resid``, ``icc`` (one factor) or ``icc_<g>`` (several),
        ``singular``.

    Examples
    --------
    >>> import mmfast
    >>> ex1 = mmfast.datasets.load("ex1")
    >>> mmfast.icc_by_group("res ~ 1 + (1 | midx)", ex1, by="treatment_idx")["icc"].round(3).tolist()
    [0.222, 0.321, 0.487, 0.172, 0.318]
    """
    from ..model.data_input import as_frame
    from ..model.lmm import LinearMixedModel, fit_lmm

    data = as_frame(data)
    if by not in data.columns:
        raise DataError(f"'{by}' (by) is not a column of the data")
    col = data[by]
    levels = list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype) else sorted(col.dropna().unique())
    rows, index = [], []
    for lev in levels:
        sub = data.loc[col == lev]
        if len(sub) == 0:
            continue
        sub = sub.copy()
        for c in sub.columns:  # drop categories absent from this group (no empty levels)
            if isinstance(sub[c].dtype, pd.CategoricalDtype):
                sub[c] = sub[c].cat.remove_unused_categories()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = fit_lmm(LinearMixedModel, formula, sub, reml=reml)  # lmer's fit, no arguments to check
        shares = icc(m)
        row = {"nobs": m.nobs}
        for t, S in zip(m.frame.terms, m.term_covariances()):
            row[f"n_{t.group}"] = t.nlevels
            row[f"var_{t.group}"] = float(S[0, 0])
        row["var_resid"] = m.sigma**2
        if len(shares) == 1:
            row["icc"] = float(shares.iloc[0])
        else:
            for g, v in shares.items():
                row[f"icc_{g}"] = float(v)
        row["singular"] = bool(m.singular)
        rows.append(row)
        index.append(lev)
    return pd.DataFrame(rows, index=pd.Index(index, name=by))

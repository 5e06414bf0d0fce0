"""R's ``anova.lm`` for a fitted linear model: sequential (Type I) sums of squares per term,
read off the QR effects Q'y (each term's columns' effects squared and summed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..rformat import AnovaTable
from .fixed_terms import fixed_terms

__all__ = ["lm_anova", "SequentialAnovaMixin"]


def lm_anova(model) -> pd.DataFrame:
    """Sequential sums of squares per term and the residual line (R's ``anova.lm``)."""
    ft = fixed_terms(model.frame)
    rows, index = [], []
    ms_res = model.rss / model.df_residual
    for t in ft.terms:
        if len(t.columns) == 0:
            continue
        ss = float(np.sum(model.effects[t.columns] ** 2))
        df = len(t.columns)
        F = ss / df / ms_res
        rows.append([df, ss, ss / df, F, stats.f.sf(F, df, model.df_residual)])
        index.append(t.label)
    rows.append([model.df_residual, model.rss, ms_res, np.nan, np.nan])
    index.append("Residuals")
    out = pd.DataFrame(rows, index=index, columns=["Df", "Sum Sq", "Mean Sq", "F value", "Pr(>F)"])
    out["Df"] = out["Df"].astype(int)
    out.attrs["heading"] = f"Analysis of Variance Table\n\nResponse: {model.frame.parsed.response}"
    return AnovaTable.wrap(out)  # prints as R's print.anova


class SequentialAnovaMixin:
    """``anova()`` of a linear model (mixed into ``mmfast.api.LinearModel``)."""

    def anova(self) -> pd.DataFrame:
        """Sequential sums of squares per term and the residual line (R's ``anova.lm``).

        Returns
        -------
        DataFrame
            ``Df``, ``Sum Sq``, ``Mean Sq``, ``F value``, ``Pr(>F)``; the last row is
            ``Residuals``.
        """
        return lm_anova(self)

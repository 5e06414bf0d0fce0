"""t and F tests of fixed effects: the coefficient table, ``contest`` and lmerTest's anova.

``ddf`` selects the denominator degrees of freedom:

* ``"satterthwaite"`` (default, lmerTest), ``"kenward-roger"`` (pbkrtest: adjusted covariance
  and df; an ML fit is refitted by REML for it, as the reference does),
* ``"between-within"`` (nlme's df for nested grouping factors), ``"residual"`` (n - p),
* ``None`` / ``"asymptotic"``: z tests (infinite df), ``"lme4"``: lme4's table without df or p.

F statistics are Wald statistics (Lβ̂)'(LΦL')⁻¹(Lβ̂)/q; Kenward-Roger uses its adjusted Φ_A
and scaled F.  Sum Sq and Mean Sq are lmerTest's (F σ² q and F σ², unscaled F for KR).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ArgumentError
from ..model.results import fit_cache
from ..rformat import AnovaTable
from .wald import wald_test

__all__ = ["resolve_ddf", "ddf_method", "coefficient_table", "contest", "anova_table"]

_ALIASES = {
    "satterthwaite": "satterthwaite",
    "satt": "satterthwaite",
    "kenward-roger": "kenward-roger",
    "kenward_roger": "kenward-roger",
    "kr": "kenward-roger",
    "kenwardroger": "kenward-roger",
    "between-within": "between-within",
    "between_within": "between-within",
    "nlme": "between-within",
    "betweenwithin": "between-within",
    "residual": "residual",
    "asymptotic": "asymptotic",
    "z": "asymptotic",
    "none": "asymptotic",
    "lme4": "lme4",
}


def resolve_ddf(ddf) -> str:
    """Canonical name of a ``ddf`` argument (case-insensitive; None means z tests)."""
    if ddf is None:
        return "asymptotic"
    key = str(ddf).strip().lower().replace(" ", "-")
    if key not in _ALIASES:
        from ..arguments import closest
        from ..errors import ArgumentError

        guess = closest(key, _ALIASES)
        raise ArgumentError(
            f"ddf must be one of 'satterthwaite', 'kenward-roger', 'between-within', "
            f"'residual', None or 'lme4', not {ddf!r}" + (f": did you mean ddf={_ALIASES[guess]!r}?" if guess else "")
        )
    return _ALIASES[key]


class FixedDf:
    """Wald t/F tests with a given df (residual, nlme's between-within, or infinite)."""

    def __init__(self, model, name: str):
        self.name = name
        self.beta = np.asarray(model.beta, dtype=float)
        self.vcov = np.asarray(model.vcov_array)
        self.sigma = float(model.sigma)
        self.warnings: list[str] = []
        p = len(self.beta)
        if name == "residual":
            self.col_df = np.full(p, float(model.nobs - p))
            self.term_df = None
            self.title = "residual df (n - p)"
        elif name == "between-within":
            from .between_within import between_within_df

            self.col_df, self.term_df = between_within_df(model)
            self.title = "between-within df (nlme)"
        else:
            self.col_df = np.full(p, np.inf)
            self.term_df = None
            self.title = "the normal approximation (z tests)"

    def _df(self, L: np.ndarray, term: str | None = None) -> float:
        if term is not None and self.term_df is not None:
            return self.term_df[term]
        used = np.any(np.abs(np.atleast_2d(L)) > 1e-12, axis=0)
        return float(np.min(self.col_df[used])) if used.any() else np.inf

    def t_test(self, l):
        l = np.asarray(l, dtype=float).ravel()
        return float(l @ self.beta), float(np.sqrt(l @ self.vcov @ l)), self._df(l)

    def f_test(self, L, rhs=0.0, term=None):
        L = np.atleast_2d(np.asarray(L, dtype=float))
        return wald_test(self.beta, self.vcov, L, df=self._df(L, term), rhs=rhs).anova_row(self.sigma)


def _cache(model) -> dict:
    """The fit's store of derived results (its ``FitCache``: a fitted model is read-only, so
    nothing invalidates it); use it under ``model_lock``."""
    return fit_cache(model).store


def ddf_method(model, ddf="satterthwaite", derivatives: str = "analytic"):
    """The (cached) test engine of a model for ``ddf``."""
    from .locking import model_lock

    name = resolve_ddf(ddf)
    with model_lock(model):  # Satterthwaite's derivatives move the kernel; the cache is shared
        return _ddf_method(model, name, derivatives)


def _ddf_method(model, name, derivatives):
    store = _cache(model)
    key = (name, derivatives if name == "satterthwaite" else None)
    if key not in store:
        if name == "satterthwaite":
            from .satterthwaite import Satterthwaite

            store[key] = Satterthwaite(model, derivatives)
        elif name == "kenward-roger":
            from .kenward_roger import KenwardRoger

            if getattr(model, "residual", None) is not None:  # its V would miss R(φ)
                from ..errors import ModelSpecError

                raise ModelSpecError(
                    "Kenward-Roger's method is not implemented for models with a residual structure: "
                    "use ddf='satterthwaite' (it differentiates over the residual parameters too)"
                )

            kr = KenwardRoger(model)
            kr.title = "Kenward-Roger's method" + (" (on the REML refit)" if kr.refitted else "")
            kr.vcov = kr.vcov_adjusted
            kr.warnings = []
            store[key] = kr
        else:
            store[key] = FixedDf(model, "asymptotic" if name == "lme4" else name)
    return store[key]


def _t_row(est, se, df, rhs=0.0):
    t = (est - rhs) / se if se > 0 else np.nan
    p = 2 * stats.t.sf(abs(t), df) if np.isfinite(df) else 2 * stats.norm.sf(abs(t))
    return {"Estimate": est, "Std. Error": se, "df": df, "t value": t, "Pr(>|t|)": float(p)}


def coefficient_table(model, ddf="satterthwaite") -> pd.DataFrame:
    """Estimate, Std. Error, df, t value, Pr(>|t|) per fixed effect (KR: adjusted SE)."""
    name = resolve_ddf(ddf)
    names = list(model.frame.fixef_names)
    p = len(names)
    if name == "lme4":
        se = np.sqrt(np.diag(model.vcov_array)) if p else np.zeros(0)
        return pd.DataFrame({"Estimate": model.beta, "Std. Error": se, "t value": model.beta / se}, index=names)
    meth = ddf_method(model, name)
    rows = [_t_row(*meth.t_test(np.eye(p)[j])) for j in range(p)]
    cols = ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    return pd.DataFrame(rows, index=names, columns=cols) if rows else pd.DataFrame(columns=cols)


def _as_matrix(model, L) -> tuple[np.ndarray, list[str] | None]:
    names = list(model.frame.fixef_names)
    if isinstance(L, pd.Series):
        L = L.to_frame().T
    if isinstance(L, pd.DataFrame):
        missing = [c for c in L.columns if c not in names]
        if missing:
            raise ArgumentError(f"contrast columns {missing} are not fixed effects ({names})")
        rows = [str(i) for i in L.index]
        return L.reindex(columns=names, fill_value=0.0).to_numpy(dtype=float), rows
    L = np.asarray(L, dtype=float)
    if L.ndim == 1:
        L = L[None, :]
    if L.shape[1] != len(names):
        raise ArgumentError(f"contrast has {L.shape[1]} columns; the model has {len(names)} fixed effects")
    return L, None


def contest(model, L, ddf="satterthwaite", joint: bool = True, rhs=0.0) -> pd.DataFrame:
    """Test the contrasts L β = rhs: a t test per row (one row, or ``joint=False``), else one F test."""
    L, rows = _as_matrix(model, L)
    meth = ddf_method(model, ddf)
    if L.shape[0] == 1 or not joint:
        rhs_v = np.broadcast_to(np.asarray(rhs, dtype=float), (L.shape[0],))
        out = [_t_row(*meth.t_test(L[i]), rhs=rhs_v[i]) for i in range(L.shape[0])]
        return (
            pd.DataFrame(out, index=rows or [f"L{i + 1}" for i in range(len(out))])
            if len(out) > 1
            else pd.DataFrame(out, index=rows or [""])
        )
    res = meth.f_test(L, rhs=rhs)
    return pd.DataFrame([res], index=[""])


def anova_table(model, type=3, ddf="satterthwaite") -> AnovaTable:
    """lmerTest's ``anova(model, type, ddf)``: one F test per fixed term, printed as lmerTest."""
    from .contrasts import term_contrasts
    from .fixed_terms import fixed_terms

    name = resolve_ddf(ddf)
    ft = fixed_terms(model.frame)
    Ls = term_contrasts(ft, type)
    meth = ddf_method(model, name)
    rows, index = [], []
    for label, L in Ls.items():
        if L.shape[0] == 0:
            continue
        if isinstance(meth, FixedDf):
            rows.append(meth.f_test(L, term=label))
        else:
            rows.append(meth.f_test(L))
        index.append(label)
    cols = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    out = pd.DataFrame(rows, index=index, columns=cols)
    roman = {1: "I", 2: "II", 3: "III"}[int({"I": 1, "II": 2, "III": 3}.get(str(type).upper(), type))]
    out.attrs["heading"] = f"Type {roman} Analysis of Variance Table with {meth.title}"
    out.attrs["hypotheses"] = Ls
    return AnovaTable.wrap(out)

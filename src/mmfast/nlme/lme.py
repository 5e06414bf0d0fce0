"""nlme's ``lme()``: the calling style and the printed results of ``nlme::lme``, fitted by mmfast.

``lme(fixed, data, random, method)`` translates nlme's separate ``random =`` argument into
lme4's formula (see ``random``) and fits it with ``mmfast.lmer``; the likelihood, the
estimates and the variance components are the same model's.  What nlme reports differently
from lme4 is reproduced here:

* the fixed-effects table (``tTable``: ``Value, Std.Error, DF, t-value, p-value``) with nlme's
  between-within ``DF``, and for ML fits nlme's standard errors, which use the REML-like
  σ² N/(N-p): lme4's SEs times sqrt(N/(N-p)) (``adjust_sigma``, nlme's ``adjustSigma``);
* ``anova()``: nlme's sequential (or marginal) Wald F tests, one per term, the
  ``(Intercept)`` included, with between-within ``denDF``;
* BIC of a REML fit uses N - p observations, as nlme's ``logLik.lme`` says;
* ``compare()`` (nlme's ``anova(m1, m2)``): likelihood-ratio tests in the order given, with
  REML fits compared as they are (nlme does not refit; only meaningful for equal fixed parts).

Unlike lme4 (and like nlme), models with as many random effects as observations are fitted
(``check_nobs_vs_nre="ignore"``): the lecture's ``list(midx = ~1, cidx = ~treatment)``.
``mmfast.anova(fit1, fit2)`` also accepts these fits and prints lme4's table (refitting REML
fits by ML, as lme4 does).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..arguments import NOBS_CHECKS, OPTIMIZER_KEYWORDS, boolean, one_of, validated
from ..rformat.tables import PrintedFrame
from ..errors import ArgumentError, ModelSpecError
from .random import RandomLevel, lme4_formula, parse_random

__all__ = ["LmeFit", "lme", "LmeAnova", "LmeComparison"]


class LmeAnova(PrintedFrame):
    """nlme's F-test table: a DataFrame that prints as ``print.anova.lme`` does."""

    def _r_text(self) -> str:
        from .printing import format_anova

        return format_anova(self)


class LmeComparison(PrintedFrame):
    """nlme's ``anova(fit1, fit2)`` table: a DataFrame that prints as nlme prints it."""

    def _r_text(self) -> str:
        from .printing import format_compare

        return format_compare(self)


_METHODS = {"REML": True, "ML": False}


class LmeFit:
    """A linear mixed model fitted in nlme's calling style; ``model`` is the lme4-style fit."""

    def __init__(self, model, fixed: str, levels: list[RandomLevel], random):
        self.model = model
        self.fixed = fixed.strip()
        self.levels = levels
        self.random = random
        self.method = "REML" if model.reml else "ML"
        self._terms = self._level_terms()

    # --- the model's pieces, per nlme grouping level -----------------------------------------
    def _level_terms(self) -> list[list[int]]:
        """Indices into model.frame.terms of each level's terms (``||`` makes several)."""
        out = []
        for lv in self.levels:
            idx = [k for k, t in enumerate(self.model.frame.terms) if t.factor.name == lv.group]
            if not idx:  # pragma: no cover - the translation names every group
                raise ModelSpecError(f"no random-effects term for grouping level {lv.label!r}")
            out.append(idx)
        return out

    def level_covariance(self, k: int) -> tuple[list[str], np.ndarray]:
        """(names, covariance matrix) of level k's random effects."""
        covs = self.model.term_covariances()
        names, blocks = [], []
        for i in self._terms[k]:
            names += list(self.model.frame.terms[i].names)
            blocks.append(covs[i])
        from scipy.linalg import block_diag

        return names, block_diag(*blocks)

    # --- sizes and criteria -------------------------------------------------------------------
    @property
    def reml(self) -> bool:
        return self.model.reml

    @property
    def frame(self):
        return self.model.frame

    @property
    def nobs(self) -> int:
        return self.model.nobs

    @property
    def npar(self) -> int:
        return self.model.npar

    @property
    def loglik(self) -> float:
        """nlme's (restricted) log-likelihood; equal to lme4's for the same model."""
        return float(self.model.loglik)

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.npar

    @property
    def bic(self) -> float:
        """nlme's BIC: log(N) per parameter for ML, log(N - p) for REML."""
        n = self.nobs - (len(self.model.beta) if self.reml else 0)
        return -2.0 * self.loglik + np.log(n) * self.npar

    @property
    def sigma(self) -> float:
        return float(self.model.sigma)

    @property
    def ngroups(self) -> dict[str, int]:
        return {lv.label: self.model.frame.terms[idx[0]].nlevels for lv, idx in zip(self.levels, self._terms)}

    # --- fixed effects ------------------------------------------------------------------------
    @property
    def fixef(self) -> pd.Series:
        """Fixed-effects estimates (nlme's ``fixef``)."""
        return pd.Series(np.asarray(self.model.beta, dtype=float), index=self.model.frame.fixef_names)

    @property
    def vcov(self) -> pd.DataFrame:
        """nlme's ``vcov()`` (``varFix``): lme4's covariance of β̂ (no σ adjustment)."""
        return self.model.vcov

    def _vcov_adjusted(self, adjust_sigma: bool = True) -> np.ndarray:
        V = np.asarray(self.model.vcov_array, dtype=float)
        if adjust_sigma and not self.reml:
            n, p = self.model.frame.X.shape
            V = V * n / (n - p)
        return V

    def fixDF(self) -> dict[str, pd.Series]:
        """nlme's between-within df: per coefficient (``X``) and per term (``terms``)."""
        from ..inference.between_within import between_within_df
        from ..inference.fixed_terms import fixed_terms

        ft = fixed_terms(self.model.frame)
        col_df, term_df = between_within_df(self.model, ft)
        names = list(self.model.frame.fixef_names)
        terms = {}
        if ft.intercept:
            terms["(Intercept)"] = float(col_df[names.index("(Intercept)")])
        terms.update(term_df)
        return {"X": pd.Series(col_df, index=names), "terms": pd.Series(terms, dtype=float)}

    @validated(name="tTable", adjust_sigma=boolean)
    def tTable(self, adjust_sigma: bool = True) -> pd.DataFrame:
        """nlme's ``summary(fit)$tTable``: Value, Std.Error, DF, t-value, p-value."""
        beta = self.fixef
        se = np.sqrt(np.diag(self._vcov_adjusted(adjust_sigma)))
        df = self.fixDF()["X"].to_numpy()
        t = beta.to_numpy() / se
        p = 2.0 * stats.t.sf(np.abs(t), df)
        return pd.DataFrame(
            {"Value": beta.to_numpy(), "Std.Error": se, "DF": df, "t-value": t, "p-value": p}, index=beta.index
        )

    # --- random effects -----------------------------------------------------------------------
    @property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes per grouping level, keyed by nlme's level name (``cidx %in% midx``)."""
        by_factor = self.model.ranef
        return {lv.label: by_factor[lv.group] for lv in self.levels}

    def varcorr(self) -> pd.DataFrame:
        """nlme's ``VarCorr``: per level and effect, Variance and StdDev (and Corr)."""
        rows = []
        for k, lv in enumerate(self.levels):
            names, S = self.level_covariance(k)
            sd = np.sqrt(np.diag(S))
            for i, nm in enumerate(names):
                corr = {
                    f"Corr.{names[j]}": (S[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan)
                    for j in range(i)
                }
                rows.append({"level": lv.label, "effect": nm, "Variance": S[i, i], "StdDev": sd[i], **corr})
        rows.append({"level": "Residual", "effect": "Residual", "Variance": self.sigma**2, "StdDev": self.sigma})
        return pd.DataFrame(rows)

    @property
    def fitted(self) -> pd.Series:
        """Fitted values at the innermost level (fixed plus all random effects)."""
        return self.model.fitted

    @property
    def residuals(self) -> pd.Series:
        """Residuals at the innermost level, y - fitted (nlme's ``resid``)."""
        return self.model.residuals

    # --- tests ----------------------------------------------------------------------------------
    @validated(name="anova", adjust_sigma=boolean)
    def anova(
        self, *others, type: str = "sequential", adjust_sigma: bool = True, names: list[str] | None = None
    ) -> pd.DataFrame:
        """nlme's ``anova()``: F tests of the fixed terms, or with other fits, ``compare()``."""
        if others:
            return self.compare(*others, names=names)
        kind = str(type).lower()
        if kind not in ("sequential", "marginal"):
            raise ArgumentError(f"type must be 'sequential' or 'marginal', not {type!r}")
        from ..inference.fixed_terms import fixed_terms

        ft = fixed_terms(self.model.frame)
        V = self._vcov_adjusted(adjust_sigma)
        beta = np.asarray(self.model.beta, dtype=float)
        groups = ([("(Intercept)", np.array([0]))] if ft.intercept else []) + [
            (t.label, np.asarray(t.columns, dtype=int)) for t in ft.terms if len(t.columns)
        ]
        if kind == "sequential":
            # R'R = V⁻¹ with R upper triangular: (Rβ)_j is coefficient j adjusted for those before
            R = np.linalg.cholesky(np.linalg.inv(V)).T
            c0 = R @ beta
            F = [float(np.sum(c0[cols] ** 2) / len(cols)) for _, cols in groups]
        else:
            from ..inference.wald import wald_test

            I = np.eye(len(beta))
            F = [wald_test(beta, V, I[cols]).F for _, cols in groups]
        ddf = self.fixDF()["terms"]
        num = np.array([len(c) for _, c in groups], dtype=int)
        den = np.array([ddf[label] for label, _ in groups], dtype=float)
        out = LmeAnova(
            {"numDF": num, "denDF": den, "F-value": F, "p-value": stats.f.sf(F, num, den)}, index=[g for g, _ in groups]
        )
        out.attrs["heading"] = "" if kind == "sequential" else "Denom. DF: marginal (Type III) F tests\n"
        return out

    @validated(name="compare")
    def compare(self, *others, names: list[str] | None = None) -> pd.DataFrame:
        """nlme's ``anova(fit1, fit2, ...)``: LR tests between consecutive fits, in the given order."""
        fits = [self, *others]
        if names is None:
            names = [f"fit{i + 1}" for i in range(len(fits))]
        if len(names) != len(fits):
            raise ArgumentError(f"{len(names)} names for {len(fits)} fits")
        for f in fits:
            if not isinstance(f, LmeFit):
                raise ArgumentError("compare() takes fits from mmfast.lme (use mmfast.anova for lmer fits)")
        if len({f.nobs for f in fits}) > 1:
            raise ModelSpecError("all fitted objects must use the same number of observations")
        if len({f.method for f in fits}) > 1:
            raise ModelSpecError("all fitted objects must have the same estimation method (ML or REML)")
        if self.reml and len({f.fixed.replace(" ", "") for f in fits}) > 1:
            warnings.warn(
                "fitted objects with different fixed effects: REML comparisons are not meaningful",
                UserWarning,
                stacklevel=2,
            )
        ll = np.array([f.loglik for f in fits])
        dfm = np.array([f.npar for f in fits], dtype=int)
        lr = np.concatenate([[np.nan], np.abs(2.0 * np.diff(ll))])
        ddf = np.concatenate([[0], np.abs(np.diff(dfm))])
        with np.errstate(invalid="ignore"):
            p = np.where(ddf > 0, stats.chi2.sf(lr, np.maximum(ddf, 1)), np.nan)
        p[0] = np.nan
        test = [""] + [f"{i} vs {i + 1}" for i in range(1, len(fits))]
        return LmeComparison(
            {
                "Model": np.arange(1, len(fits) + 1),
                "df": dfm,
                "AIC": [f.aic for f in fits],
                "BIC": [f.bic for f in fits],
                "logLik": ll,
                "Test": test,
                "L.Ratio": lr,
                "p-value": p,
            },
            index=names,
        )

    def intervals(self, level: float = 0.95):
        """nlme's ``intervals(fit)``: fixed effects, random-effects SDs (and correlations), the
        correlation and variance parameters and σ (``mmfast.nlme.intervals``)."""
        from .intervals import lme_intervals

        if not 0 < float(level) < 1:
            raise ArgumentError(f"level must be in (0, 1), not {level!r}")
        return lme_intervals(self, float(level))

    def refit_ml(self) -> "LmeFit":
        """The same model fitted by ML (itself if it is)."""
        if not self.reml:
            return self
        return LmeFit(self.model.refit_ml(), self.fixed, self.levels, self.random)

    # --- printing -------------------------------------------------------------------------------
    @validated(name="summary", adjust_sigma=boolean)
    def summary(self, adjust_sigma: bool = True):
        """nlme's ``summary()``: criteria, random effects, fixed effects with DF, residuals."""
        from .printing import LmeSummary

        return LmeSummary(self, adjust_sigma=adjust_sigma)

    def __repr__(self) -> str:
        from .printing import print_lme

        return print_lme(self)

    __str__ = __repr__


@validated(extra=("offset", "check_nobs_vs_nre", "start", *OPTIMIZER_KEYWORDS), check_nobs_vs_nre=one_of(*NOBS_CHECKS))
def lme(
    fixed: str, data: pd.DataFrame, random, method: str = "REML", correlation=None, weights=None, **lmer_options
) -> LmeFit:
    """Fit a linear mixed model as ``nlme::lme(fixed, data, random, method)`` does.

    Parameters
    ----------
    fixed : str
        The fixed part, e.g. ``"res ~ treatment_idx"`` (factors: make the column a pandas
        Categorical, as the R data frame holds a factor, or write ``factor(x)``).
    data : DataFrame or dict
        pandas or polars DataFrame, pyarrow Table or a dict of columns.  Rows with missing
        values are dropped (nlme's default ``na.fail`` would stop instead).
    random : str or dict
        ``"~ 1 | midx"``, ``"~ 1 | midx/cidx"``, ``"~ x | g"``, or
        ``{"midx": "~1", "cidx": "~treatment"}`` (nlme's ``list(...)``: nested, outermost
        first; the R text ``"list(midx = ~1, cidx = ~treatment)"`` works too).
    method : {"REML", "ML"}, default "REML"
        Estimation method.
    correlation : CorStruct or str, optional
        nlme's residual correlation: ``mmfast.corAR1()``, ``corCAR1(form="~ time | g")``,
        ``corExp``, ``corCompSymm``, ``corSymm``, or their R text ``"corAR1(form = ~ t | g)"``.
        Without ``| g``, the groups are the innermost random-effects level (nlme's rule).
    weights : VarFunc, str or array-like, optional
        nlme's variance function: ``mmfast.varIdent(form="~ 1 | g")``, ``varPower(form="~ x")``,
        ``varExp``, ``varConstPower``, ``varFixed("~ x")`` (or their R text); varPower, varExp
        and varConstPower default to nlme's ``~fitted(.)`` (iterated with the fit, as nlme
        does) and take strata, ``"~ fitted(.) | Sex"``; a column name or array is taken as
        lmer's prior weights (mmfast's earlier meaning).
    **lmer_options
        ``offset``, ``check_nobs_vs_nre`` (default "ignore", as nlme has no such
        check), ``start`` and the optimizer controls of ``mmfast.lmer``.

    Returns
    -------
    LmeFit
        Prints and summarises as nlme does: ``summary().tTable``, ``anova()``,
        ``anova(other)``, ``fixef``, ``ranef``, ``varcorr``.

    Examples
    --------
    >>> import mmfast
    >>> f = mmfast.lme("Reaction ~ Days", mmfast.datasets.load("sleepstudy"),
    ...                random="~ Days | Subject")
    >>> f.fixef.round(3).tolist()
    [251.405, 10.467]
    """
    from ..api import lmer

    key = str(method).upper()
    if key not in _METHODS:
        raise ArgumentError(f"method must be 'REML' or 'ML', not {method!r}")
    from .structures import as_structure

    levels = parse_random(random)
    formula = lme4_formula(fixed, levels)
    lmer_options.setdefault("check_nobs_vs_nre", "ignore")
    cor = as_structure(correlation, "correlation")
    var = None
    if weights is not None:
        var = as_structure(weights, "variance", prior_ok=True)
        if var is None:  # prior weights (a column or values)
            lmer_options["weights"] = weights
    structures = [s for s in (cor, var) if s is not None]
    if cor is not None and not cor.groups:  # nlme: the innermost random-effects level
        inner = levels[-1]
        cor = cor.with_groups([*inner.outer, inner.name])
        structures[0] = cor
    residual = structures or None
    model = lmer(formula, data, reml=_METHODS[key], residual=residual, **lmer_options)
    return LmeFit(model, fixed, levels, random)

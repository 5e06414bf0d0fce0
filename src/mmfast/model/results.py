"""What a fitted mixed model reports, named as lme4 names it (shared by LMMs and GLMMs).

Subclasses provide ``theta``, ``beta``, ``b`` (conditional modes on the original scale),
``sigma`` (1 for GLMMs without a scale), ``vcov_array``, ``loglik``, ``npar``, ``condvar()``,
``frame`` and ``Z``.

A fitted model is read-only (issue 15): the end of its fit (``_finish_fit``) gives it one
``FitCache`` for what later calls derive from it (test engines, variance structures,
profiles) and seals it, so that setting an attribute raises AttributeError; refits and
``with_*`` constructors build new models.
"""

from __future__ import annotations

import contextlib

import threading
from typing import Any

import numpy as np
import pandas as pd

from .._ext._sealed import Sealable
from ..arguments import boolean, validated
from ..errors import DataError
from .data_input import as_frame, missing_columns

__all__ = ["MixedModelResults", "InformationCriteria", "FitCache", "fit_cache"]


class FitCache:
    """What later calls derive from one fit, and the lock they take: computations that move
    the model's (stateful) kernel away from θ̂ or fill a cached object run under ``lock``
    (re-entrant), so that threads sharing a fit get the serial answers."""

    __slots__ = ("_lock", "store")

    def __init__(self) -> None:
        self._lock: Any = None  # made on first use: most fits never take it (issue 15's per-fit cost)
        self.store: dict = {}

    @property
    def lock(self):
        """The re-entrant lock, one per cache (created once, under the module's lock)."""
        if self._lock is None:
            with _UNSEALED:
                if self._lock is None:
                    self._lock = threading.RLock()
        return self._lock


_UNSEALED = threading.Lock()


def fit_cache(model) -> FitCache:
    """The model's ``FitCache``: the one its fit made; a model built otherwise (not by a fit
    of this package) gets one on first use."""
    cache = model.__dict__.get("_fit_cache")
    if cache is None:
        with _UNSEALED:
            cache = model.__dict__.setdefault("_fit_cache", FitCache())
    return cache


class InformationCriteria:
    """AIC and BIC from ``loglik``, ``npar`` and ``nobs`` (R's ``AIC``/``BIC``)."""

    @property
    def aic(self) -> float:
        """Akaike's information criterion, -2 logLik + 2 npar (R's ``AIC``)."""
        return -2.0 * self.loglik + 2.0 * self.npar

    @property
    def bic(self) -> float:
        """Schwarz's criterion, -2 logLik + log(nobs) npar (R's ``BIC``)."""
        return -2.0 * self.loglik + np.log(self.nobs) * self.npar


class MixedModelResults(Sealable, InformationCriteria):
    """Result accessors common to LMMs and GLMMs (the fit layer's; inference, resampling and
    presentation methods are mixed in above it, in ``mmfast.api``)."""

    use_scale = True  # does the model have a residual scale σ (False for binomial/Poisson)

    # --- the end of a fit, pickling -------------------------------------------------------
    def _finish_fit(self) -> None:
        """The fit is done: a fresh cache for what is derived from it, then read-only."""
        self._fit_cache = FitCache()
        self._seal()

    @contextlib.contextmanager
    def _reopened(self):
        """Writable inside the block, sealed again after it: for a computation that moves the
        fitted state and restores it before leaving (nlme's ``intervals`` moving φ)."""
        was = self.sealed
        self._unseal()
        try:
            yield self
        finally:
            if was:
                self._seal()

    def __getstate__(self) -> dict:
        """The attributes but the cache (a lock; its contents are derived again on use)."""
        state = self.__dict__.copy()
        state.pop("_fit_cache", None)
        return state

    def __setstate__(self, state: dict) -> None:
        """The attributes; a fitted model is read-only again (subclasses rebuild their
        compiled engines first, then call this)."""
        self.__dict__.update(state)
        if state.get("fitted_", False):
            self._finish_fit()

    # --- sizes ----------------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        """Observations with a non-zero prior weight (R's ``nobs`` for weighted fits): a row of
        weight 0 contributes nothing, so the fit equals one without that row; arrays such as
        ``fitted`` still have ``frame.nobs`` rows."""
        w = self.frame.weights
        return self.frame.nobs if w is None else int(np.count_nonzero(w))

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels per grouping factor (lme4's ``ngrps``)."""
        out: dict[str, int] = {}
        for t in self.frame.terms:
            out.setdefault(t.factor.name, t.nlevels)
        return out

    @property
    def singular(self) -> bool:
        """lme4's ``isSingular``: a diagonal element of some template below 1e-4."""
        if not self.layout.linear:  # a structure: also a correlation matrix near singular
            return self.layout.singular(self.theta)
        diag = np.isfinite(self.theta_lower)
        return bool(np.any(self.theta[diag] < 1e-4))

    # --- fixed effects --------------------------------------------------------------------
    @property
    def fixef(self) -> pd.Series:
        """Fixed-effects estimates β, named as R names the columns (lme4's ``fixef``)."""
        return pd.Series(self.beta, index=self.frame.fixef_names, name="Estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed-effects estimates (lme4's ``vcov``)."""
        names = self.frame.fixef_names
        return pd.DataFrame(self.vcov_array, index=names, columns=names)

    @property
    def theta_names(self) -> list[str]:
        """Names of the elements of θ, in lme4's order."""
        return self.layout.names

    # --- variance components --------------------------------------------------------------
    def term_covariances(self) -> list[np.ndarray]:
        """Covariance matrix of each term's random effects: σ² T T'."""
        return [self.sigma**2 * T @ T.T for T in self.layout.templates(self.theta)]

    @property
    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(m))``: columns grp, var1, var2, vcov, sdcor."""
        rows = []
        for t, S in zip(self.frame.terms, self.term_covariances()):
            sd = np.sqrt(np.diag(S))
            for i, name in enumerate(t.names):
                rows.append((t.group, name, None, S[i, i], sd[i]))
            for i in range(t.p):
                for j in range(i + 1, t.p):
                    cor = S[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
                    rows.append((t.group, t.names[i], t.names[j], S[i, j], cor))
        if self.use_scale:
            rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

    # --- random effects -------------------------------------------------------------------
    def _by_factor(self, values_per_term) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        for t, vals in zip(self.frame.terms, values_per_term):
            df = pd.DataFrame(vals, index=pd.Index(t.factor.levels, name=t.factor.name), columns=t.names)
            key = t.factor.name
            if key in out:  # several terms on one factor: one frame, as lme4's ranef()
                df.columns = [c if c not in out[key].columns else f"{c}.1" for c in df.columns]
                df = out[key].join(df, how="outer")
            out[key] = df
        return out

    @property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects, one DataFrame per grouping factor."""
        return self._by_factor([self.b[t.offset : t.offset + t.q].reshape(t.nlevels, t.p) for t in self.frame.terms])

    @property
    def ranef_condsd(self) -> dict[str, pd.DataFrame]:
        """Conditional standard deviations of the random effects (``ranef(condVar = TRUE)``)."""
        return self._by_factor([np.sqrt(np.einsum("lii->li", cv)) for cv in self.condvar()])

    @property
    def coef(self) -> dict[str, pd.DataFrame]:
        """Fixed plus random effects per level (lme4's ``coef``)."""
        out = {}
        fe = self.fixef
        for name, re in self.ranef.items():
            df = pd.DataFrame(np.tile(fe.to_numpy(), (len(re), 1)), index=re.index, columns=fe.index)
            for col in re.columns:
                df[col] = (df[col] if col in df else 0.0) + re[col]
            out[name] = df
        return out

    # --- fitted values and prediction -----------------------------------------------------
    def _on_rows(self, values, name: str | None = None) -> pd.Series:
        """``values`` (one per used row) as a Series on the caller's index, NaN for dropped
        rows.  Cost: one allocation of n values (none when no row was dropped)."""
        f = self.frame
        idx, complete = getattr(f, "row_index", None), getattr(f, "complete", None)
        values = np.asarray(values, dtype=float)
        if idx is None or len(idx) != (len(values) if complete is None else len(complete)):
            return pd.Series(values, name=name)
        if complete is None:
            return pd.Series(values, index=idx, name=name)
        out = np.full(len(idx), np.nan)
        out[complete] = values
        return pd.Series(out, index=idx, name=name)

    def linear_predictor(self) -> np.ndarray:
        eta = self.frame.X @ self.beta + self.Z @ self.b
        if self.frame.offset is not None:
            eta = eta + self.frame.offset
        return eta

    @property
    def fitted(self) -> pd.Series:
        """Fitted values Xβ + Zb (+ offset), conditional on the random effects (lme4's ``fitted``).

        Returns
        -------
        pandas.Series
            On the data's index, NaN for rows dropped for missing values (R's ``na.exclude``),
            so ``df["fit"] = m.fitted`` lines up.

        Examples
        --------
        >>> df["fit"] = m.fitted  # doctest: +SKIP
        """
        return self._on_rows(self.linear_predictor(), "fitted")

    @property
    def residuals(self) -> pd.Series:
        """Response residuals y - fitted, on the data's index (NaN for dropped rows).

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> df["res"] = m.residuals  # doctest: +SKIP
        """
        return self._on_rows(self.frame.y - self.linear_predictor(), "residuals")

    @validated(name="predict", allow_new_levels=boolean)
    def predict(self, newdata: pd.DataFrame | None = None, allow_new_levels: bool = False, re_form=True) -> pd.Series:
        """Predictions on the linear-predictor scale (lme4's ``predict``).

        Parameters
        ----------
        newdata : DataFrame, optional
            pandas, polars, pyarrow or a dict; default: the fitted rows.
        allow_new_levels : bool
            Predict unseen (or missing) grouping levels at the population level.
        re_form : True or None
            None drops the random effects (``re.form = NA``).

        Returns
        -------
        pandas.Series
            On newdata's index, or (no newdata) on the data's index with NaN for dropped rows.

        Examples
        --------
        >>> m.predict(df.head(3), re_form=None)  # doctest: +SKIP
        """
        if newdata is None:
            return self._on_rows(self._predict_eta(None, allow_new_levels, re_form), "predicted")
        newdata = as_frame(newdata, "newdata", allow_empty=False)
        return pd.Series(self._predict_eta(newdata, allow_new_levels, re_form), index=newdata.index, name="predicted")

    def _predict_eta(self, newdata, allow_new_levels: bool = False, re_form=True) -> np.ndarray:
        """The linear predictor at the fitted rows (``newdata`` None) or at ``newdata``."""
        if newdata is not None:  # pandas, polars, arrow or a dict; not empty; the columns used
            newdata = as_frame(newdata, "newdata", allow_empty=False)
            lack = missing_columns(self.frame.parsed, self.frame.table.columns, newdata, random=re_form is not None)
            if lack:
                raise DataError(f"newdata lacks column(s) the model uses: {', '.join(map(repr, lack))}")
        if newdata is None:
            return (
                self.linear_predictor()
                if re_form is not None
                else (self.frame.X @ self.beta + (0 if self.frame.offset is None else self.frame.offset))
            )
        Xn = self.frame.fixed_spec.matrix(newdata)
        eta = Xn @ self.beta
        if re_form is None:
            return eta
        for t in self.frame.terms:
            Zk = np.asarray(t.spec.get_model_matrix(newdata), dtype=float)
            Zk = np.broadcast_to(Zk, (len(newdata), t.p)) if Zk.shape[0] != len(newdata) else Zk
            idx = _level_index(newdata, t.factor, allow_new_levels)
            bk = self.b[t.offset : t.offset + t.q].reshape(t.nlevels, t.p)
            contrib = np.where(idx[:, None] >= 0, bk[np.maximum(idx, 0)], 0.0)
            eta = eta + np.sum(Zk * contrib, axis=1)
        return eta

    def __repr__(self) -> str:
        kind = "REML" if getattr(self, "reml", False) else "ML"
        return (
            f"<{type(self).__name__} {self.frame.parsed.formula!r} ({kind}), "
            f"nobs={self.nobs}, logLik={self.loglik:.4f}>"
        )


def _level_index(newdata: pd.DataFrame, factor, allow_new_levels: bool) -> np.ndarray:
    """Each newdata row's index into the fitted levels of ``factor``, -1 for a new level or a
    missing grouping value: lme4's predict refuses both unless ``allow_new_levels``, and then
    predicts those rows at the population level (random effect 0)."""
    from ..design.remat import grouping_factor

    parts = [p.strip().strip("`") for p in factor.name.split(":")]
    missing = np.zeros(len(newdata), dtype=bool)
    for col in parts:
        if col in newdata.columns:
            missing |= pd.isna(newdata[col]).to_numpy()
    if missing.any() and not allow_new_levels:
        rows = np.flatnonzero(missing)
        raise DataError(
            f"NAs are not allowed in prediction data for grouping variable "
            f"'{factor.name}' (row{'s' if len(rows) > 1 else ''} "
            f"{', '.join(map(str, rows[:5]))}{', ...' if len(rows) > 5 else ''}) "
            "unless allow_new_levels=True (then predicted at the population level)"
        )
    present = newdata.loc[~missing] if missing.any() else newdata
    idx = np.full(len(newdata), -1, dtype=np.int64)
    if len(present):
        gf = grouping_factor(present.reset_index(drop=True), factor.name)
        lookup = {lev: i for i, lev in enumerate(factor.levels)}
        codes = np.asarray(gf.codes, dtype=np.int64)
        known = np.array([lookup.get(lev, -1) for lev in gf.levels] + [-1], dtype=np.int64)
        idx[~missing] = known[np.where(codes >= 0, codes, len(gf.levels))]  # never code -1
        if not allow_new_levels and np.any(idx < 0):
            new = sorted({lev for lev in gf.levels if lev not in lookup})
            raise DataError(
                f"new levels of '{factor.name}' in newdata: {', '.join(new[:5])}"
                " (pass allow_new_levels=True to predict them at the population level)"
            )
    return idx

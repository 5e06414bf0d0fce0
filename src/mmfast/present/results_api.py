"""statsmodels-style accessors of a fitted mixed model (``params``, ``bse``, ``pvalues``,
``conf_int``, ``get_prediction``...), next to lme4's names; mixed into ``mmfast.api``'s models.

Every number comes from what the model already reports: ``params`` is ``fixef``, ``bse`` the
square roots of ``vcov``'s diagonal, ``tvalues``/``pvalues`` the summary's coefficient table
(LMMs: Satterthwaite t tests as lmerTest's ``summary``; GLMMs: Wald z tests as glmer's).
Per-row values (``fitted``, ``residuals``, ``predict()``) come back as pandas Series on the
caller's row labels, NaN where a row was dropped for missing values (R's ``na.exclude``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..arguments import probability, validated

__all__ = ["StatsmodelsAPI", "PredictionResults"]


class StatsmodelsAPI:
    """Accessors named as statsmodels names them (``MixedLMResults``/``GLMResults``)."""

    # --- coefficients ----------------------------------------------------------------------
    def _coef_table(self) -> pd.DataFrame:
        """The summary's fixed-effects table: Estimate, Std. Error, [df,] statistic, p value."""
        from .summary import Summary

        return Summary(self).coefficients

    @property
    def params(self) -> pd.Series:
        """Fixed-effect estimates β̂ (lme4's ``fixef``).

        Returns
        -------
        pandas.Series
            One value per fixed effect, indexed by the coefficient names.

        Examples
        --------
        >>> import mmfast
        >>> m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", mmfast.datasets.load("sleepstudy"))
        >>> round(m.params["Days"], 4)
        10.4673
        """
        return pd.Series(np.asarray(self.beta, dtype=np.float64), index=list(self.frame.fixef_names))

    @property
    def bse(self) -> pd.Series:
        """Standard errors of β̂: square roots of ``vcov``'s diagonal.

        Returns
        -------
        pandas.Series
            Indexed by the coefficient names.

        Examples
        --------
        >>> round(m.bse["Days"], 4)  # doctest: +SKIP
        1.5458
        """
        return pd.Series(np.sqrt(np.diag(self.vcov_array)), index=list(self.frame.fixef_names))

    @property
    def tvalues(self) -> pd.Series:
        """Wald statistics β̂ / SE (t for LMMs, z for GLMMs), as in ``summary()``.

        Returns
        -------
        pandas.Series
            Indexed by the coefficient names.

        Examples
        --------
        >>> m.tvalues["Days"]  # doctest: +SKIP
        """
        return self.params / self.bse

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided p values as ``summary()`` reports them: Satterthwaite t tests for LMMs
        (lmerTest), Wald z tests for GLMMs (glmer); for LMMs ``summary(ddf=...)`` gives others.

        Returns
        -------
        pandas.Series
            Indexed by the coefficient names.

        Examples
        --------
        >>> m.pvalues["Days"] < 1e-6  # doctest: +SKIP
        True
        """
        tab = self._coef_table()
        col = [c for c in tab.columns if c.startswith("Pr(")]
        if not col:  # a Gaussian model with a scale that is not an LMM: Wald z
            return pd.Series(2 * stats.norm.sf(np.abs(self.tvalues.to_numpy())), index=tab.index)
        return tab[col[0]].astype(float).rename(None)

    @validated(name="conf_int", alpha=probability)
    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald intervals β̂ ± z₁₋α/₂ SE (normal quantile, as statsmodels' ``MixedLM``).

        Parameters
        ----------
        alpha : float
            1 - confidence level (0.05: 95% intervals).

        Returns
        -------
        pandas.DataFrame
            Columns ``0`` (lower) and ``1`` (upper), one row per fixed effect.

        Examples
        --------
        >>> m.conf_int(0.1)  # doctest: +SKIP
        """
        z = stats.norm.ppf(1 - alpha / 2)
        b, se = self.params, self.bse
        return pd.DataFrame({0: b - z * se, 1: b + z * se})

    def cov_params(self) -> pd.DataFrame:
        """Covariance matrix of β̂ (lme4's ``vcov``).

        Returns
        -------
        pandas.DataFrame
            p x p, rows and columns named by the coefficients.

        Examples
        --------
        >>> m.cov_params().loc["Days", "Days"]  # doctest: +SKIP
        """
        return self.vcov

    @property
    def llf(self) -> float:
        """Log-likelihood at the fit (the REML criterion's for REML fits), lme4's ``logLik``.

        Returns
        -------
        float

        Examples
        --------
        >>> m.llf  # doctest: +SKIP
        """
        return float(self.loglik)

    @property
    def df_resid(self) -> int:
        """Residual degrees of freedom as lme4's ``df.residual``: nobs - number of parameters.

        Returns
        -------
        int

        Examples
        --------
        >>> m.df_resid  # doctest: +SKIP
        174
        """
        return int(self.nobs - self.npar)

    # --- prediction with uncertainty -------------------------------------------------------
    def get_prediction(
        self, newdata=None, re_form=True, allow_new_levels: bool = False, type: str = "link", offset=None
    ) -> "PredictionResults":  # noqa: A002
        """Predictions with their fixed-effects standard errors sqrt(diag(X V X')).

        Parameters
        ----------
        newdata : DataFrame, optional
            Rows to predict (pandas, polars, pyarrow or a dict); default: the fitted rows.
        re_form : True or None
            True: conditional on the random effects' modes; None: population level.
        allow_new_levels : bool
            Predict unseen levels at the population level (as ``predict``).
        type : {"link", "response"}
            GLMMs: scale of ``mean`` (response: inverse link, SE by the delta method,
            interval limits transformed from the link scale).
        offset : str or array, optional
            GLMMs fitted with ``offset=``: the offset for ``newdata``.

        Returns
        -------
        PredictionResults
            ``summary_frame(alpha)`` gives ``mean``, ``mean_se``, ``mean_ci_lower/upper`` and
            (LMMs) ``obs_ci_lower/upper``.

        Examples
        --------
        >>> m.get_prediction(data.head(3)).summary_frame(alpha=0.05)  # doctest: +SKIP
        """
        from ..errors import ArgumentError

        if type not in ("link", "response"):
            raise ArgumentError(f"type must be 'link' or 'response' (got {type!r})")
        if type == "response" and getattr(self, "family", "gaussian") == "gaussian":
            type = "link"  # noqa: A001 - identity link: the same
        kw = {"re_form": re_form, "allow_new_levels": allow_new_levels}
        if offset is not None:
            kw["offset"] = offset
        eta = self.predict(newdata, **kw)  # Series (type link), checks newdata
        if newdata is None:
            X = self.frame.X
            keep = ~np.isnan(eta.to_numpy())
        else:
            from ..model.data_input import as_frame

            X = self.frame.fixed_spec.matrix(as_frame(newdata, "newdata", allow_empty=False))
            keep = np.ones(len(eta), dtype=bool)
        V = self.vcov_array
        se_rows = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", X, V, X), 0.0))
        se = np.full(len(eta), np.nan)
        se[keep] = se_rows
        extra = self._prediction_variance(newdata, re_form, allow_new_levels)
        if extra is not None and newdata is None:
            full = np.full(len(eta), np.nan)
            full[keep] = extra
            extra = full
        return PredictionResults(eta, se, extra, self.family if type == "response" else None)

    def _prediction_variance(self, newdata, re_form, allow_new_levels):
        """Variance of a new observation beyond X V X' (LMMs only, else None): σ² plus, at the
        population level, z' Σ z of each random-effects term (Σ its covariance), or with
        random effects, the conditional variance of the row's random effects."""
        if not getattr(self, "use_scale", True) or getattr(self, "family", "gaussian") != "gaussian":
            return None
        from ..model.data_input import as_frame
        from ..model.results import _level_index

        data = self.frame.data if newdata is None else as_frame(newdata, "newdata")
        var = np.full(len(data), self.sigma**2)
        covs = self.term_covariances()
        condvar = self.condvar() if re_form is not None else None
        for k, t in enumerate(self.frame.terms):
            Zk = np.asarray(t.spec.get_model_matrix(data), dtype=float)
            Zk = np.broadcast_to(Zk, (len(data), t.p)) if Zk.shape[0] != len(data) else Zk
            pop = np.einsum("ij,jk,ik->i", Zk, covs[k], Zk)
            if condvar is None:
                var += pop
                continue
            idx = (
                np.asarray(t.factor.codes, dtype=np.int64)
                if newdata is None
                else _level_index(data, t.factor, allow_new_levels)
            )
            cv = condvar[k][np.maximum(idx, 0)]
            var += np.where(idx >= 0, np.einsum("ij,ijk,ik->i", Zk, cv, Zk), pop)
        return var


class PredictionResults:
    """Predictions with standard errors; ``summary_frame(alpha)`` as statsmodels'."""

    def __init__(self, eta: pd.Series, se: np.ndarray, obs_var, family=None):
        self.predicted_link = eta
        self.se_link = se
        self._obs_var = obs_var
        self._family = family

    @property
    def predicted_mean(self) -> pd.Series:
        """The predictions (response scale if asked for)."""
        eta = self.predicted_link
        if self._family is None:
            return eta
        return pd.Series(self._family.linkinv(eta.to_numpy()), index=eta.index)

    @property
    def se_mean(self) -> np.ndarray:
        """Standard errors of ``predicted_mean`` (delta method on the response scale)."""
        if self._family is None:
            return self.se_link
        return np.abs(self._family.mu_eta(self.predicted_link.to_numpy())) * self.se_link

    @validated(name="summary_frame", alpha=probability)
    def summary_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        """``mean``, ``mean_se``, ``mean_ci_lower``, ``mean_ci_upper`` (Wald, normal quantile)
        and, for LMMs, ``obs_ci_lower``/``obs_ci_upper`` (prediction intervals of a new
        observation: fixed-effects, random-effects and residual variance).

        Parameters
        ----------
        alpha : float
            1 - confidence level.

        Returns
        -------
        pandas.DataFrame
            On the prediction rows' index.

        Examples
        --------
        >>> m.get_prediction().summary_frame(0.1).head()  # doctest: +SKIP
        """
        z = stats.norm.ppf(1 - alpha / 2)
        eta = self.predicted_link.to_numpy()
        lo, hi = eta - z * self.se_link, eta + z * self.se_link
        if self._family is not None:
            lo, hi = self._family.linkinv(lo), self._family.linkinv(hi)
            lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
        out = pd.DataFrame(
            {"mean": self.predicted_mean.to_numpy(), "mean_se": self.se_mean, "mean_ci_lower": lo, "mean_ci_upper": hi},
            index=self.predicted_link.index,
        )
        if self._obs_var is not None and self._family is None:
            sd = np.sqrt(self.se_link**2 + self._obs_var)
            out["obs_ci_lower"] = eta - z * sd
            out["obs_ci_upper"] = eta + z * sd
        return out

"""broom.mixed's ``tidy()``, ``glance()`` and ``augment()`` for fitted mixed models: tables with
broom.mixed's column names, built from the estimates the model already reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..arguments import boolean, probability, validated
from ..errors import ArgumentError

__all__ = ["TidyMixin"]

EFFECTS = ("fixed", "ran_pars", "ran_vals")
HAT_MAX_COLUMNS = 3000  # augment's .hat: dense n x (q + p) work, skipped for larger models


def _effects(effects) -> tuple:
    eff = (effects,) if isinstance(effects, str) else tuple(effects)
    bad = [e for e in eff if e not in EFFECTS]
    if bad or not eff:
        raise ArgumentError(f"effects must be some of {', '.join(map(repr, EFFECTS))} (got {effects!r})")
    return eff


class TidyMixin:
    """``tidy``, ``glance``, ``augment`` (broom.mixed) for LMMs and GLMMs."""

    def _is_lmm(self) -> bool:
        return getattr(self, "family", "gaussian") == "gaussian" and hasattr(self, "reml")

    def _tidy_fixed(self, conf_int: bool, conf_level: float) -> pd.DataFrame:
        tab = self._coef_table()
        est, se = tab["Estimate"].to_numpy(float), tab["Std. Error"].to_numpy(float)
        stat = est / se
        out = pd.DataFrame(
            {
                "effect": "fixed",
                "group": None,
                "term": list(tab.index),
                "estimate": est,
                "std.error": se,
                "statistic": stat,
            }
        )
        if "df" in tab:  # lmerTest: Satterthwaite t tests, t quantiles for the intervals
            df = tab["df"].to_numpy(float)
            out["df"] = df
            out["p.value"] = tab["Pr(>|t|)"].to_numpy(float)
            q = stats.t.ppf(0.5 + conf_level / 2, df)
        else:
            if not self._is_lmm() or "Pr(>|z|)" in tab:
                out["p.value"] = 2 * stats.norm.sf(np.abs(stat))
            q = stats.norm.ppf(0.5 + conf_level / 2)
        if conf_int:
            out["conf.low"], out["conf.high"] = est - q * se, est + q * se
        return out

    def _tidy_ran_pars(self) -> pd.DataFrame:
        """Standard deviations and correlations per term, broom.mixed's order (each row of
        the correlation matrix: its sd, then its correlations with later columns)."""
        rows = []
        for t, S in zip(self.frame.terms, self.term_covariances()):
            sd = np.sqrt(np.diag(S))
            for i, a in enumerate(t.names):
                rows.append((t.group, f"sd__{a}", sd[i]))
                for j in range(i + 1, t.p):
                    cor = S[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
                    rows.append((t.group, f"cor__{a}.{t.names[j]}", cor))
        if getattr(self, "use_scale", True):
            rows.append(("Residual", "sd__Observation", float(self.sigma)))
        df = pd.DataFrame(rows, columns=["group", "term", "estimate"])
        df.insert(0, "effect", "ran_pars")
        return df

    def _tidy_ran_vals(self, conf_int: bool, conf_level: float) -> pd.DataFrame:
        parts = []
        sds = self.ranef_condsd
        for group, re in self.ranef.items():
            sd = sds[group]
            for term in re.columns:
                parts.append(
                    pd.DataFrame(
                        {
                            "effect": "ran_vals",
                            "group": group,
                            "level": [str(v) for v in re.index],
                            "term": term,
                            "estimate": re[term].to_numpy(float),
                            "std.error": sd[term].to_numpy(float),
                        }
                    )
                )
        out = pd.concat(parts, ignore_index=True)
        if conf_int:
            z = stats.norm.ppf(0.5 + conf_level / 2)
            out["conf.low"] = out["estimate"] - z * out["std.error"]
            out["conf.high"] = out["estimate"] + z * out["std.error"]
        return out

    @validated(name="tidy", conf_int=boolean, conf_level=probability)
    def tidy(self, effects=("fixed", "ran_pars"), conf_int: bool = False, conf_level: float = 0.95) -> pd.DataFrame:
        """One row per parameter, as broom.mixed's ``tidy()``.

        Parameters
        ----------
        effects : str or sequence of str
            ``"fixed"`` (estimates, SE, t or z, Satterthwaite df and p for LMMs as lmerTest),
            ``"ran_pars"`` (``sd__x``, ``cor__x.y``, ``sd__Observation``) and/or
            ``"ran_vals"`` (conditional modes with their conditional SDs, one row per level).
        conf_int : bool
            Add ``conf.low``/``conf.high``: fixed effects Wald intervals (t quantile with the
            Satterthwaite df for LMMs, normal for GLMMs); ran_vals ± z · SD; ran_pars none.
        conf_level : float
            Confidence level of the intervals.

        Returns
        -------
        pandas.DataFrame
            Columns ``effect``, ``group``, [``level``,] ``term``, ``estimate``,
            ``std.error``, ``statistic``, [``df``,] ``p.value`` [, ``conf.low``,
            ``conf.high``]; missing values where a column does not apply.

        Examples
        --------
        >>> m.tidy(conf_int=True)  # doctest: +SKIP
        """
        eff = _effects(effects)
        parts = []
        if "fixed" in eff:
            parts.append(self._tidy_fixed(conf_int, conf_level))
        if "ran_pars" in eff:
            parts.append(self._tidy_ran_pars())
        if "ran_vals" in eff:
            parts.append(self._tidy_ran_vals(conf_int, conf_level))
        out = pd.concat([p for p in parts if len(p)], ignore_index=True) if parts else pd.DataFrame()
        order = [
            "effect",
            "group",
            "level",
            "term",
            "estimate",
            "std.error",
            "statistic",
            "df",
            "p.value",
            "conf.low",
            "conf.high",
        ]
        if conf_int:  # ran_pars rows: no interval (broom.mixed's Wald default)
            for c in ("conf.low", "conf.high"):
                if c not in out:
                    out[c] = np.nan
        return out[[c for c in order if c in out.columns]]

    def glance(self) -> pd.DataFrame:
        """One row of model statistics, as broom.mixed's ``glance()``.

        Returns
        -------
        pandas.DataFrame
            ``nobs``, ``sigma``, ``logLik``, ``AIC``, ``BIC``, then ``REMLcrit`` (REML fits)
            or ``deviance`` (ML fits; GLMMs: the sum of squared deviance residuals, as
            lme4's ``deviance``), and ``df.residual`` (nobs - number of parameters).

        Examples
        --------
        >>> m.glance()  # doctest: +SKIP
        """
        row = {
            "nobs": int(self.nobs),
            "sigma": float(self.sigma),
            "logLik": float(self.loglik),
            "AIC": float(self.aic),
            "BIC": float(self.bic),
        }
        if getattr(self, "reml", False):
            row["REMLcrit"] = float(self.reml_criterion)
        else:
            row["deviance"] = float(self.deviance)
        row["df.residual"] = int(self.nobs - self.npar)
        return pd.DataFrame([row])

    def augment(self, data=None) -> pd.DataFrame:
        """The data with per-row results, as broom.mixed's ``augment()``.

        Parameters
        ----------
        data : DataFrame, optional
            Rows to add the columns to (default: the model's data); it must have the model's
            rows, one per row, in order (rows dropped for missing values may be included:
            they get NaN).

        Returns
        -------
        pandas.DataFrame
            ``data`` plus ``.fitted`` (linear predictor), ``.resid`` (LMMs: response,
            GLMMs: deviance residuals), ``.fixed`` (Xβ + offset), ``.mu`` (mean), ``.offset``,
            ``.sqrtXwt``, ``.sqrtrwt``, ``.weights`` (prior weights), ``.wtres`` (Pearson
            residuals) and for GLMMs ``.eta``; for LMMs with at most ``HAT_MAX_COLUMNS``
            random plus fixed effects also ``.hat`` (diagonal of the hat matrix) and
            ``.cooksd`` (Cook's distance), as lme4's ``hatvalues``/``cooks.distance``.

        Examples
        --------
        >>> m.augment().head()  # doctest: +SKIP
        """
        f = self.frame
        n = f.nobs
        pw = getattr(self, "prior_weights", f.weights)  # GLMMs: cbind()'s trials included
        pw = np.ones(n) if pw is None else np.asarray(pw, dtype=float)
        y = np.asarray(getattr(self, "y", f.y), dtype=float)  # GLMMs: proportions for cbind()
        off = np.zeros(n) if f.offset is None else np.asarray(f.offset, dtype=float)
        eta = np.asarray(self.linear_predictor(), dtype=np.float64)
        fixed = f.X @ self.beta + off
        if self._is_lmm() or not hasattr(self, "resid"):
            mu, sqrtrwt = eta, np.sqrt(pw)
            sqrtxwt, resid = sqrtrwt, y - mu
        else:
            mu = np.asarray(self._mu, dtype=np.float64)
            sqrtrwt = np.sqrt(pw / self.family.variance(mu))
            sqrtxwt = sqrtrwt * self.family.mu_eta(eta)
            resid = np.asarray(self.resid("deviance"), dtype=float)
        cols = {
            ".fitted": eta,
            ".resid": resid,
            ".fixed": fixed,
            ".mu": mu,
            ".offset": off,
            ".sqrtXwt": sqrtxwt,
            ".sqrtrwt": sqrtrwt,
            ".weights": pw,
            ".wtres": sqrtrwt * (y - mu),
        }
        if not self._is_lmm():
            cols[".eta"] = eta
        else:
            hat = _lmm_hat(self, np.sqrt(pw))
            if hat is not None:  # lme4's hatvalues and cooks.distance
                p = f.X.shape[1]
                with np.errstate(divide="ignore", invalid="ignore"):
                    cook = (cols[".wtres"] / (1 - hat)) ** 2 * hat / (self.sigma**2 * p)
                cook[np.isinf(cook)] = np.nan
                cols = {**dict(list(cols.items())[:2]), ".hat": hat, ".cooksd": cook, **dict(list(cols.items())[2:])}
        if data is None:
            idx, complete = f.row_index, f.complete
            base = f.data.drop(columns=[c for c in ("(weights)", "(offset)") if c in f.data])
            if idx is not None and len(idx) == n and complete is None:
                base = base.set_axis(idx)
            elif idx is not None and complete is not None and len(complete) == len(idx):
                base = base.set_axis(idx[complete])
            out = base.copy()
            for k, v in cols.items():
                out[k] = v
            return out
        from ..model.data_input import as_frame

        data = as_frame(data, "data")
        out = data.copy()
        for k, v in cols.items():
            out[k] = self._on_rows_for(v, len(data))
        return out

    def _on_rows_for(self, values, nrows: int) -> np.ndarray:
        """``values`` placed on the caller's rows (NaN for dropped ones); ``nrows`` must match."""
        s = self._on_rows(values)
        if len(s) != nrows:
            raise ArgumentError(
                f"data has {nrows} rows; the model was fitted to {len(s)} (pass the data the model was fitted to)"
            )
        return s.to_numpy()


def _lmm_hat(model, sqrtw: np.ndarray) -> np.ndarray | None:
    """Diagonal of the LMM's hat matrix (fitted = H y): with A = W^½ [ZΛ X] and
    M = A'A + diag(I_q, 0), h = diag(A M⁻¹ A') (lme4's ``hatvalues``).  Dense, so only for
    q + p <= HAT_MAX_COLUMNS; None otherwise."""
    f = model.frame
    Z = model.Z
    q, p = Z.shape[1], f.X.shape[1]
    if q + p > HAT_MAX_COLUMNS or f.nobs * (q + p) > 5e7:
        return None
    Zd = Z.toarray() if hasattr(Z, "toarray") else np.asarray(Z, dtype=float)
    ZL = np.empty_like(Zd)
    for t, T in zip(f.terms, model.layout.templates(model.theta)):
        blk = Zd[:, t.offset : t.offset + t.q].reshape(f.nobs, t.nlevels, t.p)
        ZL[:, t.offset : t.offset + t.q] = (blk @ T).reshape(f.nobs, t.q)
    A = np.hstack([ZL, f.X]) * sqrtw[:, None]
    M = A.T @ A
    M[np.arange(q), np.arange(q)] += 1.0
    C = np.linalg.cholesky(M)
    B = np.linalg.solve(C, A.T)  # C⁻¹ A'
    return np.einsum("ij,ij->j", B, B)

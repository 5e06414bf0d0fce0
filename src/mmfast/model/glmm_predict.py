"""A GLMM's fitted values, residuals, predictions and odds ratios on the response scale
(lme4's ``fitted``, ``resid(type=)``, ``predict(type=)``), mixed into the GLMM class."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..arguments import one_of, probability, validated
from ..errors import ArgumentError, DataError, ModelSpecError
from .data_input import as_frame
from .frame import evaluate

__all__ = ["GlmmPrediction", "wald_odds_ratios"]


class GlmmPrediction:
    """``fitted``, ``resid``, ``residuals``, ``scaled_residuals``, ``predict``, ``odds_ratios``
    of a fitted ``GeneralizedLinearMixedModel``."""

    @property
    def fitted(self) -> pd.Series:
        """Fitted means μ (lme4's ``fitted``), conditional on the random effects: a Series on
        the data's index, NaN for rows dropped for missing values (R's ``na.exclude``)."""
        return self._on_rows(self._mu, "fitted")

    def resid(self, type: str = "deviance") -> np.ndarray:  # noqa: A002 - R's argument name
        """Residuals: ``deviance`` (lme4's default), ``pearson``, ``response`` or ``working``."""
        y, mu = self.y, self._mu
        if type == "deviance":
            return np.sign(y - mu) * np.sqrt(np.maximum(self._devres, 0.0))
        if type == "pearson":
            return (y - mu) * np.sqrt(self.prior_weights / self.family.variance(mu))
        if type == "response":
            return y - mu
        if type == "working":
            return (y - mu) / self.family.mu_eta(self._eta)
        raise ArgumentError(f"unknown residual type {type!r}: deviance, pearson, response or working")

    @property
    def residuals(self) -> pd.Series:
        """Deviance residuals (lme4's ``residuals``) on the data's index, NaN for dropped rows."""
        return self._on_rows(self.resid("deviance"), "residuals")

    def scaled_residuals(self) -> np.ndarray:
        return self.resid("pearson") / self.sigma

    @validated(name="predict", type=one_of("link", "response"))
    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        type: str = "link",  # noqa: A002
        re_form=True,
        allow_new_levels: bool = False,
        offset=None,
    ) -> pd.Series:
        """Predictions on the link (``type="link"``) or response (``"response"``) scale.

        Parameters
        ----------
        newdata : DataFrame or dict, optional
            Rows to predict for; by default the data the model was fitted to.
        type : {"link", "response"}, default "link"
            The scale: linear predictor η or mean μ = g⁻¹(η).
        re_form : True or None, default True
            True includes the random effects (conditional prediction); None gives the
            population-level prediction (R's ``re.form = NA``).
        allow_new_levels : bool, default False
            A grouping level not seen in the fit is an error, or with True predicted at the
            population level (random effect 0).
        offset : str or array-like, optional
            The offset for ``newdata`` when the model was fitted with ``offset=``.

        Returns
        -------
        Series
            On newdata's index, or (no newdata) the data's index with NaN for dropped rows.

        Examples
        --------
        >>> import mmfast
        >>> wl = mmfast.datasets.load("waterlick")
        >>> g = mmfast.glmer("lick ~ dff + (1 | mouseID)", wl, family="binomial")
        >>> p = g.predict(wl.head(3), type="response")
        >>> bool(((p > 0) & (p < 1)).all())
        True
        """
        if newdata is not None:  # pandas, polars, arrow or a dict; not empty
            newdata = as_frame(newdata, "newdata", allow_empty=False)
        if newdata is None:
            eta = (
                self._eta
                if re_form is not None
                else (self.frame.X @ self.beta + (0 if self.frame.offset is None else self.frame.offset))
            )
        else:
            eta = self._predict_eta(newdata, allow_new_levels=allow_new_levels, re_form=re_form)
            for expr in self.frame.parsed.offsets:
                eta = eta + evaluate(expr, newdata).astype(float)
            arg = self.options.get("offset")
            if arg is not None:
                if offset is None and isinstance(arg, str):
                    offset = arg
                if offset is None:
                    raise DataError("the model was fitted with offset=: pass offset= for newdata")
                eta = eta + (
                    newdata[offset].to_numpy(dtype=float)
                    if isinstance(offset, str)
                    else np.asarray(offset, dtype=float)
                )
        out = self.family.linkinv(eta) if type == "response" else np.asarray(eta)
        if newdata is None:
            return self._on_rows(out, "predicted")
        return pd.Series(out, index=newdata.index, name="predicted")

    @validated(name="odds_ratios", level=probability)
    def odds_ratios(self, level: float = 0.95) -> pd.DataFrame:
        """exp(β) with Wald intervals exp(β ± z SE) (logit links), and the % change in the odds.

        Parameters
        ----------
        level : float, default 0.95
            Confidence level of the intervals.

        Returns
        -------
        DataFrame
            One row per fixed effect: ``odds_ratio``, ``lower``, ``upper``, ``pct_change``,
            ``pct_lower``, ``pct_upper``.
        """
        if self.family != "binomial" or self.link != "logit":
            raise ModelSpecError(
                f"odds ratios need a binomial family with the logit link (this model: {self.family.name}, {self.link})"
            )
        se = np.sqrt(np.diag(self.vcov_array))
        return wald_odds_ratios(self.beta, se, level, index=self.frame.fixef_names)


def wald_odds_ratios(estimate, se, level: float = 0.95, index=None) -> pd.DataFrame:
    """Odds ratios exp(b) and Wald limits exp(b ± z_{(1+level)/2} se), also as % change."""
    if not 0 < level < 1:
        raise ArgumentError(f"level must be between 0 and 1 (got {level})")
    b, s = np.asarray(estimate, dtype=float), np.asarray(se, dtype=float)
    z = stats.norm.ppf(0.5 + level / 2)
    orr, lo, hi = np.exp(b), np.exp(b - z * s), np.exp(b + z * s)
    df = pd.DataFrame(
        {
            "odds_ratio": orr,
            "lower": lo,
            "upper": hi,
            "pct_change": 100 * (orr - 1),
            "pct_lower": 100 * (lo - 1),
            "pct_upper": 100 * (hi - 1),
        },
        index=index,
    )
    df.attrs["level"] = level
    return df

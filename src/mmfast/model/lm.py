"""Ordinary least squares through the same formula layer: R's ``lm`` (its ``summary.lm`` is
``present.lm_summary``, its ``anova.lm`` ``inference.sequential``; ``mmfast.api`` joins them).

The "familiar" naive analysis the lecture contrasts with the mixed model: every
observation independent, β̂ = (X'X)⁻¹X'y by QR, σ̂² = RSS/(n - p), t tests on n - p df and
the sequential (Type I) ANOVA F table of ``anova(lm)`` / ``aov``.  The fit also has what
likelihood-ratio tests need (``loglik``, ``npar``, ``aic``, ``bic``, ``refit_ml``), so
``mmfast.anova(lm_fit, lmm_fit)`` tests a variance component against no random effects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import FormulaError
from ..families import GAUSSIAN
from .criterion import profiled_deviance
from .frame import model_frame
from .results import InformationCriteria

__all__ = ["LinearModel", "fit_lm"]


class LinearModel(InformationCriteria):
    """A fitted linear model ``y = Xβ + ε``, ε ~ N(0, σ²/w)."""

    family = GAUSSIAN  # compares equal to "gaussian", as a GLMM's family to its name
    reml = False
    use_scale = True

    def __init__(self, frame, weights_given=None):
        if frame.terms:
            raise FormulaError("the formula has random-effects terms: use mmfast.lmer for a mixed model")
        self.frame = frame
        X, y = frame.X, frame.y if frame.offset is None else frame.y - frame.offset
        w = frame.weights
        sw = np.ones(len(y)) if w is None else np.sqrt(w)
        Q, R = np.linalg.qr(X * sw[:, None])
        self._Q, self._R = Q, R
        self.effects = Q.T @ (y * sw)
        self.beta = np.linalg.solve(R, self.effects) if X.shape[1] else np.zeros(0)
        self.fitted = X @ self.beta + (0 if frame.offset is None else frame.offset)
        self.residuals = frame.y - self.fitted
        self.rss = float(np.sum((sw * self.residuals) ** 2))
        n, p = self.nobs, X.shape[1]  # rows of weight 0 do not count (R's lm)
        self.df_residual = n - p
        self.sigma = float(np.sqrt(self.rss / self.df_residual)) if self.df_residual > 0 else np.nan
        self._logw = 0.0 if w is None else float(np.sum(np.log(w[w > 0])))

    # --- what the likelihood-ratio machinery needs --------------------------------------------
    @property
    def nobs(self) -> int:
        """Rows with a non-zero weight (R's ``nobs``)."""
        w = self.frame.weights
        return len(self.frame.y) if w is None else int(np.count_nonzero(w))

    @property
    def npar(self) -> int:
        return len(self.beta) + 1

    @property
    def loglik(self) -> float:
        """The maximised log-likelihood (σ² = RSS/n), as R's ``logLik.lm``."""
        n = self.nobs
        return -0.5 * profiled_deviance(0.0, 0.0, np.log(self.rss), n, 0, False, self._logw)

    def refit_ml(self) -> "LinearModel":
        return self

    def refit_formula(self, formula: str, **_) -> "LinearModel":
        data = self.frame.data.drop(columns=[c for c in ("(weights)", "(offset)") if c in self.frame.data])
        return fit_lm(type(self), formula, data, weights=self.frame.weights)

    # --- estimates ----------------------------------------------------------------------------
    @property
    def fixef(self) -> pd.Series:
        """Least-squares estimates, named as R names the columns (R's ``coef``)."""
        return pd.Series(self.beta, index=self.frame.fixef_names, name="Estimate")

    @property
    def vcov_array(self) -> np.ndarray:
        Ri = np.linalg.inv(self._R) if len(self.beta) else np.zeros((0, 0))
        return self.sigma**2 * Ri @ Ri.T

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the estimates, σ² (X'WX)⁻¹ (R's ``vcov``)."""
        names = self.frame.fixef_names
        return pd.DataFrame(self.vcov_array, index=names, columns=names)

    @property
    def r_squared(self) -> float:
        """Multiple R² (R's ``summary(fit)$r.squared``)."""
        y = self.frame.y if self.frame.offset is None else self.frame.y - self.frame.offset
        w = np.ones(len(y)) if self.frame.weights is None else self.frame.weights
        has_int = np.any(np.all(self.frame.X == 1.0, axis=0))
        centre = np.sum(w * y) / np.sum(w) if has_int else 0.0
        return 1.0 - self.rss / float(np.sum(w * (y - centre) ** 2))

    def coefficients(self) -> pd.DataFrame:
        se = np.sqrt(np.diag(self.vcov_array))
        t = self.beta / se
        return pd.DataFrame(
            {
                "Estimate": self.beta,
                "Std. Error": se,
                "t value": t,
                "Pr(>|t|)": 2 * stats.t.sf(np.abs(t), self.df_residual),
            },
            index=self.frame.fixef_names,
        )

    def __repr__(self) -> str:
        return f"<LinearModel {self.frame.parsed.formula!r}, nobs={self.nobs}, logLik={self.loglik:.4f}>"


def fit_lm(model_class, formula: str, data, weights=None, offset=None):
    """``lm``'s work (``mmfast.api.lm`` checks the arguments): a ``model_class`` fit (a LinearModel)."""
    return model_class(model_frame(formula, data, weights=weights, offset=offset))

"""Profile-likelihood intervals of a GLMM, as glmer's ``profile()`` and glmmTMB's ``confint(method = "profile")``.

The profiled criterion is the fit's own deviance (Laplace, or AGQ for n_agq > 1), d(θ, β), with u
at its conditional mode (``deviance_at``).  For a parameter ψ_w the signed root deviance is
ζ(x) = sign(x - ψ̂_w) √(min d | ψ_w = x - d̂), the minimum over every other parameter:

* a variance parameter on the "sdcor" scale of the LMM profiles (per term its standard deviations,
  then its correlations, or a structure's reported correlations, ``design.structures``): the
  other sdcor parameters and all of β are re-estimated;
* a fixed effect β_j = x: θ and the other β are re-estimated.

θ of a binomial or Poisson GLMM is absolute (no σ), so the sdcor scale is θ's own SDs and
correlations.  Families with a scale or a dispersion parameter are refused (their profile would
also run over σ or the dispersion; ``dispersion_confint`` profiles the latter).  Tracing, the
exact roots of ζ = ±z and the tables are the LMM ``Profile``'s.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..errors import ModelSpecError
from .profile import Profile, parameter_names, sdcor_to_theta, theta_to_sdcor

__all__ = ["GlmmProfile"]


class GlmmProfile(Profile):
    """Profiles of one fitted GLMM (computed lazily per parameter) and their intervals."""

    def __init__(self, model, alphamax: float = 0.01, maxpts: int = 100, delta_cutoff: float = 1 / 8):
        if model.use_scale or model.family.dispersion_name:
            raise ModelSpecError(
                f"profile intervals are not available for the {model.family.name} family (a scale or "
                "dispersion parameter): use method='wald' or method='boot'"
            )
        self.source = self.model = m = model
        self.p = m.frame.X.shape[1]
        self.theta_hat = np.asarray(m.theta, dtype=float).copy()
        self.beta_hat = np.asarray(m.beta, dtype=float).copy()
        self.psi_hat = theta_to_sdcor(m, self.theta_hat, 1.0)[:-1]  # no σ
        self.se = np.sqrt(np.diag(m.vcov_array))
        self.names = parameter_names(m)[:-1] + list(m.frame.fixef_names)
        self.base = float(m.deviance_at(self.theta_hat, self.beta_hat))
        bounded = np.isfinite(np.asarray(m.theta_lower, dtype=float))
        self.lower = np.where(bounded, 0.0, -1.0)  # SDs >= 0, correlations in [-1, 1]
        self.upper = np.where(bounded, np.inf, 1.0)
        self.cutoff = float(np.sqrt(stats.chi2.ppf(1 - alphamax, len(self.psi_hat) + self.p)))
        self.delta = self.cutoff * delta_cutoff
        self.maxpts = maxpts
        self._traces, self._warm = {}, {}

    def _deviance(self, psi, beta) -> float:
        theta = sdcor_to_theta(self.model, np.append(psi, 1.0))
        if theta is None or not np.all(np.isfinite(self.model.layout.expand(theta))):
            return np.inf
        return self.model.deviance_at(theta, beta, restore=False)

    def zeta(self, w: int, x: float) -> float:
        """ζ of parameter w (index into ``names``) at value x."""
        name = self.names[w]
        nvp, nth = len(self.psi_hat), len(self.theta_hat)
        warm = self._warm.setdefault(name, {})
        start = warm.get("x")
        free_beta = np.full(self.p, -np.inf), np.full(self.p, np.inf)
        if w < nvp:
            others = [i for i in range(nvp) if i != w]
            x0 = np.concatenate([self.psi_hat[others], self.beta_hat]) if start is None else start
            k = len(others)

            def f(v):
                psi = self.psi_hat.copy()
                psi[others] = v[:k]
                psi[w] = x
                return self._deviance(psi, v[k:])

            lo = np.concatenate([self.lower[others], free_beta[0]])
            hi = np.concatenate([self.upper[others], free_beta[1]])
            centre = self.psi_hat[w]
        else:
            j = w - nvp
            keep = [i for i in range(self.p) if i != j]
            x0 = np.concatenate([self.theta_hat, self.beta_hat[keep]]) if start is None else start

            def f(v):
                beta = np.empty(self.p)
                beta[keep] = v[nth:]
                beta[j] = x
                return self.model.deviance_at(v[:nth], beta, restore=False)

            lo = np.concatenate([np.asarray(self.model.theta_lower, dtype=float), free_beta[0][keep]])
            hi = np.full(len(lo), np.inf)
            centre = self.beta_hat[j]
        dev, xs = self._minimize(f, x0, lo, hi)
        warm["x"] = xs
        return float(np.sign(x - centre) * np.sqrt(max(dev - self.base, 0.0)))

    def _restore(self) -> None:
        """Put the model's engine back at the fit (profiling evaluates without restoring)."""
        self.model.restore_fit_state()

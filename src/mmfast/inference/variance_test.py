"""Tests of a variance component on the boundary of its parameter space.

Under H0: σ_b² = 0 the variance sits on the boundary, so the likelihood-ratio statistic is not
χ²_1.  Two answers, as the lecture recommends:

* ``mixture``: the LRT (ML fits) against the 50:50 mixture of χ²_0 and χ²_1 (Self & Liang 1987;
  for d extra variance parameters, of χ²_{d-1} and χ²_d);
* ``exact-rlrt``: the restricted LRT against its exact finite-sample null distribution
  (Crainiceanu & Ruppert 2004, what RLRsim's ``exactRLRT`` computes).  With μ_s the
  eigenvalues of Z'(I - P_X)Z for the tested scalar term and w_s iid N(0, 1), s = 1..n-p,

      RLRT* = sup_{λ>=0} (n-p) log(1 + N(λ)/D(λ)) - Σ_s log(1 + λ μ_s),
      N(λ) = Σ_s λμ_s/(1+λμ_s) w_s²,   D(λ) = Σ_s w_s²/(1+λμ_s) + Σ_{s>K} w_s²,

  simulated for all draws at once over a λ grid refined by golden-section search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..arguments import check_model_arguments, integer, validated
from ..errors import ArgumentError, ModelSpecError
from .locking import objective_at

__all__ = ["variance_test", "VarianceTestResult", "rlrt_null_distribution"]


@dataclass
class VarianceTestResult:
    """``stat`` and ``p_value`` of a test of a variance component, and how they were obtained."""

    method: str
    stat: float
    p_value: float
    df: float | None = None
    nsim: int | None = None
    simulated: np.ndarray | None = None

    def __repr__(self) -> str:
        extra = f", nsim={self.nsim}" if self.nsim else f", df={self.df}"
        return f"VarianceTestResult(method={self.method!r}, stat={self.stat:.6g}, p_value={self.p_value:.4g}{extra})"


def _n_variance_params(model) -> int:
    return len(getattr(model, "theta", ()))


def _mixture(full, null) -> VarianceTestResult:
    full_ml = full.refit_ml()
    if null is None:  # the same model without random effects: θ = 0
        ll0 = -0.5 * objective_at(full_ml, np.zeros_like(full_ml.theta), reml=False)
        d = _n_variance_params(full_ml)
    else:
        ll0 = null.refit_ml().loglik if hasattr(null, "refit_ml") else null.loglik
        d = _n_variance_params(full_ml) - _n_variance_params(null)
    if d < 1:
        raise ModelSpecError("the full model must have more variance parameters than the null model")
    stat = max(0.0, 2.0 * (full_ml.loglik - ll0))
    p = 0.5 * stats.chi2.sf(stat, d) + (0.5 * stats.chi2.sf(stat, d - 1) if d > 1 else 0.0)
    if stat == 0.0:
        p = 1.0
    return VarianceTestResult("mixture", stat, float(p), df=float(d))


def rlrt_null_distribution(
    mu: np.ndarray, n_minus_p: int, nsim: int, rng: np.random.Generator, grid: int = 200, refine: int = 40
) -> np.ndarray:
    """Draws of the exact null distribution of the RLRT for one variance ratio λ (C&R 2004)."""
    mu = np.asarray(mu, dtype=float)
    K = len(mu)
    lam_max = 1e5 / max(mu.min(), 1e-10)
    lam = np.concatenate([[0.0], np.geomspace(1e-6 / mu.max(), lam_max, grid - 1)])
    w2 = rng.standard_normal((nsim, n_minus_p)) ** 2
    wK, rest = w2[:, :K], w2[:, K:].sum(axis=1)

    def f(lmb):  # lmb: (nsim, m) or (m,) -> (nsim, m)
        lmb = np.broadcast_to(lmb, (nsim,) + np.shape(lmb)[-1:]) if np.ndim(lmb) == 1 else lmb
        a = lmb[..., None] * mu  # (nsim, m, K)
        num = np.einsum("smk,sk->sm", a / (1.0 + a), wK)
        den = np.einsum("smk,sk->sm", 1.0 / (1.0 + a), wK) + rest[:, None]
        return n_minus_p * np.log1p(num / den) - np.log1p(a).sum(axis=-1)

    vals = np.concatenate([f(lam[i : i + 50]) for i in range(0, grid, 50)], axis=1)
    best = np.argmax(vals, axis=1)
    lo = lam[np.maximum(best - 1, 0)]
    hi = lam[np.minimum(best + 1, grid - 1)]
    g = (np.sqrt(5.0) - 1.0) / 2.0  # golden-section search on [lo, hi] for every draw at once
    x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
    f1, f2 = f(x1[:, None])[:, 0], f(x2[:, None])[:, 0]
    for _ in range(refine):
        left = f1 > f2  # the maximum lies in [lo, x2]
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
        newx = np.where(left, hi - g * (hi - lo), lo + g * (hi - lo))
        fnew = f(newx[:, None])[:, 0]
        x1, f1, x2, f2 = (
            np.where(left, newx, x2),
            np.where(left, fnew, f2),
            np.where(left, x1, newx),
            np.where(left, f1, fnew),
        )
    return np.maximum(0.0, np.maximum(vals.max(axis=1), np.maximum(f1, f2)))


def _exact_rlrt(full, nsim: int, seed) -> VarianceTestResult:
    terms = full.frame.terms
    if len(terms) != 1 or terms[0].p != 1:
        raise ModelSpecError(
            "exact-rlrt tests a single scalar random-effects term (as RLRsim's "
            "exactRLRT(m)); use method='mixture' for other models"
        )
    fit = full if getattr(full, "reml", False) else full.refit_formula(full.frame.parsed.formula, reml=True)
    stat = max(0.0, objective_at(fit, np.zeros_like(fit.theta), reml=True) - fit.reml_criterion)
    X = fit.frame.X
    Z = fit.Z.toarray()
    if fit.frame.weights is not None:
        sw = np.sqrt(fit.frame.weights)
        X, Z = X * sw[:, None], Z * sw[:, None]
    Q, _ = np.linalg.qr(X)
    RZ = Z - Q @ (Q.T @ Z)
    mu = np.linalg.eigvalsh(Z.T @ RZ)
    mu = mu[mu > 1e-10 * max(mu.max(), 1e-300)]
    rng = np.random.default_rng(seed)
    sims = np.concatenate(
        [rlrt_null_distribution(mu, fit.nobs - X.shape[1], min(2000, nsim - i), rng) for i in range(0, nsim, 2000)]
    )
    p = float(np.mean(sims >= stat))
    return VarianceTestResult("exact-rlrt", float(stat), p, nsim=nsim, simulated=sims)


@validated(nsim=integer(1))
def variance_test(full, null=None, method: str = "mixture", nsim: int = 10000, seed=None) -> VarianceTestResult:
    """Test the variance component(s) that ``full`` has and ``null`` lacks.

    Under the null hypothesis the variance is on the boundary of its range, so the naive χ²
    p-value is conservative; these tests account for it.

    Parameters
    ----------
    full : LinearMixedModel
        The model with the variance component.
    null : fitted model, optional
        The model without it (an ``mmfast.lm`` fit or a smaller ``lmer`` fit); None: the
        model without random effects.
    method : {"mixture", "exact-rlrt"}, default "mixture"
        The likelihood-ratio test against the 50:50 χ² mixture, or the exact restricted LRT
        of Crainiceanu and Ruppert (RLRsim's ``exactRLRT``, one scalar term), simulated.
    nsim : int, default 10000
        Simulations of the exact RLRT's null distribution.
    seed : int, optional
        Seed of those simulations.

    Returns
    -------
    VarianceTestResult
        ``stat``, ``p_value``, and ``df`` (mixture) or ``nsim`` and ``simulated`` (exact).

    Examples
    --------
    >>> import mmfast
    >>> m = mmfast.lmer("Reaction ~ Days + (1 | Subject)", mmfast.datasets.load("sleepstudy"))
    >>> mmfast.variance_test(m)
    VarianceTestResult(method='mixture', stat=106.214, p_value=3.309e-25, df=1.0)
    """
    check_model_arguments("variance_test", [full] if null is None else [full, null])
    if method == "mixture":
        return _mixture(full, null)
    if method in ("exact-rlrt", "exact_rlrt", "rlrt"):
        return _exact_rlrt(full, int(nsim), seed)
    raise ArgumentError(f"unknown method {method!r}: use 'mixture' or 'exact-rlrt'")

"""Adaptive Gauss-Hermite quadrature (nAGQ > 1) for a single scalar random-effects term.

With one scalar term the integral over u factors into one 1-D integral per level j.  Around
the conditional mode û_j (from PIRLS) with scale s_j = 1/L_jj (L the factor of A at the mode)

    ∫ p(y_j | u) φ(u) du ≈ s_j e^{-c_j(û)/2} Σ_k w_k e^{z_k²/2} e^{-(c_j(û + s_j z_k) - c_j(û))/2}

where c_j(u) = u² - 2 log p(y_j | u) and (z_k, w_k) is the Gauss-Hermite rule for the standard
normal.  lme4 evaluates c_j with deviance residuals instead of -2 log p, so its nAGQ > 1 logLik
is off by the saturated log-likelihood (lme4 issue #161; -41.98 for cbpp); mmfast reports the
proper integrated log-likelihood (the optimum is the same, the criterion differs by a constant).
The arithmetic is in ``mmfast._ext._scalar_laplace`` (run by ``_single_term.SingleTerm``); this
module supplies the rule and checks.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import ModelSpecError

__all__ = ["gauss_hermite", "check_agq"]

MAX_AGQ = 25  # lme4's limit


@lru_cache(maxsize=None)
def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point Gauss-Hermite rule for N(0, 1) (weights sum to 1)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / np.sqrt(2.0 * np.pi)
    if n % 2 == 1:
        z[n // 2] = 0.0  # the centre node exactly (the quadrature then skips its evaluation)
    return z, w / w.sum()


def check_agq(n_agq: int, terms, family) -> int:
    """Validate ``n_agq`` for this model (lme4's rules), returning it as an int."""
    try:
        n = int(n_agq)
    except (TypeError, ValueError):
        raise ModelSpecError(f"n_agq must be an integer, not {n_agq!r}") from None
    if n != n_agq or n < 0 or n > MAX_AGQ:
        raise ModelSpecError(f"n_agq must be an integer from 0 to {MAX_AGQ} (got {n_agq!r})")
    if n > 1:
        if len(terms) != 1 or terms[0].p != 1:
            raise ModelSpecError(
                "n_agq > 1 is only available for models with a single, scalar "
                "random-effects term (as in lme4); use n_agq=1 (Laplace)"
            )
        if family.has_scale:
            raise ModelSpecError(
                f"n_agq > 1 is not available for the {family.name} family "
                "(its likelihood involves the dispersion); use n_agq=1"
            )
    return n

"""The LMM's Gaussian criterion from the PLS pieces: one copy for every caller.

With L the sparse Cholesky factor of Λ'Z'WZΛ + I (log|L|² = ldL2), R_X that of the Schur
complement X'V⁻¹X (up to σ², log|R_X|² = ldRX2), r² the penalised weighted RSS and
Σ log w the log prior weights, -2 log L at (θ, β̂, σ) is

    ldL2 + r²/σ² + ν log(2πσ²) [+ ldRX2 for REML] - Σ log w,   ν = n (ML) or n - p (REML),

and with σ² = r²/ν profiled out it becomes ``profiled_deviance``. log r² is taken as an
argument so that callers that keep r² rescaled (extreme response scales) pass log r² exactly.
Scalars or numpy arrays (the batched scalar pipeline) alike.
"""

from __future__ import annotations

import math

import numpy as np

from .._ext._kernel import profile_of_m as profile_of_m  # a kernel's M -> (log|R_X|², r², R_X, c_β)

LOG2PI = math.log(2.0 * math.pi)


def residual_df(n: int, p: int, reml: bool) -> int:
    """ν: n for ML, n - p for REML (what σ² = r²/ν divides by)."""
    return n - p if reml else n


def profiled_constant(n: int, p: int, reml: bool, logw=0.0) -> float:
    """The θ-free part of ``profiled_deviance``: ν(1 + log 2π - log ν) - Σ log w."""
    nu = residual_df(n, p, reml)
    return nu * (1.0 + LOG2PI - math.log(nu)) - logw


def profiled_deviance(ldL2, ldRX2, log_r2, n: int, p: int, reml: bool, logw=0.0):
    """REML criterion (``reml``) or ML deviance at θ, β and σ² profiled out:
    ldL2 [+ ldRX2] + ν(1 + log 2π + log(r²/ν)) - Σ log w (ldRX2 ignored for ML)."""
    nu = residual_df(n, p, reml)  # association as the callers had it: same bits
    if reml:
        return ldL2 + ldRX2 + nu * (1.0 + LOG2PI + log_r2 - math.log(nu)) - logw
    return ldL2 + nu * (1.0 + LOG2PI + log_r2 - math.log(nu)) - logw


def deviance_at_sigma(ldL2, ldRX2, r2, sigma2, n: int, p: int, reml: bool, logw=0.0):
    """-2 log L (REML: -2 log of the restricted likelihood) at θ and a given σ², β profiled:
    ldL2 [+ ldRX2] + r²/σ² + ν log(2πσ²) - Σ log w."""
    nu = residual_df(n, p, reml)
    if reml:
        return ldL2 + ldRX2 + r2 / sigma2 + nu * (LOG2PI + np.log(sigma2)) - logw
    return ldL2 + r2 / sigma2 + nu * (LOG2PI + np.log(sigma2)) - logw

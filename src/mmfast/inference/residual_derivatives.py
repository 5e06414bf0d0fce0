"""Satterthwaite's derivatives for an LMM with a residual structure: over (θ, σ, φ), φ estimated.

lmerTest takes Var(φ̂) = 2H⁻¹ from the Hessian of the deviance over ALL variance parameters
and the Jacobian of Var(β̂) over the same; for ``lmer(residual=)``/``lme(correlation=,
weights=)`` those are (θ, σ, φ) with φ the structures' unconstrained parameters.  With R(φ)'s
whitening (``model.residual``) the deviance at (θ, σ, φ) is the whitened model's at (θ, σ) plus
log|R(φ)|, and Var(β̂) = σ²(R_X'R_X)⁻¹ of the whitened profile; both are differentiated by
Richardson-extrapolated central differences (lmerTest's numDeriv scheme, ``derivatives``).
The df does not depend on how φ is parametrised (at the optimum the deviance's gradient is 0).
"""

from __future__ import annotations

import numpy as np

from ..model.criterion import deviance_at_sigma
from .derivatives import VarparDerivatives, _finish, richardson_hessian, richardson_jacobian

__all__ = ["residual_deviance", "residual_derivatives"]


def residual_deviance(model, theta, sigma: float, phi) -> float:
    """-2 log L (REML or ML as fitted; β profiled, σ given) at (θ, σ, φ); inf where R(φ) is
    not positive definite.  Moves the model's whitening to φ (callers restore it); a model
    without a residual structure takes φ = () (nlme's intervals use this too)."""
    if len(phi) and not model._load(np.asarray(phi, dtype=float)):
        return np.inf
    prof = model._profile(np.asarray(theta, dtype=float))
    if prof is None or not sigma > 0:
        return np.inf
    ldL2, ldRX2, r2 = prof[0], prof[1], prof[2]
    n, p = model.nobs, model.frame.X.shape[1]
    dev = deviance_at_sigma(ldL2, ldRX2, r2, sigma * sigma, n, p, model.reml, model._logw)
    return float(dev) + getattr(model, "_logdetR", 0.0)


def residual_derivatives(model) -> VarparDerivatives:
    """Hessian of the deviance and Jacobian of Var(β̂) over (θ, σ, φ) at the fit."""
    nth = len(model.theta)
    phi0 = np.asarray(model.phi, dtype=float)
    x0 = np.concatenate([model.theta, [model.sigma], phi0])

    def deviance(x):
        return residual_deviance(model, x[:nth], x[nth], x[nth + 1 :])

    def vcov(x):
        if not model._load(x[nth + 1 :]):  # pragma: no cover - steps stay inside the PD region
            return np.full((len(model.beta),) * 2, np.nan)
        Ri = np.linalg.inv(model._profile(x[:nth])[3])
        return x[nth] ** 2 * Ri @ Ri.T

    with model._reopened():  # φ and θ move through the model's whitening and kernel, then back
        try:
            H = richardson_hessian(deviance, x0)
            jac = richardson_jacobian(vcov, x0)
        finally:
            model._load(phi0)
            model._profile(model.theta)
    return _finish(model, H, jac, "numeric (theta, sigma, phi)", varpar=x0)

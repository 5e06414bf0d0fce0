"""Derivatives of an LMM with respect to its variance parameters φ = (θ, σ), as lmerTest uses them.

lmerTest needs (a) the Jacobian of Var(β̂) = σ² F(θ)⁻¹ (F = X'V⁻¹X) and (b) the Hessian of
the deviance d(θ, σ) with β profiled out,

    d(θ, σ) = log|V| + r²(θ)/σ² + ν log(2πσ²)   [+ log|F|, REML; ν = n (ML) or n - p (REML)],

and takes Var(φ̂) = 2 H⁻¹.  lmerTest differentiates numerically (numDeriv, Richardson).
Here everything is exact.  With dV/dθ_i = Z S_i Z', S_i = I⊗(E_i T' + T E_i') (E_i the
elementary matrix of θ_i in its term's template T), S_ij = I⊗(E_i E_j' + E_j E_i') (same
term, else 0; a structured term's S_i, S_ij are its Σ's derivatives), M, W, g, C = F⁻¹ as in
``structure``:

    ∂Var(β̂)/∂θ_i = σ² C W'S_iW C,              ∂Var(β̂)/∂σ = 2σ C,
    ∂²log|V|      = tr(M S_ij) - tr(M S_i M S_j),
    ∂r²/∂θ_i      = -g'S_i g,
    ∂²r²          = 2 g'S_iMS_jg - g'S_ij g - 2 (W'S_ig)' C (W'S_jg),
    ∂²log|F|      = tr(C(W'S_iMS_jW + W'S_jMS_iW - W'S_ijW)) - tr(C W'S_iW C W'S_jW),
    ∂²d/∂θ_i∂σ    = 2 g'S_ig / σ³,             ∂²d/∂σ² = 6r²/σ⁴ - 2ν/σ².

``method="numeric"`` is the reference implementation: Richardson-extrapolated central
differences of d(θ, σ) and of σ²F⁻¹ evaluated through the model's fast ``_profile``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .structure import VarianceStructure, variance_structure
from ..errors import ArgumentError
from ..model.criterion import deviance_at_sigma

__all__ = ["VarparDerivatives", "varpar_derivatives", "richardson_hessian", "richardson_jacobian", "pinv_positive"]


@dataclass
class VarparDerivatives:
    """Derivatives at the fit: φ = (θ, σ), Var(β̂), its Jacobian and the deviance Hessian."""

    varpar: np.ndarray
    vcov_beta: np.ndarray
    jacobian: np.ndarray  # (len φ, p, p)
    hessian: np.ndarray  # (len φ, len φ)
    vcov_varpar: np.ndarray  # 2 H⁺ over the positive eigenvalues (as lmerTest)
    method: str
    warnings: list = field(default_factory=list)


def pinv_positive(h: np.ndarray, tol: float = 1e-8) -> tuple[np.ndarray, list[str]]:
    """lmerTest's inverse of the Hessian: eigenvectors with eigenvalues > tol only, plus warnings."""
    vals, vecs = np.linalg.eigh((h + h.T) / 2)
    msgs = []
    neg = vals < -tol
    zero = np.abs(vals) <= tol
    if neg.any():
        msgs.append(
            f"Model failed to converge with {int(neg.sum())} negative eigenvalue(s): "
            + " ".join(f"{v:.1e}" for v in vals[neg])
        )
    if zero.any():
        msgs.append(
            f"Model may not have converged with {int(zero.sum())} eigenvalue(s) close to "
            "zero: " + " ".join(f"{v:.1e}" for v in vals[zero])
        )
    pos = vals > tol
    inv = (vecs[:, pos] / vals[pos]) @ vecs[:, pos].T
    return inv, msgs


# --- exact -----------------------------------------------------------------------------------
def _theta_pieces(model):
    """Per θ_i: (term index, position in its term's θ_k), S_i = ∂(T T')/∂θ_i, and per term the
    second derivatives ∂²(T T')/∂θ_i∂θ_j (E_iE_j' + E_jE_i' for ``us``; a structure's own,
    ``design.structures``: the formulas above hold for any smooth θ -> T)."""
    pieces, s_i, second = [], [], []
    for k, (pm, sl) in enumerate(zip(model.layout.params, model.layout.slices)):
        d1, d2 = pm.sigma_derivatives(np.asarray(model.theta, dtype=float)[sl])
        second.append(d2)
        for a in range(pm.ntheta):
            pieces.append((k, a))
            s_i.append(d1[a])
    return pieces, s_i, second


def analytic_derivatives(model, vs: VarianceStructure | None = None) -> VarparDerivatives:
    """Exact Jacobian and Hessian (module docstring); q-dimensional work only."""
    vs = variance_structure(model) if vs is None else vs
    sigma = float(model.sigma)
    s2 = sigma**2
    reml = bool(model.reml)
    n, p = vs.n, vs.p
    nu = n - p if reml else n
    pieces, s_i, second = _theta_pieces(model)
    nth = len(pieces)
    C, W, g = vs.C, vs.W, vs.g
    # first-order pieces
    h = np.column_stack([vs.term_apply(k, s, g) for (k, _), s in zip(pieces, s_i)]) if nth else np.zeros((vs.q, 0))
    Mh = vs.M_times(h) if nth else h
    Y = [vs.term_apply(k, s, W) for (k, _), s in zip(pieces, s_i)]  # S_i W, q x p
    MY = np.split(vs.M_times(np.column_stack(Y)), nth, axis=1) if nth and p else [np.zeros((vs.q, p))] * nth
    WSW = [W.T @ Yi for Yi in Y]  # W'S_iW
    dr2 = -(h.T @ g)  # ∂r²/∂θ_i
    u = W.T @ h  # W'S_i g, p x nθ
    H = np.zeros((nth + 1, nth + 1))
    for i, (ki, ai) in enumerate(pieces):
        for j in range(i, nth):
            kj, aj = pieces[j]
            Sij = second[ki][ai, aj] if ki == kj else None
            val = -vs.tr_MSMS(ki, s_i[i], kj, s_i[j])
            d2r2 = 2.0 * h[:, i] @ Mh[:, j] - 2.0 * u[:, i] @ C @ u[:, j]
            if Sij is not None:
                val += vs.tr_M(ki, Sij)
                d2r2 -= vs.term_quad(ki, Sij, g, g)
            val += d2r2 / s2
            if reml and p:
                d2F = Y[i].T @ MY[j] + Y[j].T @ MY[i]
                if Sij is not None:
                    d2F = d2F - vs.term_quad(ki, Sij, W, W)
                val += np.sum(C * d2F.T) - np.sum((C @ WSW[i]) * (C @ WSW[j]).T)
            H[i, j] = H[j, i] = val
        H[i, nth] = H[nth, i] = -2.0 * dr2[i] / sigma**3
    H[nth, nth] = 6.0 * vs.r2 / sigma**4 - 2.0 * nu / s2
    jac = np.empty((nth + 1, p, p))
    for i in range(nth):
        jac[i] = s2 * C @ WSW[i] @ C
    jac[nth] = 2.0 * sigma * C
    return _finish(model, H, jac, "analytic")


def _finish(model, H, jac, method, varpar=None) -> VarparDerivatives:
    """The derivatives with Var(φ̂) = 2H⁺; ``varpar`` defaults to (θ, σ)."""
    inv, msgs = pinv_positive(H)
    varpar = np.concatenate([model.theta, [model.sigma]]) if varpar is None else varpar
    return VarparDerivatives(
        varpar=varpar,
        vcov_beta=np.asarray(model.vcov_array),
        jacobian=jac,
        hessian=H,
        vcov_varpar=2.0 * inv,
        method=method,
        warnings=msgs,
    )


# --- numeric reference (Richardson) ----------------------------------------------------------
def _step(x: np.ndarray, d: float = 1e-4, eps: float = 1e-4) -> np.ndarray:
    zero_tol = np.sqrt(np.finfo(float).eps / 7e-7)
    return np.abs(d * x) + eps * (np.abs(x) < zero_tol)


def richardson_hessian(f, x: np.ndarray, r: int = 4, v: float = 2.0, d: float = 0.1) -> np.ndarray:
    """Hessian of a scalar f by central differences extrapolated over r halvings (numDeriv's scheme).

    The first step is d|x| (numDeriv's default d = 0.1 for Hessians): large steps keep the
    rounding error of the deviance small, extrapolation removes the truncation error.
    """
    x = np.asarray(x, dtype=float)
    k = len(x)
    h0 = _step(x, d=d)
    f0 = f(x)
    est = np.zeros((r, k, k))
    for m in range(r):
        h = h0 / v**m
        for i in range(k):
            ei = np.zeros(k)
            ei[i] = h[i]
            est[m, i, i] = (f(x + 2 * ei) - 2 * f0 + f(x - 2 * ei)) / (4 * h[i] ** 2)
            for j in range(i):
                ej = np.zeros(k)
                ej[j] = h[j]
                est[m, i, j] = est[m, j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                    4 * h[i] * h[j]
                )
    return _extrapolate(est, v)


def richardson_jacobian(f, x: np.ndarray, r: int = 4, v: float = 2.0) -> np.ndarray:
    """Jacobian (len x, *shape of f) of an array-valued f, Richardson-extrapolated."""
    x = np.asarray(x, dtype=float)
    h0 = _step(x)
    f0 = np.asarray(f(x))
    est = np.zeros((r, len(x)) + f0.shape)
    for m in range(r):
        h = h0 / v**m
        for i in range(len(x)):
            e = np.zeros(len(x))
            e[i] = h[i]
            est[m, i] = (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h[i])
    return _extrapolate(est, v)


def _extrapolate(est: np.ndarray, v: float) -> np.ndarray:
    """Richardson: eliminate the h², h⁴, ... error terms of central differences."""
    est = est.copy()
    r = est.shape[0]
    for m in range(1, r):
        fac = v ** (2 * m)
        est = (fac * est[1:] - est[:-1]) / (fac - 1)
    return est[0]


def numeric_derivatives(model) -> VarparDerivatives:
    """Richardson differences of the deviance d(θ, σ) and of σ²F(θ)⁻¹ (the reference version)."""
    reml = bool(model.reml)
    n, p = model.nobs, model.frame.X.shape[1]  # rows of weight 0 do not count
    nth = len(model.theta)

    def deviance(vp):
        prof = model._profile(vp[:nth])
        if prof is None:
            return np.inf
        ldL2, ldRX2, r2, _, _ = prof
        # Σ log w left out: a constant, it cancels in the differences
        return deviance_at_sigma(ldL2, ldRX2, r2, vp[nth] ** 2, n, p, reml)

    def vcov(vp):
        R = model._profile(vp[:nth])[3]
        Ri = np.linalg.inv(R)
        return vp[nth] ** 2 * Ri @ Ri.T

    x = np.concatenate([model.theta, [model.sigma]])
    try:
        H = richardson_hessian(deviance, x)
        jac = richardson_jacobian(vcov, x)
    finally:
        model._profile(model.theta)  # leave the kernel at θ̂
    return _finish(model, H, jac, "numeric")


def varpar_derivatives(model, method: str = "analytic") -> VarparDerivatives:
    """Derivatives for Satterthwaite's method: ``"analytic"`` (exact) or ``"numeric"`` (Richardson);
    a model with a residual structure: over (θ, σ, φ) (``residual_derivatives``)."""
    if getattr(model, "residual", None) is not None and method in ("analytic", "numeric"):
        from .residual_derivatives import residual_derivatives

        return residual_derivatives(model)
    if method == "analytic":
        return analytic_derivatives(model)
    if method == "numeric":
        return numeric_derivatives(model)
    raise ArgumentError(f"method must be 'analytic' or 'numeric', not {method!r}")

"""PIRLS engines for GLMMs: the conditional mode u of the random effects at (θ, β).

For fixed θ and β, PIRLS maximises the penalised log-likelihood over u (lme4's ``pwrssUpdate``):
working weights w = pw μ'²/V(μ) and working response, the penalised weighted least-squares
solve A u = Λ'Z'W(z - Xβ) with A = Λ'Z'WZΛ + I, step halving when the penalised deviance
Σ d_i(μ) + |u|² goes up, until the step is below ``tol``.  lme4's Laplace deviance is then

    -2 ℓ(θ, β) ≈ log|A| + |u|² + Σ -2 log p(y_i | μ_i)            (``glmResp::Laplace``)

with A built from the working (Fisher-scoring) weights: for non-canonical links that is the
expected, not the observed, information (lme4's choice, kept here).  ``joint`` puts β inside
PIRLS too (lme4's nAGQ = 0 criterion).  Unlike lme4, log|A| is taken at the converged mode
(lme4 uses the factorisation of the iterate before the last one, see ``glmm``).  With a
canonical link PIRLS is Newton's method: once a step is below 1e-6 and converging
quadratically, one refactorisation at u gives log|A| without another full step.

One loop (``mmfast._ext._pirls.PirlsLoop``: ``laplace(x)``, ``joint(θ)``, ``set_transform``,
``rx_matrix``, ``u_``, ``beta_``, ``eta_``, ``ldL2``, ``sqrL``, ``dev``, ``m2ll``,
``evaluations``...) over two kernels:

* ``mmfast._ext._single_term.SingleTerm`` (one random-effects term: A is block diagonal),
  entirely in Cython, one call per evaluation;
* ``KernelLoop`` running ``pirls_kernel.GeneralKernel`` (several terms): per-row work in Cython
  (``Crossprods``), the factorisation by the LMM kernel (``PLSKernel`` on CHOLMOD or
  ``BlockedKernel``), symbolic analysis done once.

Both warm-start every evaluation from the previous u.
"""

from __future__ import annotations

import math

import numpy as np

from .._ext._glm import GlmResponse
from .._ext._kernel_loop import KernelLoop
from .._ext._pirls import fd_hessian_core
from .._ext._single_term import SingleTerm
from ..design.theta import ThetaLayout
from .pirls_kernel import GeneralKernel

__all__ = [
    "make_engine",
    "make_response",
    "KernelLoop",
    "SingleTerm",
    "fd_hessian",
    "gradient_hessian",
    "start_hessian",
]


def make_response(family, y, pw, n) -> GlmResponse:
    """The Cython response; for binomial/Poisson with integral counts -2 log p = deviance + const."""
    if family.dispersion_name:  # -2 log p = deviance + saturated value at the dispersion (set there)
        a, b, c = family.loglik_terms(y, n, pw)
        return GlmResponse(
            family.code, family.link.code, y, pw, a, b, c, disp=family.disp_value, observed=int(family.observed)
        )
    exact = fractional = False
    if family.name == "binomial":
        a, b, c, exact, fractional = family.exact_terms(y, n, pw)
    else:
        a, b, c = family.loglik_terms(y, n, pw)
    resp = GlmResponse(family.code, family.link.code, y, pw, a, b, c)
    if family.name == "poisson":
        resp.saturate()  # -2 log p at mu = y: zero deviance residuals
    elif exact:  # y log y = 0 at y in {0, 1}: -2 log p(y | mu = y) is Σ c
        resp.saturate(None if fractional else float(np.sum(c)))
    return resp


def make_engine(frame, family, y, pw, n, eta0, layout: ThetaLayout | None = None):
    """The PIRLS engine for this model: Cython single-term when possible, else kernel-based
    (on the model's θ ``layout`` when given, so there is one per model)."""
    resp = make_response(family, y, pw, n)
    off = np.zeros(frame.nobs) if frame.offset is None else np.asarray(frame.offset, dtype=float)
    layout = ThetaLayout(frame.terms) if layout is None else layout
    if not layout.linear:  # a structured term: the engine scatters T's entries, we map θ
        from .structured_engine import StructuredEngine

        inner = make_engine(frame, family, y, pw, n, eta0, layout.unstructured())
        return StructuredEngine(inner, layout)
    if len(frame.terms) == 1:
        t = frame.terms[0]
        eng = SingleTerm(resp, t.factor.codes, t.X, frame.X, off, eta0, layout.ntheta)
    else:
        q = sum(t.q for t in frame.terms)
        eng = KernelLoop(resp, frame.X, off, eta0, q, layout.size, layout.pos, layout.ntheta)
        eng.bind(GeneralKernel(frame, family, eng.state(), layout))
        pos = np.asarray(layout.pos)
        tofs = np.cumsum([0] + [t.p * t.p for t in frame.terms])[:-1]
        scalar = [
            (int(np.flatnonzero(pos == o)[0]), t.offset, t.offset + t.q)
            for t, o in zip(frame.terms, tofs)
            if t.p == 1 and np.any(pos == o)
        ]
        if scalar:
            eng.warm_start_in_b(*zip(*scalar))
    eng.newton = int(family.newton and family.link.name == family.canonical)  # PIRLS is Newton's then
    return eng


def _fd_steps(x, lower, ntheta: int, step: float):
    """Free coordinates (θ within 1e-4 of its bound is held, as is a whitened β given a
    finite bound: a diverging direction, see ``separation``) and their difference steps:
    relative to max(|θ|, 0.1) for θ, absolute for whitened β."""
    idx, h = [], []
    for i, (xi, lo) in enumerate(zip(np.asarray(x, dtype=float).tolist(), np.asarray(lower, dtype=float).tolist())):
        if not (math.isfinite(lo) and xi - lo < 1e-4):
            idx.append(i)
            h.append(step * max(abs(xi), 0.1) if i < ntheta else step)
    return np.array(idx, dtype=np.intp), np.array(h, dtype=float)


def fd_hessian(eng, x, fx, lower, ntheta: int, step: float):
    """Central-difference gradient and Hessian of ``eng.laplace`` at x (value fx).

    Coordinates: θ (step relative to max(|θ|, 0.1)) then whitened β (absolute step).  θ
    components within 1e-4 of their bound (singular fits) are held fixed.  Second-order
    mixed differences use the seven-point formula [f(+i+j) - f(+i) - f(+j) + 2 f - f(-i) -
    f(-j) + f(-i-j)] / (2 h_i h_j): n² + n evaluations in all, each warm-started from the
    linear extrapolation of the modes already found (two PIRLS steps where three were needed);
    the loop is Cython's (``_pirls.fd_hessian_core``: a millisecond fit's 12 evaluations
    cost less than their Python bookkeeping did).
    Returns (free coordinate indices, gradient, Hessian) over the free coordinates.
    """
    idx, h = _fd_steps(x, lower, ntheta, step)
    for k, i in enumerate(idx.tolist()):
        if math.isfinite(lower[i]):
            h[k] = min(h[k], 0.5 * (x[i] - lower[i]))
    g, H = fd_hessian_core(eng, x, fx, idx, h)
    return idx, g, H


def gradient_hessian(eng, x, fx, lower, ntheta: int, step: float):
    """``fd_hessian`` from the analytic gradient (``eng.laplace_grad``; fx unused): forward
    differences of the gradient, n + 1 evaluations instead of n² + n, with a step 10x smaller
    than ``fd_hessian``'s (the gradient is exact to PIRLS's tolerance); symmetrised.
    Returns (free coordinate indices, gradient, Hessian) over the free coordinates."""
    idx, h = _fd_steps(x, lower, ntheta, 0.1 * step)
    beta, u0 = eng.beta_, eng.u_
    g0, gp = np.empty(len(x)), np.empty(len(x))
    ok = np.isfinite(eng.laplace_grad(x, g0)) and np.all(np.isfinite(g0))
    H = np.empty((len(idx), len(idx)))
    for k, i in enumerate(idx):
        e = np.zeros(len(x))
        e[i] = h[k]
        eng.set_state(u0, beta)
        ok = ok and np.isfinite(eng.laplace_grad(x + e, gp)) and np.all(np.isfinite(gp))
        H[:, k] = (gp[idx] - g0[idx]) / h[k]
    eng.set_state(u0, beta)
    fx = eng.laplace(x)
    if not ok:  # PIRLS failed at a step: values-only differences
        return fd_hessian(eng, x, fx, lower, ntheta, step)
    return idx, g0[idx], 0.5 * (H + H.T)


def start_hessian(eng, x, ntheta: int, step: float = 1e-4) -> np.ndarray:
    """A starting Hessian for quasi-Newton in (θ, whitened β): the θ columns by forward
    differences of the analytic gradient (``ntheta`` + 1 evaluations), the β block 2I (the
    whitening makes the deviance's β curvature about that).  Where the start lies in a
    non-convex region (stage 1's θ can: a poorly determined SD), its eigenvalues by their
    absolute values, so the first step keeps the curvature's scale (the identity would step
    by the raw gradient, hundreds of units: a dozen wasted halvings); the identity if not finite."""
    n = len(x)
    g0, g1 = np.empty(n), np.empty(n)
    H = 2.0 * np.eye(n)
    if not (np.isfinite(eng.laplace_grad(x, g0)) and np.all(np.isfinite(g0))):
        return np.eye(n)
    for k in range(ntheta):
        h = step * max(abs(x[k]), 0.1)
        e = np.zeros(n)
        e[k] = h
        if not (np.isfinite(eng.laplace_grad(x + e, g1)) and np.all(np.isfinite(g1))):
            return np.eye(n)
        H[:, k] = H[k, :] = (g1 - g0) / h
    try:
        np.linalg.cholesky(H)
        return H
    except np.linalg.LinAlgError:
        pass
    if not np.all(np.isfinite(H)):
        return np.eye(n)
    lam, Q = np.linalg.eigh(H)
    lam = np.abs(lam)
    if not lam.max() > 0:
        return np.eye(n)
    return (Q * np.maximum(lam, 1e-8 * lam.max())) @ Q.T


def theta_scale(family, y, pw) -> float:
    """The unit of θ for the optimiser: b lives on the link scale, which for a family with a
    scale parameter (Gamma) carries y's units with the inverse (1/y) and identity (y) links.
    Optimising θ / this unit (the geometric mean of y to the power ∓1) makes the fit
    equivariant in y's units; 1 (no rescaling) for every other family and link."""
    if not family.has_scale or family.link.name not in ("inverse", "identity"):
        return 1.0
    w = np.asarray(pw, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        gm = float(np.exp(np.sum(w * np.log(y)) / np.sum(w))) if np.sum(w) > 0 else 1.0
    if not np.isfinite(gm) or gm <= 0:
        return 1.0
    return 1.0 / gm if family.link.name == "inverse" else gm


class ThetaScaled:
    """A PIRLS engine seen in scaled θ coordinates φ = θ / scale (see ``theta_scale``): what
    the optimisers and the Hessian see; everything else passes through unchanged."""

    def __init__(self, engine, scale: float, ntheta: int):
        self._eng, self.scale, self.ntheta = engine, float(scale), ntheta

    def __getattr__(self, name):  # beta_, u_, rx_matrix, set_state, set_transform...
        return getattr(self._eng, name)

    # the tolerances are set as well as read: written through to the engine
    tol = property(lambda self: self._eng.tol, lambda self, v: setattr(self._eng, "tol", v))
    ftol = property(lambda self: self._eng.ftol, lambda self, v: setattr(self._eng, "ftol", v))

    def to_theta(self, x) -> np.ndarray:
        x = np.array(x, dtype=float)
        x[: self.ntheta] *= self.scale
        return x

    def from_theta(self, x) -> np.ndarray:
        x = np.array(x, dtype=float)
        x[: self.ntheta] /= self.scale
        return x

    def joint(self, phi, grad=None) -> float:
        return self._eng.joint(np.asarray(phi, dtype=float) * self.scale)

    def laplace(self, x, grad=None) -> float:
        return self._eng.laplace(self.to_theta(x))

    def laplace_grad(self, x, grad) -> float:
        val = self._eng.laplace_grad(self.to_theta(x), grad)
        grad[: self.ntheta] *= self.scale
        return val

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

Two engines with one interface (``laplace(x)``, ``joint(θ)``, ``set_transform``, ``rx_matrix``,
``u_``, ``beta_``, ``eta_``, ``ldL2``, ``sqrL``, ``dev``, ``m2ll``, ``evaluations``...):

* ``mmfast._ext._pirls.SingleTerm`` (one random-effects term: A is block diagonal), entirely in
  Cython, one call per evaluation;
* ``KernelPIRLS`` (several terms): per-row work in Cython (``Crossprods``), the factorisation by
  the LMM kernel (``PLSKernel`` on CHOLMOD or ``BlockedKernel``), symbolic analysis done once.

Both warm-start every evaluation from the previous u.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .._ext._crossprods import Crossprods
from .._ext._glm import GlmResponse
from .._ext._pirls import SingleTerm, pirls_constants
from ..design.blocks import build_blocks
from ..design.theta import ThetaLayout
from . import laplace_gradient
from ..errors import DataError

__all__ = ["make_engine", "KernelPIRLS", "fd_hessian",
           "gradient_hessian", "start_hessian", "PIRLS_TOL"]

_C = pirls_constants()  # defined once, in _ext/_pirls.pyx (shared with SingleTerm)
PIRLS_TOL = _C["tol"]  # max |step| in u (and relative in β) at convergence
PIRLS_MAXIT, MAX_HALVINGS, HALVING_SLACK = _C["maxit"], _C["max_halvings"], _C["halving_slack"]
STALL_STEP = _C["stall_step"]  # with ftol: a step at least this large that the deviance ignores
NEWTON_STEP, NEWTON_RATIO = _C["newton_step"], _C["newton_ratio"]


def make_response(family, y, pw, n) -> GlmResponse:
    """The Cython response; for binomial/Poisson with integral counts -2 log p = deviance + const."""
    a, b, c = family.loglik_terms(y, n, pw)
    exact, sat = False, 0.0
    if family.name == "poisson":
        exact = True
    elif family.name == "binomial":
        m = family._m(n, pw)
        exact = bool(np.all(np.abs(m * y - np.rint(m * y)) < 1e-9 * np.maximum(1.0, m))
                     and np.all(np.abs(m - np.rint(m)) < 1e-9))
    if exact and family.name == "binomial" and not np.any((y > 0) & (y < 1)):
        sat = float(np.sum(c))  # y log y = 0 at y in {0, 1}: -2 log p(y | mu = y) is Σ c
    elif exact:
        sat = family.aic(y, n, y, pw)  # -2 log p at mu = y: the deviance residuals are zero there
    return GlmResponse(family.code, family.link.code, y, pw, a, b, c, sat, int(exact))


def make_engine(frame, family, y, pw, n, eta0, layout: ThetaLayout | None = None):
    """The PIRLS engine for this model: Cython single-term when possible, else kernel-based
    (on the model's θ ``layout`` when given, so there is one per model)."""
    resp = make_response(family, y, pw, n)
    off = np.zeros(frame.nobs) if frame.offset is None else np.asarray(frame.offset, dtype=float)
    ntheta = sum(t.ntheta for t in frame.terms)
    if len(frame.terms) == 1:
        t = frame.terms[0]
        eng = SingleTerm(resp, t.factor.codes, t.X, frame.X, off, eta0, ntheta)
    else:
        eng = KernelPIRLS(resp, frame, off, eta0, ntheta, layout)
    eng.newton = int(family.link.name == family.canonical)  # PIRLS is Newton's method then
    if len(frame.terms) > 1 and laplace_gradient.supports(frame, family):
        eng._grad = laplace_gradient.LaplaceGradient(frame, family)
        eng._theta_pos = [(k, r, c) for k, t in enumerate(frame.terms)
                          for r, c in zip(t.param.rows.tolist(), t.param.cols.tolist())]
    eng.tol = PIRLS_TOL
    return eng


class KernelPIRLS:
    """PIRLS for several random-effects terms on the LMM kernels (same interface as SingleTerm)."""

    def __init__(self, resp: GlmResponse, frame, off, eta0, ntheta: int,
                 layout: ThetaLayout | None = None):
        from .lmm import make_kernel
        self.resp, self.frame = resp, frame
        terms = frame.terms
        self.X = np.ascontiguousarray(frame.X, dtype=float)
        n, p = self.X.shape
        self.n, self.px, self.ntheta = n, p, ntheta
        self.off = np.ascontiguousarray(off, dtype=float)
        blocks = build_blocks(terms, np.zeros((n, p + 1)))
        q = blocks.q
        self.q = q
        self.cp = Crossprods(blocks, terms)
        self.blocks_j = blocks
        self.blocks_u = dataclasses.replace(blocks, ZtW=np.zeros((q, 1), order="F"), WtW=np.zeros((1, 1)))
        self.kj = make_kernel(self.blocks_j, terms)
        self.ku = make_kernel(self.blocks_u, terms)
        self.V = np.zeros_like(blocks.V)
        self.ZtW = {True: np.zeros((q, p + 1), order="F"), False: np.zeros((q, 1), order="F")}
        self.WtW = {True: np.zeros((p + 1, p + 1)), False: np.zeros((1, 1))}
        layout = ThetaLayout(terms) if layout is None else layout
        self.layout, self.tidx, self.T = layout, layout.pos, np.zeros(layout.size)
        self.u = np.zeros(q)
        self.beta = np.zeros(p)
        self.eta = np.array(eta0, dtype=float)
        self.eta_start = self.eta.copy()
        self.base = self.off.copy()
        self.w = np.zeros(n)
        self.zt = np.zeros(n)
        self.beta0 = np.zeros(p)
        self.Binv = np.eye(p)
        self.fresh = True
        self.tol = PIRLS_TOL
        self.ftol = 0.0  # > 0: also stop on a stalled penalised deviance (see SingleTerm)
        self.maxit = PIRLS_MAXIT
        self.ldL2 = self.ldRX2 = self.sqrL = self.dev = self.m2ll = np.nan
        self.evaluations = self.iterations = self.failures = 0
        self.last_rc = 0
        self._Mraw = None
        self.nagq = 1
        self.newton = False  # canonical link (set by make_engine): quadratic convergence
        self._grad, self._theta_pos = None, []

    # --- the interface shared with SingleTerm ----------------------------------------------
    @property
    def u_(self):
        return self.u.copy()

    @property
    def beta_(self):
        return self.beta.copy()

    @property
    def eta_(self):
        return self.eta.copy()

    @property
    def weights_(self):
        return self.w.copy()

    def set_state(self, u, beta):
        self.u = np.array(u, dtype=float)
        self.beta = np.array(beta, dtype=float)
        self.fresh = False

    @property
    def has_gradient(self) -> bool:
        """``laplace_grad`` applies (``laplace_gradient.supports``: canonical link, small
        dense part)."""
        return self._grad is not None and self.nagq == 1

    def laplace_grad(self, x, grad) -> float:
        """``laplace(x)``, with its gradient written into ``grad`` (left alone if not finite)."""
        if not self.has_gradient:
            raise ValueError("no analytic gradient for this model")
        val = self.laplace(x)
        if np.isfinite(val):
            try:
                grad[:] = self._grad(self.T, self.u, self.eta, self.resp.y_, self.resp.pw_,
                                     self.Binv, self._theta_pos)
            except np.linalg.LinAlgError:  # a numerically singular Schur complement
                grad[:] = np.nan
        return val

    def reset(self, resp: GlmResponse, eta0) -> None:
        """A new response on the same design (see ``SingleTerm.reset``)."""
        if resp.n != self.n or len(eta0) != self.n:
            raise DataError("the new response has the wrong length")
        self.resp = resp
        self.eta = np.array(eta0, dtype=float)
        self.eta_start = self.eta.copy()
        self.base = self.off.copy()
        self.u = np.zeros(self.q)
        self.beta = np.zeros(self.px)
        self.fresh = True
        self.evaluations = self.iterations = self.failures = 0
        self.last_rc = 0

    def restart(self) -> None:
        """Back to the starting state (u = 0, beta = 0, the starting eta), counters kept."""
        self.eta = self.eta_start.copy()
        self.base = self.off.copy()
        self.u = np.zeros(self.q)
        self.beta = np.zeros(self.px)
        self.fresh = True

    def set_transform(self, beta0, Binv):
        self.beta0 = np.array(beta0, dtype=float)
        self.Binv = np.array(Binv, dtype=float).reshape(self.px, self.px)

    def set_agq(self, z, w):
        raise ValueError("adaptive Gauss-Hermite quadrature needs a single scalar random-effects term")

    def laplace(self, x, grad=None) -> float:
        x = np.asarray(x, dtype=float)
        self.evaluations += 1
        self.T[self.tidx] = x[: self.ntheta]
        self.beta = self.beta0 + self.Binv @ x[self.ntheta:]
        self.base = self.off + self.X @ self.beta
        return self._evaluate(joint=False)

    def joint(self, theta, grad=None) -> float:
        self.evaluations += 1
        self.T[self.tidx] = np.asarray(theta, dtype=float)
        return self._evaluate(joint=True)

    def rx_matrix(self) -> np.ndarray:
        """X'WX - X'WZΛ A⁻¹ Λ'Z'WX at the current eta."""
        self._reweight(joint=True)
        _, M = self.kj.update(self.T)
        if M is None:
            raise FloatingPointError("the penalised cross-product is not positive definite")
        return M[: self.px, : self.px].copy()

    def ainv_blocks(self) -> list[np.ndarray]:
        """Diagonal blocks of A⁻¹ per term at the current eta (for the conditional variances),
        from the engine's own kernel refactored at the current weights (no new analysis)."""
        self._reweight(joint=False)
        return self.ku.factor_at(self.T).selinv_blocks(self.frame.terms)

    # --- PIRLS ----------------------------------------------------------------------------
    def _reweight(self, joint: bool) -> None:
        self.resp.working_into(self.eta, self.off if joint else self.base, self.w, self.zt)
        self.cp.reweight(self.w, self.zt, self.X if joint else None, self.V, self.ZtW[joint],
                         self.WtW[joint])
        kern = self.kj if joint else self.ku
        kern.set_crossprods(self.V, self.ZtW[joint], self.WtW[joint])

    def _pdev(self) -> float:
        self.cp.linpred(self.base, self.u, self.T, self.eta)
        self.dev = self.resp.py_set_eta(self.eta, True)
        return self.dev + float(self.u @ self.u)

    def _evaluate(self, joint: bool) -> float:
        ugood, bgood = self.u.copy(), self.beta.copy()
        rc = self._pirls(joint)
        self.last_rc = rc
        if rc in (-1, -2):
            self.failures += 1
            self.u, self.beta = ugood, bgood
            if joint:
                self.base = self.off + self.X @ self.beta
            if self.fresh:  # eta is the failed iterate's: back to the starting one
                self.eta = self.eta_start.copy()
            return np.inf
        if rc == -3:
            self.failures += 1
        self.sqrL = float(self.u @ self.u)
        self.m2ll = self.resp.py_m2loglik(self.dev)
        return self.ldL2 + self.sqrL + self.m2ll

    def _pirls(self, joint: bool) -> int:
        fresh = self.fresh
        p = self.px
        kern = self.kj if joint else self.ku
        pdev_old = np.inf  # as lme4: no step halving in the first iteration
        if not fresh:
            if joint:
                self.base = self.off + self.X @ self.beta
            self.cp.linpred(self.base, self.u, self.T, self.eta)
        if self.ftol > 0 and not fresh:
            pdev_old = self.resp.py_set_eta(self.eta, True) + float(self.u @ self.u)
        else:
            self.resp.py_set_eta(self.eta, False)
        empty = np.zeros(0)
        prev = None
        for it in range(self.maxit):
            self.iterations += 1
            uold, bold = self.u, self.beta
            self._reweight(joint)
            ld, M = kern.update(self.T)
            if M is None:
                return -1
            if joint:
                try:
                    L = np.linalg.cholesky(M[:p, :p])
                except np.linalg.LinAlgError:
                    return -1
                self.beta = np.linalg.solve(M[:p, :p], M[:p, p])  # numpy: tiny, no threaded BLAS
                self.ldRX2 = 2.0 * float(np.sum(np.log(np.diag(L))))
                self.base = self.off + self.X @ self.beta
                self.u = kern.conditional_modes(self.beta)
            else:
                self.u = kern.conditional_modes(empty)
            self.ldL2 = ld
            pdev = self._pdev()
            k = 0  # halve only on a real increase: a roundoff-level one would stall the iteration
            slack = HALVING_SLACK * (1.0 + abs(pdev_old)) if np.isfinite(pdev_old) else 0.0
            while not pdev <= pdev_old + slack and k < MAX_HALVINGS:
                self.u = 0.5 * (uold + self.u)
                if joint:
                    self.beta = 0.5 * (bold + self.beta)
                    self.base = self.off + self.X @ self.beta
                pdev = self._pdev()
                k += 1
            if not pdev <= pdev_old + slack:
                return -2
            dmax = float(np.max(np.abs(self.u - uold))) if len(self.u) else 0.0
            if joint and p:
                dmax = max(dmax, float(np.max(np.abs(self.beta - bold) / (1.0 + np.abs(self.beta)))))
            if (self.ftol > 0 and dmax > STALL_STEP
                    and abs(pdev_old - pdev) <= self.ftol * (1.0 + abs(pdev))):
                self.u, self.beta = uold, bold  # stalled (a diverging β): the step is not taken
                if joint:
                    self.base = self.off + self.X @ self.beta
                self._pdev()
                self.fresh = False
                return 0
            pdev_old = pdev
            if k == 0 and not (fresh and it == 0):
                if dmax < self.tol:
                    self.fresh = False
                    return 0
                # Canonical link: PIRLS is Newton's method, the error after this step is about
                # dmax³/prev²; when that is negligible, refactor at u for log|A| instead of
                # taking one more full step (saves the solve and the linear predictor).
                if (self.newton and not joint and prev is not None and dmax < NEWTON_STEP
                        and dmax ** 3 < NEWTON_RATIO * prev ** 2):
                    self._reweight(False)
                    ld, M = kern.update(self.T)
                    if M is None:
                        return -1
                    self.ldL2 = ld
                    self.fresh = False
                    return 0
            prev = dmax if k == 0 else None
        self.fresh = False
        return -3


def single_term_ainv(engine) -> list[np.ndarray]:
    """A_j⁻¹ = L_j⁻ᵀ L_j⁻¹ per level from the single-term engine's factors."""
    L = np.tril(engine.factor_blocks())  # the kernel leaves scratch above the diagonal
    Linv = np.linalg.inv(L)
    return [np.einsum("lji,ljk->lik", Linv, Linv)]


def _fd_steps(x, lower, ntheta: int, step: float):
    """Free coordinates (θ within 1e-4 of its bound is held, as is a whitened β given a
    finite bound: a diverging direction, see ``separation``) and their difference steps:
    relative to max(|θ|, 0.1) for θ, absolute for whitened β."""
    free = np.array([not (np.isfinite(lower[i]) and x[i] - lower[i] < 1e-4)
                     for i in range(len(x))])
    idx = np.flatnonzero(free)
    return idx, np.array([step * max(abs(x[i]), 0.1) if i < ntheta else step for i in idx])


def fd_hessian(eng, x, fx, lower, ntheta: int, step: float):
    """Central-difference gradient and Hessian of ``eng.laplace`` at x (value fx).

    Coordinates: θ (step relative to max(|θ|, 0.1)) then whitened β (absolute step).  θ
    components within 1e-4 of their bound (singular fits) are held fixed.  Second-order
    mixed differences use the seven-point formula [f(+i+j) - f(+i) - f(+j) + 2 f - f(-i) -
    f(-j) + f(-i-j)] / (2 h_i h_j): n² + n evaluations in all, each warm-started from the
    linear extrapolation of the modes already found (two PIRLS steps where three were needed).
    Returns (free coordinate indices, gradient, Hessian) over the free coordinates.
    """
    f = eng.laplace
    idx, h = _fd_steps(x, lower, ntheta, step)
    for k, i in enumerate(idx):
        if np.isfinite(lower[i]):
            h[k] = min(h[k], 0.5 * (x[i] - lower[i]))
    m = len(idx)
    fp, fm = np.empty(m), np.empty(m)
    beta, u0 = eng.beta_, eng.u_
    up, um = [], []

    def at(xx, ustart):
        eng.set_state(ustart, beta)
        return f(xx), eng.u_

    for k, i in enumerate(idx):
        e = np.zeros(len(x))
        e[i] = h[k]
        fp[k], uk = at(x + e, u0)
        up.append(uk)
        fm[k], uk = at(x - e, 2.0 * u0 - up[k])
        um.append(uk)
    H = np.diag((fp - 2.0 * fx + fm) / h ** 2)
    for a in range(m):
        for b in range(a):
            e = np.zeros(len(x))
            e[idx[a]], e[idx[b]] = h[a], h[b]
            fpp = at(x + e, up[a] + up[b] - u0)[0]
            fmm = at(x - e, um[a] + um[b] - u0)[0]
            num = fpp - fp[a] - fp[b] + 2.0 * fx - fm[a] - fm[b] + fmm
            H[a, b] = H[b, a] = num / (2.0 * h[a] * h[b])
    eng.set_state(u0, beta)
    g = (fp - fm) / (2.0 * h)
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
    whitening makes the deviance's β curvature about that); the identity if not positive
    definite."""
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
    except np.linalg.LinAlgError:
        return np.eye(n)
    return H


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

    @property
    def tol(self):
        return self._eng.tol

    @tol.setter
    def tol(self, value):
        self._eng.tol = value

    @property
    def ftol(self):
        return self._eng.ftol

    @ftol.setter
    def ftol(self, value):
        self._eng.ftol = value

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

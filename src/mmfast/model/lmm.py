"""Linear mixed models: the profiled deviance / REML criterion of lme4, minimised over θ.

For θ the kernel factors A = Λ'Z'ZΛ + I = LL' and returns M = W'W - B'A⁻¹B (W = [X y],
B = Λ'Z'W).  Its Cholesky factor holds R_X (R_X'R_X = M_XX), c_β = R_X⁻ᵀ M_Xy and the
penalised residual sum of squares r² = M_yy - c_β'c_β.  Then (Bates et al. 2015, eq. 34, 41)

    ML:   d(θ)  = log|L|² + n (1 + log(2π r²/n))
    REML: dR(θ) = log|L|² + log|R_X|² + (n-p)(1 + log(2π r²/(n-p)))
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.linalg import cho_solve
from scipy.linalg.lapack import dgeqrf, dorgqr, dtrtrs

from .._ext._blocked import BlockedKernel
from .._ext._pls import PLSKernel
from ..design.blocks import build_blocks, build_Z, zt_times
from ..errors import ConvergenceWarning, DataError, FitError, SingularFitWarning
from .ainv import ainv_blocks
from .frame import ModelFrame, model_frame
from .optimize import minimize_bounded, minimize_log_newton, minimize_with_gradient
from .start import moment_start
from .results import MixedModelResults
from ..threads import SMALL_DENSE, large_data_blas, small_blas_work
from ..arguments import (NOBS_CHECKS, OPTIMIZER_KEYWORDS, boolean, check_start, integer, number,
                         one_of, validated)
from ..inference.mixin import InferenceMixin  # anova, contest, drop1, confint, profile, icc

__all__ = ["LinearMixedModel", "lmer"]

LOG2PI = np.log(2 * np.pi)


DENSE_SCHUR_MAX = 2500  # largest dense Schur complement the blocked kernel takes
GRADIENT_MIN_DENSE = 200  # dense part from which an evaluation is dear enough for L-BFGS-B
GRADIENT_MIN_Q = 3000  # ... or number of random effects (measured: below, BOBYQA is faster)
MOMENT_STEP = 0.1  # BOBYQA's first steps from a moment start, relative to |θ₀| (at least 0.1)
BOUNDARY_SHARE = 1e-3  # a Newton result's SD ratio below this share of the largest: start at 0
NEWTON_DECREMENT = 1e-10  # Newton steps stop when g'H⁻¹g left after the final step is below


def _thin_qr(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """X = QR with Q n x p orthonormal (LAPACK directly: numpy's wrapper costs ~15 µs)."""
    n, p = X.shape
    if n < p:
        return np.linalg.qr(X)
    qr, tau, _, info = dgeqrf(X)
    R = np.triu(qr[:p])
    Q, _, info2 = dorgqr(qr, tau)
    if info != 0 or info2 != 0:
        return np.linalg.qr(X)
    return Q, R


def _solve_upper(R: np.ndarray, b: np.ndarray) -> np.ndarray:
    """R⁻¹b for upper-triangular R (LAPACK directly: scipy's wrapper costs ~10 µs a call)."""
    x, info = dtrtrs(R, b)
    if info != 0:
        raise FitError("singular fixed-effects factor R_X")
    return x


def make_kernel(blocks, terms):
    """The blocked kernel when what remains after the first term is small; CHOLMOD otherwise."""
    q2 = blocks.q - terms[0].q
    if q2 <= DENSE_SCHUR_MAX:
        return BlockedKernel(blocks)
    return PLSKernel(blocks)


class LinearMixedModel(InferenceMixin, MixedModelResults):
    """An LMM ``y = Xβ + Zb + ε`` with ``b = Λθ u``, ``u ~ N(0, σ²I)``, ``ε ~ N(0, σ²I)``."""

    family = "gaussian"

    def __init__(self, frame: ModelFrame, reml: bool = True, options: dict | None = None):
        if not frame.terms:
            from ..errors import FormulaError
            raise FormulaError("no random-effects terms in the formula: use mmfast.lm for a linear model")
        self.frame = frame
        self.reml = bool(reml)
        self.options = dict(options or {})  # what lmer() was called with besides formula/data
        n, p = frame.X.shape
        self._sqrtw = None if frame.weights is None else np.sqrt(frame.weights)
        # The kernel works in an orthonormal basis Q of X (X = Q R_b) on the OLS residual of y:
        # the PLS solution is invariant to y -> y - Xγ and X -> X R⁻¹, and this avoids the
        # cancellation in y'y - ... when y or X have large means (values are mapped back below).
        Xw = frame.X if self._sqrtw is None else frame.X * self._sqrtw[:, None]
        self._Q, self._Rb = _thin_qr(Xw) if p else (np.zeros((n, 0)), np.zeros((0, 0)))
        self._logdetRb2 = 2.0 * float(np.sum(np.log(np.abs(np.diag(self._Rb))))) if p else 0.0
        yres = self._residual_response(frame.y)
        W = np.column_stack([self._Q, yres])
        self._Z = None
        self.blocks = build_blocks(frame.terms, W, self._sqrtw)
        self.kernel = make_kernel(self.blocks, frame.terms)
        self.theta_lower = np.concatenate([t.theta_lower() for t in frame.terms])
        self.theta_start = np.concatenate([t.theta_start() for t in frame.terms])
        self._logw = 0.0 if frame.weights is None else float(np.sum(np.log(frame.weights[frame.weights > 0])))
        self.fitted_ = False

    @property
    def Z(self):
        """The sparse n x q random-effects model matrix (built on first use)."""
        if self._Z is None:
            self._Z = build_Z(self.frame.terms, self.frame.nobs)
        return self._Z

    def _residual_response(self, y: np.ndarray) -> np.ndarray:
        """Weighted y (less offset) minus its projection on X; sets γ = Q'y and keeps the result
        as ``_yres`` (checks y first)."""
        y = y if self.frame.offset is None else y - self.frame.offset
        yw = y if self._sqrtw is None else y * self._sqrtw
        name = self.frame.parsed.response
        if y.max() == y.min():
            raise DataError(f"response '{name}' is constant: there is no variance to model")
        self._gamma = self._Q.T @ yw
        yres = self._yres = yw - self._Q @ self._gamma
        if np.linalg.norm(yres) <= 1e-10 * np.linalg.norm(yw):
            raise DataError(f"response '{name}' is an exact linear function of the fixed effects: "
                            "no residual variation is left for the random effects")
        return yres

    # --- the objective -------------------------------------------------------------------
    def templates(self, theta: np.ndarray) -> np.ndarray:
        """Λ's templates T_k, flat and column-major, from θ (one scatter)."""
        if getattr(self, "_tpos", None) is None:
            pos, ofs = [], 0
            for t in self.frame.terms:
                r, c = t.tril_indices()
                pos.append(ofs + r + c * t.p)
                ofs += t.p * t.p
            self._tpos, self._tsize = np.concatenate(pos), ofs
        T = np.zeros(self._tsize)
        T[self._tpos] = theta
        return T

    def _profile_kernel(self, theta: np.ndarray):
        """(ldL2, ldRX2, r², R_X, c_β) at θ in the kernel's basis (Q, OLS residual of y).

        One Cholesky of M = [[M_XX, M_Xy], [M_yX, M_yy]] holds them all: its last row is
        [c_β', r] and its leading block R_X'.
        """
        ldL2, M = self.kernel.update(self.templates(np.asarray(theta, dtype=float)))
        if M is None or not np.isfinite(ldL2):
            return None
        try:
            L = np.linalg.cholesky(M)
        except np.linalg.LinAlgError:
            return None
        p = M.shape[0] - 1
        d = np.diag(L)
        r2 = float(d[p] * d[p])
        if not r2 > 0:
            return None
        return ldL2, 2.0 * float(np.sum(np.log(d[:p]))), r2, L[:p, :p].T, L[p, :p]

    def _profile(self, theta: np.ndarray):
        """(ldL2, ldRX2, r², R_X, c_β) at θ for the original X (R_X'R_X = X'V⁻¹X, R_X β̂ = c_β)."""
        prof = self._profile_kernel(theta)
        if prof is None:
            return None
        ldL2, ld, r2, RQ, cbQ = prof
        R = RQ @ self._Rb
        return ldL2, ld + self._logdetRb2, r2, R, cbQ + RQ @ self._gamma

    def objective(self, theta, reml: bool | None = None) -> float:
        """The REML criterion (reml) or ML deviance, profiled over β and σ, at θ."""
        return self.criterion(self.reml if reml is None else reml)(theta)

    def criterion(self, reml: bool | None = None):
        """``objective`` as a function of θ alone, its constants bound once (what the optimiser
        calls, ~40-100 times for a small model: every microsecond here counts)."""
        reml = self.reml if reml is None else bool(reml)
        kernel, cache = self.__dict__.get("_criteria", (None, None))
        if kernel is not self.kernel:  # a new kernel (refit, new X): new constants too
            cache = {}
            self._criteria = (self.kernel, cache)
        if reml not in cache:
            n, p = self.frame.X.shape
            nfac = float(n - p if reml else n)
            const = nfac * (1.0 + LOG2PI - math.log(nfac)) - self._logw
            const += self._logdetRb2 if reml else 0.0
            self.templates(self.theta_start)  # sets the template index
            profiled, tpos, T, log, inf = self.kernel.profiled, self._tpos, np.zeros(self._tsize), \
                math.log, math.inf

            def f(theta) -> float:
                T[tpos] = theta
                prof = profiled(T)  # the kernel does the small Cholesky too
                if prof is None:
                    return inf
                return prof[0] + (prof[1] if reml else 0.0) + nfac * log(prof[2]) + const

            cache[reml] = f
        return cache[reml]

    @property
    def use_gradient(self) -> bool:
        """Analytic gradients pay off when each evaluation factors a large dense block."""
        if not hasattr(self.kernel, "trace_gradient"):
            return False
        return self.kernel.dense_size >= GRADIENT_MIN_DENSE or self.blocks.q >= GRADIENT_MIN_Q

    # --- fitting -------------------------------------------------------------------------
    def fit(self, start=None, **optctrl) -> "LinearMixedModel":
        """Minimise the criterion over θ and compute the results: from ``start``, else from a
        moment estimate (else lme4's start), by BOBYQA, or Newton steps for large models."""
        x0 = None if start is None else np.asarray(start, dtype=float)
        if x0 is None and not optctrl:
            x0 = moment_start(self)
            if x0 is not None:  # near the optimum: BOBYQA's first trust region small
                optctrl = {"step": MOMENT_STEP * np.maximum(np.abs(x0), 0.1)}
        x0 = self.theta_start if x0 is None else x0
        with small_blas_work(getattr(self.kernel, "dense_size", SMALL_DENSE), self.blocks.q):
            if self.use_gradient and set(optctrl) <= {"step"}:
                res = self._fit_with_gradient(x0)
            else:
                res = minimize_bounded(self.criterion(), x0, self.theta_lower, **optctrl)
                res = self._polish_one_parameter(res)
        if not np.isfinite(res.fun) or res.fun >= 1e299:
            raise FitError("the REML criterion / deviance could not be evaluated at any θ tried "
                           "(the penalised system is not positive definite: check for extreme "
                           "scales in the random-effects covariates or too few observations)")
        self.optinfo = {"optimizer": res.optimizer, "evaluations": res.evaluations,
                        "seconds": res.seconds, "message": res.message, "converged": res.converged}
        self._set_theta(res.x)
        if res.history:  # the optimiser's last step was not evaluated: keep it only if no worse
            x_last, f_last = res.history[-1]
            if not self.objective_value <= f_last + 1e-10 * max(1.0, abs(f_last)):
                self._set_theta(x_last)
        self.converged = bool(res.converged)
        if not self.converged:
            warnings.warn(f"model failed to converge: {res.message}", ConvergenceWarning, stacklevel=3)
        if self.singular:
            warnings.warn("boundary (singular) fit: see help('isSingular')", SingularFitWarning,
                          stacklevel=3)
        return self

    def _polish_one_parameter(self, res):
        """One θ: a Newton step on the analytic gradient after BOBYQA.  A one-parameter
        criterion is flat to rounding within ~1e-7 (relative) of its optimum, so no method that
        only compares values gets closer; the gradient is not flat there.  The step is left
        unevaluated (``history``: ``fit`` keeps the BOBYQA point if it is worse)."""
        if not (res.converged and len(res.x) == 1 and self.theta_lower[0] == 0
                and res.x[0] > BOUNDARY_SHARE and hasattr(self.kernel, "trace_gradient")):
            return res
        from .gradient import profiled_gradient
        f, g, ai = profiled_gradient(self, res.x, hessian=True)
        if not (np.isfinite(f) and np.all(np.isfinite(g)) and ai is not None and ai[0, 0] > 0):
            return res
        step = -g / ai[0, 0]
        if abs(step[0]) > 1e-3 * res.x[0]:  # a polish, not a search
            return res
        res.history = [(res.x.copy(), float(res.fun))]
        res.x = res.x + step
        res.evaluations += 1
        return res

    def _fit_with_gradient(self, x0):
        """Large models: Newton steps with the average-information Hessian, renewed at every
        step, on log θ for the standard deviation ratios (the diagonal of the templates);
        L-BFGS-B takes over when that does not settle or a variance heads for 0."""
        from .gradient import profiled_gradient

        last = {}

        def fg(theta, g):
            f, gg, last["ai"] = profiled_gradient(self, theta, hessian=True)
            g[:] = gg
            return f

        logged = self.theta_lower == 0  # standard deviation ratios: Newton steps on log θ
        res = None
        if np.all(x0[logged] > 0):
            res = minimize_log_newton(fg, x0, lambda: last["ai"], dec_tol=NEWTON_DECREMENT,
                                      logged=logged, max_step=1.0, small=BOUNDARY_SHARE)
        if res is not None and res.converged:
            return res
        nev, x0 = (0, x0) if res is None else (res.evaluations, res.x)
        if not np.all(np.isfinite(x0)):
            x0 = self.theta_start
        # a standard deviation Newton drove towards 0 starts at 0: bounded in θ, not in log θ
        x0 = np.where(logged & (x0 < BOUNDARY_SHARE * np.max(x0[logged], initial=0.0)), 0.0, x0)
        res = minimize_with_gradient(lambda th: profiled_gradient(self, th), self.objective, x0,
                                     self.theta_lower)
        res.evaluations += nev
        return res

    def _set_theta(self, theta: np.ndarray) -> None:
        """Everything at θ: β, σ, u, b, fitted values, criteria."""
        theta = np.asarray(theta, dtype=float).copy()
        self.theta = theta
        prof = self._profile_kernel(theta)
        if prof is None:
            raise FitError("the model could not be evaluated at the optimum θ")
        ldL2, ldRX2, r2, RQ, cbQ = prof
        n, p = self.frame.X.shape
        beta_q = _solve_upper(RQ, cbQ) if p else np.zeros(0)  # for the residual response
        self._R = RQ @ self._Rb
        self._ldL2, self._ldRX2, self._pwrss = ldL2, ldRX2 + self._logdetRb2, r2
        self.beta = _solve_upper(self._Rb, beta_q + self._gamma) if p else np.zeros(0)
        u = self.kernel.conditional_modes(beta_q)
        self.u = u
        self.b = self._lambda_times(u)
        self.sigma = float(np.sqrt(r2 / (n - p if self.reml else n)))
        self.fitted_ = True
        self._condvar_cache = None

    def _lambda_times(self, u: np.ndarray) -> np.ndarray:
        """b = Λθ u at the fitted θ."""
        return self._lambda_times_at(self.theta, u)

    def _lambda_times_at(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """b = Λθ u, term by term and level by level."""
        out = np.empty_like(u)
        for t in self.frame.terms:
            T = t.template(theta[t.theta_offset: t.theta_offset + t.ntheta])
            blk = u[t.offset: t.offset + t.q].reshape(t.nlevels, t.p)
            out[t.offset: t.offset + t.q] = (blk @ T.T).ravel()
        return out

    # --- pickling: the compiled kernels are rebuilt from the stored cross-products ----------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["kernel"] = None
        state.pop("_criteria", None)  # closures over the kernel
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.kernel = make_kernel(self.blocks, self.frame.terms)
        if getattr(self, "fitted_", False):
            self.kernel.update(self.templates(self.theta))

    # --- refitting (model comparison, drop1, resampling) ---------------------------------
    def refit_formula(self, formula: str, reml: bool | None = None) -> "LinearMixedModel":
        """The same data and options with another formula (the rows this fit used)."""
        data = self.frame.data.drop(columns=[c for c in ("(weights)", "(offset)") if c in self.frame.data])
        opts = dict(self.options)
        if self.frame.weights is not None:
            opts["weights"] = self.frame.weights
        return lmer(formula, data, reml=self.reml if reml is None else reml, **opts)

    def refit_ml(self) -> "LinearMixedModel":
        """This model refitted by maximum likelihood (itself if it already is)."""
        return self if not self.reml else self.refit_formula(self.frame.parsed.formula, reml=False)

    def refit(self, y: np.ndarray, start=None) -> "LinearMixedModel":
        """A copy fitted to a new response with the same design (no re-parsing, kernel reused),
        from ``start``, else this fit's θ, else (an unfitted template) a moment start."""
        import copy
        y = np.asarray(y, dtype=float)
        if y.shape != self.frame.y.shape:
            raise DataError(f"new response has shape {y.shape}, expected {self.frame.y.shape}")
        new = copy.copy(self)
        new.frame = copy.copy(self.frame)
        new.frame.y = y
        yres = new._residual_response(y)
        new.blocks = copy.copy(self.blocks)
        p = self.frame.X.shape[1]
        new.blocks.ZtW = np.asfortranarray(self.blocks.ZtW.copy())
        new.blocks.ZtW[:, p] = zt_times(self.frame.terms, yres[:, None], self._sqrtw)[:, 0]
        WtW = self.blocks.WtW.copy()
        WtW[:p, p] = WtW[p, :p] = self._Q.T @ yres
        WtW[p, p] = yres @ yres
        new.blocks.WtW = WtW
        new.kernel = make_kernel(new.blocks, self.frame.terms)
        if start is None and self.fitted_:
            start = self.theta
        return new.fit(start=start)

    # --- criteria ------------------------------------------------------------------------
    @property
    def ml_deviance(self) -> float:
        n = self.nobs
        return self._ldL2 + n * (1.0 + LOG2PI + np.log(self._pwrss / n)) - self._logw

    @property
    def reml_criterion(self) -> float | None:
        if not self.reml:
            return None
        n, p = self.frame.X.shape
        return (self._ldL2 + self._ldRX2 + (n - p) * (1.0 + LOG2PI + np.log(self._pwrss / (n - p)))
                - self._logw)

    @property
    def loglik(self) -> float:
        return -0.5 * (self.reml_criterion if self.reml else self.ml_deviance)

    @property
    def deviance(self) -> float:
        """-2 logLik for ML fits; for REML fits the ML deviance at the REML estimates (lme4)."""
        return self.ml_deviance

    @property
    def objective_value(self) -> float:
        return self.reml_criterion if self.reml else self.ml_deviance

    @property
    def npar(self) -> int:
        return len(self.beta) + len(self.theta) + 1

    @property
    def vcov_array(self) -> np.ndarray:
        p = len(self.beta)
        if p == 0:
            return np.zeros((0, 0))
        return self.sigma ** 2 * cho_solve((self._R, False), np.eye(p))

    def _ainv_diag_blocks(self) -> list[np.ndarray]:
        """Diagonal p_k x p_k blocks of A⁻¹ per term, as arrays (levels, p, p)."""
        return ainv_blocks(self.blocks, self.frame.terms, self.templates(self.theta))

    def condvar(self) -> list[np.ndarray]:
        """Conditional covariance of b per term: array (levels, p, p) = σ² T (A⁻¹)_blk T'."""
        if self._condvar_cache is None:
            res = []
            for t, blocks in zip(self.frame.terms, self._ainv_diag_blocks()):
                T = t.template(self.theta[t.theta_offset: t.theta_offset + t.ntheta])
                res.append(self.sigma ** 2 * np.einsum("ij,ljk,mk->lim", T, blocks, T))
            self._condvar_cache = res
        return self._condvar_cache


@validated(extra=OPTIMIZER_KEYWORDS, reml=boolean, check_nobs_vs_nre=one_of(*NOBS_CHECKS),
           maxeval=integer(1), ftol_abs=number, xtol_abs=number)
def lmer(formula: str, data: pd.DataFrame, reml: bool = True, weights=None, offset=None,
         check_nobs_vs_nre: str = "stop", start=None, **optctrl) -> LinearMixedModel:
    """Fit a linear mixed model as ``lme4::lmer`` does (REML by default).

    ``formula`` is lme4's syntax, pasted unchanged; ``weights``/``offset`` take a column name
    or an array; ``check_nobs_vs_nre`` mirrors ``lmerControl(check.nobs.vs.nRE=)``.
    """
    with large_data_blas(getattr(data, "shape", (0,))[0]):
        frame = model_frame(formula, data, weights=weights, offset=offset,
                            check_nobs_vs_nre=check_nobs_vs_nre)
        options = {"check_nobs_vs_nre": check_nobs_vs_nre, **optctrl}
        model = LinearMixedModel(frame, reml=reml, options=options)
        start = check_start(start, model.theta_lower, model.theta_names)
        return model.fit(start=start, **optctrl)

"""Linear mixed models: the profiled deviance / REML criterion of lme4, minimised over θ.

For θ the kernel factors A = Λ'Z'ZΛ + I = LL' and returns M = W'W - B'A⁻¹B (W = [X y],
B = Λ'Z'W).  Its Cholesky factor holds R_X (R_X'R_X = M_XX), c_β = R_X⁻ᵀ M_Xy and the
penalised residual sum of squares r² = M_yy - c_β'c_β.  Then (Bates et al. 2015, eq. 34, 41)

    ML:   d(θ)  = log|L|² + n (1 + log(2π r²/n))
    REML: dR(θ) = log|L|² + log|R_X|² + (n-p)(1 + log(2π r²/(n-p)))
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.linalg import cho_solve
from scipy.linalg.lapack import dgeqrf, dorgqr, dtrtrs

from .._ext._blocked import BlockedKernel
from .._ext._pls import PLSKernel
from ..design.blocks import build_blocks, build_Z, zt_times
from ..design.theta import ThetaLayout
from ..errors import DataError, FitError
from ..families import GAUSSIAN
from .ainv import ainv_blocks
from .criterion import profiled_constant, profiled_deviance, residual_df
from .frame import ModelFrame, model_frame
from .fitting import MANY_THETA, FitStrategy
from .results import MixedModelResults
from ..threads import large_data_blas
from ..arguments import (NOBS_CHECKS, OPTIMIZER_KEYWORDS, boolean, check_start, integer, number,
                         one_of, validated)
from ..inference.mixin import InferenceMixin  # anova, contest, drop1, confint, profile, icc

__all__ = ["LinearMixedModel", "lmer"]

EPS = float(np.finfo(float).eps)
EXACT_FIT_ULPS = 64  # a residual below this many rounding units of y: y is a function of X
DENSE_SCHUR_MAX = 2500  # largest dense Schur complement the blocked kernel takes
GRADIENT_MIN_DENSE = 200  # dense part from which an evaluation is dear enough for L-BFGS-B
GRADIENT_MIN_Q = 3000  # ... or number of random effects (measured: below, BOBYQA is faster)


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


class LinearMixedModel(FitStrategy, InferenceMixin, MixedModelResults):
    """An LMM ``y = Xβ + Zb + ε`` with ``b = Λθ u``, ``u ~ N(0, σ²I)``, ``ε ~ N(0, σ²I)``."""

    family = GAUSSIAN  # compares equal to "gaussian", as a GLMM's family to its name
    _yscale = 1.0  # the kernel's y is y / _yscale (see _residual_response)

    def __init__(self, frame: ModelFrame, reml: bool = True, options: dict | None = None,
                 design: "LinearMixedModel | None" = None):
        """``design``: a model on the same rows, X, Z and weights (a refit to a new response):
        its factorisation of X and cross-products Z'Z, Z'X are shared, not recomputed."""
        if not frame.terms:
            from ..errors import FormulaError
            raise FormulaError("no random-effects terms in the formula: use mmfast.lm for a linear model")
        self.frame = frame
        self.reml = bool(reml)
        self.options = dict(options or {})  # what lmer() was called with besides formula/data
        n, p = frame.X.shape
        self._sqrtw = None if frame.weights is None else np.sqrt(frame.weights)
        if frame.weights is not None and self.nobs <= p:  # rows of weight 0 do not count
            raise DataError(f"only {self.nobs} observations have a non-zero weight, for {p} fixed "
                            "effects: the model cannot be estimated")
        # The kernel works in an orthonormal basis Q of X (X = Q R_b) on the OLS residual of y:
        # the PLS solution is invariant to y -> y - Xγ and X -> X R⁻¹, and this avoids the
        # cancellation in y'y - ... when y or X have large means (values are mapped back below).
        if design is None:
            Xw = frame.X if self._sqrtw is None else frame.X * self._sqrtw[:, None]
            self._Q, self._Rb = _thin_qr(Xw) if p else (np.zeros((n, 0)), np.zeros((0, 0)))
        else:
            self._Q, self._Rb = design._Q, design._Rb
        self._logdetRb2 = 2.0 * float(np.sum(np.log(np.abs(np.diag(self._Rb))))) if p else 0.0
        self._yscale = None  # chosen from the first response
        yres = self._residual_response(frame.y)
        self._Z = None if design is None else design._Z
        if design is None:
            self.blocks = build_blocks(frame.terms, np.column_stack([self._Q, yres]), self._sqrtw)
        else:
            self.blocks = _with_response_blocks(design.blocks, frame.terms, self._Q, yres, self._sqrtw)
        self.kernel = make_kernel(self.blocks, frame.terms)
        self.layout = ThetaLayout(frame.terms)  # θ's slices, bounds, start, names, templates
        self.theta_lower, self.theta_start = self.layout.lower, self.layout.start
        self._logw = 0.0 if frame.weights is None else float(np.sum(np.log(frame.weights[frame.weights > 0])))
        self.fitted_ = False

    @property
    def Z(self):
        """The sparse n x q random-effects model matrix (built on first use)."""
        if self._Z is None:
            self._Z = build_Z(self.frame.terms, self.frame.nobs)
        return self._Z

    def _residual_response(self, y: np.ndarray) -> np.ndarray:
        """Weighted y (less offset) minus its projection on X, divided by ``_yscale``; sets
        γ = Q'y (not divided) and keeps the result as ``_yres`` (checks y first).

        ``_yscale`` is 1 unless the residual's size is outside 2^±100, where its squares would
        over- or underflow (y * 1e200): then the power of 2 nearest to it, so that the kernel
        sees values near 1 and every result maps back exactly (θ does not change with it)."""
        y = y if self.frame.offset is None else y - self.frame.offset
        yw = y if self._sqrtw is None else y * self._sqrtw
        name = self.frame.parsed.response
        if y.max() == y.min():
            raise DataError(f"response '{name}' is constant: there is no variance to model")
        self._gamma = self._Q.T @ yw
        yres = yw - self._Q @ self._gamma
        # relative to y's own rounding (y + 1e12 keeps a residual of ~1e-11 of its norm);
        # sums of squares taken after a power-of-2 scaling where they would overflow
        big = float(np.max(np.abs(yw)))
        k = 1.0 if 2.0 ** -100 < big < 2.0 ** 100 else 2.0 ** round(math.log2(big))
        rk, yk = (yres, yw) if k == 1.0 else (yres / k, yw / k)
        r2, n = float(rk @ rk), len(yw)
        if r2 <= (EXACT_FIT_ULPS * EPS) ** 2 * n * float(yk @ yk):
            raise DataError(f"response '{name}' is an exact linear function of the fixed effects: "
                            "no residual variation is left for the random effects")
        if self._yscale is None:
            size = k * math.sqrt(r2 / n)  # the residual's root mean square
            self._yscale = 1.0 if 2.0 ** -100 < size < 2.0 ** 100 else 2.0 ** round(math.log2(size))
        if self._yscale != 1.0:
            yres = yres / self._yscale
        self._yres = yres
        return yres

    # --- the objective -------------------------------------------------------------------
    def templates(self, theta: np.ndarray) -> np.ndarray:
        """Λ's templates T_k, flat and column-major, from θ (the layout's scatter)."""
        return self.layout.flat(theta)

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
        c = self._yscale
        return ldL2, ld + self._logdetRb2, r2 * c * c, R, c * cbQ + RQ @ self._gamma

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
            n, p = self.nobs, self.frame.X.shape[1]  # rows of weight 0 do not count
            nfac = float(residual_df(n, p, reml))  # profiled_deviance, constants bound once
            const = profiled_constant(n, p, reml, self._logw)
            const += self._logdetRb2 if reml else 0.0
            const += nfac * 2.0 * math.log(self._yscale)
            profiled, tpos, T, log, inf = self.kernel.profiled, self.layout.pos, \
                np.zeros(self.layout.size), math.log, math.inf

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
        """Analytic gradients pay off when each evaluation factors a large dense block, or
        when there are many θ (kb07's 72 on 16 items, dense part 128: BOBYQA 17,273
        evaluations in 65 s, L-BFGS-B 473 gradients in 11 s and a lower deviance)."""
        if not hasattr(self.kernel, "trace_gradient"):
            return False
        return (self.kernel.dense_size >= GRADIENT_MIN_DENSE or self.blocks.q >= GRADIENT_MIN_Q
                or len(self.theta_start) >= MANY_THETA)

    # --- fitting -------------------------------------------------------------------------
    def _set_theta(self, theta: np.ndarray) -> None:
        """Everything at θ: β, σ, u, b, fitted values, criteria."""
        theta = np.asarray(theta, dtype=float).copy()
        self.theta = theta
        prof = self._profile_kernel(theta)
        if prof is None:
            raise FitError("the model could not be evaluated at the optimum θ")
        ldL2, ldRX2, r2, RQ, cbQ = prof
        n, p = self.nobs, self.frame.X.shape[1]
        beta_q = _solve_upper(RQ, cbQ) if p else np.zeros(0)  # for the residual response
        c = self._yscale  # the kernel's y is y / c: β, u, σ scale with c, r² with c²
        self._R = RQ @ self._Rb
        self._ldL2, self._ldRX2, self._pwrss = ldL2, ldRX2 + self._logdetRb2, r2 * c * c
        self._log_pwrss = math.log(r2) + 2.0 * math.log(c)  # finite where r² c² is not
        self.beta = _solve_upper(self._Rb, c * beta_q + self._gamma) if p else np.zeros(0)
        u = self.kernel.conditional_modes(beta_q) * c
        self.u = u
        self.b = self._lambda_times(u)
        self.sigma = float(np.sqrt(r2 / (n - p if self.reml else n))) * c
        self.fitted_ = True
        self._condvar_cache = None

    def _lambda_times(self, u: np.ndarray) -> np.ndarray:
        """b = Λθ u at the fitted θ."""
        return self._lambda_times_at(self.theta, u)

    def _lambda_times_at(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """b = Λθ u, term by term and level by level."""
        out = np.empty_like(u)
        for t, T in zip(self.frame.terms, self.layout.templates(theta)):
            blk = u[t.offset: t.offset + t.q].reshape(t.nlevels, t.p)
            out[t.offset: t.offset + t.q] = (blk @ T.T).ravel()
        return out

    # --- pickling: the compiled kernels are rebuilt from the stored cross-products ----------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["kernel"] = None
        state.pop("_criteria", None)  # closures over the kernel
        state.pop("_inference_lock", None)  # a thread lock (inference.locking): made again on use
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "_pwrss" in state and "_log_pwrss" not in state:  # pickled before y's rescaling
            self._log_pwrss = math.log(state["_pwrss"])
        self.kernel = make_kernel(self.blocks, self.frame.terms)
        if getattr(self, "fitted_", False):
            self.kernel.update(self.templates(self.theta))

    # --- refitting (model comparison, drop1, resampling) ---------------------------------
    def refit_formula(self, formula: str, reml: bool | None = None) -> "LinearMixedModel":
        """The same rows, weights, offset and options with another formula; a refit's response
        carries over when the response expression is the same."""
        import inspect

        from .frame import frame_for_formula
        frame_args = inspect.signature(model_frame).parameters  # the rest: optimiser controls
        optctrl = {k: v for k, v in self.options.items() if k not in frame_args}
        with large_data_blas(self.frame.nobs):
            frame = frame_for_formula(self.frame, formula, self.options)
            model = LinearMixedModel(frame, reml=self.reml if reml is None else reml,
                                     options=self.options)
            return model.fit(**optctrl)

    def refit_ml(self) -> "LinearMixedModel":
        """This model refitted by maximum likelihood (itself if it already is)."""
        return self if not self.reml else self.refit_formula(self.frame.parsed.formula, reml=False)

    def refit(self, y: np.ndarray, start=None) -> "LinearMixedModel":
        """A new model on response ``y`` (copied), same design, fitted from ``start``, else this
        fit's θ, else (an unfitted template) a moment start: what ``lmer`` on the data with the
        new response gives, without re-parsing or recomputing Z'Z."""
        from .frame import with_response
        new = LinearMixedModel(with_response(self.frame, y), reml=self.reml,
                               options=self.options, design=self)
        if start is None and self.fitted_:
            start = self.theta
        return new.fit(start=start)

    # --- criteria ------------------------------------------------------------------------
    @property
    def ml_deviance(self) -> float:
        return profiled_deviance(self._ldL2, self._ldRX2, self._log_pwrss, self.nobs,
                                 self.frame.X.shape[1], False, self._logw)

    @property
    def reml_criterion(self) -> float | None:
        if not self.reml:
            return None
        return profiled_deviance(self._ldL2, self._ldRX2, self._log_pwrss, self.nobs,
                                 self.frame.X.shape[1], True, self._logw)

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
            for T, blocks in zip(self.layout.templates(self.theta), self._ainv_diag_blocks()):
                res.append(self.sigma ** 2 * np.einsum("ij,ljk,mk->lim", T, blocks, T))
            self._condvar_cache = res
        return self._condvar_cache


def _with_response_blocks(blocks, terms, Q, yres, sqrtw):
    """``blocks`` with the response column of Z'W and W'W replaced (W = [Q yres]); Z'Z (V)
    and the index arrays are shared."""
    import dataclasses
    p = Q.shape[1]
    ZtW = np.asfortranarray(blocks.ZtW.copy())
    ZtW[:, p] = zt_times(terms, yres[:, None], sqrtw)[:, 0]
    WtW = blocks.WtW.copy()
    WtW[:p, p] = WtW[p, :p] = Q.T @ yres
    WtW[p, p] = yres @ yres
    return dataclasses.replace(blocks, ZtW=ZtW, WtW=WtW)


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

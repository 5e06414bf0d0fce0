"""Linear mixed models: the profiled deviance / REML criterion of lme4, minimised over θ.

For θ the kernel factors A = Λ'Z'ZΛ + I = LL' and returns M = W'W - B'A⁻¹B (W = [X y],
B = Λ'Z'W).  Its Cholesky factor holds R_X (R_X'R_X = M_XX), c_β = R_X⁻ᵀ M_Xy and the
penalised residual sum of squares r² = M_yy - c_β'c_β.  Then (Bates et al. 2015, eq. 34, 41)

    ML:   d(θ)  = log|L|² + n (1 + log(2π r²/n))
    REML: dR(θ) = log|L|² + log|R_X|² + (n-p)(1 + log(2π r²/(n-p)))
"""

from __future__ import annotations

from typing import TypeVar

import dataclasses
import math
from functools import cached_property

import numpy as np
from scipy.linalg import cho_solve

from .._ext._blocked import BlockedKernel
from .._ext._nested import NestedKernel, nested_chain
from .._ext._pls import PLSKernel
from ..design.blocks import build_blocks, build_Z, zt_times
from ..design.theta import ThetaLayout
from ..errors import DataError, FitError
from ..families import GAUSSIAN
from .columns import Columns
from .control import LmmControl, check_control
from .criterion import profile_of_m, profiled_constant, profiled_deviance, residual_df
from .fixed_basis import solve_upper as _solve_upper, thin_qr as _thin_qr  # _thin_qr: residual_fit's too
from .frame import ModelFrame, model_frame
from .kernel import fitted_kernel
from .fitting import FitStrategy
from .results import MixedModelResults
from ..threads import large_data_blas
from ..arguments import check_start

_Self = TypeVar("_Self", bound="LinearMixedModel")  # refits build the caller's class (api's)

__all__ = ["LinearMixedModel", "fit_lmm"]

EPS = float(np.finfo(float).eps)
EXACT_FIT_ULPS = 64  # a residual below this many rounding units of y: y is a function of X


def make_kernel(blocks, terms, control: LmmControl | None = None):
    """The tree kernel for a chain of nested scalar terms with at least
    ``control.nested_min_schur`` (2) levels after the first (their Schur complement is diagonal:
    no dense part to factor); else the blocked kernel when what remains after the first term
    is small (up to ``control.dense_schur_max``); CHOLMOD otherwise; PCG/SLQ if ``control`` asks."""
    control = LmmControl() if control is None else control
    if control.solver == "iterative":
        from .iterative import IterativeKernel

        return IterativeKernel(blocks, terms, control.iterative)
    q2 = blocks.q - terms[0].q
    if q2 >= control.nested_min_schur:
        chain = nested_chain(blocks)
        if chain is not None:
            return NestedKernel(blocks, chain)
    if q2 <= control.dense_schur_max:
        return BlockedKernel(blocks)
    return PLSKernel(blocks)


class LinearMixedModel(FitStrategy, MixedModelResults):
    """An LMM ``y = Xβ + Zb + ε`` with ``b = Λθ u``, ``u ~ N(0, σ²I)``, ``ε ~ N(0, σ²I)``."""

    family = GAUSSIAN  # compares equal to "gaussian", as a GLMM's family to its name
    _yscale = 1.0  # the kernel's y is y / _yscale (see _residual_response)

    def __init__(
        self,
        frame: ModelFrame,
        reml: bool = True,
        options: dict | None = None,
        design: "LinearMixedModel | None" = None,
        control: LmmControl | None = None,
    ):
        """``design``: a model on the same rows, Z and weights whose cross-products Z'Z are
        shared, not recomputed; with the same X too (a refit to a new response, ``refit``) its
        factorisation of X and Z'X as well (``with_fixed`` gives another X).
        ``control``: kernel and optimiser choice (default ``LmmControl()``)."""
        if not frame.terms:
            from ..errors import FormulaError

            raise FormulaError("no random-effects terms in the formula: use mmfast.lm for a linear model")
        self.frame = frame
        self.reml = bool(reml)
        self.options = dict(options or {})  # what lmer() was called with besides formula/data
        self.control = check_control(control, LmmControl)
        n, p = frame.X.shape
        self._sqrtw = None if frame.weights is None else np.sqrt(frame.weights)
        if frame.weights is not None and self.nobs <= p:  # rows of weight 0 do not count
            raise DataError(
                f"only {self.nobs} observations have a non-zero weight, for {p} fixed "
                "effects: the model cannot be estimated"
            )
        # The kernel works in an orthonormal basis Q of X (X = Q R_b) on the OLS residual of y:
        # the PLS solution is invariant to y -> y - Xγ and X -> X R⁻¹, and this avoids the
        # cancellation in y'y - ... when y or X have large means (values are mapped back below).
        same_x = design is not None and design.frame.X is frame.X
        if same_x:
            self._Q, self._Rb = design._Q, design._Rb
        else:
            Xw = frame.X if self._sqrtw is None else frame.X * self._sqrtw[:, None]
            self._Q, self._Rb = _thin_qr(Xw) if p else (np.zeros((n, 0)), np.zeros((0, 0)))
            if design is not None and p:  # a new X (with_fixed): refuse a rank-deficient one
                dR = np.abs(np.diag(self._Rb))
                if dR.min() <= 1e-9 * max(dR.max(), 1.0):
                    raise FitError("the fixed-effects matrix is rank deficient")
        self._logdetRb2 = 2.0 * float(np.sum(np.log(np.abs(np.diag(self._Rb))))) if p else 0.0
        self._yscale = None  # chosen from the first response
        yres = self._residual_response(frame.y)
        if design is not None and "Z" in vars(design):  # the same Z, built already: shared
            self.Z = design.Z
        if design is None:
            self.blocks = build_blocks(frame.terms, np.column_stack([self._Q, yres]), self._sqrtw)
        else:
            self.blocks = _with_response_blocks(
                design.blocks, frame.terms, self._Q, yres, self._sqrtw, new_x=not same_x
            )
        self.kernel = make_kernel(self.blocks, frame.terms, self.control)
        # θ's slices, bounds, start, names, templates (a design's terms: its layout)
        self.layout = ThetaLayout(frame.terms) if design is None else design.layout
        self.theta_lower, self.theta_start = self.layout.lower, self.layout.start
        self._logw = 0.0 if frame.weights is None else float(np.sum(np.log(frame.weights[frame.weights > 0])))
        # ``criterion``'s functions by REML flag (closures over this model's kernel, which is
        # fixed at construction: a new X or response is a new model, with_fixed/refit)
        self._criteria: dict = {}
        self.fitted_ = False

    @cached_property
    def Z(self):
        """The sparse n x q random-effects model matrix (built on first use)."""
        return build_Z(self.frame.terms, self.frame.nobs)

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
        k = 1.0 if 2.0**-100 < big < 2.0**100 else 2.0 ** round(math.log2(big))
        rk, yk = (yres, yw) if k == 1.0 else (yres / k, yw / k)
        r2, n = float(rk @ rk), len(yw)
        if r2 <= (EXACT_FIT_ULPS * EPS) ** 2 * n * float(yk @ yk):
            raise DataError(
                f"response '{name}' is an exact linear function of the fixed effects: "
                "no residual variation is left for the random effects"
            )
        if self._yscale is None:
            size = k * math.sqrt(r2 / n)  # the residual's root mean square
            self._yscale = 1.0 if 2.0**-100 < size < 2.0**100 else 2.0 ** round(math.log2(size))
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
        T = self.templates(np.asarray(theta, dtype=float))
        if not self.layout.linear and not np.all(np.isfinite(T)):  # an infeasible structure
            return None
        ldL2, M = self.kernel.update(T)
        if M is None or not np.isfinite(ldL2):
            return None
        prof = profile_of_m(M)
        return None if prof is None else (ldL2, *prof)

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
        cache = self._criteria
        if reml not in cache:
            n, p = self.nobs, self.frame.X.shape[1]  # rows of weight 0 do not count
            nfac = float(residual_df(n, p, reml))  # profiled_deviance, constants bound once
            const = profiled_constant(n, p, reml, self._logw)
            const += self._logdetRb2 if reml else 0.0
            const += nfac * 2.0 * math.log(self._yscale)
            profiled, tpos, T, log, inf = (
                self.kernel.profiled,
                self.layout.pos,
                np.zeros(self.layout.size),
                math.log,
                math.inf,
            )

            flat, linear = self.layout.flat, self.layout.linear

            def f(theta) -> float:
                if linear:
                    T[tpos] = theta
                elif not np.all(np.isfinite(flat(theta, T))):  # a structure's θ -> T
                    return inf
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
        ctl = self.control
        return (
            self.kernel.dense_size >= ctl.gradient_min_dense
            or self.blocks.q >= ctl.gradient_min_q
            or len(self.theta_start) >= ctl.many_theta
        )

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
        self.__dict__.pop("_condvar", None)  # a cached_property of the fit: anew if fit again

    def _lambda_times(self, u: np.ndarray) -> np.ndarray:
        """b = Λθ u at the fitted θ."""
        return self._lambda_times_at(self.theta, u)

    def _lambda_times_at(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """b = Λθ u, term by term and level by level."""
        out = np.empty_like(u)
        for t, T in zip(self.frame.terms, self.layout.templates(theta)):
            blk = u[t.offset : t.offset + t.q].reshape(t.nlevels, t.p)
            out[t.offset : t.offset + t.q] = (blk @ T.T).ravel()
        return out

    # --- pickling: the compiled kernels are rebuilt from the stored cross-products ----------
    def __getstate__(self):
        state = super().__getstate__()
        state["kernel"], state["_criteria"] = None, {}  # the criteria: closures over the kernel
        return state

    def __setstate__(self, state):
        state = dict(state, _criteria={})
        if "_pwrss" in state and "_log_pwrss" not in state:  # pickled before y's rescaling
            state["_log_pwrss"] = math.log(state["_pwrss"])
        state.setdefault("control", LmmControl())  # pickled before controls existed
        state["kernel"] = make_kernel(state["blocks"], state["frame"].terms, state["control"])
        if state.get("fitted_", False):
            state["kernel"].update(state["layout"].flat(np.asarray(state["theta"], dtype=float)))
        super().__setstate__(state)

    # --- refitting (model comparison, drop1, resampling) ---------------------------------
    def refit_formula(self: _Self, formula: str, reml: bool | None = None) -> _Self:
        """The same rows, weights, offset and options with another formula; a refit's response
        carries over when the response expression is the same."""
        import inspect

        from .frame import frame_for_formula

        frame_args = inspect.signature(model_frame).parameters  # the rest: optimiser controls
        optctrl = {k: v for k, v in self.options.items() if k not in frame_args}
        with large_data_blas(self.frame.nobs):
            frame = frame_for_formula(self.frame, formula, self.options)
            model = type(self)(
                frame, reml=self.reml if reml is None else reml, options=self.options, control=self.control
            )
            return model.fit(**optctrl)

    def refit_ml(self: _Self) -> _Self:
        """This model refitted by maximum likelihood (itself if it already is).

        Returns
        -------
        LinearMixedModel
            The ML fit of the same formula and rows (lme4's ``refitML``).
        """
        return self if not self.reml else self.refit_formula(self.frame.parsed.formula, reml=False)

    def refit(self: _Self, y: np.ndarray, start=None) -> _Self:
        """A new model on response ``y`` (copied), same design (lme4's ``refit(m, newresp)``):
        what ``lmer`` on the data with the new response gives, without re-parsing or
        recomputing Z'Z.

        Parameters
        ----------
        y : array-like
            The new response, one value per row used by the fit (``simulate`` gives these).
        start : array-like, optional
            Starting θ; default this fit's θ (an unfitted template: a moment start).

        Returns
        -------
        LinearMixedModel
            A new fitted model; this one is unchanged.

        Examples
        --------
        >>> import mmfast
        >>> m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", mmfast.datasets.load("sleepstudy"))
        >>> same = m.refit(m.frame.y)
        >>> bool(abs(same.fixef["Days"] - m.fixef["Days"]) < 1e-6)
        True
        """
        new = self.with_response(y)
        if start is None and self.fitted_:
            start = self.theta
        return new.fit(start=start)

    def with_response(self: _Self, y) -> _Self:
        """An unfitted model of this class on response ``y`` (copied), same design: X's
        factorisation and Z'Z, Z'X are shared (what ``refit`` fits)."""
        from .frame import with_response

        return type(self)(
            with_response(self.frame, y), reml=self.reml, options=self.options, design=self, control=self.control
        )

    def with_fixed(self: _Self, X, data=None) -> _Self:
        """An unfitted model of this class with fixed-effects matrix ``X`` (n x p; same rows,
        y, Z, weights, offset, REML flag; ``data``: the rows as a table, for refits by
        formula): Z'Z is shared, X's factorisation and Z'[Q r] are new."""
        X = np.ascontiguousarray(X, dtype=float)
        if X.shape != self.frame.X.shape:
            raise DataError(f"X has shape {X.shape}, the model's is {self.frame.X.shape}")
        table = self.frame.table if data is None else Columns.of(data)
        frame = dataclasses.replace(self.frame, X=X, table=table)
        return type(self)(frame, reml=self.reml, options=self.options, design=self, control=self.control)

    def with_frame(self: _Self, frame: ModelFrame) -> _Self:
        """An unfitted model of this class on ``frame`` (this REML flag, options and control)."""
        return type(self)(frame, reml=self.reml, options=self.options, control=self.control)

    def subset(self: _Self, rows) -> _Self:
        """An unfitted model of this class on ``rows`` (a boolean mask or positions of this
        model's rows): lmer's design on those rows, selected from this one where that is
        exactly lmer's, else the formula run on the rows (``subset.frame_on_rows``)."""
        from .subset import frame_on_rows

        return self.with_frame(frame_on_rows(self.frame, rows, self.options))

    # --- criteria ------------------------------------------------------------------------
    @property
    def ml_deviance(self) -> float:
        """-2 × the maximum-likelihood log-likelihood at this fit's parameters."""
        return profiled_deviance(
            self._ldL2, self._ldRX2, self._log_pwrss, self.nobs, self.frame.X.shape[1], False, self._logw
        )

    @property
    def reml_criterion(self) -> float | None:
        """lme4's ``REMLcrit``: -2 × the REML log-likelihood; None for an ML fit."""
        if not self.reml:
            return None
        return profiled_deviance(
            self._ldL2, self._ldRX2, self._log_pwrss, self.nobs, self.frame.X.shape[1], True, self._logw
        )

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML or ML, as fitted; R's ``logLik``)."""
        return -0.5 * (self.reml_criterion if self.reml else self.ml_deviance)

    @property
    def deviance(self) -> float:
        """-2 logLik for ML fits; for REML fits the ML deviance at the REML estimates (lme4)."""
        return self.ml_deviance

    @property
    def objective_value(self) -> float:
        """The minimised criterion: the REML criterion or the ML deviance."""
        return self.reml_criterion if self.reml else self.ml_deviance

    @property
    def npar(self) -> int:
        """Number of parameters: β, θ and σ (the ``npar`` column of ``anova``)."""
        return len(self.beta) + len(self.theta) + 1

    @property
    def vcov_array(self) -> np.ndarray:
        p = len(self.beta)
        if p == 0:
            return np.zeros((0, 0))
        return self.sigma**2 * cho_solve((self._R, False), np.eye(p))

    def _ainv_diag_blocks(self) -> list[np.ndarray]:
        """Diagonal p_k x p_k blocks of A⁻¹ per term, as arrays (levels, p, p)."""
        return fitted_kernel(self).selinv_blocks(self.frame.terms)

    def condvar(self) -> list[np.ndarray]:
        """Conditional covariance of b per term: array (levels, p, p) = σ² T (A⁻¹)_blk T'."""
        return self._condvar

    @cached_property
    def _condvar(self) -> list[np.ndarray]:
        return [
            self.sigma**2 * np.einsum("ij,ljk,mk->lim", T, blocks, T)
            for T, blocks in zip(self.layout.templates(self.theta), self._ainv_diag_blocks())
        ]


def _with_response_blocks(blocks, terms, Q, yres, sqrtw, new_x: bool = False):
    """``blocks`` with the response column of Z'W and W'W replaced (W = [Q yres]), or with
    all of them for a new X (``new_x``); Z'Z (V) and the index arrays are shared."""
    p = Q.shape[1]
    if new_x:
        W = np.column_stack([Q, yres])
        return dataclasses.replace(blocks, ZtW=zt_times(terms, W, sqrtw), WtW=W.T @ W)
    ZtW = np.asfortranarray(blocks.ZtW.copy())
    ZtW[:, p] = zt_times(terms, yres[:, None], sqrtw)[:, 0]
    WtW = blocks.WtW.copy()
    WtW[:p, p] = WtW[p, :p] = Q.T @ yres
    WtW[p, p] = yres @ yres
    return dataclasses.replace(blocks, ZtW=ZtW, WtW=WtW)


def fit_lmm(
    model_class,
    formula: str,
    data,
    reml: bool = True,
    frame_args: dict | None = None,
    start=None,
    control: LmmControl | None = None,
    call_labels=None,
    **optctrl,
):
    """``lmer``'s work (``mmfast.api.lmer`` checks the arguments and documents them): the
    frame (``frame_args``: model_frame's weights, offset, check_nobs_vs_nre; api holds their
    defaults), a ``model_class`` model on it (a LinearMixedModel), its fit.  ``call_labels``:
    what summary prints of the call (``callnames.CallLabels``), set before the fit seals it."""
    with large_data_blas(getattr(data, "shape", (0,))[0]):
        frame_args = {} if frame_args is None else frame_args  # weights, offset, check_nobs_vs_nre
        frame = model_frame(formula, data, **frame_args)
        options = {"check_nobs_vs_nre": frame_args.get("check_nobs_vs_nre", "stop"), **optctrl}
        model = model_class(frame, reml=reml, options=options, control=control)
        if call_labels is not None:
            model.call_labels = call_labels
        if start is not None:  # θ's names (a few small functions) only for a message about it
            start = check_start(start, model.theta_lower, model.theta_names)
        return model.fit(start=start, **optctrl)

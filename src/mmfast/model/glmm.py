"""Generalized linear mixed models: ``mmfast.glmer``, lme4's ``glmer`` in Python.

Fitting follows lme4's two stages (``glmm_fit``, tuned by a ``GlmmControl``):

1. θ only, with β estimated inside PIRLS (the nAGQ = 0 criterion), by BOBYQA;
2. the Laplace (or, ``n_agq > 1``, adaptive Gauss-Hermite) deviance over (θ, β) jointly, from
   stage 1's answer.  β is optimised in whitened coordinates β = β₁ + R_X⁻¹ δ (R_X from stage 1),
   so the problem is close to isotropic and BOBYQA needs few evaluations.  With several
   random-effects terms and a canonical link (binomial-logit, Poisson-log) the Laplace
   deviance has an analytic gradient (``laplace_gradient``): stage 2 is then quasi-Newton from
   a start Hessian (L-BFGS-B if it ends near a bound) and the Hessian below comes from
   forward differences of the gradient (n + 1 evaluations instead of n² + n).

Then a central finite-difference Hessian of the deviance over (θ, δ) gives the gradient check,
one Newton correction (accepted only if it lowers the deviance) and, as in lme4, the
covariance of β̂ (2 H⁻¹; the R_X-based one when H is not positive definite or for n_agq = 0).
θ components on the boundary (singular fits) are held fixed in the Hessian.  If the optimiser
fails or the gradient check fails, the optimisation is restarted from the best point (a fresh
BOBYQA trust region, tighter tolerances, more evaluations, Nelder-Mead if BOBYQA itself fails:
lme4's advice to its users), noted in ``optinfo["notes"]``; a ``ConvergenceWarning`` is issued
only if the gradient check at the final estimate still fails.

Where mmfast and lme4 differ (all deliberate, see also ``pirls`` and ``families``):

* lme4's reported Laplace deviance takes log|L|² from the PIRLS factorisation one iterate
  before the final mode (its convergence test is on the relative change of the penalised
  deviance, 1e-7); mmfast iterates until the step is below 1e-10 and factors at the mode, so its
  deviance is the Laplace approximation itself.  The difference is 1e-6 to 1e-3 in deviance
  (VerbAgg: 7.6e-4, checked in R), so estimates agree to 1e-5..1e-3 and mmfast's logLik is never
  below lme4's; glmmTMB (exact Laplace by AD) agrees with mmfast to 1e-6.
* Standard errors come from a Hessian computed in whitened coordinates with PIRLS converged to
  1e-10 (lme4: absolute steps of 1e-4 and PIRLS tolerance 1e-7), so they match glmmTMB's exact
  ones to ~1e-5 where lme4's carry finite-difference noise up to ~3e-3.
* For n_agq > 1 the log-likelihood is the integrated one (lme4 reports it minus the saturated
  log-likelihood, lme4 issue #161).
* Gamma (inverse/identity link): θ is optimised in units of the response (``pirls.theta_scale``),
  so y and 1e-6 y give the same fit (lme4 fails at 1e6 y; its SEs at 1e-6 y are off).
* Separation: the diverging fixed-effect direction is held once PIRLS stalls (``separation``).
* Families with a dispersion parameter (negative binomial, nbinom1, beta): it is estimated by
  ML as an outer parameter over these fits (``dispersion``); their Laplace approximation uses
  the observed information (glmmTMB's exact Laplace), ``glmer_nb`` the expected one (lme4's).
"""

from __future__ import annotations

from typing import TypeVar

import dataclasses
import gc
import time
from functools import cached_property

import numpy as np

from ..arguments import check_start
from ..design.blocks import build_Z
from ..design.theta import ThetaLayout
from ..errors import ArgumentError, ConvergenceWarning, DataError, ModelSpecError, SingularFitWarning
from ..threads import limit_fit_threads
from ..families import Family, get_family
from .agq import check_agq, gauss_hermite
from .frame import model_frame, with_response
from . import dispersion, glmm_fit
from .control import GlmmControl, check_control
from .glmm_fit import warn_at_caller
from .optsummary import glmm_summary, optinfo_property
from .one_term import OneTermKernel
from .pirls import KernelLoop, make_engine, theta_scale
from .glmm_predict import GlmmPrediction, wald_odds_ratios  # noqa: F401  (re-exported)
from .results import MixedModelResults
from .subset import frame_on_rows
from .separation import check_response_not_constant

_Self = TypeVar("_Self", bound="GeneralizedLinearMixedModel")  # refits build the caller's class (api's)

__all__ = ["GeneralizedLinearMixedModel", "fit_glmm", "wald_odds_ratios"]


class GeneralizedLinearMixedModel(GlmmPrediction, MixedModelResults):
    """A GLMM g(E[y | b]) = Xβ + Zb with b = Λθ u, u ~ N(0, I), fitted by Laplace or AGQ."""

    dispersion_se = dispersion_log_se = None  # an estimated dispersion's SE (dispersion.fit)

    def with_response(self: _Self, y) -> _Self:
        """An unfitted model of this class on response ``y`` (copied; same rows, formula,
        weights, offset, family, n_agq and options)."""
        return self.with_frame(with_response(self.frame, y))

    def with_fixed(self: _Self, X) -> _Self:
        """An unfitted model of this class with fixed-effects matrix ``X`` (n x p; same rows,
        response, Z, weights, offset, family)."""
        X = np.ascontiguousarray(X, dtype=float)
        if X.shape != self.frame.X.shape:
            raise DataError(f"X has shape {X.shape}, the model's is {self.frame.X.shape}")
        return self.with_frame(dataclasses.replace(self.frame, X=X))

    def with_frame(self: _Self, frame) -> _Self:
        """An unfitted model of this class on ``frame`` (this family, n_agq and options)."""
        return type(self)(frame, self.family, n_agq=self.n_agq, options=self.options, control=self.control)

    def subset(self: _Self, rows) -> _Self:
        """An unfitted model of this class on ``rows`` (a boolean mask or positions of this
        model's rows): glmer's design on those rows (``subset.frame_on_rows``)."""
        kind = "binary" if self.family == "binomial" else "numeric"
        return self.with_frame(frame_on_rows(self.frame, rows, self.options, response_kind=kind))

    def refit(self: _Self, y, start=None) -> _Self:
        """The same model fitted to a new response (same formula, data, weights, offset, family),
        from θ = ``start``, else this fit's θ (lme4's ``refit(object, newresp)``).

        Parameters
        ----------
        y : array-like
            The new response, one value per row used by the fit (as ``simulate`` gives it).
        start : array-like, optional
            Starting θ; by default this fit's.

        Returns
        -------
        GeneralizedLinearMixedModel
            A new fitted model; this one is unchanged.
        """
        theta = self.theta if start is None else np.asarray(start, dtype=float)
        return self.with_response(y).fit(start=theta)

    def __init__(
        self, frame, family: Family, n_agq: int = 1, options: dict | None = None, control: GlmmControl | None = None
    ):
        if not frame.terms:
            raise ModelSpecError("no random-effects terms in the formula: this is a GLM")
        self.frame = frame
        self.family = family
        self.link = family.link.name
        self.use_scale = family.has_scale
        self.n_agq = check_agq(n_agq, frame.terms, family)
        self.options = dict(options or {})
        self.control = check_control(control, GlmmControl)  # how it is fitted (tolerances...)
        y, pw, ntr, mustart = family.initialize(frame.y, frame.weights, frame.y_extra, frame.parsed.response)
        self.y, self.prior_weights, self.trials = y, pw, ntr
        if family.dispersion_name:  # the model's own copy, at its starting dispersion
            self.family = family = family.with_value(family.value or family.start_dispersion(y, pw))
        with np.errstate(all="ignore"):
            eta0 = family.linkfun(mustart)
        self.eta_start = eta0
        self.layout = ThetaLayout(frame.terms)  # θ's slices, bounds, start, names, templates
        self.engine = make_engine(frame, family, y, pw, ntr, eta0, self.layout)
        self.theta_lower, self.theta_start = self.layout.lower, self.layout.start
        self.approximation = (
            "Laplace Approximation"
            if self.n_agq == 1
            else "Laplace Approximation, nAGQ = 0: fixed effects estimated in PIRLS"
            if self.n_agq == 0
            else f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.n_agq}"
        )
        self.fitted_ = False

    # --- pickling: the compiled PIRLS engine is rebuilt and put back at the optimum ------------
    def __getstate__(self):
        state = super().__getstate__()
        state["engine"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)  # the engine is rebuilt, then a fitted model sealed
        self.__dict__.setdefault("control", GlmmControl())  # pickled before controls existed
        _, _, _, mustart = self.family.initialize(
            self.frame.y, self.frame.weights, self.frame.y_extra, self.frame.parsed.response
        )
        with np.errstate(all="ignore"):
            eta0 = self.family.linkfun(mustart)
        self.engine = make_engine(self.frame, self.family, self.y, self.prior_weights, self.trials, eta0, self.layout)
        if self.n_agq > 1:
            self.engine.set_agq(*gauss_hermite(self.n_agq))
        if not getattr(self, "fitted_", False):
            return
        if self._xhat is not None:
            self.engine.set_transform(self._beta1, self._Binv)
            self.engine.laplace(self._xhat)
        else:
            self.engine.joint(self.theta)
        self._finish_fit()

    # --- fitting ---------------------------------------------------------------------------
    def fit(self, start=None) -> "GeneralizedLinearMixedModel":
        """Two-stage fit (see the module docstring); the cyclic GC is paused meanwhile and the
        BLAS/OpenMP threads held at ``threads.fit_threads`` (a one-term engine has no dense part
        beyond β; the kernel engine's order is its LMM kernel's)."""
        if self.sealed:  # read-only once fitted: a new fit to the same response
            return self.with_response(self.frame.y).fit(start=start)
        gc_was_on = gc.isenabled()
        gc.disable()
        kernel = getattr(getattr(self.engine, "kernel", None), "kj", None)  # GeneralKernel's
        dense = 0 if kernel is None else getattr(kernel, "dense_size", None)
        try:
            # a kernel engine factors its dense part in every PIRLS iteration, and OpenBLAS
            # threads a 200 x 200 dpotrf already (50x slower on a busy machine): min_q 0
            limit = (dense, sum(t.q for t in self.frame.terms)) + (() if kernel is None else (0,))
            with limit_fit_threads(*limit):
                return self._fit(start)
        finally:
            if gc_was_on:
                gc.enable()

    def _fit(self, start=None) -> "GeneralizedLinearMixedModel":
        if self.family.dispersion_name:
            dispersion.fit(self, start)
        else:
            glmm_fit.fit(self, start)
        self._finish_fit()
        return self

    @property
    def dispersion(self) -> float | None:
        """The family's dispersion parameter at the fit (negative binomial: θ), else None."""
        return self.family.value if self.family.dispersion_name else None

    def dispersion_confint(self, level: float = 0.95) -> tuple[float, float]:
        """Profile-likelihood interval of the estimated dispersion (``dispersion.profile_interval``:
        the variance components and β re-estimated along it)."""
        return dispersion.profile_interval(self, level)

    optinfo = optinfo_property

    @property
    def singular(self) -> bool:
        """lme4's ``isSingular`` (a template diagonal below 1e-4), in the optimiser's θ units:
        for Gamma with the inverse/identity link θ carries y's units (``pirls.theta_scale``),
        and a fit must not turn singular by changing them."""
        diag = np.isfinite(self.theta_lower)
        scale = theta_scale(self.family, self.y, self.prior_weights)
        if not self.layout.linear:  # a structure: also a correlation matrix near singular
            return self.layout.singular(self.theta / np.where(self.layout.diagonal, scale, 1.0))
        return bool((self.theta[diag] < 1e-4 * scale).any())

    def _finish(self, x, info, check, t0):
        eng = self.engine
        nth, p = len(self.theta_lower), self.frame.X.shape[1]
        self._xhat = np.array(x, dtype=float)
        self._objective = eng.laplace(x)  # leaves the engine's state at the estimate
        self.theta = np.array(x[:nth], dtype=float)
        self.beta = eng.beta_
        self._set_state(info, check, t0)
        V = None
        if check.get("pd") and len(check["free"]):
            Hinv = np.linalg.inv(check["hessian"])
            s0 = int(np.searchsorted(check["free"], nth))  # free is sorted: β's are its tail
            if len(check["free"]) - s0 == p and p:
                Vd = 2.0 * Hinv[s0:, s0:]
                V = self._Binv @ Vd @ self._Binv.T
                V = 0.5 * (V + V.T)
                if np.linalg.eigvalsh(V).min() <= 0:
                    V = None
        if V is None and p:
            info["notes"].append("vcov from R_X (finite-difference Hessian not usable)")
        self._vcov = V if V is not None else self._rx_vcov()

    def _finish_joint(self, theta, fval, info, t0):
        self._xhat = None
        self._objective = fval
        self.theta = np.array(theta, dtype=float)
        self.beta = self.engine.beta_
        if not self.converged:
            warn_at_caller(f"model failed to converge: {info['stage1']['message']}", ConvergenceWarning)
        self._set_state(info, {"ok": self.converged, "message": info["stage1"]["message"]}, t0)
        self._vcov = self._rx_vcov()

    def _rx_vcov(self):
        p = self.frame.X.shape[1]
        if p == 0:
            return np.zeros((0, 0))
        M = self.engine.rx_matrix()
        return np.linalg.inv(M) * self.sigma**2

    def _set_state(self, info, check, t0):
        eng = self.engine
        self.u = eng.u_
        self.b = self._lambda_times(self.u)
        self._eta = eng.eta_
        self._ldL2, self._sqrL = eng.ldL2, eng.sqrL
        for name in ("_condvar", "vcov_rx", "_mu", "_devres"):  # cached_property of the fit
            self.__dict__.pop(name, None)
        self.optsummary = glmm_summary(
            info,
            check,
            eng,
            self.__dict__.pop("_opt_start", self.theta_start),
            self.theta,
            self._objective,
            time.perf_counter() - t0,
        )
        self.fitted_ = True
        if self.singular:
            warn_at_caller("boundary (singular) fit: see help('isSingular')", SingularFitWarning)

    @cached_property
    def _mu(self) -> np.ndarray:
        """The fitted means linkinv(η) at the fit (derived when first read)."""
        return self.family.linkinv(self._eta)

    @cached_property
    def _devres(self) -> np.ndarray:
        """The deviance residuals at the fit (derived when first read)."""
        return self.family.dev_resids(self.y, self._mu, self.prior_weights)

    def _lambda_times(self, u):
        out = np.empty_like(u)
        for t, T in zip(self.frame.terms, self.layout.templates(self.theta)):
            blk = u[t.offset : t.offset + t.q].reshape(t.nlevels, t.p)
            out[t.offset : t.offset + t.q] = (blk @ T.T).ravel()
        return out

    @cached_property
    def Z(self):
        """The random-effects model matrix (sparse, n x q), built when first needed."""
        return build_Z(self.frame.terms, self.frame.nobs)

    # --- criteria --------------------------------------------------------------------------
    @property
    def loglik(self) -> float:
        """Laplace (n_agq = 1), proper AGQ (n_agq > 1) or nAGQ = 0 log-likelihood."""
        return -0.5 * self._objective

    @property
    def objective_value(self) -> float:
        return self._objective

    @property
    def deviance(self) -> float:
        """lme4's ``deviance()`` of a GLMM: the sum of squared deviance residuals at the fit."""
        return float(np.sum(self._devres))

    @property
    def npar(self) -> int:
        estimated = bool(self.family.dispersion_name) and self.family.estimated
        return len(self.beta) + len(self.theta) + int(self.use_scale) + int(estimated)

    @property
    def df_residual(self) -> int:
        return self.nobs - self.npar

    @property
    def sigma(self) -> float:
        """1 for binomial/Poisson; Gamma: sqrt((Pearson χ² + |u|²) / n) as lme4 reports it."""
        if not self.use_scale:
            return 1.0
        wrss = float(np.sum(self.prior_weights * (self.y - self._mu) ** 2 / self.family.variance(self._mu)))
        return float(np.sqrt((wrss + self._sqrL) / self.nobs))

    @property
    def vcov_array(self) -> np.ndarray:
        """Covariance of β̂: 2 H⁻¹ from the Hessian of the deviance, as lme4 (or ``vcov_rx``)."""
        return self._vcov

    @cached_property
    def vcov_rx(self) -> np.ndarray:
        """σ² (R_X'R_X)⁻¹ at the fit: lme4's ``vcov(m, use.hessian = FALSE)``."""
        return self._rx_vcov()

    def condvar(self) -> list[np.ndarray]:
        """Conditional covariance of b per term (levels, p, p) = σ² T A_j⁻¹ T'."""
        return self._condvar

    @cached_property
    def _condvar(self) -> list[np.ndarray]:
        eng = self.engine
        if isinstance(eng, KernelLoop):
            blocks = eng.ainv_blocks()
        else:  # the one-term engine's converged per-level factors, read through the interface
            blocks = OneTermKernel.from_factors(eng.factor_blocks(), self.layout.flat(self.theta)).selinv_blocks()
        return [
            self.sigma**2 * np.einsum("ij,ljk,mk->lim", T, blk, T)
            for T, blk in zip(self.layout.templates(self.theta), blocks)
        ]

    # --- refitting (anova, drop1) ----------------------------------------------------------
    def refit_formula(self: _Self, formula: str) -> _Self:
        """The same data (rows this fit used), family, weights, offset and n_agq; new formula."""
        from .frame import frame_for_formula

        frame = frame_for_formula(
            self.frame, formula, self.options, response_kind="binary" if self.family == "binomial" else "numeric"
        )
        model = type(self)(frame, self.family, n_agq=self.n_agq, options=self.options, control=self.control)
        return model.fit()

    def refit_ml(self: _Self) -> _Self:
        """GLMMs are always fitted by maximum likelihood: the model itself."""
        return self

    def deviance_at(self, theta, beta, restore: bool = True) -> float:
        """The fit's criterion (-2 × Laplace or AGQ log-likelihood; Laplace for n_agq = 0) at
        (θ, β), u at its conditional mode; the fitted state is restored afterwards (``restore``
        False: left at (θ, β) for a run of evaluations that ends with ``restore_fit_state``)."""
        eng = self.engine
        theta, beta = np.asarray(theta, dtype=float), np.asarray(beta, dtype=float)
        if theta.shape != self.theta.shape or beta.shape != self.beta.shape:
            raise ArgumentError(f"theta needs {len(self.theta)} and beta {len(self.beta)} values")
        p = len(self.beta)
        eng.set_transform(np.zeros(p), np.eye(p))
        try:
            val = eng.laplace(np.concatenate([theta, beta]))
        finally:
            if restore:
                self.restore_fit_state()
        return float(val)

    def restore_fit_state(self) -> None:
        """Put the engine back at the fit (β transform, θ̂, conditional modes)."""
        eng = self.engine
        if self._xhat is not None:
            eng.set_transform(self._beta1, self._Binv)
            eng.laplace(self._xhat)
        else:
            eng.joint(self.theta)

    def __deepcopy__(self, memo):
        # A fitted model is shared, not copied: pandas deep-copies DataFrame.attrs (where
        # anova() keeps the models) on every indexing, and the Cython engine cannot be copied.
        return self

    def __repr__(self) -> str:
        return (
            f"<GeneralizedLinearMixedModel {self.frame.parsed.formula!r} ({self.family.name}, "
            f"{self.link}, nAGQ={self.n_agq}), nobs={self.nobs}, logLik={self.loglik:.4f}>"
        )


def fit_glmm(
    model_class,
    formula: str,
    data,
    family,
    n_agq: int,
    frame_args: dict,
    level_checks: dict,
    start,
    control: GlmmControl | None,
    call_labels,
):
    """``glmer``'s work (``mmfast.api.glmer`` checks the arguments, documents them and holds
    their defaults): the frame (``frame_args``: weights, offset, check_nobs_vs_nre;
    ``level_checks``: check_nobs_vs_nlev, check_nlev_gtr_1), a ``model_class`` model on it
    (a GeneralizedLinearMixedModel), its fit (``call_labels``: see ``lmm.fit_lmm``)."""
    fam = get_family(family)
    checks = {**level_checks, "allow_n": True}
    response_kind = "binary" if fam == "binomial" else "numeric"
    frame = model_frame(formula, data, **frame_args, level_checks=checks, response_kind=response_kind)
    check_response_not_constant(frame, fam)
    options = {**frame_args, "level_checks": checks}  # model_frame's arguments: refits (drop1, anova) reuse them
    model = model_class(frame, fam, n_agq=n_agq, options=options, control=control)
    if call_labels is not None:
        model.call_labels = call_labels
    if start is not None:  # θ's names (a few small functions) only for a message about it
        start = check_start(start, model.theta_lower, model.theta_names)
    return model.fit(start=start)

"""Refit a fitted mixed model to a new response, same design: LMMs and GLMMs alike.

Both build a new model on ``with_response(frame, y)`` (the frame with y copied in, so the
refit is the fit ``lmer``/``glmer`` give on the data with the new response, and later changes
to the caller's array do not reach it): no re-parsing, no new design matrices
(``LinearMixedModel.refit`` also shares X's QR and Z'Z), and the fit starts from the original
θ, as lme4's ``refit(object, newresp)`` does.  ``Refitter`` is the picklable form sent to worker
processes (a GLMM's compiled PIRLS engine cannot be pickled; its frame and family can).

The new response is given as the model frame holds it: numbers for an LMM (offset included);
for a binomial GLMM 0/1 (or proportions with ``weights`` = trials) or, for a
``cbind(successes, failures)`` response, the successes (the trials are kept); counts for Poisson.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, DataError

__all__ = ["model_kind", "refit_response", "Refitter", "LoglikRefitter"]

FTOL, XTOL = 1e-8, 1e-4  # the lean GLMM refit's BOBYQA tolerances (deviance, coordinates)


def model_kind(model) -> str:
    """``"lmm"`` or ``"glmm"`` (anything else is refused with a clear message)."""
    from ..model.glmm import GeneralizedLinearMixedModel
    from ..model.lmm import LinearMixedModel

    if isinstance(model, LinearMixedModel):
        return "lmm"
    if isinstance(model, GeneralizedLinearMixedModel):
        return "glmm"
    raise ArgumentError(f"expected a fitted mmfast.lmer or mmfast.glmer model, not {type(model).__name__}")


def _check_response(model, y) -> np.ndarray:
    y = np.asarray(y, dtype=float).ravel()
    if y.shape != model.frame.y.shape:
        raise DataError(f"new response has {y.size} values, the model has {model.frame.nobs} rows")
    if not np.all(np.isfinite(y)):
        raise DataError("new response has non-finite values")
    return y


def refit_response(model, y, start=None):
    """The model refitted to response ``y`` (same formula, data, weights, offset, family)."""
    model_kind(model)
    return model.refit(_check_response(model, y), start=start)


class Refitter:
    """A picklable ``y -> refitted model`` for one fitted model (sent to worker processes)."""

    def __init__(self, model):
        self.kind = model_kind(model)
        self.nobs = model.frame.nobs
        self.model = model  # a GLMM pickles without its compiled engine (rebuilt on arrival)

    def __call__(self, y, start=None):
        """The model refitted to y, from θ = ``start`` (default: the original estimate)."""
        return self.model.refit(y, start=start)


class LoglikRefitter:
    """A picklable ``y -> (maximised log-likelihood, θ̂, β̂)``: what likelihood ratios need.

    LMMs: ``refit(y)``.  Laplace GLMMs: only glmer's second stage (the Laplace deviance over θ
    and β jointly, BOBYQA in glmer's whitened β coordinates), started at the given (θ, β) or at
    the original estimates, without the Hessian glmer computes for standard errors; if that
    optimisation does not converge, the full ``refit_response`` is used instead.
    """

    def __init__(self, model):
        self.full = Refitter(model)
        self.theta_hat = np.array(model.theta, dtype=float)
        self.beta_hat = np.array(model.beta, dtype=float)
        self.theta_names = list(model.theta_names)
        self.fixef_names = list(model.frame.fixef_names)
        self.lean = self.full.kind == "glmm" and model.n_agq == 1 and getattr(model, "_xhat", None) is not None
        self.lean = self.lean and not getattr(model.family, "estimated", False)  # a dispersion to re-estimate
        self.hessian = None
        if self.lean:
            self.frame, self.family = model.frame, model.family
            self.x0 = np.array(model._xhat, dtype=float)
            self.beta1, self.Binv = np.array(model._beta1), np.array(model._Binv)
            nth = len(model.theta)
            self.lower = np.concatenate([model.theta_lower, np.full(len(self.x0) - nth, -np.inf)])
            ctl = model.control  # the original fit's steps (glmm_fit's stage 2)
            self.fd_step = ctl.fd_step
            self.step = np.concatenate(
                [np.maximum(ctl.step_theta * np.abs(self.x0[:nth]), 0.05), np.full(len(self.x0) - nth, ctl.step_delta)]
            )
            self.hessian = self._start_hessian(model.frame.y)

    def __call__(self, y) -> float:
        return self.fit(y)[0]

    def fit(self, y, start=None) -> tuple[float, np.ndarray, np.ndarray]:
        """(log-likelihood, θ̂, β̂) for response y; ``start`` = (θ, β) or None."""
        if not self.lean:
            m = self.full(y, None if start is None else start[0])
            return float(m.loglik), np.asarray(m.theta), np.asarray(m.beta)
        from ..model.optimize import minimize_bounded, minimize_newton

        eng = self._engine_for(y)
        x0 = self.x0
        if start is not None:
            theta, beta = np.asarray(start[0], dtype=float), np.asarray(start[1], dtype=float)
            x0 = np.concatenate(
                [np.maximum(theta, self.lower[: len(theta)]), np.linalg.solve(self.Binv, beta - self.beta1)]
            )
        res = None
        if self.hessian is not None:  # analytic gradient: quasi-Newton, a handful of evaluations
            res = minimize_newton(eng.laplace_grad, x0, self.lower, self.hessian)
        if res is None or not (res.converged and np.isfinite(res.fun)):
            res = minimize_bounded(eng.laplace, x0, self.lower, ftol_abs=FTOL, xtol_abs=XTOL, step=self.step)
        if not (res.converged and np.isfinite(res.fun)):
            m = self.full(y)
            return float(m.loglik), np.asarray(m.theta), np.asarray(m.beta)
        nth = len(self.theta_hat)
        x = res.x
        return -0.5 * float(res.fun), x[:nth].copy(), self.beta1 + self.Binv @ x[nth:]

    def _start_hessian(self, y):
        """The Laplace deviance's Hessian at the original fit (differences of the analytic
        gradient), the start of the quasi-Newton refits; None when the engine has no analytic
        gradient.  A θ held at its bound there gets a unit curvature (BFGS corrects it)."""
        from ..model.pirls import gradient_hessian

        eng = self._engine_for(y)
        if not eng.has_gradient:
            return None
        fx = eng.laplace(self.x0)
        idx, _, H = gradient_hessian(eng, self.x0, fx, self.lower, len(self.theta_hat), self.fd_step)
        full = np.eye(len(self.x0))
        full[np.ix_(idx, idx)] = H
        try:
            np.linalg.cholesky(full)
        except np.linalg.LinAlgError:
            return None
        return full

    def _engine_for(self, y):
        """The PIRLS engine at response y: built once per refitter, then only reset."""
        from ..model.pirls import make_engine, make_response

        fr, fam = self.frame, self.family
        y2, pw, ntr, mustart = fam.initialize(np.asarray(y, dtype=float), fr.weights, fr.y_extra, fr.parsed.response)
        with np.errstate(all="ignore"):
            eta0 = fam.linkfun(mustart)
        eng = self.__dict__.get("_engine")
        if eng is None:
            eng = self._engine = make_engine(fr, fam, y2, pw, ntr, eta0)
            eng.set_transform(self.beta1, self.Binv)
        else:
            eng.reset(make_response(fam, y2, pw, ntr), eta0)
        return eng

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_engine", None)  # compiled, not picklable: rebuilt in the worker
        return state

    def start_from(self, other: "LoglikRefitter"):
        """A map (θ, β) of ``other`` (a nested model) -> a start for this model, or None.

        Shared parameters (matched by name) keep the nested model's values; fixed effects it
        lacks start at 0, variance parameters it lacks at this model's estimates.
        """
        if not (set(other.theta_names) <= set(self.theta_names) and set(other.fixef_names) <= set(self.fixef_names)):
            return None
        it = [other.theta_names.index(n) if n in other.theta_names else -1 for n in self.theta_names]
        ib = [other.fixef_names.index(n) if n in other.fixef_names else -1 for n in self.fixef_names]
        return _Embedding(np.array(it, dtype=int), np.array(ib, dtype=int), self.theta_hat)


class _Embedding:
    """(θ, β) of a nested model -> (θ, β) of the larger one (picklable, see ``start_from``)."""

    def __init__(self, it, ib, theta_hat):
        self.it, self.ib, self.theta_hat = it, ib, theta_hat

    def __call__(self, theta, beta):
        th = np.where(self.it >= 0, np.asarray(theta)[np.maximum(self.it, 0)], self.theta_hat)
        be = np.where(self.ib >= 0, np.asarray(beta)[np.maximum(self.ib, 0)], 0.0)
        return th, be

"""How an LMM's θ is optimised: the start (moment estimate, lme4's), BOBYQA or Newton steps,
the rescaling of θ for Z columns of extreme size, and the safety restarts that keep a fit
from stopping at a boundary local optimum (issue 14).  Mixed into ``LinearMixedModel``, which
provides the criterion, the kernel and ``_set_theta``.
"""

from __future__ import annotations

import math
import time
from functools import cached_property
import warnings
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConvergenceWarning, FitError, SingularFitWarning
from ..threads import limit_fit_threads
from .optimize import minimize_bounded, minimize_log_newton, minimize_with_gradient
from .optsummary import OptStage, OptSummary, optinfo_property
from .start import moment_start

if TYPE_CHECKING:  # the class this is mixed into (annotations only)
    from .lmm import LinearMixedModel

__all__ = ["FitStrategy"]

THETA_SCALE_RANGE = 2.0**10  # a random-effects column of size outside 1/this..this: θ rescaled
MOMENT_STEP = 0.1  # BOBYQA's first steps from a moment start, relative to |θ₀| (at least 0.1)
BOUNDARY_SHARE = 1e-3  # a Newton result's SD ratio below this share of the largest: start at 0
NEAR_BOUNDARY = 1e-2  # a standard deviation ratio below this: the fit is rerun from another start
NEWTON_DECREMENT = 1e-10  # Newton steps stop when g'H⁻¹g left after the final step is below


class FitStrategy:
    """The ``fit`` of ``LinearMixedModel`` and the optimisation steps behind it."""

    def fit(self, start=None, **optctrl) -> "LinearMixedModel":
        """Minimise the criterion over θ and compute the results: from ``start``, else from a
        moment estimate (else lme4's start), by BOBYQA, Newton steps for large models or
        L-BFGS-B for many θ (``LmmControl.many_theta``).
        A fit near the boundary, or one whose start was not lme4's, is checked against
        lme4's start (``_safety_restart``); ``optsummary`` records what was done.
        The fitted model is read-only; ``fit`` on it fits a new model to the same response."""
        if self.sealed:
            return self.with_response(self.frame.y).fit(start=start, **optctrl)
        t0 = time.perf_counter()
        x0 = None if start is None else np.asarray(start, dtype=float)
        kind = "user" if x0 is not None else "moment"
        if x0 is None and not optctrl:
            x0 = moment_start(self)
            if x0 is not None:  # near the optimum: BOBYQA's first trust region small
                optctrl = {"step": self._moment_step(x0)}
        if x0 is None or np.array_equal(x0, self._lme4_start()):
            x0, kind = self._lme4_start(), "lme4"
        # gradient fits (hundreds of evaluations for many θ) hold a small dense part to one
        # thread whatever q: kb07's dsyrk/dgemm on 256 rows took 131 s on 2 threads at load 13
        # against 16 s on one (the limit's own cost is paid once)
        min_q = 0 if self.use_gradient else 1000
        with limit_fit_threads(getattr(self.kernel, "dense_size", None), self.blocks.q, min_q):
            self._stages, self._restart, self._extra_evals = [], None, 0
            res = self._optimize(x0, optctrl)
            self._settle(res, start=kind, x0=x0)
            self._safety_restart(kind, optctrl)
        self._record(time.perf_counter() - t0)
        self.converged = self.optsummary.converged
        if not self.converged:
            warnings.warn(f"model failed to converge: {self.optsummary.message}", ConvergenceWarning, stacklevel=3)
        if self.singular:
            warnings.warn("boundary (singular) fit: see help('isSingular')", SingularFitWarning, stacklevel=3)
        self._finish_fit()
        return self

    def _record(self, seconds: float) -> None:
        """``optsummary`` from the runs ``_settle`` recorded (the kept one: ``_best``)."""
        stages, best = tuple(self._stages), self._stages[self._best]
        self.optsummary = OptSummary(
            optimizer=best.optimizer,
            evaluations=sum(s.evaluations for s in stages) + self._extra_evals,
            theta_start=stages[0].start,
            theta_final=self.theta.copy(),
            objective=best.objective,  # θ is the kept run's: its criterion, not a recomputation
            converged=best.converged,
            message=best.message,
            seconds=seconds,
            start_kind=best.name,
            stages=stages,
            restart=self._restart,
        )
        del self._stages, self._restart, self._extra_evals, self._best

    optinfo = optinfo_property

    def _optimize(self, x0, optctrl):
        """One optimisation run from x0: Newton/L-BFGS-B for large models, else BOBYQA, on
        θ·s when ``_theta_scale`` gives s (the answer is mapped back to θ)."""
        if self.use_gradient and set(optctrl) <= {"step"}:
            return self._fit_with_gradient(x0)  # the diagonal in log scale: no rescaling
        s = self._theta_scale()
        if s is None:
            res = minimize_bounded(self.criterion(), x0, self.theta_lower, **optctrl)
        else:
            f = self.criterion()
            ctrl = dict(optctrl)
            if ctrl.get("step") is not None:
                ctrl["step"] = np.asarray(ctrl["step"], dtype=float) * s
            res = minimize_bounded(lambda z: f(z / s), x0 * s, self.theta_lower * s, **ctrl)
            res.x = res.x / s
            res.history = [(x / s, fx) for x, fx in res.history]
        return self._polish_one_parameter(res)

    def _theta_scale(self):
        """Per element of θ, the power of 2 nearest to the size (root mean square) of its
        template row's column of Z, or None when every column's size is within
        THETA_SCALE_RANGE of 1.  A column of Z multiplied by d divides that row of Λ by d, so
        BOBYQA's steps and tolerances (absolute, on θ) only fit θ·s: Days·1e5 in sleepstudy
        gives θ ~ 1e-6 for the slope, which a tolerance of 1e-9 does not resolve."""
        return self._column_sizes[1]

    @cached_property
    def _column_sizes(self):
        """(per term, its columns' power-of-2 scales or None; θ's scale s or None; per element
        of θ its row's column size), computed once (O(n) per column but intercepts)."""
        scales, tsize = [], []
        n = len(self.frame.y)
        for t in self.frame.terms:
            size = np.ones(t.p)  # an intercept column's size is 1
            cols = [j for j, name in enumerate(t.names) if name != "(Intercept)"]
            if cols:
                X = np.asarray(t.X, dtype=float).reshape(n, -1)[:, cols]
                size[cols] = np.sqrt(np.einsum("ij,ij->j", X, X) / n)  # no n x p temporary
                size[~(size > 0)] = 1.0
            d = None  # the common case, no column far from 1 (tested on the few sizes as floats)
            if any(not 1.0 / THETA_SCALE_RANGE <= v <= THETA_SCALE_RANGE for v in size.tolist()):
                far = (size > THETA_SCALE_RANGE) | (size < 1.0 / THETA_SCALE_RANGE)
                d = np.where(far, 2.0 ** np.round(np.log2(size)), 1.0)
            scales.append(d)
            tsize.append(size[t.param.rows])
        tscale = None
        if any(d is not None for d in scales):  # a correlation φ has no units
            tscale = np.concatenate(
                [
                    np.ones(len(t.param.rows)) if d is None else np.where(t.param.scaled, d[t.param.rows], 1.0)
                    for d, t in zip(scales, self.frame.terms)
                ]
            )
        return scales, tscale, np.concatenate(tsize)

    def _settle(self, res, start: str, x0) -> None:
        """Set the results at an optimiser's answer (its last, unevaluated step only if it is
        no worse than the last evaluated point) and record the run (``_stages``)."""
        if not math.isfinite(res.fun) or res.fun >= 1e299:
            raise FitError(
                "the REML criterion / deviance could not be evaluated at any θ tried "
                "(the penalised system is not positive definite: check for extreme "
                "scales in the random-effects covariates or too few observations)"
            )
        self._set_theta(res.x)
        objective = float(self.objective_value)  # evaluated once per run, kept in the stage
        if res.history:  # the optimiser's last step was not evaluated: keep it only if no worse
            x_last, f_last = res.history[-1]
            if not objective <= f_last + 1e-10 * max(1.0, abs(f_last)):
                self._set_theta(x_last)
                objective = float(self.objective_value)
        self._best = len(self._stages)
        self._stages.append(
            OptStage(
                start,
                res.optimizer,
                res.evaluations,
                res.converged,
                res.message,
                np.array(x0, dtype=float),
                self.theta.copy(),
                objective,
                res.seconds,
            )
        )

    def _safety_restart(self, kind: str, optctrl) -> None:
        """Further runs from other starts where a local optimum is possible, keeping the best
        (``optsummary.restart`` lists them).

        The criterion depends on a template's column j only through its outer product, so with
        a diagonal θ_jj = 0 it is stationary in θ_jj (scalar terms: a function of θ² alone)
        and an optimiser that comes near 0 may stay there.  A fit with a standard deviation
        ratio below NEAR_BOUNDARY is therefore rerun from lme4's start (from the moment start
        if it was lme4's), then from the better point with its near-zero columns reflected:
        the column j and its negative give the same covariance, but the bound θ_jj >= 0
        blocks the descent in one of them only.  Any other fit from a start
        not lme4's costs one evaluation: lme4's start must not be better than the optimum
        found (else rerun from it); large models (Newton steps) skip even that, as the harness
        found no worse interior optimum from the moment start."""
        near = self._near_boundary()
        # correlation parameters: BOBYQA stops early in their valleys (gradient fits do not)
        structured = not self.layout.linear and not self.use_gradient
        if not near and not structured:
            if kind == "lme4" or self.use_gradient:  # InstEval: 0.3 s at lme4's start, fit 0.2 s
                return
            f1 = self._stages[-1].objective  # the run just settled, at the current θ
            self._extra_evals += 1  # the check's one evaluation
            if not self.criterion()(self._lme4_start()) < f1 - 1e-10 * max(1.0, abs(f1)):
                self._restart = {"taken": False, "checked": "criterion at lme4's start"}
                return
        elif optctrl and kind == "lme4":  # the caller chose the optimiser's settings
            return
        if kind != "lme4":
            starts = [("lme4", self._lme4_start(), {})]
        else:
            m0 = moment_start(self)
            starts = [] if m0 is None else [("moment", m0, {"step": self._moment_step(m0)})]
        ctrl = {k: v for k, v in optctrl.items() if k != "step"}
        best = (self.theta, self._stages[-1].objective, self._best)
        tried = [{"from": kind, "criterion": float(best[1])}]

        def run(name, x0, step):
            nonlocal best
            res = self._polish_structured(x0) if name == "polish" else self._optimize(x0, {**ctrl, **step})
            self._settle(res, start=name, x0=x0)
            f = self._stages[-1].objective  # the criterion _settle evaluated at the new θ
            tried.append({"from": name, "criterion": f})
            if f < best[1] - 1e-12 * max(1.0, abs(best[1])):
                best = (self.theta, f, self._best)

        for name, x0, step in starts:
            run(name, x0, step)
        if near:
            reflected = self._reflected(best[0])
            if reflected is not None:
                run("reflected", reflected, {})
        if structured:  # and a gradient polish from the best (BOBYQA crawls in toep's valleys)
            run("polish", best[0], {})
        if self.theta is not best[0]:
            self._set_theta(best[0])
        self._best = best[2]
        self._restart = {"taken": True, "tried": tried, "won": self._stages[best[2]].name}

    def _polish_structured(self, x0):
        """L-BFGS-B on log SDs from x0 with the analytic gradient (central differences where the
        kernel has none): a structured term's correlations make narrow curved valleys where
        BOBYQA stops at 'xtol reached' far from the optimum (sleepstudy's toep: 1.2 units)."""
        from .gradient import profiled_gradient

        f = self.criterion()
        if hasattr(self.kernel, "trace_gradient"):
            fg = lambda z: profiled_gradient(self, z)  # noqa: E731
        else:

            def fg(z):
                h = 1e-6 * np.maximum(np.abs(z), 1e-2)
                g = np.array([(f(z + hi * e) - f(z - hi * e)) / (2 * hi) for hi, e in zip(h, np.eye(len(z)))])
                return f(z), g

        return minimize_with_gradient(fg, f, x0, self.theta_lower, log_scale=True)

    def _moment_step(self, x0):
        """BOBYQA's first steps from a moment start: MOMENT_STEP of |θ₀| (at least 0.1), in
        the rescaled coordinates of ``_theta_scale`` (given in θ's)."""
        s = self._theta_scale()
        if s is None:
            return MOMENT_STEP * np.maximum(np.abs(x0), 0.1)
        return MOMENT_STEP * np.maximum(np.abs(x0 * s), 0.1) / s

    def _lme4_start(self):
        """lme4's start (θ = 1 on the diagonals, 0 off), for rescaled columns (``_theta_scale``)
        in the rescaled coordinates: where a user who rescaled the column would start."""
        s = self._theta_scale()
        return self.theta_start if s is None else self.theta_start / s

    def _near_boundary(self) -> bool:
        """A standard deviation ratio (a template's diagonal) times its column's size (the SD
        its random effect adds to y, over σ) below NEAR_BOUNDARY."""
        theta = self.theta * self._column_sizes[2]  # SD of each column's effect / σ
        return bool(np.any(theta[np.isfinite(self.theta_lower)] < NEAR_BOUNDARY))

    def _reflected(self, theta):
        """θ with each template column j whose θ_jj is near 0 (as in ``_near_boundary``)
        negated below the diagonal and θ_jj set to 0.1 in size-scaled units (at θ_jj = 0 the
        same covariance); None when no such column has entries below its diagonal."""
        x, hit, size = theta.copy(), False, self._column_sizes[2]
        for pm, s in zip(self.layout.params, self.layout.slices):
            for j in range(pm.p - 1):
                k = s.start + pm.diagonal_position(j)
                below = s.start + pm.below_positions(j)
                if x[k] * size[k] < NEAR_BOUNDARY and np.any(x[below] != 0):
                    x[below], x[k], hit = -x[below], 0.1 / size[k], True
        return x if hit else None

    def _polish_one_parameter(self, res):
        """One θ: a Newton step on the analytic gradient after BOBYQA.  A one-parameter
        criterion is flat to rounding within ~1e-7 (relative) of its optimum, so no method that
        only compares values gets closer; the gradient is not flat there.  The step is left
        unevaluated (``history``: ``fit`` keeps the BOBYQA point if it is worse)."""
        if not (
            res.converged
            and len(res.x) == 1
            and self.theta_lower[0] == 0
            and res.x[0] > BOUNDARY_SHARE
            and hasattr(self.kernel, "trace_gradient")
        ):
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
        L-BFGS-B takes over when that does not settle or a variance heads for 0.  Many θ
        (maximal models, usually singular): L-BFGS-B bounded in θ from the start, as Newton
        steps with the average information crawl there (kb07's 72 θ: 50 halved steps gained
        8 of the 24 units of deviance, each step 70 ms; bounded L-BFGS-B: ~250 gradients)."""
        from .gradient import profiled_gradient

        if len(x0) >= self.control.many_theta:  # on θ·s (``_theta_scale``): bounds, tolerances fit θ·s
            s = self._theta_scale()
            s = np.ones(len(x0)) if s is None else s

            def fg_scaled(z):
                f, g = profiled_gradient(self, z / s)
                return f, g / s

            res = minimize_with_gradient(
                fg_scaled,
                lambda z: self.objective(z / s),
                x0 * s,
                self.theta_lower * s,
                log_scale=False,
                maxcor=max(20, len(x0)),
            )  # full memory: ~half the steps
            res.x = res.x / s
            return res
        last = {}

        def fg(theta, g):
            f, gg, last["ai"] = profiled_gradient(self, theta, hessian=True)
            g[:] = gg
            return f

        logged = self.theta_lower == 0  # standard deviation ratios: Newton steps on log θ
        res = None
        if np.all(x0[logged] > 0):
            res = minimize_log_newton(
                fg, x0, lambda: last["ai"], dec_tol=NEWTON_DECREMENT, logged=logged, max_step=1.0, small=BOUNDARY_SHARE
            )
        if res is not None and res.converged:
            return res
        nev, x0 = (0, x0) if res is None else (res.evaluations, res.x)
        why = "" if res is None else f"after newton(log) ({res.message}): "

        if not np.all(np.isfinite(x0)):
            x0 = self.theta_start
        # a standard deviation Newton drove towards 0 starts at 0: bounded in θ, not in log θ
        x0 = np.where(logged & (x0 < BOUNDARY_SHARE * np.max(x0[logged], initial=0.0)), 0.0, x0)
        res = minimize_with_gradient(lambda th: profiled_gradient(self, th), self.objective, x0, self.theta_lower)
        res.evaluations += nev
        if why:  # the fallback taken, on record
            res.optimizer, res.message = f"newton(log)+{res.optimizer}", why + res.message
        return res

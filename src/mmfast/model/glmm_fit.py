"""The GLMM's two-stage fit, as functions of the model and its ``GlmmControl``.

1. θ only, with β estimated inside PIRLS (the nAGQ = 0 criterion), by BOBYQA;
2. the Laplace (or AGQ) deviance over (θ, β) jointly from stage 1's answer, β in whitened
   coordinates β = β₁ + R_X⁻¹ δ; quasi-Newton on the analytic gradient where it pays
   (``use_gradient``), else BOBYQA;
then the Hessian check (``check_optimum``: one Newton correction, lme4's scaled-gradient test)
and, if it fails, a restart from the best point.  See ``glmm``'s docstring for the details and
where mmfast differs from lme4.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from ..errors import ConvergenceWarning, FitError
from .agq import gauss_hermite
from .optimize import minimize_bounded, minimize_newton, minimize_with_gradient
from .pirls import KernelLoop, ThetaScaled, fd_hessian, gradient_hessian, start_hessian, theta_scale
from .separation import at_bounds, detect_separation, separation_message
from .structured_engine import StructuredEngine

__all__ = ["fit", "check_optimum", "use_gradient", "warn_at_caller"]

# relative rounding of the Laplace deviance (a sum over n rows and log|A| over q levels):
# measured ~2e-14 at 10^5 rows; quasi-Newton treats differences below this as ties
F_NOISE = 1e-13


def fit(model, start=None) -> None:
    """The two-stage fit of ``model`` with its ``control`` (see the module docstring)."""
    t0 = time.perf_counter()
    ctl = model.control
    nth, p = len(model.theta_start), model.frame.X.shape[1]
    scale = theta_scale(model.family, model.y, model.prior_weights)
    # the optimisers work on θ / scale (y's units drop out: Gamma); scale 1: the engine
    eng = model.engine if scale == 1.0 else ThetaScaled(model.engine, scale, nth)
    th0 = model.theta_start if start is None else np.asarray(start, dtype=float) / scale
    model._opt_start = th0 * scale  # for optsummary (θ's units)
    final = model.n_agq == 0
    ftol, xtol = (1e-10, 1e-9) if final else ctl.stage1_tol
    tol = eng.tol
    if not final:  # stage 1 only gives starting values: PIRLS to 1e-7 is plenty
        eng.tol = ctl.stage1_pirls_tol
    notes, failures = [], eng.failures
    try:
        r1 = minimize_bounded(
            eng.joint,
            th0,
            model.theta_lower,
            ftol_abs=ftol,
            xtol_abs=xtol,
            maxeval=100000 if final else ctl.stage1_maxeval,
        )
        f1 = eng.joint(r1.x)
        diverging = eng.failures > failures and at_bounds(model.family, eng.eta_).any()
        if not np.isfinite(f1) or diverging:  # e.g. separation: β diverges inside PIRLS.
            eng.ftol = ctl.pirls_ftol  # As lme4: stop PIRLS where the deviance no longer moves;

            # from the start each time (a warm start would drift further out every time)
            def fresh_joint(theta):
                eng.restart()
                return eng.joint(theta)

            r1 = minimize_bounded(
                fresh_joint,
                th0,
                model.theta_lower,
                ftol_abs=ftol,
                xtol_abs=xtol,
                maxeval=100000 if final else ctl.stage1_maxeval,
            )
            f1 = fresh_joint(r1.x)
            notes.append(
                "stage 1 failed with PIRLS to convergence (fixed effects diverging?):"
                f" refitted with PIRLS stopped on the deviance (ftol {ctl.pirls_ftol})"
            )
    finally:
        eng.tol, eng.ftol = tol, 0.0
    info = {
        "stage1": {
            "optimizer": r1.optimizer,
            "evaluations": r1.evaluations,
            "message": r1.message,
            "converged": r1.converged,
        },
        "notes": notes,
    }
    if not np.isfinite(f1):
        raise FitError(
            f"PIRLS failed at every θ tried (fitted means outside the {model.family.name} "
            f"family's range with the {model.link} link?): try the canonical link "
            f"'{model.family.canonical}' or another start"
        )
    model.converged = bool(r1.converged)
    if scale != 1.0:
        info["notes"].append(f"θ optimised in units of {scale:.6g} (the response's scale)")
    if final:
        sep = (
            detect_separation(model.family, eng.rx_matrix(), model.frame.X, eng.eta_, model.frame.fixef_names)
            if notes
            else None
        )
        if sep is not None:
            info["notes"].append(separation_message(model.family, sep))
            warn_at_caller(separation_message(model.family, sep), ConvergenceWarning)
        model._finish_joint(r1.x * scale, f1, info, t0)
        return
    beta1 = eng.beta_
    M = eng.rx_matrix()
    try:
        Binv = np.linalg.inv(np.linalg.cholesky(M).T) if p else np.zeros((0, 0))
    except np.linalg.LinAlgError:
        Binv = np.diag(1.0 / np.sqrt(np.maximum(np.diag(M), 1e-12)))
    lower = np.concatenate([model.theta_lower, np.full(p, -np.inf)])
    sep = detect_separation(model.family, M, model.frame.X, eng.eta_, model.frame.fixef_names)
    if sep is not None:  # diverging directions: held at 0 (on their "bound") from here on
        Binv = sep.Binv
        lower[nth + p - sep.nnull :] = 0.0
        info["notes"].append(separation_message(model.family, sep))
    eng.set_transform(beta1, Binv)
    model._Binv, model._beta1 = Binv, beta1
    if model.n_agq > 1:
        eng.set_agq(*gauss_hermite(model.n_agq))
    x0 = np.concatenate([r1.x, np.zeros(p)])
    step = np.concatenate([np.maximum(ctl.step_theta * np.abs(r1.x), 0.05), np.full(p, ctl.step_delta)])
    if use_gradient(model):  # analytic Laplace gradient: quasi-Newton, few evaluations
        r2 = minimize_newton(eng.laplace_grad, x0, lower, start_hessian(eng, x0, nth), f_noise=F_NOISE)
        if not r2.converged:  # e.g. a variance at its bound: L-BFGS-B in log scale
            grad = np.empty(len(x0))
            r2b = minimize_with_gradient(lambda x: (eng.laplace_grad(x, grad), grad.copy()), eng.laplace, r2.x, lower)
            r2b.evaluations += r2.evaluations
            r2b.optimizer = f"{r2.optimizer}+{r2b.optimizer}"  # the fallback, on record
            r2b.message = f"after {r2.optimizer} ({r2.message}): {r2b.message}"
            r2 = r2b
    else:
        r2 = minimize_bounded(eng.laplace, x0, lower, ftol_abs=ctl.stage2_tol[0], xtol_abs=ctl.stage2_tol[1], step=step)
    info["stage2"] = {
        "optimizer": r2.optimizer,
        "evaluations": r2.evaluations,
        "message": r2.message,
        "converged": r2.converged,
    }
    x, fx = r2.x, r2.fun
    if sep is not None:
        x[nth + p - sep.nnull :] = 0.0  # no effect on the criterion: back on the "bound"
    x, fx, check = check_optimum(model, eng, x, fx, lower)
    if not check["ok"] or not r2.converged:  # lme4's advice: another optimiser, more evaluations
        why = "gradient check failed" if not check["ok"] else r2.message
        r3 = minimize_bounded(eng.laplace, x, lower, ftol_abs=1e-12, xtol_abs=1e-10, maxeval=200000, step=step / 10)
        info["notes"].append(f"restarted from the best point ({why}): {r3.optimizer}, {r3.evaluations} evaluations")
        info["stage3"] = {
            "optimizer": r3.optimizer,
            "evaluations": r3.evaluations,
            "message": r3.message,
            "converged": r3.converged,
        }
        if r3.fun <= fx:
            x, fx = r3.x, r3.fun
        if sep is not None:
            x[nth + p - sep.nnull :] = 0.0
        x, fx, check = check_optimum(model, eng, x, fx, lower)
    model.converged = bool(check["ok"])
    model._finish(x if scale == 1.0 else eng.to_theta(x), info, check, t0)
    held = sep is not None
    if not held:  # a direction that diverged only in stage 2 (the engine is at the estimate)
        sep = detect_separation(
            model.family, model.engine.rx_matrix, model.frame.X, model.engine.eta_, model.frame.fixef_names
        )
    if sep is not None:
        warn_at_caller(separation_message(model.family, sep, held), ConvergenceWarning)
    elif not check["ok"]:
        warn_at_caller(f"model failed to converge: {check['message']}", ConvergenceWarning)
    return


def use_gradient(model) -> bool:
    """Stage 2 on the analytic gradient?  By default where it pays, where evaluations are dear
    (several terms); with one term an evaluation costs a few µs and L-BFGS-B's own overhead
    would dominate.  ``control.use_gradient`` True/False forces it (where available) or not."""
    eng, choice = model.engine, model.control.use_gradient
    if choice is None:  # a structured model's engine is a kernel loop seen through its θ map
        loop = eng._eng if isinstance(eng, StructuredEngine) else eng
        return isinstance(loop, KernelLoop) and eng.has_gradient
    return bool(choice) and eng.has_gradient


def check_optimum(model, eng, x, fx, lower):
    """Hessian, one Newton correction if it helps, and lme4's scaled-gradient check (on
    the optimiser's view ``eng`` of the engine: its θ units)."""
    fx = eng.laplace(x)
    hess = gradient_hessian if use_gradient(model) else fd_hessian
    idx, g, H = hess(eng, x, fx, lower, len(model.theta_lower), model.control.fd_step)
    check = {"ok": True, "message": "", "free": idx, "gradient": g, "hessian": H, "pd": True}
    try:
        R = np.linalg.cholesky(H).T
    except np.linalg.LinAlgError:
        check.update(
            pd=False,
            ok=False,
            message="the Hessian of the deviance is not positive "
            "definite (the optimum may be a saddle point or a flat ridge)",
        )
        return x, fx, check
    step = np.zeros(len(x))
    step[idx] = -np.linalg.solve(H, g)
    xn = x + step
    # scalar tests on the few coordinates (a NaN step fails the first, as with numpy's)
    feasible = all(a >= b for a, b in zip(xn.tolist(), np.asarray(lower).tolist()))
    size = max(map(abs, step.tolist()), default=0.0)
    if feasible and size < 0.1:
        fn = eng.laplace(xn)
        if fn < fx:
            x, fx = xn, fn
            check["newton"] = size
    scgrad = np.linalg.solve(R.T, g)  # gradient in units of the curvature (as lme4 scales it)
    maxg = float(np.minimum(np.abs(scgrad), np.abs(g)).max()) if len(g) else 0.0
    check["max_grad"] = maxg
    tol = model.control.grad_tol
    if maxg > tol:
        check.update(ok=False, message=f"max|grad| = {maxg:.3g} (tol = {tol})")
    return x, fx, check


def warn_at_caller(message: str, category) -> None:
    """Warn at the caller's line (the first frame outside mmfast)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("mmfast"):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)

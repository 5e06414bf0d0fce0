"""Bounded derivative-free minimisation of the profiled criterion (BOBYQA, as lme4 uses).

lme4 calls nlopt's BOBYQA with ``xtol_abs = ftol_abs = 1e-8``; we call the same algorithm
with tighter tolerances so that we never stop at a worse optimum than lme4, then, if it
failed, fall back to Nelder-Mead with more evaluations, as lme4's users are told to.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import nlopt
import numpy as np

__all__ = ["OptResult", "minimize_bounded", "minimize_with_gradient", "minimize_newton", "minimize_log_newton"]


FINAL_DEC_MAX = 1e-3  # largest Newton decrement from which a final unevaluated step may end


@dataclass
class OptResult:
    x: np.ndarray
    fun: float
    evaluations: int
    seconds: float
    optimizer: str
    converged: bool
    message: str = ""
    history: list = field(default_factory=list)


def _run(algorithm, fun, x0, lower, upper, ftol_abs, xtol_abs, maxeval, step):
    n = len(x0)
    count = [0]
    best = [np.inf, np.array(x0, dtype=float)]

    def f(x, grad):  # called per evaluation: kept lean (math, not numpy, on the scalar)
        count[0] += 1
        val = float(fun(x))
        if not math.isfinite(val):
            val = 1e300
        if val < best[0]:
            best[0], best[1] = val, x.copy()
        return val

    opt = nlopt.opt(algorithm, n)
    opt.set_min_objective(f)
    opt.set_lower_bounds(lower)
    if upper is not None:
        opt.set_upper_bounds(upper)
    opt.set_ftol_abs(ftol_abs)
    opt.set_xtol_abs(xtol_abs)
    opt.set_maxeval(maxeval)
    if step is not None:
        opt.set_initial_step(step)
    x0c = np.clip(np.asarray(x0, dtype=float), lower, upper if upper is not None else np.inf)
    message, ok = "", True
    try:
        opt.optimize(x0c)
        code = opt.last_optimize_result()
        ok = code > 0 and code != nlopt.MAXEVAL_REACHED
        message = {
            nlopt.FTOL_REACHED: "ftol reached",
            nlopt.XTOL_REACHED: "xtol reached",
            nlopt.MAXEVAL_REACHED: "maximum number of evaluations reached",
            nlopt.SUCCESS: "success",
        }.get(code, f"nlopt code {code}")
    except (nlopt.RoundoffLimited, RuntimeError, ValueError) as exc:
        message, ok = f"stopped: {exc}", best[0] < 1e300
    return best[1], best[0], count[0], ok, message


def minimize_bounded(fun, x0, lower, upper=None, ftol_abs=1e-10, xtol_abs=1e-9, maxeval=100000, step=None) -> OptResult:
    """Minimise ``fun`` from ``x0`` subject to ``x >= lower`` (and ``<= upper``)."""
    t0 = time.perf_counter()
    x0 = np.asarray(x0, dtype=float)
    lower = np.asarray(lower, dtype=float)
    if step is None:
        step = np.where(np.abs(x0) > 0, 0.2 * np.maximum(np.abs(x0), 1.0), 0.2)
    algorithm, name = nlopt.LN_BOBYQA, "bobyqa"
    x, fx, nev, ok, msg = _run(algorithm, fun, x0, lower, upper, ftol_abs, xtol_abs, maxeval, step)
    if not ok:  # lme4's advice: another optimiser, more evaluations
        x2, f2, n2, ok2, msg2 = _run(nlopt.LN_NELDERMEAD, fun, x, lower, upper, ftol_abs, xtol_abs, 2 * maxeval, step)
        nev += n2
        if f2 <= fx:
            x, fx = x2, f2
        ok, msg, name = ok2, f"{msg}; fallback Nelder-Mead: {msg2}", name + "+neldermead"
    return OptResult(
        x=x, fun=fx, evaluations=nev, seconds=time.perf_counter() - t0, optimizer=name, converged=ok, message=msg
    )


def minimize_with_gradient(fun_grad, fun, x0, lower, gtol=1e-7, maxiter=2000, log_scale=True, maxcor=20) -> OptResult:
    """L-BFGS-B on an analytic gradient, with the variances in log scale.

    Parameters bounded below by 0 (the diagonal of the templates) are optimised as log θ,
    where the criterion is closer to quadratic (about half the evaluations); a bounded pass on
    θ itself follows only when a variance heads for the boundary (a singular fit) or the line
    search stopped early (round-off).  ``log_scale=False``: the first pass is already bounded
    in θ (for fits expected singular, where log θ only creeps towards 0).  ``maxcor``: the
    pairs L-BFGS-B keeps (kb07's 72 θ: 20 pairs 272 gradients, 100 pairs 127).
    """
    from scipy.optimize import minimize

    t0 = time.perf_counter()
    lower = np.asarray(lower, dtype=float)
    x0 = np.asarray(x0, dtype=float)
    logged = (lower == 0) & (x0 > 0) & bool(log_scale)
    count = [0]

    def fg_theta(x):
        count[0] += 1
        f, g = fun_grad(x)
        if not np.isfinite(f) or not np.all(np.isfinite(g)):
            return 1e300, np.zeros_like(x)
        return f, g

    def fg_log(z):
        x = np.where(logged, np.exp(np.minimum(z, 700.0)), z)
        f, g = fg_theta(x)
        return f, np.where(logged, g * x, g)

    opts = {"ftol": 1e-14, "gtol": gtol, "maxiter": maxiter, "maxcor": maxcor}
    bounds = [(lo if np.isfinite(lo) and not lg else None, None) for lo, lg in zip(lower, logged)]
    z0 = np.where(logged, np.log(np.where(logged, x0, 1.0)), x0)
    res = minimize(fg_log, z0, jac=True, method="L-BFGS-B", bounds=bounds, options=opts)
    x = np.where(logged, np.exp(np.minimum(res.x, 700.0)), res.x)
    fx, message = float(res.fun), str(res.message)
    name = "lbfgsb(log)" if log_scale else "lbfgsb"
    scale = np.maximum(np.abs(x).max(), 1.0)
    # log scale flattens the criterion near 0 (its z-gradient is x times the θ-gradient): a
    # small variance the θ-gradient still pushes down gets the bounded pass too
    g_theta = np.asarray(res.jac, dtype=float) / np.where(logged, np.maximum(x, 1e-300), 1.0)
    pushed = logged & (g_theta > 0) & (x < 0.05 * np.max(np.where(logged, x, 0.0), initial=0.0))
    if res.status != 0 or np.any(logged & (x < 1e-3 * scale)) or np.any(pushed):
        bounds_x = [(lo if np.isfinite(lo) else None, None) for lo in lower]
        res2 = minimize(
            fg_theta,
            np.where(logged & (x < 1e-3 * scale), 0.0, x),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds_x,
            options=opts,
        )
        if res2.fun <= fx:
            x, fx = np.asarray(res2.x, dtype=float), float(res2.fun)
        name, message = name + "+lbfgsb", f"{message}; bounded pass: {res2.message}"
        if res2.status != 0:  # last resort: derivative-free polish
            step = np.maximum(1e-3 * np.maximum(np.abs(x), 1e-2), 1e-6)
            xp, fp, npol, _, msgp = _run(nlopt.LN_BOBYQA, fun, x, lower, None, 1e-10, 1e-9, 500, step)
            count[0] += npol
            if fp < fx:
                x, fx = xp, fp
            name, message = name + "+bobyqa", f"{message}; polish: {msgp}"
    return OptResult(
        x=x,
        fun=fx,
        evaluations=count[0],
        seconds=time.perf_counter() - t0,
        optimizer=name,
        converged=bool(fx < 1e299),
        message=message,
    )


def minimize_newton(
    fun_grad,
    x0,
    lower,
    hessian,
    dec_tol=1e-10,
    maxiter=50,
    bound_tol=1e-4,
    f0=None,
    g0=None,
    hessian_at=None,
    max_step=math.inf,
    final_step=False,
    give_up=None,
    f_noise=0.0,
) -> OptResult:
    """Bounded quasi-Newton from a good start and a good Hessian (refits of a fitted model).

    ``fun_grad(x, g)`` returns f(x) and writes the analytic gradient into g.  The Hessian
    approximation starts at ``hessian`` (the original fit's) and gets BFGS updates; steps are
    projected on ``x >= lower`` with coordinates at their bound held while the gradient pushes
    outwards, and halved until f decreases.  Converged when the Newton decrement g'B⁻¹g (twice
    the predicted decrease) is below ``dec_tol``; ``converged=False`` otherwise (the caller falls
    back to BOBYQA).  A solution with a coordinate within ``bound_tol`` of its bound is reported
    as not converged: the gradient cannot tell there (the Laplace deviance is even in a scalar
    θ, so its derivative vanishes at θ = 0, and is tiny near it, whether or not 0 is a minimum).
    ``f0``, ``g0``: f and the gradient at x0 when the caller has them already.
    ``hessian_at(x, g)``: a fresh Hessian approximation at the accepted point (just evaluated),
    used instead of the BFGS update.  ``max_step``: the largest change of any coordinate
    tried in one step (a longer Newton step is shortened first).  ``final_step``: on
    convergence return x + d, the last (small) Newton step taken without evaluating f there
    (it gains accuracy for free when the caller evaluates at the result anyway); ``fun`` is
    then the predicted f - g'd/2 and ``history`` holds the last evaluated (x, f), for the
    caller to fall back on.  Convergence then means that the decrement left after that step
    is below ``dec_tol``, with the ratio of the last two step lengths as the contraction
    (AI-Newton converges linearly, ~0.02-0.1 per step on our models); that needs a decrement
    already below FINAL_DEC_MAX.  ``give_up(x)``: checked at every accepted point; True stops
    the run (not converged).  ``f_noise``: f's relative rounding level; a trial point within it
    of f is accepted when its gradient is smaller (f cannot rank such points, and halving on
    noise alone spends evaluations near the optimum for nothing).
    """
    t0 = time.perf_counter()
    lower = np.asarray(lower, dtype=float)
    x = np.maximum(np.asarray(x0, dtype=float), lower)
    g, gn = np.empty(len(x)), np.empty(len(x))
    B = np.array(hessian, dtype=float)
    if f0 is not None and g0 is not None and np.array_equal(x, x0):
        f, nev, ok = float(f0), 0, False
        g[:] = g0
    else:
        f, nev, ok = float(fun_grad(x, g)), 1, False
    history, dprev = [], math.inf
    for _ in range(maxiter if math.isfinite(f) else 0):
        free = ~((x <= lower) & (g > 0))
        d = np.zeros(len(x))
        try:
            d[free] = -np.linalg.solve(B[np.ix_(free, free)], g[free])
        except np.linalg.LinAlgError:
            break
        dec = -float(g @ d)
        if not dec >= 0:  # not a descent direction: B is not positive definite
            break
        # with a final step, what is left after it: the step ratio estimates the contraction
        dmax = float(np.max(np.abs(d), initial=0.0)) if final_step else 0.0
        rho2 = min(1.0, (dmax / dprev) ** 2) if final_step and dec < FINAL_DEC_MAX else 1.0
        if dec * rho2 < dec_tol:
            ok = not np.any(x - lower < bound_tol)
            if ok and final_step:
                history.append((x.copy(), f))  # the last point evaluated
                x, f = np.maximum(x + d, lower), f - 0.5 * dec
            break
        dprev = dmax
        t, fn = min(1.0, max_step / max(float(np.max(np.abs(d))), 1e-300)), math.inf
        while t > 1e-6:
            xn = np.maximum(x + t * d, lower)
            fn = float(fun_grad(xn, gn))
            nev += 1
            if fn <= f:
                break
            if fn <= f + f_noise * (1.0 + abs(f)) and np.max(np.abs(gn)) < np.max(np.abs(g)):
                fn = f  # a tie within rounding, decided by the gradient
                break
            t *= 0.5
        if not fn <= f:
            break
        s, yv = xn - x, gn - g
        sy, Bs = float(s @ yv), B @ s
        sBs = float(s @ Bs)
        if hessian_at is not None:
            B = np.array(hessian_at(xn, gn), dtype=float)
        elif sy > 1e-12 * (1.0 + float(yv @ yv)) and sBs > 0:
            B += np.outer(yv, yv) / sy - np.outer(Bs, Bs) / sBs
        x, f = xn, fn
        g, gn = gn, g
        if np.max(np.abs(s)) < 1e-12 or (give_up is not None and give_up(x)):
            break  # stalled, or the caller sees it go where it should not
    return OptResult(
        x=x,
        fun=f,
        evaluations=nev,
        seconds=time.perf_counter() - t0,
        optimizer="newton",
        converged=ok,
        message="" if ok else "no convergence",
        history=history,
    )


def minimize_log_newton(
    fun_grad, x0, hessian, dec_tol=1e-10, maxiter=50, small=1e-4, logged=None, max_step=math.inf
) -> OptResult:
    """Newton steps near an optimum, on z = log x for the ``logged`` coordinates (default: all,
    which must then be positive; the others, e.g. correlation parameters, stay as they are).

    ``hessian()`` is a Hessian approximation in x at the point ``fun_grad`` last evaluated
    (the average information, for LMMs), taken afresh at every accepted point and mapped to z
    (J H J + diag(∂f/∂z) on the logged coordinates, J = ∂x/∂z); ``minimize_newton`` runs
    unbounded in z, trying steps of at most ``max_step``, and returns the point after the last
    Newton step (not evaluated: the caller does, to set up its results).  Not converged (the
    caller falls back) when the start Hessian is not positive definite or a logged parameter
    heads for 0 (below ``small`` times the largest; the run stops as soon as one does): a
    boundary fit is for a bounded optimiser to settle.
    """
    t0 = time.perf_counter()
    x0 = np.asarray(x0, dtype=float)
    n = len(x0)
    logged = np.ones(n, dtype=bool) if logged is None else np.asarray(logged, dtype=bool)
    g0 = np.empty(n)
    f0 = float(fun_grad(x0, g0))
    H = np.asarray(hessian(), dtype=float) if math.isfinite(f0) else np.full((n, n), np.nan)
    fail = OptResult(
        x=x0,
        fun=f0,
        evaluations=1,
        seconds=time.perf_counter() - t0,
        optimizer="newton(log)",
        converged=False,
        message="start Hessian unusable",
    )
    if not (math.isfinite(f0) and np.all(np.isfinite(H)) and np.all(np.isfinite(g0))):
        return fail

    def to_x(z):
        return np.where(logged, np.exp(np.minimum(z, 700.0)), z)

    def to_z_hessian(H, x, gz):
        j = np.where(logged, x, 1.0)
        return j[:, None] * (0.5 * (H + H.T)) * j[None, :] + np.diag(np.where(logged, gz, 0.0))

    Hz = to_z_hessian(H, x0, g0 * np.where(logged, x0, 1.0))
    try:
        np.linalg.cholesky(Hz)
    except np.linalg.LinAlgError:
        return fail
    gx = np.empty(n)

    def fz(z, g):
        x = to_x(z)
        f = fun_grad(x, gx)
        g[:] = gx * np.where(logged, x, 1.0)
        return f

    def hz(z, gz):
        return to_z_hessian(np.asarray(hessian(), dtype=float), to_x(z), gz)

    z0 = np.where(logged, np.log(np.where(logged, x0, 1.0)), x0)

    def to_boundary(z):  # a standard deviation heading for 0: log scale cannot get there
        x = to_x(z)[logged]
        return bool(np.any(x < small * np.max(x, initial=0.0)))

    res = minimize_newton(
        fz,
        z0,
        np.full(n, -np.inf),
        Hz,
        dec_tol,
        maxiter,
        f0=f0,
        g0=g0 * np.where(logged, x0, 1.0),
        hessian_at=hz,
        max_step=max_step,
        final_step=True,
        give_up=to_boundary,
    )
    x = to_x(res.x)
    ok = res.converged and bool(np.all(x[logged] >= small * np.max(x[logged], initial=0.0)))
    return OptResult(
        x=x,
        fun=res.fun,
        evaluations=res.evaluations + 1,
        seconds=time.perf_counter() - t0,
        optimizer="newton(log)",
        converged=ok,
        message=res.message if ok else "heading for a boundary or no convergence",
    )

"""mmfast itself: ``mmfast.lmer`` / ``mmfast.glmer`` with the workload's lme4 formula."""

from __future__ import annotations

import time

from . import _stages, as_factors

NAME = "mmfast"
IMPORT = "mmfast"
DIST = "mmfast"  # its distribution, for the version


def prepare(workload, data):
    return as_factors(workload, data, categorical=True)


def fitter(workload, data):
    import mmfast

    if workload.kind == "GLMM":
        return lambda: mmfast.glmer(workload.formula, data, family=workload.family)
    return lambda: mmfast.lmer(workload.formula, data, reml=False)


def loglik(fit):
    return fit.loglik


def evaluations(fit):
    return (getattr(fit, "optinfo", None) or {}).get("evaluations")


def phases(fit, seconds: float) -> dict:
    """Where a fit of ``seconds`` went: set-up (model frame, kernel, start; the rest of the
    time) and each optimiser run (``optsummary.stages``: start, optimiser, evaluations, s)."""
    summ = fit.optsummary

    def num(x):
        return None if x is None or x != x else float(x)  # NaN (not timed) -> None

    runs = [
        {"name": s.name, "optimizer": s.optimizer, "evaluations": int(s.evaluations), "seconds": num(s.seconds)}
        for s in summ.stages
    ]
    return {"setup_s": seconds - summ.seconds, "optimize_s": summ.seconds, "runs": runs}


def stages(workload, data, fit):
    """Set-up (a fit's time minus its optimisation time, ``optinfo["seconds"]``, which
    includes the start and the results) and one objective evaluation at the optimum."""
    t0 = time.perf_counter()
    fresh = fitter(workload, data)()
    total = time.perf_counter() - t0
    crit = fresh.criterion()
    from mmfast.threads import large_data_blas, limit_fit_threads

    # the BLAS thread settings of the fit itself: outside them, on a loaded machine, the
    # first calls took ~0.9 s at n = 1e5 (2 OpenBLAS threads) against 0.6 ms after
    dense = getattr(fresh.kernel, "dense_size", None)  # None: CHOLMOD, as in the fit
    with large_data_blas(len(data)), limit_fit_threads(dense, fresh.blocks.q):
        eval_s = _stages.per_call(lambda: crit(fresh.theta), calls=7, warm=2)
    return {
        "setup_s": total - fresh.optinfo["seconds"],
        "optimize_s": fresh.optinfo["seconds"],
        "eval_s": eval_s,
        "total_s": total,
    }

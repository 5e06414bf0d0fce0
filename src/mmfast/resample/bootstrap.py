"""Parametric bootstrap of a fitted mixed model: lme4's ``bootMer`` and ``confint(method = "boot")``.

Each replicate simulates a response from the fitted model (``simulate``: new random effects
and new noise), refits the model to it (``refit_response``: same design, warm start at θ̂)
and applies ``func`` to the refit.  Replicate j uses the j-th child of ``SeedSequence(seed)``,
so the table is the same for any ``n_jobs``.  A replicate whose refit raises is a row of NaN,
counted in ``attrs["n_failed"]`` with its message in ``attrs["failures"]``.

``confint_boot`` gives percentile intervals as lme4 does (``boot::boot.ci(type = "perc")``:
order statistics interpolated on the normal quantile scale, ``boot:::norm.inter``) for the
parameters lme4 bootstraps in ``confint.merMod``: standard deviations and correlations of
the random effects, σ (models with a scale), then the fixed effects, rows named as the
profile and Wald intervals name them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .parallel import TaskFailure, as_seed_sequence, run_tasks
from .refit import Refitter, model_kind
from .simulate import ResponseSimulator
from ..errors import ArgumentError

__all__ = ["bootstrap", "confint_boot", "default_statistics", "norm_inter", "percentile_intervals"]


def default_statistics(fit) -> pd.Series:
    """Fixed effects, θ and σ (σ only for models with a residual scale; a family's estimated
    dispersion, e.g. the negative binomial's ``theta``, like a variance component; a residual
    structure's parameters in nlme's natural scale, e.g. ``Phi``)."""
    parts = [
        pd.Series(np.asarray(fit.beta, dtype=float), index=list(fit.frame.fixef_names)),
        pd.Series(np.asarray(fit.theta, dtype=float), index=list(fit.theta_names)),
    ]
    if getattr(fit, "use_scale", True):
        parts.append(pd.Series([float(fit.sigma)], index=["sigma"]))
    fam = getattr(fit, "family", None)
    if getattr(fam, "dispersion_name", "") and fam.estimated:
        parts.append(pd.Series([float(fit.dispersion)], index=[fam.dispersion_name]))
    res = getattr(fit, "residual", None)  # lmer(residual=): the structures' natural parameters
    if res is not None:
        for s, u in zip((res.correlation, res.variance), res.split(fit.phi)):
            if s is not None and s.npar:
                parts.append(pd.Series(s.natural(u), index=s.names()))
    return pd.concat(parts)


def _sdcor_names(model) -> list[str]:
    from ..inference.profile import parameter_names

    names = parameter_names(model)
    return names if getattr(model, "use_scale", True) else names[:-1]


def sdcor_fixef(fit) -> np.ndarray:
    """lme4's ``confint(method = "boot")`` statistic: sd/cor per term, σ, fixed effects."""
    from ..inference.profile import theta_to_sdcor

    sd = theta_to_sdcor(fit, np.asarray(fit.theta, dtype=float), float(fit.sigma))
    if not getattr(fit, "use_scale", True):
        sd = sd[:-1]
    return np.concatenate([sd, np.asarray(fit.beta, dtype=float)])


def _as_vector(value, names: list[str] | None):
    """(values, names) from a Series, a dict, a scalar or an array."""
    if isinstance(value, pd.Series):
        return value.to_numpy(dtype=float), [str(i) for i in value.index]
    if isinstance(value, dict):
        return np.asarray(list(value.values()), dtype=float), [str(k) for k in value]
    arr = np.atleast_1d(np.asarray(value, dtype=float)).ravel()
    return arr, names


class _BootTask:
    """One replicate: simulate, refit, apply func (picklable for the worker processes)."""

    def __init__(self, model, func):
        self.sim = ResponseSimulator(model)
        self.refit = Refitter(model)
        self.func = func

    def __call__(self, rng):
        fit = self.refit(self.sim.draw(rng))
        vals, _ = _as_vector(self.func(fit), None)
        return vals, bool(getattr(fit, "converged", True)), bool(fit.singular)


def _run_boot(task, rng):
    return task(rng)


def bootstrap(model, nsim: int = 1000, func=None, seed=None, n_jobs: int | None = 1, progress=None) -> pd.DataFrame:
    """Parametric bootstrap (lme4's ``bootMer(type = "parametric", use.u = FALSE)``).

    ``func(fit)`` returns a number, an array, a dict or a Series (default: fixed effects,
    θ and σ).  Returns an nsim x k DataFrame of replicates; ``attrs``: ``t0`` (func on the
    original fit), ``n_failed``, ``failures``, ``n_not_converged``, ``n_singular``, ``seed``.
    """
    model_kind(model)
    nsim = int(nsim)
    if nsim < 1:
        raise ArgumentError(f"nsim must be >= 1 (got {nsim})")
    func = default_statistics if func is None else func
    t0, names = _as_vector(func(model), None)
    k = len(t0)
    names = names if names is not None else ([f"t{j + 1}" for j in range(k)] if k > 1 else ["t1"])
    ss = as_seed_sequence(seed)
    task = _BootTask(model, func)
    results = run_tasks(_run_boot, task, nsim, ss, n_jobs=n_jobs, progress=progress, desc="bootstrap")
    out = np.full((nsim, k), np.nan)
    failures, not_conv, singular = [], 0, 0
    for i, r in enumerate(results):
        if isinstance(r, TaskFailure):
            failures.append(str(r))
            continue
        vals, conv, sing = r
        if len(vals) != k:
            failures.append(f"task {i}: func returned {len(vals)} values, expected {k}")
            continue
        out[i] = vals
        not_conv += not conv
        singular += sing
    df = pd.DataFrame(out, columns=names)
    df.index.name = "replicate"
    df.attrs.update(
        {
            "t0": pd.Series(t0, index=names),
            "n_failed": len(failures),
            "failures": failures,
            "n_not_converged": not_conv,
            "n_singular": singular,
            "seed": ss.entropy,
            "nsim": nsim,
        }
    )
    if failures:
        import warnings

        warnings.warn(
            f"{len(failures)} of {nsim} bootstrap refits failed (NaN rows; see .attrs['failures'])",
            RuntimeWarning,
            stacklevel=2,
        )
    return df


def norm_inter(t: np.ndarray, alpha) -> np.ndarray:
    """``boot:::norm.inter``: quantiles of t by order statistics interpolated on the normal scale."""
    t = np.sort(np.asarray(t, dtype=float)[np.isfinite(t)])
    R = len(t)
    alpha = np.atleast_1d(np.asarray(alpha, dtype=float))
    if R == 0:
        return np.full(len(alpha), np.nan)
    out = np.empty(len(alpha))
    rk = (R + 1) * alpha
    k = np.trunc(rk).astype(int)
    for i, (a, r, kk) in enumerate(zip(alpha, rk, k)):
        if kk == r and 0 < kk <= R:
            out[i] = t[kk - 1]
        elif kk <= 0:
            out[i] = t[0]
        elif kk >= R:
            out[i] = t[R - 1]
        else:
            z, z1, z2 = stats.norm.ppf([a, kk / (R + 1), (kk + 1) / (R + 1)])
            out[i] = t[kk - 1] + (z - z1) / (z2 - z1) * (t[kk] - t[kk - 1])
    return out


def percentile_intervals(replicates: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Percentile intervals per column (``boot.ci(type = "perc")``), columns '2.5 %', '97.5 %'."""
    from ..inference.profile import _pct

    if not 0 < level < 1:
        raise ArgumentError(f"level must be between 0 and 1 (got {level})")
    a = (1 - level) / 2
    rows = [norm_inter(replicates[c].to_numpy(), [a, 1 - a]) for c in replicates.columns]
    return pd.DataFrame(rows, index=list(replicates.columns), columns=[_pct(a), _pct(1 - a)])


def confint_boot(
    model, parm=None, level: float = 0.95, nsim: int = 500, seed=None, n_jobs: int | None = 1, progress=None
) -> pd.DataFrame:
    """lme4's ``confint(m, method = "boot", nsim, level)``: percentile intervals.

    Rows as ``confint(method="profile")``: sd_/cor_ per random-effects term, ``sigma``, then
    the fixed effects.  ``attrs``: ``n_failed``, ``nsim``, ``seed`` (and ``replicates``).
    """
    names = _sdcor_names(model) + list(model.frame.fixef_names)
    reps = bootstrap(model, nsim=nsim, func=sdcor_fixef, seed=seed, n_jobs=n_jobs, progress=progress)
    reps.columns = names
    out = percentile_intervals(reps, level)
    if parm is not None:
        out = out.loc[[parm] if isinstance(parm, str) else list(parm)]
    out.attrs.update(
        {
            "method": "boot",
            "nsim": nsim,
            "n_failed": reps.attrs["n_failed"],
            "seed": reps.attrs["seed"],
            "replicates": reps,
        }
    )
    return out

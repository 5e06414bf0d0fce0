"""Resampling methods of a fitted mixed model (mixed into ``mmfast.api``'s LMM and GLMM), so
``m.simulate(nsim, seed)`` and ``m.bootstrap(nsim)`` call this package's functions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..arguments import integer, validated

__all__ = ["ResampleMixin"]


class ResampleMixin:
    """``simulate``, ``bootstrap`` and the bootstrap intervals ``confint(method="boot")`` uses."""

    @validated(name="simulate", nsim=integer(1))
    def simulate(self, nsim: int = 1, seed=None, as_frame: bool = True) -> pd.DataFrame | np.ndarray:
        """Responses simulated from the fitted model, new random effects drawn (lme4's simulate).

        Parameters
        ----------
        nsim : int, default 1
            Number of simulated responses.
        seed : int or numpy SeedSequence, optional
            Seed; the same seed gives the same responses.
        as_frame : bool, default True
            A DataFrame (columns ``sim_1``, ...) or, with False, an (n, nsim) array.

        Returns
        -------
        DataFrame or ndarray
            One column per simulation, one row per observation used by the fit; each column
            can be passed to ``refit``.
        """
        from .simulate import simulate

        return simulate(self, nsim=nsim, seed=seed, as_frame=as_frame)

    @validated(name="bootstrap", nsim=integer(1))
    def bootstrap(
        self, nsim: int = 1000, func=None, seed=None, n_jobs: int | None = 1, progress: bool | None = None
    ) -> pd.DataFrame:
        """Parametric bootstrap replicates of ``func`` (lme4's bootMer; default fixef, theta, sigma).

        Parameters
        ----------
        nsim : int, default 1000
            Number of simulated responses, each refitted.
        func : callable, optional
            ``func(fit)`` returns a number, array, dict or Series; default: fixed effects, θ
            and σ.
        seed : int, optional
            Seed; results are identical for a seed whatever ``n_jobs``.
        n_jobs : int or None, default 1
            Worker processes (-1: all cores).
        progress : bool, optional
            A tqdm bar (None: on a terminal, for runs over ~2 s).

        Returns
        -------
        DataFrame
            nsim rows of replicates; ``attrs`` holds ``t0`` (func on this fit),
            ``n_failed``, ``n_not_converged``, ``n_singular`` and ``seed``.
        """
        from .bootstrap import bootstrap

        return bootstrap(self, nsim=nsim, func=func, seed=seed, n_jobs=n_jobs, progress=progress)

    def _confint_boot(self, parm=None, level: float = 0.95, **boot):
        """Percentile bootstrap intervals: what ``confint(method="boot")`` returns."""
        from .bootstrap import confint_boot

        return confint_boot(self, parm=parm, level=level, **boot)

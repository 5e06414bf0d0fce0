"""Parametric bootstrap likelihood-ratio test between nested mixed models: pbkrtest's ``PBmodcomp``.

Both models are fitted by maximum likelihood (REML LMMs are refitted by ML first, as
``PBrefdist`` does).  The reference distribution: ``nsim`` responses simulated from the small
model (``simulate``), both models refitted to each (warm started at their estimates; for GLMMs
only the maximised Laplace likelihood is computed, ``refit.LoglikRefitter``), the statistic
2 (ℓ_large - ℓ_small) kept.  With t the observed statistic, d = npar_large -
npar_small and ``ref`` the simulated statistics that are > 0 (pbkrtest's ``refpos``;
failed refits are NaN and never among them), the rows of ``test`` are pbkrtest 0.5.2's
(``.summarizePB``):

* ``LRT``: t on d df, p = P(χ²_d > t);
* ``PBtest``: p = (1 + #{ref > t}) / (1 + #ref);
* ``Gamma``: p = P(G > t), G a gamma distribution with ref's mean E and variance V
  (shape E²/V, scale V/E; V with n - 1);
* ``Bartlett``: t d / E on d df, p = P(χ²_d > t d / E);

``summary()`` adds pbkrtest's ``F`` row (t/d on d and 2E/(E - 1) df).  Refits that raise are
counted (``n_failed``, messages in ``failures``), never silently dropped; simulated statistics
<= 0 (the large model no better than the small one, or slightly worse from optimiser noise)
are left out of ``ref`` exactly as pbkrtest leaves them out (``samples["npos"]``).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..arguments import integer, validated
from .parallel import TaskFailure, as_seed_sequence, run_tasks
from .refit import LoglikRefitter, model_kind
from .simulate import ResponseSimulator
from ..errors import ArgumentError, ModelSpecError

__all__ = ["pbmodcomp", "PBModComp", "pb_tests"]


def pb_tests(tobs: float, ndf: float, ref: np.ndarray) -> dict:
    """pbkrtest's ``.summarizePB``: the five tests and the moments of the positive samples."""
    ref = np.asarray(ref, dtype=float)
    refpos = ref[np.isfinite(ref) & (ref > 0)]
    npos = len(refpos)
    EE = float(np.mean(refpos)) if npos else np.nan
    VV = float(np.var(refpos, ddof=1)) if npos > 1 else np.nan
    n_extreme = int(np.sum(refpos > tobs))
    p_pb = (1 + n_extreme) / (1 + npos)
    bc = ndf * tobs / EE if npos else np.nan
    scale, shape = (VV / EE, EE**2 / VV) if npos > 1 and VV > 0 else (np.nan, np.nan)
    p_ga = float(stats.gamma.sf(tobs, shape, scale=scale)) if np.isfinite(shape) else np.nan
    ddf = 2 * EE / (EE - 1) if npos else np.nan
    p_f = float(stats.f.sf(tobs / ndf, ndf, ddf)) if np.isfinite(ddf) and ddf > 0 else np.nan
    rows = {
        "LRT": (tobs, ndf, np.nan, float(stats.chi2.sf(tobs, ndf))),
        "PBtest": (tobs, np.nan, np.nan, p_pb),
        "Gamma": (tobs, np.nan, np.nan, p_ga),
        "Bartlett": (bc, ndf, np.nan, float(stats.chi2.sf(bc, ndf)) if np.isfinite(bc) else np.nan),
        "F": (tobs / ndf, ndf, ddf, p_f),
    }
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["stat", "df", "ddf", "p.value"])
    return {"table": table, "npos": npos, "n_extreme": n_extreme, "mean": EE, "var": VV, "scale": scale, "shape": shape}


class PBModComp:
    """Result of ``pbmodcomp``: ``test`` (LRT, PBtest, Gamma, Bartlett), ``ref``, ``n_failed``."""

    def __init__(self, tobs, ndf, ref, failures, seconds, seed, formulas):
        self.stat, self.df = float(tobs), int(ndf)
        self.ref = np.asarray(ref, dtype=float)
        self.failures = list(failures)
        self.n_failed = len(self.failures)
        self.seconds = float(seconds)
        self.seed = seed
        self.formula_large, self.formula_small = formulas
        res = pb_tests(self.stat, self.df, self.ref)
        self._full = res["table"]
        self.test = res["table"].loc[["LRT", "PBtest", "Gamma", "Bartlett"], ["stat", "df", "p.value"]]
        self.samples = {
            "nsim": len(self.ref),
            "npos": res["npos"],
            "n_failed": self.n_failed,
            "n_extreme": res["n_extreme"],
        }
        self.moment = {"mean": res["mean"], "var": res["var"]}
        self.gamma = {"scale": res["scale"], "shape": res["shape"]}

    @property
    def p_value(self) -> float:
        """The parametric bootstrap p-value (row ``PBtest``)."""
        return float(self.test.loc["PBtest", "p.value"])

    def summary(self) -> pd.DataFrame:
        """pbkrtest's ``summary(PBmodcomp)`` table: also the F row (with ``ddf``)."""
        return self._full.copy()

    def __repr__(self) -> str:
        from ..rformat import coefmat_lines

        s = self.samples
        head = [
            f"Bootstrap test; time: {self.seconds:.2f} sec; samples: {s['nsim']}; "
            f"extremes: {s['n_extreme']}; failed refits: {self.n_failed}",
            f"large : {self.formula_large}",
            f"small : {self.formula_small}",
        ]
        if s["npos"] < s["nsim"] - self.n_failed:
            head.append(f"Requested samples: {s['nsim']} Used samples: {s['npos']} Extremes: {s['n_extreme']}")
        # pbkrtest: printCoefmat(test, tst.ind = 1, na.print = "", has.Pvalue = TRUE)
        return "\n".join(head + coefmat_lines(self.test, 5, tst_ind=[0], has_p=True, na_print=""))

    __str__ = __repr__


class _PBTask:
    """Simulate from the small model, refit both, return 2 (ℓ_large - ℓ_small) (picklable)."""

    def __init__(self, large, small):
        self.sim = ResponseSimulator(small)
        self.small, self.large = LoglikRefitter(small), LoglikRefitter(large)
        self.embed = self.large.start_from(self.small)

    def __call__(self, rng):
        y = self.sim.draw(rng)
        ls, theta, beta = self.small.fit(y)
        # the large model starts from the small one's fit to the same y (closer than its own)
        ll = self.large.fit(y, None if self.embed is None else self.embed(theta, beta))[0]
        stat = 2.0 * (ll - ls)
        if not np.isfinite(stat):
            raise FloatingPointError("non-finite log-likelihood in a refit")
        return float(stat)


def _run_pb(task, rng):
    return task(rng)


def _ml(model):
    return model.refit_ml() if getattr(model, "reml", False) else model


def _formula(model) -> str:
    return model.frame.parsed.formula


@validated(nsim=integer(1))
def pbmodcomp(large, small, nsim: int = 1000, seed=None, n_jobs: int | None = 1, progress=None) -> PBModComp:
    """pbkrtest's ``PBmodcomp(largeModel, smallModel, nsim)`` for LMMs and GLMMs.

    Parameters
    ----------
    large : LinearMixedModel or GeneralizedLinearMixedModel
        The larger model.
    small : fitted model or str
        The smaller model, or a formula refitted on the large model's data (pbkrtest's
        ``update(largeModel, formula)``).
    nsim : int, default 1000
        Number of responses simulated from the small model and refitted with both.
    seed : int, optional
        Seed; results are identical for a seed whatever ``n_jobs``.
    n_jobs : int or None, default 1
        Worker processes (-1: all cores).
    progress : bool, optional
        tqdm bar; default on a terminal for runs over about 2 s.

    Returns
    -------
    PBModComp
        ``.test``: pbkrtest's table (``LRT``, ``PBtest``, ``Gamma``, ``Bartlett`` rows with
        ``stat``, ``df``, ``p.value``); ``.p_value``; the simulated statistics.

    Examples
    --------
    >>> import mmfast
    >>> wl = mmfast.datasets.load("waterlick")
    >>> big = mmfast.glmer("lick ~ dff + (1 | mouseID)", wl, family="binomial")
    >>> pb = mmfast.pbmodcomp(big, "lick ~ (1 | mouseID)", nsim=100, seed=1)
    >>> print(round(pb.test.loc["LRT", "p.value"], 4))
    0.0028
    """
    kind = model_kind(large)
    if isinstance(small, str):
        small = large.refit_formula(small)
    if model_kind(small) != kind:
        raise ArgumentError("both models must be LMMs (mmfast.lmer) or both GLMMs (mmfast.glmer)")
    if large.nobs != small.nobs or not np.allclose(large.frame.y, small.frame.y, equal_nan=True):
        raise ModelSpecError(
            f"the models must be fitted to the same response (same rows): nobs {large.nobs} and {small.nobs}"
        )
    if kind == "glmm" and large.family != small.family:
        raise ModelSpecError(f"the models have different families ({large.family!r}, {small.family!r})")
    nsim = int(nsim)
    if nsim < 1:
        raise ArgumentError(f"nsim must be >= 1 (got {nsim})")
    large, small = _ml(large), _ml(small)
    ndf = large.npar - small.npar
    if ndf <= 0:
        raise ModelSpecError(
            f"the large model must have more parameters than the small one "
            f"({large.npar} vs {small.npar}): swap the arguments?"
        )
    tobs = 2.0 * (large.loglik - small.loglik)
    ss = as_seed_sequence(seed)
    t0 = time.perf_counter()
    results = run_tasks(_run_pb, _PBTask(large, small), nsim, ss, n_jobs=n_jobs, progress=progress, desc="PBmodcomp")
    ref = np.array([np.nan if isinstance(r, TaskFailure) else r for r in results], dtype=float)
    failures = [str(r) for r in results if isinstance(r, TaskFailure)]
    if failures:
        warnings.warn(
            f"{len(failures)} of {nsim} bootstrap refits failed and are not in the "
            "reference distribution (see .failures)",
            RuntimeWarning,
            stacklevel=2,
        )
    return PBModComp(tobs, ndf, ref, failures, time.perf_counter() - t0, ss.entropy, (_formula(large), _formula(small)))

"""Simulation-based scaled (quantile) residuals and their tests, DHARMa's approach.

Each observation's scaled residual is where it falls in the distribution of responses
simulated from the fitted model (new random effects drawn each time, as DHARMa's default
unconditional simulations): u_i = P̂(Y_i < y_i) + U_i · P̂(Y_i = y_i), U_i ~ U(0, 1) (the
randomised probability integral transform, which makes integer responses uniform too; a
continuous response has no ties and u_i is the empirical CDF at y_i).  Under a correctly
specified model the u_i are uniform on (0, 1) whatever the family, so one QQ plot against the
uniform and one KS test serve every GLMM.

Tests (each compares a statistic of the data with its distribution over the simulations; the
two-sided p-value is min(1, 2 min(P(sim <= obs), P(sim >= obs))), DHARMa's ``getP``):

* ``test_dispersion``: the SD of y - fitted against the SDs of y_sim - fitted, fitted being
  the population-level mean g⁻¹(Xβ̂ + offset) as the simulations are unconditional (DHARMa's
  default nonparametric dispersion test); with ``refit=True`` the sum of squared Pearson
  residuals against those of the models refitted to each simulation;
* ``test_zero_inflation``: the number of zeros against the simulated numbers of zeros;
* ``test_uniformity``: Kolmogorov-Smirnov of the scaled residuals against U(0, 1).

``refit=True`` (DHARMa's ``refit = TRUE``, much slower) refits the model to each simulated
response and takes the scaled residual of each observation's response residual among the
refitted models' residuals.

Gamma GLMMs: ``simulate`` draws b = Λθ u as lme4's ``simulate`` does, while glmer's fit (and
``VarCorr``) scale the random effects by σ̂, so unconditional simulations spread far too wide
(cake: dispersion ratio 0.34, KS p ~ 1e-16 on a reasonable fit).  ``simulate_residuals`` warns
and ``conditional=True`` (ratio 0.94, KS p = 0.78 there) is the usable choice.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ..errors import ArgumentError

__all__ = ["SimulatedResiduals", "SimulationTest", "simulate_residuals", "randomized_pit", "simulation_p_value"]


def randomized_pit(
    observed: np.ndarray, simulated: np.ndarray, rng: np.random.Generator, integer_response: bool = True
) -> np.ndarray:
    """Scaled residuals of ``observed`` (n) among ``simulated`` (n x n_sim): the share of
    simulations below y_i, plus a uniform share of those equal to it (``integer_response``;
    else the empirical CDF at y_i)."""
    y = np.asarray(observed, dtype=float)[:, None]
    S = np.asarray(simulated, dtype=float)
    below = np.mean(S < y, axis=1)
    upto = np.mean(S <= y, axis=1)
    if not integer_response:
        return upto
    return below + rng.uniform(size=len(below)) * (upto - below)


def simulation_p_value(simulated: np.ndarray, observed: float, alternative: str = "two.sided") -> float:
    """P-value of ``observed`` against ``simulated`` values of the same statistic."""
    sim = np.asarray(simulated, dtype=float)
    ge, le = float(np.mean(sim >= observed)), float(np.mean(sim <= observed))
    if alternative == "greater":
        return ge
    if alternative == "less":
        return le
    if alternative == "two.sided":
        return min(1.0, 2.0 * min(ge, le))
    raise ArgumentError(f"alternative must be 'two.sided', 'greater' or 'less', not {alternative!r}")


@dataclass(frozen=True)
class SimulationTest:
    """A simulation test's result: ``statistic`` (observed / mean simulated, or KS's D),
    ``p_value``, the observed and simulated values of the statistic."""

    method: str
    statistic: float
    p_value: float
    alternative: str = "two.sided"
    observed: float = float("nan")
    simulated: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)


class SimulatedResiduals:
    """DHARMa-style scaled residuals of a fitted model; see :func:`simulate_residuals`.

    Attributes: ``scaled`` (n values in [0, 1]), ``observed`` (the response as the model holds
    it: counts for ``cbind(s, f)``), ``simulated`` (n x n_sim), ``fitted`` (population-level
    means g⁻¹(Xβ̂ + offset) on the response's scale; g⁻¹(Xβ̂ + offset + Zb̂) if
    ``conditional``), ``integer_response``, ``refit``.
    """

    def __init__(
        self,
        model,
        observed,
        simulated,
        fitted,
        scaled,
        integer_response,
        refit,
        refit_pearson=None,
        conditional: bool = False,
    ):
        self.model, self.conditional = model, conditional
        self.observed, self.simulated, self.fitted = observed, simulated, fitted
        self.scaled = scaled
        self.integer_response, self.refit = integer_response, refit
        self._refit_pearson = refit_pearson

    @property
    def n_sim(self) -> int:
        return self.simulated.shape[1]

    def _generic(self, summary, method: str, alternative: str) -> SimulationTest:
        obs = float(summary(self.observed))
        sim = np.array([summary(self.simulated[:, j]) for j in range(self.n_sim)], dtype=float)
        p = simulation_p_value(sim, obs, alternative)
        return SimulationTest(method, obs / np.mean(sim), p, alternative, obs, sim)

    def test_dispersion(self, alternative: str = "two.sided") -> SimulationTest:
        """Over/underdispersion: statistic = observed / mean simulated spread (> 1: overdispersed)."""
        if self.refit:
            obs = float(np.sum(_pearson(self.model) ** 2))
            sim = np.sum(self._refit_pearson**2, axis=0)
            return SimulationTest(
                "dispersion: Pearson chi-square, fitted vs refitted to simulations",
                obs / np.mean(sim),
                simulation_p_value(sim, obs, alternative),
                alternative,
                obs,
                sim,
            )
        fitted = self.fitted
        return self._generic(
            lambda y: np.std(y - fitted, ddof=1), "dispersion: sd of residuals, fitted vs simulated", alternative
        )

    def test_zero_inflation(self, alternative: str = "two.sided") -> SimulationTest:
        """Zero-inflation: statistic = observed zeros / mean simulated zeros (> 1: too many)."""
        return self._generic(lambda y: np.sum(y == 0), "zero-inflation: observed vs simulated zeros", alternative)

    def test_uniformity(self, alternative: str = "two-sided") -> SimulationTest:
        """Kolmogorov-Smirnov test of the scaled residuals against U(0, 1) (statistic D)."""
        ks = stats.kstest(self.scaled, "uniform", alternative=alternative)
        return SimulationTest(
            "uniformity: one-sample Kolmogorov-Smirnov", float(ks.statistic), float(ks.pvalue), alternative
        )

    def plot(self, **kwargs):
        """QQ plot of the scaled residuals against U(0, 1) and scaled residuals against the
        rank-transformed fitted values (``mmfast.present.plots.plot_simulated_residuals``)."""
        from ..present.diagnostic_plots import plot_simulated_residuals

        return plot_simulated_residuals(self, **kwargs)

    def __repr__(self) -> str:
        return (
            f"<SimulatedResiduals n={len(self.scaled)}, n_sim={self.n_sim}, "
            f"integer_response={self.integer_response}, refit={self.refit}>"
        )


def _pearson(model) -> np.ndarray:
    """Pearson residuals, unscaled for an LMM (refits' sums of squares stay comparable)."""
    from ..present.diagnostic_plots import pearson_residuals

    return pearson_residuals(model, scale=False)


def _residuals(model) -> np.ndarray:
    """Response residuals y - μ̂ (conditional on the random effects), as DHARMa's refits."""
    if hasattr(model, "resid"):
        return model.resid("response")
    return model.frame.y - model.linear_predictor()


def simulate_residuals(
    model,
    n_sim: int = 250,
    seed=None,
    refit: bool = False,
    integer_response: bool | None = None,
    conditional: bool = False,
) -> SimulatedResiduals:
    """Simulation-based scaled residuals of a fitted LMM or GLMM (R's ``DHARMa::simulateResiduals``).

    Parameters
    ----------
    model : LinearMixedModel or GeneralizedLinearMixedModel
    n_sim : int
        Responses simulated with ``model.simulate`` (new random effects each time).
    seed : int, SeedSequence or Generator, optional
        Reproduces the simulations and the PIT's uniform draws.
    refit : bool
        Refit the model to every simulation (slow) and scale the residuals instead of y.
    conditional : bool
        Keep the random effects at their conditional modes (lme4's ``re.form = NULL``):
        more sensitive to dispersion problems; default: new random effects each simulation.
    integer_response : bool, optional
        Randomise the PIT over ties; default: True for binomial and Poisson families.

    Returns
    -------
    SimulatedResiduals
        ``.scaled``, ``.test_dispersion()``, ``.test_zero_inflation()``,
        ``.test_uniformity()``, ``.plot()``.

    Examples
    --------
    >>> r = simulate_residuals(m, n_sim=250, seed=1)  # doctest: +SKIP
    >>> r.test_dispersion().p_value  # doctest: +SKIP
    """
    from ..resample.parallel import as_seed_sequence
    from ..resample.simulate import ResponseSimulator, simulate

    n_sim = int(n_sim)
    if n_sim < 2:
        raise ArgumentError(f"n_sim must be >= 2 (got {n_sim})")
    sim = ResponseSimulator(model, conditional=conditional)
    if sim.kind != "lmm" and sim.name == "Gamma" and not conditional:
        warnings.warn(
            "unconditional simulations of a Gamma GLMM draw random effects on lme4's "
            "unscaled θ (as lme4's simulate), wider than the fit implies: use "
            "conditional=True",
            UserWarning,
            stacklevel=2,
        )
    if integer_response is None:
        integer_response = sim.kind != "lmm" and sim.name in ("binomial", "poisson")
    ss_sim, ss_pit = as_seed_sequence(seed).spawn(2)
    Y = simulate(model, nsim=n_sim, seed=ss_sim, as_frame=False, conditional=conditional)
    observed = np.asarray(model.frame.y, dtype=float)
    eta = np.asarray(sim.eta_conditional if conditional else sim.eta_fixed, dtype=float)
    fitted = eta.copy() if sim.kind == "lmm" else model.family.linkinv(eta)
    if sim.kind != "lmm" and sim.name == "binomial" and sim.counts:
        fitted = fitted * sim.size  # cbind(s, f): counts, as the simulations
    rng = np.random.default_rng(ss_pit)
    if not refit:
        scaled = randomized_pit(observed, Y, rng, integer_response)
        return SimulatedResiduals(model, observed, Y, fitted, scaled, integer_response, False, conditional=conditional)
    from ..resample.refit import Refitter

    refitter = Refitter(model)
    res, pear = np.empty_like(Y), np.empty_like(Y)
    for j in range(n_sim):
        mj = refitter(Y[:, j])
        res[:, j], pear[:, j] = _residuals(mj), _pearson(mj)
    scaled = randomized_pit(_residuals(model), res, rng, integer_response=True)
    return SimulatedResiduals(model, observed, Y, fitted, scaled, integer_response, True, pear, conditional=conditional)

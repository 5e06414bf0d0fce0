"""Simulation and resampling: ``simulate``, ``refit_response``, ``bootstrap``, ``confint_boot``,
``pbmodcomp`` (pbkrtest's PBmodcomp) and ``cluster_permutation_test`` (the lecture's check).

Every Monte-Carlo run is seeded per task (``parallel``): the same ``seed`` gives the same
answer for any ``n_jobs``.  ``simulate(model, ...)`` and ``bootstrap(model, ...)`` take the
fitted model first, so they can be bound as methods (``m.simulate(nsim, seed)``).
"""

from .bootstrap import bootstrap, confint_boot, percentile_intervals
from .pbmodcomp import PBModComp, pbmodcomp
from .permutation import PermutationTest, cluster_permutation_test
from .refit import refit_response
from .simulate import simulate

__all__ = [
    "simulate",
    "refit_response",
    "bootstrap",
    "confint_boot",
    "percentile_intervals",
    "pbmodcomp",
    "PBModComp",
    "cluster_permutation_test",
    "PermutationTest",
]

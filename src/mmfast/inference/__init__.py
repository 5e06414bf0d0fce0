"""Inference for fitted LMMs: df for t/F tests, F tables, LR tests, intervals, ICCs.

Modules: ``structure`` (q-dimensional algebra of V), ``derivatives`` (exact and Richardson
derivatives wrt (θ, σ)), ``satterthwaite``, ``kenward_roger``, ``between_within`` (nlme's df),
``fixed_terms`` / ``contrasts`` (Type I/II/III hypotheses), ``ftests`` (coefficient table,
``contest``, anova), ``lrt`` (``anova(m0, m1)``, ``drop1``), ``profile`` (profile likelihood,
``confint``), ``icc``.
"""

from .icc import icc, icc_by_group
from .lrt import anova_lrt as anova
from .lrt import drop1

__all__ = ["anova", "drop1", "icc", "icc_by_group"]

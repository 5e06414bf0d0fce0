"""The lecture's figures and lme4's diagnostic plots, each a function returning a matplotlib Figure.

* :func:`plot_by_cluster` - per-animal box or violin plots with jittered points coloured by
  treatment group (the lecture's ``boxplot``/``vioplot`` + ``stripchart``, ggplot2's ``geom_violin``);
* :func:`plot_spaghetti` - paired measures per unit (cell) across time, one panel per animal,
  optionally with the before/after scatter beside each (the lecture's Figure 3);
* :func:`plot_caterpillar` - conditional modes with intervals (lattice's ``dotplot(ranef(m, condVar = TRUE))``);
* :func:`plot_diagnostics` - residuals vs fitted and normal QQ (``plot(m)``, ``qqnorm(resid(m))``);
* :func:`plot_profile` - profile zeta plots (``xyplot(profile(m))``);
* :func:`plot_pvalues` - p-value histograms, e.g. under permutation (``hist(pvalues)``);
* :func:`plot_simulated_residuals` - DHARMa's QQ plot of simulation-based scaled residuals
  against the uniform and residuals against rank-transformed predictions.

They live by concept in ``data_plots`` (the data), ``fit_plots`` (estimates),
``diagnostic_plots`` (residuals) and ``plot_base`` (shared helpers); this module gathers them.
Every plot labels its axes (column names or what is drawn).

matplotlib is an optional dependency (``pip install 'mmfast[plot]'``) imported only when a
plot is drawn.  Figures are created through ``matplotlib.pyplot`` so that notebooks show them;
in scripts and loops close them with ``matplotlib.pyplot.close(fig)``.  Every drawn element a
caller may want to find again carries a ``gid`` (``"box:<cluster>"``, ``"points:<group>"``, ...).
"""

from __future__ import annotations

from .data_plots import plot_by_cluster, plot_spaghetti
from .diagnostic_plots import plot_diagnostics, plot_simulated_residuals
from .fit_plots import PROFILE_LEVELS, plot_caterpillar, plot_profile, plot_pvalues

__all__ = [
    "plot_by_cluster",
    "plot_spaghetti",
    "plot_caterpillar",
    "plot_diagnostics",
    "plot_profile",
    "plot_pvalues",
    "plot_simulated_residuals",
    "PROFILE_LEVELS",
]

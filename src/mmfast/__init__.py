"""mmfast: lme4's mixed-effects models from Python, fast.

Public API: ``lmer`` (linear mixed models), ``glmer`` (generalized linear mixed models; their
families and links in ``families``), ``lm`` (the naive linear model), ``anova``
(likelihood-ratio tests between models), ``icc_by_group``, ``variance_test`` (boundary-aware
tests of a variance component), ``datasets`` (the bundled data).
"""

from . import datasets, errors, families
from .errors import *  # noqa: F403  (the exceptions and warnings: errors.__all__)
from .inference import anova, icc_by_group
from .inference.variance_test import variance_test
from .api import GeneralizedLinearMixedModel, LinearMixedModel, LinearModel, glmer, glmer_nb, lm, lmer
from ._version import __version__  # noqa: F401  (the package version)
from .model.control import GlmmControl, IterativeControl, LmmControl

__all__ = [
    "lmer",
    "LinearMixedModel",
    "glmer",
    "glmer_nb",
    "GeneralizedLinearMixedModel",
    "families",
    "lm",
    "LinearModel",
    "anova",
    "icc_by_group",
    "variance_test",
    "datasets",
    *errors.__all__,
    "LmmControl",
    "GlmmControl",
    "IterativeControl",
]
from .pipeline import fit_many  # noqa: E402

__all__ += ["fit_many"]  # many-model pipeline (issue 6)
from .nlme import lme  # noqa: E402
from .nlme import corAR1, corCAR1, corCompSymm, corExp, corSymm, varExp, varFixed, varIdent, varPower  # noqa: E402
from .nlme import varConstPower  # noqa: E402

__all__ += ["lme"]  # nlme's calling style (issue 9)
# nlme's residual structures, for lme(correlation=, weights=) and lmer(residual=) (issue 16)
__all__ += ["corAR1", "corCAR1", "corCompSymm", "corExp", "corSymm", "varIdent", "varPower", "varExp", "varFixed"]
__all__ += ["varConstPower"]
from .emmeans import emmeans  # noqa: E402

__all__ += ["emmeans"]  # marginal means and contrasts (issue 9)
from .resample import cluster_permutation_test, pbmodcomp  # noqa: E402

__all__ += ["pbmodcomp", "cluster_permutation_test"]  # simulation and resampling (issue 5)
from .diagnostics import r2_nakagawa, simulate_residuals  # noqa: E402

__all__ += ["r2_nakagawa", "simulate_residuals"]  # R² and DHARMa-style residuals (issue 18)

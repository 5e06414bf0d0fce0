"""mmfast: lme4's mixed-effects models from Python, fast.

Public API: ``lmer`` (linear mixed models), ``datasets`` (the bundled data).
"""
from . import datasets
from .errors import (ConvergenceWarning, DataError, FormulaError, MmfastError, ModelSpecError,
                     RankDeficiencyWarning, SingularFitWarning)
from .model.lmm import LinearMixedModel, lmer

__version__ = "0.1.0"
__all__ = ["lmer", "LinearMixedModel", "datasets", "MmfastError", "FormulaError", "DataError",
           "ModelSpecError", "SingularFitWarning", "ConvergenceWarning", "RankDeficiencyWarning"]

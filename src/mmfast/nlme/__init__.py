"""nlme's calling style: ``lme(fixed, data, random, method)`` and what nlme prints.

The model is fitted by ``mmfast.lmer`` (lme4's formula is built from ``random``); the
results are reported as ``nlme::lme`` reports them (between-within DF, nlme's ML standard
errors, sequential F tests, REML BIC on N - p).
"""

from .corstruct import corAR1, corCAR1, corCompSymm, corExp, corSymm
from .lme import LmeFit, lme
from .random import RandomLevel, lme4_formula, parse_random
from .varfunc import varConstPower, varExp, varFixed, varIdent, varPower

__all__ = [
    "lme",
    "LmeFit",
    "RandomLevel",
    "parse_random",
    "lme4_formula",
    "corAR1",
    "corCAR1",
    "corCompSymm",
    "corExp",
    "corSymm",
    "varIdent",
    "varPower",
    "varExp",
    "varConstPower",
    "varFixed",
]

"""statsmodels ``MixedLM`` (one grouping factor, nested variance components), ML fit."""
from __future__ import annotations

from ._statsmodels_like import mixedlm_spec

NAME = "statsmodels"
IMPORT = "statsmodels.formula.api"
DIST = "statsmodels"  # its distribution, for the version


def cannot_fit(workload, data):
    spec = mixedlm_spec(workload, data)
    return spec if isinstance(spec, str) else None


def fitter(workload, data):
    import statsmodels.formula.api as smf

    formula, kwargs = mixedlm_spec(workload, data)
    return lambda: smf.mixedlm(formula, data, **kwargs).fit(reml=False)


def loglik(fit):
    return fit.llf

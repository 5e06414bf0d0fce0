"""statsmodels ``MixedLM`` (one grouping factor, nested variance components), ML fit."""

from __future__ import annotations

from ._statsmodels_like import cannot_fit, loglik, make_fitter  # noqa: F401 - the interface

NAME = "statsmodels"
IMPORT = "statsmodels.formula.api"
DIST = "statsmodels"  # its distribution, for the version


def fitter(workload, data):
    import statsmodels.formula.api as smf

    return make_fitter(smf.mixedlm, workload, data)

"""mixedlm-rs (PyPI ``mixedlm-rs``): statsmodels' ``mixedlm`` interface on a Rust core."""
from __future__ import annotations

from ._statsmodels_like import mixedlm_spec

NAME = "mixedlm-rs"
IMPORT = "mixedlm_rs"
DIST = "mixedlm-rs"  # its distribution, for the version


def cannot_fit(workload, data):
    spec = mixedlm_spec(workload, data)
    return spec if isinstance(spec, str) else None


def fitter(workload, data):
    import mixedlm_rs

    formula, kwargs = mixedlm_spec(workload, data)
    return lambda: mixedlm_rs.mixedlm(formula, data, **kwargs).fit(reml=False)


def loglik(fit):
    return fit.llf

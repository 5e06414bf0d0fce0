"""mixedlm-rs (PyPI ``mixedlm-rs``): statsmodels' ``mixedlm`` interface on a Rust core."""

from __future__ import annotations

from ._statsmodels_like import cannot_fit, loglik, make_fitter  # noqa: F401 - the interface

NAME = "mixedlm-rs"
IMPORT = "mixedlm_rs"
DIST = "mixedlm-rs"  # its distribution, for the version


def fitter(workload, data):
    import mixedlm_rs

    return make_fitter(mixedlm_rs.mixedlm, workload, data)

"""glmm (PyPI ``glmm``, Python port of the Rust ``glmm`` crate): ``glmm.fit`` with lme4
formulas; Satterthwaite degrees of freedom switched off (not part of a fit elsewhere)."""
from __future__ import annotations

NAME = "glmm"
IMPORT = "glmm"
DIST = "glmm"  # its distribution, for the version


def fitter(workload, data):
    import glmm

    family = workload.family or "gaussian"
    kwargs = {"reml": False} if workload.kind == "LMM" else {}
    return lambda: glmm.fit(data, workload.formula, family, satterthwaite=False, **kwargs)


def loglik(fit):
    return fit.loglik


def evaluations(fit):
    return fit.n_eval

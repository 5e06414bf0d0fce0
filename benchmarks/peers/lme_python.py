"""lme-python (PyPI ``lme-python``, Rust ``lme-rs``): ``lmer`` / ``glmer`` with lme4 formulas."""
from __future__ import annotations

NAME = "lme-python"
IMPORT = "lme_python"
DIST = "lme_python"  # its distribution, for the version


def fitter(workload, data):
    import lme_python

    if workload.kind == "GLMM":
        return lambda: lme_python.glmer(workload.formula, data, workload.family)
    return lambda: lme_python.lmer(workload.formula, data, reml=False)


def loglik(fit):
    return fit.log_likelihood


def evaluations(fit):
    return getattr(fit, "iterations", None)

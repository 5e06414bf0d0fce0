"""lme-python (PyPI ``lme-python``, Rust ``lme-rs``): ``lmer`` / ``glmer`` with lme4 formulas."""

from __future__ import annotations

from . import split_formula

NAME = "lme-python"
IMPORT = "lme_python"
DIST = "lme_python"  # its distribution, for the version


def cannot_fit(workload, data):
    """lme-python 0.2.7 rejects a factor inside a random-effects term ("must be numeric")."""
    for expr, group in split_formula(workload.formula)[2]:
        if any(f in expr.replace("+", " ").split() for f in workload.factors):
            return f"factor in the random-effects term ({expr} | {group}): numeric columns only"
    return None


def fitter(workload, data):
    import lme_python

    if workload.kind == "GLMM":
        return lambda: lme_python.glmer(workload.formula, data, workload.family)
    return lambda: lme_python.lmer(workload.formula, data, reml=False)


def loglik(fit):
    return fit.log_likelihood


def evaluations(fit):
    return getattr(fit, "iterations", None)

"""glmm (PyPI ``glmm``, Python port of the Rust ``glmm`` crate): ``glmm.fit`` with lme4
formulas; Satterthwaite degrees of freedom switched off (not part of a fit elsewhere)."""

from __future__ import annotations

from . import split_formula

NAME = "glmm"
IMPORT = "glmm"
DIST = "glmm"  # its distribution, for the version


def cannot_fit(workload, data):
    """glmm 0.6.2 needs the intercept in every random-effects term with a slope."""
    for expr, group in split_formula(workload.formula)[2]:
        if expr.replace(" ", "").startswith(("0+", "-1+")):
            return f"random term ({expr} | {group}) without intercept is not supported"
    return None


def fitter(workload, data):
    import glmm

    family = workload.family or "gaussian"
    kwargs = {"reml": False} if workload.kind == "LMM" else {}
    return lambda: glmm.fit(data, workload.formula, family, satterthwaite=False, **kwargs)


def loglik(fit):
    return fit.loglik


def evaluations(fit):
    return fit.n_eval

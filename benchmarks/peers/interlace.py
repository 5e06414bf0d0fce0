"""interlace (PyPI ``interlace-lme``): the fixed part as a formula, the random terms as a list
of lme4 terms; ML for LMMs, Laplace for GLMMs."""

from __future__ import annotations

from . import split_formula

NAME = "interlace"
IMPORT = "interlace"
DIST = "interlace-lme"  # its distribution, for the version


def fitter(workload, data):
    import interlace

    lhs, fixed, random = split_formula(workload.formula)
    fixed_formula = f"{lhs} ~ {' + '.join(fixed)}"
    terms = [f"({expr} | {group})" for expr, group in random]
    if workload.kind == "GLMM":
        return lambda: interlace.glmer(fixed_formula, data, workload.family, random=terms)
    return lambda: interlace.fit(fixed_formula, data, random=terms, method="ML")


def loglik(fit):
    return fit.llf

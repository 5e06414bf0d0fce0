"""What a statsmodels-style ``MixedLM`` (one grouping factor, variance components nested in
it) can express of an lme4 formula, shared by the statsmodels and mixedlm-rs adapters."""

from __future__ import annotations

from . import split_formula


def mixedlm_spec(workload, data):
    """(fixed formula, keyword arguments of ``mixedlm``) or a reason string it cannot fit:
    one term ``(expr | G)`` plus intercept terms ``(1 | H)`` with H nested in G."""
    if workload.kind != "LMM":
        return "no maximum-likelihood GLMM (MixedLM is Gaussian; the binomial mixed GLM is Bayesian)"
    lhs, fixed, random = split_formula(workload.formula)
    groups = [g for _, g in random]
    if any(":" in g or "/" in g for g in groups):
        return "interaction grouping factors are not supported"
    top = [g for g in groups if all(_nested(data, g, h) for h in groups)]
    if not top:
        return "crossed random effects (MixedLM has one grouping factor)"
    g = top[0]
    kwargs = {"groups": g}
    for expr, h in random:
        if h == g:  # explicit even for "1": with vc_formula statsmodels drops the intercept
            kwargs["re_formula"] = f"~{expr}"
        elif expr.strip() == "1":
            kwargs.setdefault("vc_formula", {})[h] = f"0 + C({h})"
        else:
            return f"random slopes on the nested factor {h}"
    return f"{lhs} ~ {' + '.join(fixed)}", kwargs


def _nested(data, outer: str, inner: str) -> bool:
    """True when every level of ``inner`` lies within one level of ``outer``."""
    return outer == inner or bool((data.groupby(inner, observed=True)[outer].nunique() <= 1).all())


def cannot_fit(workload, data):
    spec = mixedlm_spec(workload, data)
    return spec if isinstance(spec, str) else None


def make_fitter(mixedlm, workload, data):
    """One ML fit with ``mixedlm`` (statsmodels' formula function or a clone of it)."""
    formula, kwargs = mixedlm_spec(workload, data)
    return lambda: mixedlm(formula, data, **kwargs).fit(reml=False)


def loglik(fit):
    return fit.llf

"""Template models: the shared design of a class of groups, built once, unfitted.

``build_template`` runs the model frame (formula, checks, model matrices) on one group's
rows with a placeholder response.  Groups of a class that miss some responses need the
same design without those rows; ``subset_template`` derives it from the class's template
with the model's ``subset_frame`` (``model.subset``: rows selected, not the formula run again,
where that is exactly ``lmer``'s design) and returns None otherwise (the caller then builds
the template from the rows).
"""

from __future__ import annotations

import numpy as np

from ..model.subset import subset_allowed, subset_frame

__all__ = ["build_template", "build_glmm_template", "subset_template", "subset_allowed"]

PLACEHOLDER_SEED = 20240601


def build_template(parsed, data, rows, needed, response_only, reml, kwargs, optctrl):
    """The design of ``data.iloc[rows]`` as an unfitted LinearMixedModel (placeholder y)."""
    from ..model.frame import model_frame
    from ..model.lmm import LinearMixedModel

    sub = data.iloc[rows][needed].reset_index(drop=True)
    rng = np.random.default_rng(PLACEHOLDER_SEED)
    for c in response_only:  # placeholder response: positive, never constant
        sub[c] = 1.0 + rng.random(len(sub))
    nobs_check = kwargs.get("check_nobs_vs_nre", "stop")
    frame = model_frame(
        parsed.formula, sub, weights=kwargs.get("weights"), offset=kwargs.get("offset"), check_nobs_vs_nre=nobs_check
    )
    return LinearMixedModel(frame, reml=reml, options={"check_nobs_vs_nre": nobs_check, **optctrl})


def build_glmm_template(parsed, data, rows, needed, response_only, family, kwargs):
    """The design of ``data.iloc[rows]`` as an unfitted GLMM of ``family`` with ``glmer``'s frame
    and checks (placeholder counts: non-negative integers, never constant)."""
    from ..families import get_family
    from ..model.frame import model_frame
    from ..model.glmm import GeneralizedLinearMixedModel

    sub = data.iloc[rows][needed].reset_index(drop=True)
    rng = np.random.default_rng(PLACEHOLDER_SEED)
    for c in response_only:
        sub[c] = (np.arange(len(sub)) % 2 + rng.integers(0, 5, len(sub))).astype(float)
    fam = get_family(family)
    nobs_check = kwargs.get("check_nobs_vs_nre", "ignore")  # glmer's defaults
    checks = {"check_nobs_vs_nlev": "ignore", "check_nlev_gtr_1": "stop", "allow_n": True}
    frame = model_frame(
        parsed.formula,
        sub,
        weights=kwargs.get("weights"),
        offset=kwargs.get("offset"),
        check_nobs_vs_nre=nobs_check,
        level_checks=checks,
        response_kind="numeric",
    )
    options = {"weights": kwargs.get("weights"), "offset": kwargs.get("offset"), "check_nobs_vs_nre": nobs_check,
               "level_checks": checks}  # fmt: skip
    return GeneralizedLinearMixedModel(frame, fam, options=options)


def subset_template(model, keep: np.ndarray, check_nobs_vs_nre: str = "stop"):
    """``model``'s design on the rows ``keep`` (bool), or None when that is not lmer's design."""
    frame = subset_frame(model.frame, keep, check_nobs_vs_nre)
    return None if frame is None else model.with_frame(frame)

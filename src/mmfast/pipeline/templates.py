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

__all__ = ["build_template", "subset_template", "subset_allowed"]

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


def subset_template(model, keep: np.ndarray, check_nobs_vs_nre: str = "stop"):
    """``model``'s design on the rows ``keep`` (bool), or None when that is not lmer's design."""
    frame = subset_frame(model.frame, keep, check_nobs_vs_nre)
    return None if frame is None else model.with_frame(frame)

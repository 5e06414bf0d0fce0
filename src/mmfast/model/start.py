"""Starting values for θ near the optimum, for the large models that are fitted by Newton steps.

lme4 starts every standard-deviation ratio at 1.  For a scalar intercept term (1 | g) the
between-group variance of the OLS residuals' group means, less the within-group share,
estimates σ_g² (the method of moments, one pass over the rows); θ_g = σ_g / σ with σ² the
residual variance left over.  Other terms keep lme4's start.  Only a start: the optimum is the
same, it is reached in fewer evaluations (InstEval: 10 instead of 15).
"""
from __future__ import annotations

import numpy as np

__all__ = ["moment_start"]

FLOOR = 0.01  # smallest variance share a start gives a term (θ = 0 would pin it in log scale)


def moment_start(model) -> np.ndarray:
    """θ₀ from group means of the OLS residuals (scalar intercept terms), lme4's elsewhere."""
    frame = model.frame
    r = model._residual_response(frame.y)
    s2 = float(r @ r) / len(r)
    if not s2 > 0:
        return np.array(model.theta_start, dtype=float)
    var = []
    for t in frame.terms:
        if t.p == 1 and np.all(t.X[:, 0] == 1.0):
            cnt = np.bincount(t.factor.codes, minlength=t.nlevels).astype(float)
            means = np.bincount(t.factor.codes, r, minlength=t.nlevels) / np.maximum(cnt, 1.0)
            between = float(cnt @ means ** 2) / len(r)  # residuals have mean ~0 (intercept in X)
            var.append(max(between - s2 * t.nlevels / len(r), FLOOR * s2))
        else:
            var.append(None)
    resid = max(s2 - sum(v for v in var if v is not None), FLOOR * s2)
    out = []
    for t, v in zip(frame.terms, var):
        out.extend(t.theta_start() if v is None else [np.sqrt(v / resid)])
    return np.array(out, dtype=float)

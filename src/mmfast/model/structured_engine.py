"""A PIRLS engine seen through a structured θ layout (``design.structures``).

The compiled engines scatter θ linearly into the templates (every term ``us``).  For a model
with a structured term the engine is built on the layout's ``unstructured()`` twin and this
wrapper maps the optimiser's θ to that twin's entries (``ThetaLayout.expand``) on every call;
gradients come back through the chain rule (``expand_jacobian``).  Cost per evaluation: p x p
work per structured term, nothing over the n rows.
"""

from __future__ import annotations

import numpy as np

from .pirls import ThetaScaled

__all__ = ["StructuredEngine"]


class StructuredEngine(ThetaScaled):
    """``engine`` (on ``layout.unstructured()``) driven by ``layout``'s θ (the pass-through of
    everything else is ``ThetaScaled``'s, at scale 1)."""

    def __init__(self, engine, layout):
        super().__init__(engine, 1.0, layout.ntheta)
        self.layout, self.nentries = layout, layout.nentries

    def _x(self, x):
        """[expand(θ), β] from [θ, β]; None when θ is infeasible (a non-PD toep correlation)."""
        x = np.asarray(x, dtype=float)
        th = self.layout.expand(x[: self.ntheta])
        if not np.all(np.isfinite(th)):
            return None
        return np.concatenate([th, x[self.ntheta :]])

    def laplace(self, x, grad=None) -> float:
        xe = self._x(x)
        return np.inf if xe is None else self._eng.laplace(xe)

    def joint(self, theta, grad=None) -> float:
        xe = self._x(theta)
        return np.inf if xe is None else self._eng.joint(xe)

    def laplace_grad(self, x, grad) -> float:
        xe = self._x(x)
        if xe is None:
            grad[:] = np.nan
            return np.inf
        ge = np.empty(len(xe))
        val = self._eng.laplace_grad(xe, ge)
        J = self.layout.expand_jacobian(np.asarray(x[: self.ntheta], dtype=float))
        grad[: self.ntheta] = ge[: self.nentries] @ J
        grad[self.ntheta :] = ge[self.nentries :]
        return val

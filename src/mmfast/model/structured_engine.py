"""A PIRLS engine seen through a structured θ layout (``design.structures``).

The compiled engines scatter θ linearly into the templates (every term ``us``).  For a model
with a structured term the engine is built on the layout's ``unstructured()`` twin and this
wrapper maps the optimiser's θ to that twin's entries (``ThetaLayout.expand``) on every call;
gradients come back through the chain rule (``expand_jacobian``).  Cost per evaluation: p x p
work per structured term, nothing over the n rows.
"""

from __future__ import annotations

import numpy as np

__all__ = ["StructuredEngine"]


class StructuredEngine:
    """``engine`` (on ``layout.unstructured()``) driven by ``layout``'s θ."""

    def __init__(self, engine, layout):
        self._eng, self.layout = engine, layout
        self.ntheta, self.nentries = layout.ntheta, layout.nentries

    def __getattr__(self, name):  # beta_, u_, eta_, rx_matrix, set_state, set_transform...
        return getattr(self._eng, name)

    @property
    def tol(self):
        return self._eng.tol

    @tol.setter
    def tol(self, value):
        self._eng.tol = value

    @property
    def ftol(self):
        return self._eng.ftol

    @ftol.setter
    def ftol(self, value):
        self._eng.ftol = value

    @property
    def newton(self):
        return self._eng.newton

    @newton.setter
    def newton(self, value):
        self._eng.newton = value

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

"""A PIRLS engine seen through a structured θ layout (``design.structures``).

The compiled engines scatter θ linearly into the templates (every term ``us``).  For a model
with a structured term the engine is built on the layout's ``unstructured()`` twin and this
wrapper maps the optimiser's θ to that twin's entries (``ThetaLayout.expand``) on every call;
gradients come back through the chain rule (``expand_jacobian``).  Cost per evaluation: p x p
work per structured term, nothing over the n rows.

Between evaluations a vector-valued term's warm start keeps b = Λu rather than u (as the loop
does for scalar terms, ``KernelLoop.warm_start_in_b``): u <- Λ_new⁻¹ Λ_old u per level, so a
step in θ (a change of ρ or σ) starts PIRLS near the mode instead of a rescaled one away.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from .pirls import ThetaScaled

__all__ = ["StructuredEngine"]


class StructuredEngine(ThetaScaled):
    """``engine`` (on ``layout.unstructured()``) driven by ``layout``'s θ (the pass-through of
    everything else is ``ThetaScaled``'s, at scale 1)."""

    def __init__(self, engine, layout):
        super().__init__(engine, 1.0, layout.ntheta)
        self.layout, self.nentries = layout, layout.nentries
        self._keep = False
        # vector-valued terms of a kernel loop: (offset in T, p, u range) for the warm start
        self._vec, self._state = [], getattr(engine, "state", lambda: None)()
        if self._state is not None:
            self._pos = layout.unstructured().pos
            tofs = 0
            for pm, t in zip(layout.params, engine.frame.terms):
                if pm.p > 1:
                    self._vec.append((tofs, pm.p, t.offset, t.offset + t.q))
                tofs += pm.p * pm.p

    def set_state(self, u, beta):
        """The caller's state is the start it asked for: no warm-start mapping at the next call."""
        self._eng.set_state(u, beta)
        self._keep = True

    def _x(self, x):
        """[expand(θ), β] from [θ, β]; None when θ is infeasible (a non-PD toep correlation).
        The warm start of vector-valued terms moves to keep b = Λu (module docstring)."""
        x = np.asarray(x, dtype=float)
        th = self.layout.expand(x[: self.ntheta])
        if not np.all(np.isfinite(th)):
            return None
        keep, self._keep = self._keep, False
        if self._vec and not keep and not self._eng.fresh:
            self._keep_b(th)
        return np.concatenate([th, x[self.ntheta :]])

    def _keep_b(self, entries) -> None:
        """u <- Λ_new⁻¹ Λ_old u for each vector-valued term (skipped where Λ_new is singular)."""
        Told, u = self._state["T"], self._state["u"]
        Tnew = np.zeros(len(Told))
        Tnew[self._pos] = entries
        for ofs, p, a, b in self._vec:
            To = Told[ofs : ofs + p * p].reshape(p, p, order="F")
            Tn = Tnew[ofs : ofs + p * p].reshape(p, p, order="F")
            d = np.abs(np.diag(Tn))
            if np.array_equal(To, Tn) or not np.all(d > 1e-10 * max(d.max(), 1e-300)):
                continue
            U = u[a:b].reshape(-1, p)
            U[:] = U @ solve_triangular(Tn, To, lower=True).T

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

"""The GLMM side of the kernel interface: what one PIRLS iteration needs from a factorisation.

The loop (``mmfast._ext._pirls.PirlsLoop``) is written once; a kernel supplies the linear
algebra of an iteration at the working weights.  ``SingleTerm`` (one term, block-diagonal A) does
it in Cython; ``GeneralKernel`` here does it for several terms on the LMM kernels (``PLSKernel``
on CHOLMOD or ``BlockedKernel``, symbolic analysis once), run by ``KernelLoop``.  The method
names follow the LMM kernel Protocol (``reweight``, ``update``, ``solve``).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from .._ext._crossprods import Crossprods
from ..design.blocks import build_blocks
from ..design.theta import ThetaLayout
from . import laplace_gradient
from .control import LmmControl

__all__ = ["PirlsKernel", "GeneralKernel"]

# nested scalar terms take the tree kernel only where the blocked kernel (whose selected
# inverse gives the analytic Laplace gradient) does not apply: more levels than a dense part
KERNELS = LmmControl(nested_min_schur=LmmControl().dense_schur_max + 1)


class PirlsKernel(Protocol):
    """One PIRLS iteration's linear algebra on the loop's state (u, beta, eta, base, T, w, zt:
    views of ``KernelLoop.state()``, read and written in place)."""

    def reweight(self, w, zt, joint: bool) -> None:
        """Cross-products of [ZΛ (X) z] under the working weights w, response zt."""

    def update(self, T):
        """Factor A(θ) = Λ'Z'WZΛ + I (and the fixed-effects Schur complement): (log|A|, M),
        M None when not positive definite."""

    def solve(self, joint: bool):
        """reweight + update + the conditional modes u (and beta if joint) into the state:
        (ldL2, ldRX2 or None), or None when not positive definite."""

    def refactor(self):
        """reweight + update at the current u (u kept): ldL2, or None."""

    def linpred(self) -> None:
        """eta = base + ZΛu."""


class GeneralKernel:
    """PIRLS kernel for several random-effects terms (see the module docstring)."""

    def __init__(self, frame, family, state: dict, layout: ThetaLayout | None = None):
        from .lmm import make_kernel

        self.frame = frame
        terms = frame.terms
        self.s = state
        n, p = state["X"].shape
        self.n, self.px = n, p
        blocks = build_blocks(terms, np.zeros((n, p + 1)))
        q = blocks.q
        self.q = q
        self.cp = Crossprods(blocks, terms)
        self.blocks_u = dataclasses.replace(blocks, ZtW=np.zeros((q, 1), order="F"), WtW=np.zeros((1, 1)))
        self.kj = make_kernel(blocks, terms, KERNELS)
        self.ku = make_kernel(self.blocks_u, terms, KERNELS)
        self.V = np.zeros_like(blocks.V)
        self.ZtW = {True: np.zeros((q, p + 1), order="F"), False: np.zeros((q, 1), order="F")}
        self.WtW = {True: np.zeros((p + 1, p + 1)), False: np.zeros((1, 1))}
        self.layout = ThetaLayout(terms) if layout is None else layout
        self.tidx = self.layout.pos
        self._grad, self._theta_pos = None, []
        if laplace_gradient.supports(frame, family, self.ku):
            self._grad = laplace_gradient.LaplaceGradient(frame, family, blocks, self.cp)
            self._theta_pos = [
                (k, r, c)
                for k, pm in enumerate(self.layout.params)  # the kernel's (unstructured) layout
                for r, c in zip(pm.rows.tolist(), pm.cols.tolist())
            ]

    @property
    def has_gradient(self) -> bool:
        """``laplace_gradient.supports``: canonical link, blocked kernel."""
        return self._grad is not None

    def reweight(self, w, zt, joint: bool) -> None:
        self.cp.reweight(w, zt, self.s["X"] if joint else None, self.V, self.ZtW[joint], self.WtW[joint])
        kern = self.kj if joint else self.ku
        kern.set_crossprods(self.V, self.ZtW[joint], self.WtW[joint])

    def update(self, T, joint: bool = False):
        """(log|A|, M) from the joint (with X) or the u-only kernel."""
        return (self.kj if joint else self.ku).update(T)

    def solve(self, joint: bool):
        s, p = self.s, self.px
        self.reweight(s["w"], s["zt"], joint)
        kern = self.kj if joint else self.ku
        ld, M = self.update(s["T"], joint)
        if M is None:
            return None
        ldx = None
        if joint:
            try:
                L = np.linalg.cholesky(M[:p, :p])
            except np.linalg.LinAlgError:
                return None
            s["beta"][:] = np.linalg.solve(M[:p, :p], M[:p, p])  # numpy: tiny, no threaded BLAS
            ldx = 2.0 * float(np.sum(np.log(np.diag(L))))
            s["u"][:] = kern.conditional_modes(s["beta"])
        else:
            s["u"][:] = kern.conditional_modes(np.zeros(0))
        return ld, ldx

    def refactor(self):
        self.reweight(self.s["w"], self.s["zt"], False)
        ld, M = self.update(self.s["T"])
        return None if M is None else ld

    def linpred(self) -> None:
        s = self.s
        self.cp.linpred(s["base"], s["u"], s["T"], s["eta"])

    def gradient(self, resp, Binv) -> np.ndarray:
        """The analytic Laplace gradient at the loop's converged state (``laplace_gradient``)."""
        s = self.s
        return self._grad(self.ku, s["T"], s["u"], s["eta"], resp.y_, resp.pw_, Binv, self._theta_pos)

    def rx_matrix(self) -> np.ndarray:
        """X'WX - X'WZΛ A⁻¹ Λ'Z'WX at the working weights (joint, set by the loop)."""
        self.reweight(self.s["w"], self.s["zt"], True)
        _, M = self.update(self.s["T"], True)
        if M is None:
            raise FloatingPointError("the penalised cross-product is not positive definite")
        return M[: self.px, : self.px].copy()

    def ainv_blocks(self) -> list[np.ndarray]:
        """Diagonal blocks of A⁻¹ per term at the working weights (set by the loop), from the
        engine's own kernel refactored there (no new analysis)."""
        self.reweight(self.s["w"], self.s["zt"], False)
        return self.ku.factor_at(self.s["T"]).selinv_blocks(self.frame.terms)

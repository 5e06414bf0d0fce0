"""The one kernel interface (issue 15): what every PLS kernel gives and every consumer reads.

A kernel factors A = Λ'Z'WZΛ + I for the templates T (flat, column-major per term) and holds
that factor until the next ``update``.  Variance structures, A⁻¹ blocks, gradients,
Kenward-Roger and Satterthwaite read the fitted factor through ``factor_at``: the one the fit
left when its last evaluation was at θ̂, else one refactorisation there on first use (a fit
that ends with a check elsewhere does not pay for it unless inference follows); never a new
analysis.  ``PLSKernel`` (CHOLMOD), ``NestedKernel`` (a chain of nested scalar terms: a
tree factor without fill) and
``BlockedKernel`` implement it, sharing ``_ext._kernel.Kernel`` (the held templates,
``selinv_blocks`` written once over ``solve``, the factorisation counters); ``OneTermKernel``
(``one_term``) is the one-term case, through which the GLMM's one-term engine and the batched
scalar closed forms (``pipeline.scalar``, ``resample.intercept``) are read and tested.
The trace tensors of Satterthwaite and Kenward-Roger are a function of the fitted kernel
(``traces.trace_tensors``: ``solve`` with its factor, never a batched dense re-solve).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from .._ext._kernel import factorization_counts

__all__ = ["Kernel", "factorization_counts", "fitted_kernel"]


@runtime_checkable
class Kernel(Protocol):
    """The PLS kernel contract (sizes: q random effects, ncol = p + 1 columns of [X y])."""

    q: int
    ncol: int
    tsize: int  # length of the flat templates T

    @property
    def logdet(self) -> float:
        """log|A| of the factor held now."""

    def update(self, T: np.ndarray) -> tuple[float, np.ndarray | None]:
        """Factor A at T: (log|A|, M = W'W - B'A⁻¹B), (inf, None) where A is not PD."""

    def profiled(self, T: np.ndarray):
        """``update`` and the Cholesky of M: (log|A|, log|R_X|², r²), or None."""

    def solve(self, B: np.ndarray) -> np.ndarray:
        """A⁻¹B in u's global order (q-vector or q x m), from the factor held now."""

    def selinv_blocks(self, terms) -> list[np.ndarray]:
        """Diagonal p_k x p_k blocks of A⁻¹ per term, arrays (levels, p_k, p_k)."""

    def reweight(self, V, ZtW, WtW) -> None:
        """Load reweighted cross-products (same pattern); the held factor is released."""

    def conditional_modes(self, beta: np.ndarray) -> np.ndarray:
        """Spherical modes u at β from the last update."""

    def at(self, T: np.ndarray) -> bool:
        """Whether the factor held now is A at T."""

    def factor_at(self, T: np.ndarray) -> Kernel:
        """The kernel with its factor at T (the held one if it is there, else refactored)."""


def fitted_kernel(model, theta: np.ndarray | None = None) -> Kernel:
    """The model's own kernel with its factor at θ (the fitted θ unless given)."""
    theta = model.theta if theta is None else theta
    return model.kernel.factor_at(model.templates(np.asarray(theta, dtype=float)))

"""How a fit is run: explicit, immutable strategy objects (lme4's ``lmerControl`` /
``glmerControl``, the parts mmfast has), passed to the fit, with a default instance.

Tests and users who need another path (a kernel forced, a tolerance loosened) pass their own
instance instead of patching module constants.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ArgumentError

__all__ = ["LmmControl", "GlmmControl", "IterativeControl", "check_control"]

SOLVERS = ("exact", "iterative")


@dataclass(frozen=True)
class IterativeControl:
    """The iterative solver's settings (model/iterative.py): Rademacher probes for the SLQ
    log-determinant (fixed seed: the same probes at every θ), PCG tolerances and step cap."""

    probes: int = 32
    seed: int = 20251203
    cg_tol: float = 1e-8  # relative residual of the solves for Λ'Z'[X y]
    probe_tol: float = 1e-6  # ... of the probes' runs, whose Lanczos coefficients give log|S|
    max_steps: int = 2000
    exact_max: int = 2000  # levels of the small terms whose Schur block is factored exactly

    def __post_init__(self):
        if int(self.probes) < 1 or not 0 < self.cg_tol < 1 or not 0 < self.probe_tol < 1 or self.max_steps < 1:
            raise ArgumentError("IterativeControl: probes and max_steps must be >= 1, tolerances in (0, 1)")
        if int(self.exact_max) < 0:
            raise ArgumentError("IterativeControl: exact_max must be >= 0")


@dataclass(frozen=True)
class LmmControl:
    """Kernel and optimiser choice of an LMM fit (measured thresholds, see model/lmm.py).
    ``solver="iterative"``: PCG and stochastic Lanczos quadrature instead of a Cholesky
    factor, for crossed models of scalar terms too large to factor (``iterative``'s settings)."""

    dense_schur_max: int = 2500  # largest dense Schur complement the blocked kernel takes
    # nested scalar terms with this many levels after the first: the tree kernel (measured faster
    # than the blocked one from Pastes' 10 batches up to 10^7 rows)
    nested_min_schur: int = 2
    gradient_min_dense: int = 200  # dense part from which an evaluation is dear enough for L-BFGS-B
    gradient_min_q: int = 3000  # ... or number of random effects (below, BOBYQA is faster)
    many_theta: int = 20  # ... or θ (kb07's 72): then bounded L-BFGS-B on θ, no Newton
    solver: str = "exact"  # or "iterative" (model/iterative.py)
    iterative: IterativeControl = IterativeControl()

    def __post_init__(self):
        if self.solver not in SOLVERS:
            raise ArgumentError(f"LmmControl: solver must be one of {SOLVERS} (got {self.solver!r})")


@dataclass(frozen=True)
class GlmmControl:
    """Tolerances and steps of a GLMM's two-stage fit (model/glmm_fit.py)."""

    grad_tol: float = 2e-3  # lme4's check.conv.grad tolerance, on the scaled gradient
    fd_step: float = 2e-3  # Hessian step in whitened β units and relative θ units
    stage1_tol: tuple = (1e-4, 1e-2)  # (ftol_abs, xtol_abs) of stage 1 when it gives starts only
    stage1_maxeval: int = 100000
    stage1_pirls_tol: float = 1e-7  # PIRLS tolerance in stage 1 (numerically lme4's tolPwrss)
    step_theta: float = 0.05  # stage 2's initial steps: relative for θ ...
    step_delta: float = 0.2  # ... and in SE units for β
    stage2_tol: tuple = (1e-7, 1e-5)  # stage 2 (the Newton correction after it polishes further)
    pirls_ftol: float = 1e-10  # stage 1's fallback: PIRLS also stops on a stalled deviance
    # the analytic Laplace gradient (quasi-Newton stage 2): None = where it pays (several
    # terms, a canonical link), False = never, True = wherever the engine has one
    use_gradient: bool | None = None


_DEFAULTS: dict = {}  # kind -> its default instance (``check_control``)


def check_control(control, kind: type):
    """``control`` as an instance of ``kind`` (None: the default one, built once: the controls
    are frozen, so every fit may share it)."""
    if control is None:
        default = _DEFAULTS.get(kind)
        return _DEFAULTS.setdefault(kind, kind()) if default is None else default
    if not isinstance(control, kind):
        raise ArgumentError(f"'control' must be a mmfast.{kind.__name__} (got {type(control).__name__})")
    return control

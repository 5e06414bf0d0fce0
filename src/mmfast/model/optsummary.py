"""What an optimisation did, typed (as MixedModels.jl's ``OptSummary``): which optimiser ran
in each stage, how many evaluations, from where to where, restarts taken, time.  LMM and GLMM
fits fill one each (``model.optsummary``); ``summary()`` prints its optimiser and the legacy
``model.optinfo`` dict is built from it.  Building one costs a few attribute copies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["OptStage", "OptSummary", "glmm_summary", "optinfo_property"]


@dataclass(frozen=True, eq=False)  # arrays inside: no elementwise ==
class OptStage:
    """One optimiser run: ``name`` says which (LMM: the start it ran from, "moment", "lme4",
    "user", "reflected"; GLMM: "stage1", "stage2", "stage3")."""

    name: str
    optimizer: str
    evaluations: int
    converged: bool
    message: str = ""
    start: np.ndarray | None = None
    final: np.ndarray | None = None
    objective: float = float("nan")
    seconds: float = float("nan")


@dataclass(frozen=True, eq=False)  # arrays inside: no elementwise ==
class OptSummary:
    """A finished fit's optimisation record.

    ``optimizer``: the optimiser whose answer was kept ("+"-joined over stages that build on
    each other, e.g. GLMM's "bobyqa+newton"); ``evaluations``: the optimisers' criterion
    evaluations, an LMM's restarts and its one-evaluation check at lme4's start included (a
    GLMM's finite-difference check at the optimum is not: ``extra["objective_evaluations"]``
    is the PIRLS engine's count of everything);
    ``theta_start``/``theta_final`` in θ's units; ``restart``: None when no check was made,
    else a dict (``taken``, and ``tried``/``won`` or ``checked``); ``extra``: what one kind of
    model adds (GLMM: PIRLS counts, gradient check, notes)."""

    optimizer: str
    evaluations: int
    theta_start: np.ndarray
    theta_final: np.ndarray
    objective: float
    converged: bool
    message: str
    seconds: float
    start_kind: str = ""
    stages: tuple = ()
    restart: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def fallback(self) -> bool:
        """Whether anything beyond the planned run was needed: a restart from another start, an
        optimiser's fallback within a run ("+" in its name: Nelder-Mead after BOBYQA,
        L-BFGS-B after Newton) or a GLMM's stage 3."""
        return bool(self.restart and self.restart.get("taken")) or any(
            "+" in s.optimizer or s.name == "stage3" for s in self.stages
        )

    def convergence_line(self) -> str:
        """lme4's ``optimizer (X) convergence code: c (OK)`` line, with the optimiser that ran;
        the code is the kept run's own (a failed gradient check is a separate message)."""
        kept = [s for s in self.stages if s.name == self.start_kind] or self.stages[-1:]
        ok = kept[0].converged if kept else self.converged
        text = "OK" if ok else (kept[0].message if kept else self.message) or "not converged"
        return f"optimizer ({self.optimizer}) convergence code: {0 if ok else 1} ({text})"

    def as_optinfo(self) -> dict:
        """The pre-OptSummary ``optinfo`` dict (same keys; values from this record)."""
        out = dict(self.extra)
        out.update(
            optimizer=self.optimizer,
            evaluations=self.evaluations,
            seconds=self.seconds,
            message=self.message,
            converged=self.converged,
        )
        if self.start_kind:
            out["start"] = self.start_kind
        if self.restart is not None:
            out["restart"] = self.restart
        return out


def _optinfo(model) -> dict:
    """The fit's record as a plain dict (kept for older code; ``optsummary`` is typed)."""
    summ = model.__dict__.get("optsummary")
    if summ is None:
        raise AttributeError("optinfo: the model has not been fitted")
    return summ.as_optinfo()


optinfo_property = property(_optinfo)  # ``model.optinfo`` of LMMs and GLMMs alike


def glmm_summary(info, check, engine, theta_start, theta, objective, seconds) -> OptSummary:
    """A GLMM fit's record from its stages (``info["stage1"]``...: each optimiser's run), the
    gradient check at the optimum and the PIRLS engine's counters."""
    stages = tuple(
        OptStage(
            k,
            info[k]["optimizer"],
            info[k]["evaluations"],
            info[k]["converged"],
            info[k]["message"],
            start=theta_start if k == "stage1" else None,
        )
        for k in ("stage1", "stage2", "stage3")
        if k in info
    )
    return OptSummary(
        optimizer="+".join(s.optimizer for s in stages),
        evaluations=sum(s.evaluations for s in stages),
        theta_start=theta_start,
        theta_final=np.array(theta, dtype=float),
        objective=float(objective),
        converged=bool(check["ok"]),
        message=check.get("message", ""),
        seconds=seconds,
        stages=stages,
        extra={
            **info,
            "objective_evaluations": engine.evaluations,
            "pirls_iterations": engine.iterations,
            "pirls_failures": engine.failures,
            "max_grad": check.get("max_grad"),
            "newton_step": check.get("newton"),
        },
    )

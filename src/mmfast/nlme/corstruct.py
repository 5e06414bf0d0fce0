"""nlme's correlation structures (``correlation =``): corAR1, corCAR1, corExp, corCompSymm, corSymm.

Each object keeps nlme's parametrisation: its natural parameter (``Phi``, ``Rho``, ``range``, the
correlations of corSymm) and the unconstrained one the optimiser moves (nlme's
``coef(unconstrained = TRUE)``: log((1+φ)/(1-φ)) for AR(1), logit φ for CAR(1), log range,
log((ρ + 1/(m-1))/(1 - ρ)) for compound symmetry, log((1+r)/(1-r)) per correlation of corSymm).
``bind`` ties it to the model's rows; the numeric work is ``mmfast.model.residual``'s.
Forms are parsed as column names, never executed: ``"~ time | g"``, ``"~ 1 | a/b"``, ``"~ 1"``.
"""

from __future__ import annotations


import numpy as np

from ..errors import DataError, FormulaError, ModelSpecError
from ..model.residual import DenseCorrelation, MarkovCorrelation, group_codes
from .form import FormStructure, parse_form

__all__ = ["CorStruct", "corAR1", "corCAR1", "corExp", "corCompSymm", "corSymm"]


def _positions_in_data_order(groups: np.ndarray) -> np.ndarray:
    """1, 2, ... within each group in the data's row order (nlme's default covariate)."""
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    start = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    run = np.arange(len(g)) - np.repeat(start, np.diff(np.r_[start, len(g)]))
    out = np.empty(len(g))
    out[order] = run + 1
    return out


class CorStruct(FormStructure):
    """Base of nlme's correlation structures: form, starting value, binding to the rows."""

    kind = "correlation"  # what residual= sorts structures by
    label = ""  # nlme's "Correlation Structure: ..." name
    par_name = ""  # the printed parameter's name

    def __init__(self, value=None, form: str | None = None, fixed: bool = False):
        if fixed:
            raise ModelSpecError(f"{type(self).__name__}(fixed=True) is not supported: the parameter is estimated")
        self.value = value
        self.covariate, self.groups = parse_form(form, type(self).__name__)
        if self.covariate == "fitted(.)":
            raise FormulaError(f"{type(self).__name__}: a correlation's covariate cannot be fitted(.)")
        self.form = form
        self.engine = None
        self.npar = 0

    def with_groups(self, groups: list[str]) -> "CorStruct":
        """A copy whose form has these groups (nlme fills in the random part's innermost)."""
        new = self._copy()
        new.groups = list(groups)
        return new

    def bind(self, column, default_groups: list[str]) -> "CorStruct":
        """A copy tied to the rows: ``column(name)`` gives a column's values on the model's rows;
        without ``| g`` in the form, the groups are ``default_groups`` (nlme: the innermost
        random-effects level)."""
        new = self._copy()
        if not new.groups:
            if not default_groups:
                raise ModelSpecError(f"{self!r}: give the groups in the form, '~ time | g'")
            new.groups = list(default_groups)
        new.group_codes = group_codes([column(g) for g in new.groups])
        if new.covariate is None:
            t = _positions_in_data_order(new.group_codes)
        else:
            t = np.asarray(column(new.covariate), dtype=float)
        new._bind(t)
        return new

    # per structure: _bind(t) sets engine and npar; start(); natural(u); names()
    def start(self) -> np.ndarray:
        raise NotImplementedError

    def natural(self, u) -> np.ndarray:
        raise NotImplementedError

    def names(self) -> list[str]:
        return [self.par_name]

    def print_lines(self, u) -> list[str]:
        """nlme's block: structure, formula, parameter estimate(s)."""
        from ..rformat import named_vector, format_num

        lines = [f"Correlation Structure: {self.label}", f" Formula: {self.formula} ", " Parameter estimate(s):"]
        return lines + named_vector(self.names(), format_num(self.natural(u), 7))


class corAR1(CorStruct):
    """AR(1) in an integer time (default: the position in the group): cor = Phi^|Δt|."""

    label, par_name = "AR(1)", "Phi"

    def _bind(self, t):
        if np.any(t != np.round(t)):
            raise DataError("corAR1's covariate must be integer-valued (use corCAR1 for continuous times)")
        self.engine = MarkovCorrelation(self.group_codes, t, self._decay)
        self.npar = 1

    def _decay(self, u, dt):  # a method, not a lambda: fits with the structure pickle
        return np.tanh(u[0] / 2.0) ** dt

    def start(self):
        phi = 0.0 if self.value is None else float(self.value)
        if not -1 < phi < 1:
            raise ModelSpecError("corAR1's value must be in (-1, 1)")
        return np.array([np.log((1 + phi) / (1 - phi))])

    def natural(self, u):
        return np.tanh(np.asarray(u, dtype=float) / 2.0)


class corCAR1(CorStruct):
    """Continuous-time AR(1): cor = Phi^|Δt|, 0 < Phi < 1 (nlme's corCAR1)."""

    label, par_name = "Continuous AR(1)", "Phi"

    def _bind(self, t):
        self.engine = MarkovCorrelation(self.group_codes, t, self._decay)
        self.npar = 1

    def _decay(self, u, dt):
        return (1.0 / (1.0 + np.exp(-u[0]))) ** dt

    def start(self):
        phi = 0.2 if self.value is None else float(self.value)
        if not 0 < phi < 1:
            raise ModelSpecError("corCAR1's value must be in (0, 1)")
        return np.array([np.log(phi / (1 - phi))])

    def natural(self, u):
        return 1.0 / (1.0 + np.exp(-np.asarray(u, dtype=float)))


class corExp(CorStruct):
    """Exponential correlation in one covariate: cor = exp(-|Δt| / range) (no nugget)."""

    label, par_name = "Exponential spatial correlation", "range"

    def __init__(self, value=None, form=None, nugget: bool = False, metric: str = "euclidean", fixed=False):
        if nugget:
            raise ModelSpecError("corExp(nugget=True) is not supported")
        super().__init__(value, form, fixed)

    def _bind(self, t):
        self.engine = MarkovCorrelation(self.group_codes, t, self._decay)
        self.npar = 1
        gaps = np.diff(np.sort(t))
        self._scale = float(np.median(gaps[gaps > 0])) if np.any(gaps > 0) else 1.0

    def _decay(self, u, dt):
        return np.exp(-dt * np.exp(-u[0]))

    def start(self):
        r = (self._scale if hasattr(self, "_scale") else 1.0) if self.value is None else float(self.value)
        if not r > 0:
            raise ModelSpecError("corExp's range must be positive")
        return np.array([np.log(r)])

    def natural(self, u):
        return np.exp(np.asarray(u, dtype=float))


class corCompSymm(CorStruct):
    """Compound symmetry: one correlation Rho between any two rows of a group."""

    label, par_name = "Compound symmetry", "Rho"

    def _bind(self, t):
        pos = np.asarray(np.round(t), dtype=np.int64) - 1 if self.covariate is None else _dense_positions(t)
        size = int(np.bincount(self.group_codes).max())
        self._a = 1.0 / (size - 1) if size > 1 else 1.0
        self._P = int(pos.max()) + 1
        self.engine = DenseCorrelation(self.group_codes, pos, self._matrix)
        self.npar = 1

    def _matrix(self, u):
        rho = self.natural(u)[0]
        return (1 - rho) * np.eye(self._P) + rho

    def start(self):
        rho = 0.0 if self.value is None else float(self.value)
        a = getattr(self, "_a", 1.0)
        return np.array([np.log((rho + a) / (1 - rho))])

    def natural(self, u):
        e = np.exp(np.asarray(u, dtype=float))
        return (e - self._a) / (1.0 + e)


def _dense_positions(t) -> np.ndarray:
    """0..P-1 for the sorted distinct values of a position covariate."""
    _, inv = np.unique(np.asarray(t), return_inverse=True)
    return inv.ravel().astype(np.int64)


class corSymm(CorStruct):
    """General (unstructured) correlation among positions 1..P: P(P-1)/2 correlations."""

    label = "General"

    def _bind(self, t):
        if self.covariate is None:
            pos = np.asarray(np.round(t), dtype=np.int64) - 1
        else:
            if np.any(t != np.round(t)) or np.min(t) < 1:
                raise DataError("corSymm's covariate must hold positive integers (positions 1, 2, ...)")
            pos = np.asarray(np.round(t), dtype=np.int64) - 1
        self.P = int(pos.max()) + 1
        self._iu = np.triu_indices(self.P, 1)
        self.engine = DenseCorrelation(self.group_codes, pos, self._matrix)
        self.npar = self.P * (self.P - 1) // 2

    def _matrix(self, u):
        R = np.eye(self.P)
        r = self.natural(u)
        R[self._iu] = r
        R[self._iu[1], self._iu[0]] = r
        return R

    def start(self):
        return np.zeros(self.npar)

    def natural(self, u):
        return np.tanh(np.asarray(u, dtype=float) / 2.0)

    def names(self):
        # nlme's order: cor(1,2), cor(1,3), ..., cor(2,3), ... (row by row of the upper triangle)
        return [f"cor({i + 1},{j + 1})" for i, j in zip(*self._iu)]

    def print_lines(self, u):
        R = self._matrix(u)
        P = self.P
        lines = ["Correlation Structure: General", f" Formula: {self.formula} ", " Parameter estimate(s):"]
        lines.append(" Correlation: ")
        cells = [[f"{R[i, j]:.3f}" if j < i else "" for j in range(P - 1)] for i in range(1, P)]
        width = [max(len(str(j + 1)), *(len(c[j]) for c in cells)) for j in range(P - 1)]
        head = " " * len(str(P)) + " " + " ".join(str(j + 1).ljust(w) for j, w in enumerate(width))
        lines.append(head)
        for i, row in enumerate(cells):
            lines.append(str(i + 2).ljust(len(str(P))) + " " + " ".join(c.ljust(w) for c, w in zip(row, width)))
        return lines

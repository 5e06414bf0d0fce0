"""nlme's variance functions (``weights =``): varIdent, varPower, varExp, varFixed.

Each gives the residual standard-deviation multiplier s_i of every row (nlme's 1/weights), with
nlme's parametrisation: varIdent the ratios δ_k of each stratum's SD to the first stratum's
(unconstrained log δ), varPower |v|^power, varExp exp(expon·v), varFixed s = √v (no parameter).
nlme's default ``form = ~fitted(.)`` for varPower/varExp needs an iteration between the fit and
the weights that mmfast does not do: give the covariate (``form="~x"``); fitted(.) is refused.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError, ModelSpecError
from .form import FormStructure, parse_form

__all__ = ["VarFunc", "varIdent", "varPower", "varExp", "varFixed"]


class VarFunc(FormStructure):
    """Base of nlme's variance functions: form, starting value, binding to the rows."""

    kind = "variance"  # what residual= sorts structures by
    label = ""  # nlme's " Structure: ..." line

    def __init__(self, value=None, form: str | None = None, fixed=None):
        if fixed is not None:
            raise ModelSpecError(f"{type(self).__name__}(fixed=...) is not supported: the parameters are estimated")
        self.value = value
        self.form = form
        self.covariate, self.groups = parse_form(form, type(self).__name__)
        self.npar = 0

    def bind(self, column) -> "VarFunc":
        """A copy tied to the model's rows (``column(name)``: the values on those rows)."""
        new = self._copy()
        new._bind(column)
        return new

    def _covariate(self, column) -> np.ndarray:
        if self.covariate is None or self.covariate == "fitted(.)":
            raise ModelSpecError(
                f"{type(self).__name__}: nlme's default form ~fitted(.) is not supported (it needs "
                "iterating between the fit and the weights); give a covariate, e.g. form='~x'"
            )
        if self.groups:
            raise ModelSpecError(f"{type(self).__name__}: stratified forms ('~x | g') are not supported")
        v = np.asarray(column(self.covariate), dtype=float)
        if not np.all(np.isfinite(v)):
            raise DataError(f"{type(self).__name__}: covariate '{self.covariate}' has non-finite values")
        return v

    def start(self) -> np.ndarray:
        return np.zeros(self.npar) if self.value is None else np.atleast_1d(np.asarray(self.value, dtype=float))

    def natural(self, u) -> np.ndarray:
        return np.asarray(u, dtype=float)

    def names(self) -> list[str]:
        raise NotImplementedError

    def print_lines(self, u) -> list[str]:
        """nlme's block: structure, formula, parameter estimates."""
        from ..rformat import named_vector

        lines = ["Variance function:", f" Structure: {self.label}", f" Formula: {self.formula} "]
        if self.npar == 0:
            return lines
        return lines + [" Parameter estimates:"] + named_vector(*self.printed(u))

    def printed(self, u) -> tuple[list[str], list[str]]:
        from ..rformat import format_num

        return self.names(), format_num(self.natural(u), 7)


class varIdent(VarFunc):
    """A standard deviation per stratum (``form="~1 | g"``), relative to the first stratum's."""

    label = "Different standard deviations per stratum"

    def _bind(self, column):
        if self.covariate is not None or len(self.groups) != 1:
            raise ModelSpecError("varIdent needs form='~1 | stratum' (one stratifying column)")
        g = column(self.groups[0])
        labels, first = np.unique(np.asarray(g).astype(str), return_index=True)
        order = np.argsort(first)  # nlme: strata in order of first appearance
        self.strata = [str(x) for x in labels[order]]
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        _, inv = np.unique(np.asarray(g).astype(str), return_inverse=True)
        self.codes = rank[inv.ravel()]
        self.npar = len(self.strata) - 1
        if self.npar == 0:
            raise ModelSpecError("varIdent: the stratifying column has a single level")

    def start(self):
        if self.value is None:
            return np.zeros(self.npar)
        v = np.atleast_1d(np.asarray(self.value, dtype=float))
        if len(v) != self.npar or np.any(v <= 0):
            raise ModelSpecError(f"varIdent: value must hold {self.npar} positive ratios")
        return np.log(v)

    def natural(self, u):
        return np.exp(np.asarray(u, dtype=float))

    def sd(self, u) -> np.ndarray:
        return np.concatenate([[1.0], np.exp(np.asarray(u, dtype=float))])[self.codes]

    def names(self):
        return self.strata[1:]

    def printed(self, u):
        from ..rformat import format_num

        return self.strata, format_num(np.concatenate([[1.0], self.natural(u)]), 7)


class varPower(VarFunc):
    """SD = |v|^power for a covariate v (``form="~x"``)."""

    label = "Power of variance covariate"

    def _bind(self, column):
        self.v = np.abs(self._covariate(column))
        if np.any(self.v == 0):
            raise DataError("varPower: the covariate is 0 in some rows (|v|^power is 0 or infinite)")
        self.logv = np.log(self.v)
        self.npar = 1

    def sd(self, u) -> np.ndarray:
        return np.exp(float(u[0]) * self.logv)

    def names(self):
        return ["power"]


class varExp(VarFunc):
    """SD = exp(expon · v) for a covariate v (``form="~x"``)."""

    label = "Exponential of variance covariate"

    def _bind(self, column):
        self.v = self._covariate(column)
        self.npar = 1

    def sd(self, u) -> np.ndarray:
        return np.exp(float(u[0]) * self.v)

    def names(self):
        return ["expon"]


class varFixed(VarFunc):
    """Variance proportional to a positive covariate v: SD = √v, nothing estimated."""

    label = "fixed weights"

    def __init__(self, value: str | None = None, form: str | None = None):
        # nlme: varFixed(value = ~x), the formula is the first argument
        super().__init__(None, form if form is not None else value)

    def _bind(self, column):
        v = self._covariate(column)
        if np.any(v <= 0):
            raise DataError("varFixed: the variance covariate must be positive")
        self._sd = np.sqrt(v)
        self.npar = 0

    def sd(self, u) -> np.ndarray:
        return self._sd

    def names(self):
        return []

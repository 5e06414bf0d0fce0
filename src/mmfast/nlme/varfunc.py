"""nlme's variance functions (``weights =``): varIdent, varPower, varExp, varConstPower, varFixed.

Each gives the residual standard-deviation multiplier s_i of every row (nlme's 1/weights), with
nlme's parametrisation: varIdent the ratios δ_k of each stratum's SD to the first stratum's
(unconstrained log δ), varPower |v|^power, varExp exp(expon·v), varConstPower const + |v|^power
(unconstrained log const), varFixed s = √v (no parameter).  ``form = "~ v | g"`` gives varPower
and varExp one parameter per stratum of g (strata in nlme's order: first appearance in the rows
sorted by the random-effects groups).  nlme's default covariate ``fitted(.)`` (the fitted values
at the innermost level) changes with the fit: ``needs_fitted`` structures get it through
``set_covariate`` from the fit's outer iteration (``model.residual_fit``, as nlme's lme loop).
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError, ModelSpecError
from .form import FormStructure, parse_form

__all__ = ["VarFunc", "varIdent", "varPower", "varExp", "varConstPower", "varFixed"]


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

    def bind(self, column, row_order=None) -> "VarFunc":
        """A copy tied to the model's rows (``column(name)``: the values on those rows;
        ``row_order``: the rows sorted by the random-effects groups, which orders strata)."""
        new = self._copy()
        new.row_order = row_order
        new._bind(column)
        return new

    @property
    def needs_fitted(self) -> bool:
        """Is the covariate nlme's ``fitted(.)`` (set by the fit, ``set_covariate``)?"""
        return self.covariate == "fitted(.)"

    def _covariate(self, column) -> np.ndarray:
        """The covariate's values on the rows (not for ``fitted(.)``: the fit sets those)."""
        if self.covariate is None or self.needs_fitted:
            raise ModelSpecError(f"{type(self).__name__} needs a covariate column, e.g. form='~x'")
        v = np.asarray(column(self.covariate), dtype=float)
        if not np.all(np.isfinite(v)):
            raise DataError(f"{type(self).__name__}: covariate '{self.covariate}' has non-finite values")
        return v

    def _stratify(self, column) -> None:
        """Strata codes (None without ``| g``) and names, in nlme's order: first appearance in
        the rows sorted by the random-effects groups (``row_order``; else the data's order)."""
        self.strata, self.codes = [], None
        if not self.groups:
            return
        if len(self.groups) != 1:
            raise ModelSpecError(f"{type(self).__name__}: stratify by one column ('~ v | g')")
        labels = np.asarray(column(self.groups[0])).astype(str)
        names, g = np.unique(labels, return_inverse=True)
        g = g.ravel()
        order = np.arange(len(g)) if getattr(self, "row_order", None) is None else self.row_order
        _, first = np.unique(g[order], return_index=True)
        seq = np.argsort(first)  # stratum codes by first appearance in ``order``
        rank = np.empty(len(seq), dtype=np.int64)
        rank[seq] = np.arange(len(seq))
        self.codes = rank[g]
        self.strata = [str(x) for x in names[seq]]

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
        self._stratify(column)
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


class _CovariateFunc(VarFunc):
    """varPower/varExp/varConstPower: s = f(u, v) of a covariate v (default nlme's ``fitted(.)``),
    one parameter set per stratum with ``| g``."""

    per_stratum = 1  # parameters per stratum

    def __init__(self, value=None, form: str | None = "~fitted(.)", fixed=None):
        super().__init__(value, form if form is not None else "~fitted(.)", fixed)

    def _bind(self, column):
        self._stratify(column)
        k = max(len(self.strata), 1)
        if self.strata and self.per_stratum > 1:
            raise ModelSpecError(f"{type(self).__name__}: stratified forms ('~ v | g') are not supported")
        self.npar = k * self.per_stratum
        if self.needs_fitted:  # ones (any value: the start has power 0) until the fit sets them
            if getattr(self, "row_order", None) is None:
                raise ModelSpecError(f"{type(self).__name__}: form ~fitted(.) needs the model's rows")
            self.set_covariate(np.ones(len(self.row_order)))
        else:
            self.set_covariate(self._covariate(column))

    def set_covariate(self, v) -> None:
        """The covariate's values on the rows (the fitted values, for ``fitted(.)``)."""
        self.v = np.asarray(v, dtype=float)
        if not np.all(np.isfinite(self.v)):
            raise DataError(f"{type(self).__name__}: the variance covariate has non-finite values")

    def _at_rows(self, u) -> np.ndarray:
        """Each row's parameter (its stratum's)."""
        u = np.asarray(u, dtype=float)
        return u[0] if self.codes is None else u[self.codes]

    def names(self):
        return self.strata or self.par_names

    @property
    def label(self):
        return self.base_label + (", different strata" if self.strata else "")


class varPower(_CovariateFunc):
    """SD = |v|^power (``form="~x"``; default nlme's ``~fitted(.)``)."""

    base_label, par_names = "Power of variance covariate", ["power"]

    def set_covariate(self, v):
        super().set_covariate(v)
        a = np.abs(self.v)
        if np.any(a == 0):
            raise DataError("varPower: the covariate is 0 in some rows (|v|^power is 0 or infinite)")
        self.logv = np.log(a)

    def sd(self, u) -> np.ndarray:
        return np.exp(self._at_rows(u) * self.logv)


class varExp(_CovariateFunc):
    """SD = exp(expon · v) (``form="~x"``; default nlme's ``~fitted(.)``)."""

    base_label, par_names = "Exponential of variance covariate", ["expon"]

    def sd(self, u) -> np.ndarray:
        return np.exp(self._at_rows(u) * self.v)


class varConstPower(_CovariateFunc):
    """SD = const + |v|^power, const > 0 (unconstrained: log const, power); nlme's start
    const = 1, power = 0."""

    base_label, par_names, per_stratum = "Constant plus power of variance covariate", ["const", "power"], 2

    def __init__(self, const=None, power=None, form: str | None = "~fitted(.)", fixed=None):
        value = None if const is None and power is None else [1.0 if const is None else const, power or 0.0]
        super().__init__(value, form, fixed)

    def start(self):
        if self.value is None:
            return np.zeros(2)
        const, power = (float(x) for x in self.value)
        if const <= 0:
            raise ModelSpecError("varConstPower: const must be positive")
        return np.array([np.log(const), power])

    def natural(self, u):
        u = np.asarray(u, dtype=float)
        return np.array([np.exp(u[0]), u[1]])

    def sd(self, u) -> np.ndarray:
        return np.exp(u[0]) + np.abs(self.v) ** float(u[1])


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

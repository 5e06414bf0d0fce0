"""R's printed output in one place: ``numbers`` (R's ``format``, ``format.pval``, ``zapsmall``,
``printCoefmat``, ``abbreviate``, matrix layout) and ``tables`` (anova/drop1 tables: DataFrames
that print as R's ``print.anova``).  A leaf of the package: every layer may use it."""

from . import numbers
from .numbers import *  # noqa: F403  (numbers.__all__)
from .tables import AnovaTable, anova_lines

__all__ = [*numbers.__all__, "AnovaTable", "anova_lines"]

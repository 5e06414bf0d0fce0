"""R's printed output in one place: ``numbers`` (R's ``format``, ``format.pval``, ``zapsmall``,
``printCoefmat``, ``abbreviate``, matrix layout) and ``tables`` (anova/drop1 tables: DataFrames
that print as R's ``print.anova``).  A leaf of the package: every layer may use it."""

from .numbers import (
    DOUBLE_EPS,
    STARS_LEGEND,
    abbreviate,
    cat_fill,
    char_matrix,
    coefmat_cells,
    coefmat_lines,
    format_num,
    format_pval,
    frame_lines,
    named_vector,
    r_round,
    signif_stars,
    strwrap,
    zapsmall,
)
from .tables import AnovaTable, anova_lines

__all__ = [
    "DOUBLE_EPS",
    "STARS_LEGEND",
    "AnovaTable",
    "abbreviate",
    "anova_lines",
    "cat_fill",
    "char_matrix",
    "coefmat_cells",
    "coefmat_lines",
    "format_num",
    "format_pval",
    "frame_lines",
    "named_vector",
    "r_round",
    "signif_stars",
    "strwrap",
    "zapsmall",
]

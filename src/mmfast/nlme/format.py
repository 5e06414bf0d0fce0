"""nlme's own p-value column; every other number goes through mmfast.present.rformat."""

from __future__ import annotations

import numpy as np

from ..rformat import format_num

__all__ = ["pval_column"]


def pval_column(p, digits: int = 4) -> list[str]:
    """nlme's p-value column: ``format(round(p, 4))`` with exact zeros as ``<.0001``."""
    p = np.asarray(p, dtype=float)
    r = np.round(p, digits)
    txt = format_num(r, 7)
    return ["" if np.isnan(v) else ("<.0001" if rv == 0 else s.strip()) for v, rv, s in zip(p, r, txt)]

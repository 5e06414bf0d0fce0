"""Numbers and tables printed the way R prints them (``format()`` of a numeric column)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["r_format", "zapsmall", "text_table", "pval_column", "named_vector"]


def zapsmall(x, digits: int = 7) -> np.ndarray:
    """R's (4.2) ``zapsmall``: ``round(x, digits - log10(max|x|))``, R rounding the digits."""
    x = np.asarray(x, dtype=float)
    fin = x[np.isfinite(x)]
    mx = float(np.max(np.abs(fin))) if fin.size else 0.0
    if mx == 0:
        return x
    return np.round(x, int(max(0.0, math.floor(digits - math.log10(mx) + 0.5))))


def _sig_parts(x: float, digits: int) -> tuple[int, int]:
    """(significant digits needed, decimal exponent) of |x| shown to ``digits`` digits."""
    ax = abs(x)
    e = int(math.floor(math.log10(ax)))
    mant = f"{ax / 10.0 ** e:.{digits - 1}f}"
    if float(mant) >= 10.0:
        e += 1
        mant = f"{ax / 10.0 ** e:.{digits - 1}f}"
    digits_str = mant.replace(".", "").rstrip("0")
    return max(1, len(digits_str)), e


def r_format(values, digits: int = 7) -> list[str]:
    """R's ``format()`` of a numeric vector: common decimals, or scientific when narrower."""
    x = np.asarray(values, dtype=float).ravel()
    fin = [v for v in x if np.isfinite(v)]
    if not fin:
        return ["NA" if np.isnan(v) else ("Inf" if v > 0 else "-Inf") for v in x]
    neg = any(v < 0 for v in fin)
    rgt, left, msig, emin, emax = 0, 1, 1, 0, 0
    nonzero = [v for v in fin if v != 0]
    for v in nonzero:
        sig, e = _sig_parts(v, digits)
        rgt = max(rgt, sig - 1 - e)
        left = max(left, e + 1)
        msig = max(msig, sig)
        emin, emax = min(emin, e), max(emax, e)
    fixed_w = neg + left + (rgt > 0) + rgt
    exp_w = 4 if max(abs(emin), abs(emax)) < 100 else 5
    sci_w = neg + msig + (msig > 1) + exp_w
    out = []
    if nonzero and fixed_w > sci_w:
        for v in x:
            if not np.isfinite(v):
                out.append("NA" if np.isnan(v) else ("Inf" if v > 0 else "-Inf"))
                continue
            s = f"{v:.{msig - 1}e}"
            mant, ex = s.split("e")
            out.append(f"{mant}e{ex[0]}{ex[1:].lstrip('0').rjust(2, '0')}")
    else:
        for v in x:
            if not np.isfinite(v):
                out.append("NA" if np.isnan(v) else ("Inf" if v > 0 else "-Inf"))
            else:
                out.append(f"{v:.{rgt}f}")
    w = max(len(s) for s in out)
    return [s.rjust(w) for s in out]


def pval_column(p, digits: int = 4) -> list[str]:
    """nlme's p-value column: ``format(round(p, 4))`` with exact zeros as ``<.0001``."""
    p = np.asarray(p, dtype=float)
    r = np.round(p, digits)
    txt = r_format(r, 7)
    return ["" if np.isnan(v) else ("<.0001" if rv == 0 else s.strip()) for v, rv, s in zip(p, r, txt)]


def text_table(df: pd.DataFrame, index: bool = True) -> str:
    """A DataFrame of strings as R prints a matrix: index left-aligned, columns right-aligned."""
    rows = [[str(i) for i in df.index]] if index else []
    header = [""] if index else []
    cols = []
    for j, c in enumerate(df.columns):
        cols.append([str(v) for v in df.iloc[:, j]])
        header.append(str(c))
    table = rows + cols
    widths = [max([len(header[k])] + [len(s) for s in col]) for k, col in enumerate(table)]
    lines = [" ".join((h.ljust(w) if (index and k == 0) else h.rjust(w))
                      for k, (h, w) in enumerate(zip(header, widths)))]
    for r in range(len(df)):
        cells = [col[r] for col in table]
        lines.append(" ".join((c.ljust(w) if (index and k == 0) else c.rjust(w))
                              for k, (c, w) in enumerate(zip(cells, widths))))
    return "\n".join(lines)


def named_vector(names, values: list[str]) -> str:
    """R's print of a named vector: names over values, every column one common width."""
    cells = [str(n) for n in names] + [str(v) for v in values]
    w = max(len(c) for c in cells) if cells else 0
    return (" ".join(str(n).rjust(w) for n in names) + " \n"
            + " ".join(str(v).rjust(w) for v in values) + " ")

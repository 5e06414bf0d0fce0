"""emmeans' printed tables (``print.summary_emm``): factor columns left, numbers right."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..rformat import format_num

__all__ = ["format_emm"]


def _digits(table: pd.DataFrame) -> int:
    """emmeans' ``.opt.dig``: enough digits to resolve est ± 2 SE (at least 3)."""
    est_col = "emmean" if "emmean" in table else "estimate"
    if est_col not in table or "SE" not in table:
        return 4
    out = 3
    for est, se in zip(table[est_col].to_numpy(float), table["SE"].to_numpy(float)):
        x = np.array([est - 2 * se, est, est + 2 * se])
        mx = np.max(np.abs(x))
        if not np.isfinite(mx) or mx == 0:
            continue
        z = (np.max(x) - np.min(x)) / mx
        if z > 0:
            out = max(out, int(round(1.51 - np.log10(z))))
    return out


def _column(name: str, values: pd.Series, digits: int, right: bool) -> tuple[list[str], bool]:
    """(formatted cells, right-justified?) for one column."""
    if not pd.api.types.is_numeric_dtype(values) or isinstance(values.dtype, pd.CategoricalDtype):
        return [str(v) for v in values], right
    v = values.to_numpy(dtype=float)
    if name == "df":
        cells = [s.strip() for s in format_num(np.round(v, 2), digits)]
    elif name in ("t.ratio", "z.ratio"):
        cells = ["NA" if np.isnan(x) else f"{x:.3f}" for x in v]
    elif name == "p.value":
        cells = ["NA" if np.isnan(x) else ("<.0001" if round(x, 4) == 0 else f"{x:.4f}") for x in v]
    else:
        cells = [s.strip() for s in format_num(v, digits)]
        if name in ("emmean", "estimate"):  # emmeans marks non-estimable rows
            cells = ["nonEst" if np.isnan(x) else c for x, c in zip(v, cells)]
    return cells, True


def _block(table: pd.DataFrame, digits: int, right_cols) -> list[str]:
    cols, just = [], []
    for c in table.columns:
        cells, right = _column(str(c), table[c], digits, c in right_cols)
        cols.append([str(c)] + cells)
        just.append(right)
    widths = [max(len(s) for s in col) for col in cols]
    lines = []
    for r in range(len(table) + 1):
        cells = [(col[r].rjust(w) if right else col[r].ljust(w)) for col, w, right in zip(cols, widths, just)]
        lines.append(" " + " ".join(cells))
    return lines


def format_emm(table: pd.DataFrame) -> str:
    by = [b for b in table.attrs.get("by", []) if b in table.columns]
    digits = _digits(table)
    right = set(table.attrs.get("right", []))
    body = table.drop(columns=by)
    lines = []
    if by:
        keys = table[by].astype(str).agg(", ".join, axis=1) if len(by) > 1 else table[by[0]].astype(str)
        for key in dict.fromkeys(keys):
            mask = (keys == key).to_numpy()
            head = ", ".join(f"{b} = {table.loc[mask, b].iloc[0]}" for b in by)
            lines += [head + ":"] + _block(body.loc[mask], digits, right) + [""]
    else:
        lines += _block(body, digits, right) + [""]
    lines += [f"{n} " for n in table.attrs.get("notes", [])]
    return "\n".join(lines)

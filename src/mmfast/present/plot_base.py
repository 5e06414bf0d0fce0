"""Shared pieces of mmfast's plots: lazy matplotlib import, colours, R's level order, panel
grids and the normal QQ panel."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__: list[str] = []  # helpers of the plotting modules only


def _pyplot():
    """matplotlib.pyplot, or an ImportError saying how to get it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(
            "mmfast's plots need matplotlib: pip install 'mmfast[plot]' (or pip install matplotlib)"
        ) from exc
    return plt


def _colors(n: int) -> list:
    """n distinguishable colours (tab10, then tab20 for more groups)."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _levels(s: pd.Series) -> list:
    """The levels of a column in R's order: categories if categorical, else sorted values."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.dropna().unique())
        return [c for c in s.cat.categories if c in present]
    vals = s.dropna().unique()
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def _need_columns(data: pd.DataFrame, *cols: str | None) -> None:
    missing = [c for c in cols if c is not None and c not in data.columns]
    if missing:
        raise KeyError(f"column(s) not in the data: {', '.join(map(repr, missing))}")


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return int(np.ceil(n / ncols)), ncols


def _subplots(n: int, ncols: int, panel_size: tuple[float, float], figsize=None, **kw):
    """A figure with n panels on a grid (surplus grid cells removed) and the list of axes."""
    plt = _pyplot()
    nrows, ncols = _grid(n, ncols)
    fig = plt.figure(figsize=figsize or (panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw).ravel()
    for ax in axes[n:]:
        ax.remove()
    return fig, list(axes[:n])


def _ppoints(n: int) -> np.ndarray:
    """R's ``ppoints(n)``: probability points for a normal QQ plot."""
    a = 3.0 / 8.0 if n <= 10 else 0.5
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)


def _qq(ax: Axes, values: np.ndarray, gid: str, color="C0") -> None:
    """Normal QQ plot with R's ``qqline`` (through the quartiles)."""
    v = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    q = stats.norm.ppf(_ppoints(len(v)))
    ax.scatter(q, v, s=10, color=color, alpha=0.7, gid=gid)
    if len(v) >= 2:
        y1, y2 = np.quantile(v, [0.25, 0.75])
        x1, x2 = stats.norm.ppf([0.25, 0.75])
        slope = (y2 - y1) / (x2 - x1)
        ax.axline((x1, y1), slope=slope, color="0.3", lw=1, ls="--", gid=f"{gid}:line")
    ax.set_xlabel("Standard normal quantiles")

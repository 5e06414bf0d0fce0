"""Plots of the raw data: per-cluster box or violin plots coloured by group (dodged or
faceted when the group varies within a cluster) and spaghetti plots of paired measures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

from ..errors import ArgumentError, DataError
from .plot_base import _colors, _levels, _need_columns, _pyplot, _subplots

__all__ = ["plot_by_cluster", "plot_spaghetti"]


def plot_by_cluster(
    data: pd.DataFrame,
    y: str,
    cluster: str,
    group: str | None = None,
    kind: str = "box",
    *,
    within: str = "dodge",
    jitter: float = 0.2,
    group_labels: Mapping | None = None,
    fill: bool = False,
    seed: int = 0,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
) -> Figure:
    """Box or violin plot of ``y`` per cluster (e.g. animal) with jittered points coloured by group.

    When each cluster belongs to one group (the lecture's Example 1), clusters are ordered by
    group, then by their own order, so each group's animals sit together, separated by dotted
    lines.  When the group varies within a cluster (Example 2: every mouse at four time
    points), ``within="dodge"`` draws one box per group side by side at each cluster and
    ``within="facet"`` one panel per group.  Boxes are outlined (``fill=True``: filled) and
    points drawn in their group's colour; the legend lists every group level.
    ``kind="violin"`` draws a kernel density per box with a slim box plot inside (fewer than two
    distinct values: points only).  ``group_labels`` renames groups in the legend (e.g.
    ``{1: "baseline", 2: "24h"}``); ``xlabel``/``ylabel`` default to the column names.

    Mirrors the lecture's ``boxplot(res ~ midx, col = mycolors)`` / ``vioplot(...)`` with
    ``stripchart(res ~ midx, method = "jitter", add = TRUE, col = mycolors)`` in R, and
    ggplot2's ``geom_boxplot(position = "dodge")`` / ``facet_wrap(~ group)``.
    """
    if kind not in ("box", "violin"):
        raise ArgumentError(f"kind must be 'box' or 'violin', not {kind!r}")
    if within not in ("dodge", "facet"):
        raise ArgumentError(f"within must be 'dodge' or 'facet', not {within!r}")
    _need_columns(data, y, cluster, group)
    d = data.loc[data[y].notna() & data[cluster].notna()]
    if group is not None:
        d = d.loc[d[group].notna()]
    if d.empty:
        raise DataError(f"no rows with '{y}' and '{cluster}' present")
    groups = _levels(d[group]) if group is not None else [None]
    colors = dict(zip(groups, _colors(len(groups)))) if group is not None else {None: "C0"}
    labels = {g: str((group_labels or {}).get(g, g)) for g in groups}
    varies = group is not None and int(d.groupby(cluster, observed=True)[group].nunique().max()) > 1
    style = _BoxStyle(kind, fill, jitter, colors, np.random.default_rng(seed), per_group=varies)
    xlabel = cluster if xlabel is None else xlabel
    ylabel = y if ylabel is None else ylabel
    plt = _pyplot()
    if varies and within == "facet":
        if ax is not None:
            raise ArgumentError("within='facet' draws one panel per group: leave ax=None")
        fig, axes = _subplots(len(groups), min(len(groups), 4), (4.0, 3.6), figsize, sharey=True)
        for g, pax in zip(groups, axes):
            sub = d.loc[d[group] == g]
            order = _levels(sub[cluster])
            slots = [(c, g, k + 1.0, 0.6) for k, c in enumerate(order)]
            style.draw(pax, sub, y, cluster, group, slots)
            _cluster_axis(pax, order, xlabel, ylabel)
            pax.set_title(f"{group} = {labels[g]}", fontsize="medium")
        _legend(fig, groups, colors, labels, str(group), fill)
        fig.suptitle(title if title is not None else f"{y} by {cluster}, one panel per {group}")
        return fig
    if varies:  # dodge: a slot per group present at each cluster
        order = _levels(d[cluster])
        width = 0.8 / len(groups)
        present = set(zip(d[cluster], d[group]))
        slots = [
            (c, g, k + 1 + (j - (len(groups) - 1) / 2) * width, 0.85 * width)
            for k, c in enumerate(order)
            for j, g in enumerate(groups)
            if (c, g) in present
        ]
    else:
        order = []
        cluster_group: dict = {}
        for g in groups:
            sub = d if g is None else d.loc[d[group] == g]
            for c in _levels(sub[cluster]):
                cluster_group.setdefault(c, g)
                order.append(c)
        slots = [(c, cluster_group[c], k + 1.0, 0.6) for k, c in enumerate(order)]
    if ax is None:
        fig = plt.figure(
            figsize=figsize or (max(6.0, (0.32 if not varies else 0.9) * len(order) + 2), 4.5), layout="constrained"
        )
        ax = fig.add_subplot()
    fig = ax.figure
    style.draw(ax, d, y, cluster, group, slots)
    if varies:
        for k in range(1, len(order)):
            ax.axvline(k + 0.5, color="0.85", lw=1, gid="cluster-separator")
    elif group is not None:
        for k in range(1, len(order)):
            if slots[k][1] != slots[k - 1][1]:
                ax.axvline(k + 0.5, color="0.6", ls=":", lw=1, gid="separator")
    if group is not None:
        _legend(ax, groups, colors, labels, group, fill)
    _cluster_axis(ax, order, xlabel, ylabel)
    ax.set_title(
        title
        if title is not None
        else f"{y} by {cluster}" + ("" if group is None else f", {'dodged' if varies else 'coloured'} by {group}")
    )
    return fig


class _BoxStyle:
    """How plot_by_cluster draws the boxes (or violins) and jittered points of its slots."""

    def __init__(self, kind, fill, jitter, colors, rng, per_group: bool):
        self.kind, self.fill, self.jitter, self.colors, self.rng = kind, fill, jitter, colors, rng
        self.per_group = per_group  # gids "box:<cluster>:<group>" (else "box:<cluster>")

    def draw(self, ax, d, y, cluster, group, slots) -> None:
        """One box per slot (cluster, group, position, width) and the points, one scatter per group."""
        values = [
            d.loc[(d[cluster] == c) if g is None else ((d[cluster] == c) & (d[group] == g)), y].to_numpy(float)
            for c, g, _, _ in slots
        ]
        pos = np.array([s[2] for s in slots])
        widths = np.array([s[3] for s in slots])
        edge = [self.colors[g] if g is not None else "black" for _, g, _, _ in slots]
        gids = [f"{c}:{g}" if self.per_group else f"{c}" for c, g, _, _ in slots]
        if self.kind == "box":
            bp = ax.boxplot(
                values,
                positions=pos,
                widths=widths,
                patch_artist=True,
                showfliers=self.jitter <= 0,
                manage_ticks=False,
                medianprops={"color": "black"},
            )
            for patch, ec, gid in zip(bp["boxes"], edge, gids):
                patch.set_facecolor(ec if self.fill else "white")
                patch.set_edgecolor(ec)
                patch.set_alpha(0.45 if self.fill else 1.0)
                patch.set_gid(f"box:{gid}")
        else:
            ok = [i for i, v in enumerate(values) if len(np.unique(v)) >= 2]
            if ok:
                vp = ax.violinplot(
                    [values[i] for i in ok], positions=pos[ok], widths=widths[ok] * 1.3, showextrema=False
                )
                for i, body in zip(ok, vp["bodies"]):
                    body.set_facecolor(edge[i] if self.fill else "0.85")
                    body.set_edgecolor(edge[i] if group is not None else "0.3")
                    body.set_alpha(0.5)
                    body.set_gid(f"violin:{gids[i]}")
            bp = ax.boxplot(
                values,
                positions=pos,
                widths=widths * 0.2,
                patch_artist=True,
                showfliers=False,
                manage_ticks=False,
                whis=0,
                showcaps=False,
                medianprops={"color": "black"},
            )
            for patch, gid in zip(bp["boxes"], gids):
                patch.set_facecolor("white")
                patch.set_gid(f"innerbox:{gid}")
        if self.jitter <= 0:
            return
        for g in dict.fromkeys(s[1] for s in slots):
            idx = [i for i, s in enumerate(slots) if s[1] == g]
            half = [self.jitter * widths[i] / 0.6 for i in idx]
            xs = np.concatenate([pos[i] + self.rng.uniform(-h, h, len(values[i])) for i, h in zip(idx, half)])
            ys = np.concatenate([values[i] for i in idx])
            ax.scatter(xs, ys, s=7, color=self.colors[g], alpha=0.7, linewidths=0, zorder=3, gid=f"points:{g}")


def _cluster_axis(ax, order: list, xlabel: str, ylabel: str) -> None:
    """One tick per cluster at its centre, and the axis labels."""
    ax.set_xticks(np.arange(1, len(order) + 1), [str(c) for c in order], fontsize="small" if len(order) > 20 else None)
    ax.set_xlim(0.4, len(order) + 0.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _legend(owner, groups: list, colors: dict, labels: dict, title: str, fill: bool) -> None:
    """A legend entry per group level (ax.legend or fig.legend), in the group's colour."""
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=colors[g] if fill else "white", edgecolor=colors[g], lw=1.5, label=labels[g]) for g in groups
    ]
    kw = {"loc": "outside right upper"} if not hasattr(owner, "get_xlim") else {"loc": "best"}
    owner.legend(handles=handles, title=title, fontsize="small", **kw)


def plot_spaghetti(
    data: pd.DataFrame,
    y: str,
    time: str,
    unit: str,
    panel: str | None = None,
    *,
    panels: Sequence | None = None,
    scatter: bool = False,
    ncols: int = 4,
    time_labels: Mapping | None = None,
    figsize: tuple[float, float] | None = None,
    sharey: bool = True,
) -> Figure:
    """Spaghetti plot: one line per ``unit`` (e.g. cell) joining its ``y`` across ``time``,
    one panel per level of ``panel`` (e.g. mouse).

    ``panels`` picks and orders panel levels (default: all).  ``scatter=True`` (exactly two
    time points) puts beside each panel the before/after scatter of the units with its
    least-squares line and correlation, as in the lecture's Figure 3; panels are then one per
    row.  ``time_labels`` renames time points on the axis (e.g. ``{1: "baseline", 2: "24h"}``).

    Mirrors the lecture's Example 3 figure (R: ``interaction.plot``/ggplot2 ``geom_line(aes(group
    = cidx)) + facet_wrap(~ midx)``, and ``plot(before, after); abline(lm(after ~ before))``).
    """
    from matplotlib.collections import LineCollection

    _need_columns(data, y, time, unit, panel)
    d = data.loc[data[y].notna() & data[time].notna() & data[unit].notna()]
    times = _levels(d[time])
    tpos = {t: i for i, t in enumerate(times)}
    if panel is None:
        d = d.assign(_panel="all")
        panel_col = "_panel"
    else:
        panel_col = panel
    levels = list(panels) if panels is not None else _levels(d[panel_col])
    if not levels:
        raise ValueError("no panels to draw")
    if scatter and len(times) != 2:
        raise ValueError(f"scatter=True needs exactly two time points; '{time}' has {len(times)}")
    n = len(levels)
    if scatter:
        fig, axes = _subplots(2 * n, 2, (3.6, 2.8), figsize)
        line_axes, scatter_axes = axes[0::2], axes[1::2]
    else:
        fig, line_axes = _subplots(n, ncols, (3.2, 2.8), figsize, sharey=sharey)
        scatter_axes = [None] * n
    tick_labels = [str((time_labels or {}).get(t, t)) for t in times]
    for lev, ax, sax in zip(levels, line_axes, scatter_axes):
        sub = d.loc[d[panel_col] == lev]
        if sub.empty:
            raise ValueError(f"no rows with {panel_col} == {lev!r}")
        wide = sub.pivot_table(index=unit, columns=time, values=y, aggfunc="mean", observed=True)
        wide = wide.reindex(columns=[t for t in times if t in wide.columns])
        x = np.array([tpos[t] for t in wide.columns], dtype=float)
        segs = []
        for row in wide.to_numpy():
            ok = np.isfinite(row)
            if ok.sum() >= 2:
                segs.append(np.column_stack([x[ok], row[ok]]))
        ax.add_collection(LineCollection(segs, colors="C0", alpha=0.35, lw=0.8, gid=f"lines:{lev}"))
        ax.scatter([tpos[t] for t in sub[time]], sub[y], s=5, color="C0", alpha=0.6, zorder=3, gid=f"points:{lev}")
        ax.set_xticks(range(len(times)), tick_labels)
        ax.set_xlim(-0.3, len(times) - 0.7)
        ax.autoscale_view(scalex=False)
        ax.set_title(f"{panel} = {lev}" if panel else f"{len(wide)} {unit}", fontsize="medium")
        ax.set_xlabel(time)
        ax.set_ylabel(y)
        if sax is not None:
            pair = wide.dropna()
            a, b = pair.iloc[:, 0].to_numpy(), pair.iloc[:, 1].to_numpy()
            sax.scatter(a, b, s=6, color="C1", alpha=0.6, gid=f"pairs:{lev}")
            if len(a) >= 3 and np.ptp(a) > 0:
                slope, icpt = np.polyfit(a, b, 1)
                xs = np.array([a.min(), a.max()])
                sax.plot(xs, icpt + slope * xs, color="black", lw=1.2, gid=f"fit:{lev}")
                r = np.corrcoef(a, b)[0, 1]
                sax.set_title(f"{panel} = {lev}: r = {r:.2f}" if panel else f"r = {r:.2f}", fontsize="medium")
            sax.set_xlabel(f"{y} at {tick_labels[0]}")
            sax.set_ylabel(f"{y} at {tick_labels[1]}")
    fig.suptitle(f"{y} per {unit} across {time}")
    return fig

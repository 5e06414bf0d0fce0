"""The lecture's figures and lme4's diagnostic plots, each a function returning a matplotlib Figure.

* :func:`plot_by_cluster` - per-animal box or violin plots with jittered points coloured by
  treatment group (the lecture's ``boxplot``/``vioplot`` + ``stripchart``, ggplot2's ``geom_violin``);
* :func:`plot_spaghetti` - paired measures per unit (cell) across time, one panel per animal,
  optionally with the before/after scatter beside each (the lecture's Figure 3);
* :func:`plot_caterpillar` - conditional modes with intervals (lattice's ``dotplot(ranef(m, condVar = TRUE))``);
* :func:`plot_diagnostics` - residuals vs fitted and normal QQ (``plot(m)``, ``qqnorm(resid(m))``);
* :func:`plot_profile` - profile zeta plots (``xyplot(profile(m))``);
* :func:`plot_pvalues` - p-value histograms, e.g. under permutation (``hist(pvalues)``).

matplotlib is an optional dependency (``pip install 'mmfast[plot]'``) imported only when a
plot is drawn.  Figures are created through ``matplotlib.pyplot`` so that notebooks show them;
in scripts and loops close them with ``matplotlib.pyplot.close(fig)``.  Every drawn element a
caller may want to find again carries a ``gid`` (``"box:<cluster>"``, ``"points:<group>"``, ...).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_by_cluster", "plot_spaghetti", "plot_caterpillar", "plot_diagnostics",
           "plot_profile", "plot_pvalues"]

PROFILE_LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)  # lme4's xyplot.thpr confidence levels


# ----------------------------------------------------------------------------- helpers
def _pyplot():
    """matplotlib.pyplot, or an ImportError saying how to get it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised only without matplotlib
        raise ImportError("mmfast's plots need matplotlib: pip install 'mmfast[plot]' "
                          "(or pip install matplotlib)") from exc
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
    fig = plt.figure(figsize=figsize or (panel_size[0] * ncols, panel_size[1] * nrows),
                     layout="constrained")
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


# ----------------------------------------------------------------------------- the data
def plot_by_cluster(data: pd.DataFrame, y: str, cluster: str, group: str | None = None,
                    kind: str = "box", *, jitter: float = 0.2, group_labels: Mapping | None = None,
                    fill: bool = False, seed: int = 0, ax: Axes | None = None,
                    figsize: tuple[float, float] | None = None, title: str | None = None) -> Figure:
    """Box or violin plot of ``y`` per cluster (e.g. animal) with jittered points coloured by group.

    Clusters are ordered by group, then by their own order, so each treatment group's animals
    sit together, separated by dotted lines.  ``kind="violin"`` draws a kernel density per
    cluster with a slim box plot inside (clusters with fewer than two distinct values get
    points only).  ``fill=True`` fills boxes/violins with the group colour.  ``group_labels``
    renames groups in the legend (e.g. ``{1: "baseline", 2: "24h"}``).

    Mirrors the lecture's ``boxplot(res ~ midx, col = mycolors)`` / ``vioplot(...)`` with
    ``stripchart(res ~ midx, method = "jitter", add = TRUE, col = mycolors)`` in R, and
    ggplot2's ``geom_violin() + geom_boxplot(width = 0.1)``.
    """
    if kind not in ("box", "violin"):
        raise ValueError(f"kind must be 'box' or 'violin', not {kind!r}")
    _need_columns(data, y, cluster, group)
    d = data.loc[data[y].notna() & data[cluster].notna()]
    if group is not None:
        d = d.loc[d[group].notna()]
    if d.empty:
        raise ValueError(f"no rows with '{y}' and '{cluster}' present")
    groups = _levels(d[group]) if group is not None else [None]
    colors = dict(zip(groups, _colors(len(groups)))) if group is not None else {None: "C0"}
    order: list = []
    cluster_group: dict = {}
    for g in groups:
        sub = d if g is None else d.loc[d[group] == g]
        for c in _levels(sub[cluster]):
            if c not in cluster_group:  # a cluster in several groups is shown with the first
                cluster_group[c] = g
                order.append(c)
    values = [d.loc[d[cluster] == c, y].to_numpy(float) for c in order]
    pos = np.arange(1, len(order) + 1)

    plt = _pyplot()
    if ax is None:
        fig = plt.figure(figsize=figsize or (max(6.0, 0.32 * len(order) + 2), 4.5), layout="constrained")
        ax = fig.add_subplot()
    fig = ax.figure
    face = [colors[cluster_group[c]] if fill else "white" for c in order]
    if kind == "box":
        bp = ax.boxplot(values, positions=pos, widths=0.6, patch_artist=True,
                        showfliers=jitter <= 0, manage_ticks=False,
                        medianprops={"color": "black"})
        for c, patch, fc in zip(order, bp["boxes"], face):
            patch.set_facecolor(fc)
            patch.set_alpha(0.45 if fill else 1.0)
            patch.set_gid(f"box:{c}")
    else:
        ok = [i for i, v in enumerate(values) if len(np.unique(v)) >= 2]
        if ok:
            vp = ax.violinplot([values[i] for i in ok], positions=pos[ok], widths=0.8,
                               showextrema=False)
            for i, body in zip(ok, vp["bodies"]):
                body.set_facecolor(face[i] if fill else "0.85")
                body.set_edgecolor("0.3")
                body.set_alpha(0.5)
                body.set_gid(f"violin:{order[i]}")
        bp = ax.boxplot(values, positions=pos, widths=0.12, patch_artist=True, showfliers=False,
                        manage_ticks=False, whis=0, showcaps=False,
                        medianprops={"color": "black"})
        for c, patch in zip(order, bp["boxes"]):
            patch.set_facecolor("white")
            patch.set_gid(f"innerbox:{c}")
    if jitter > 0:
        rng = np.random.default_rng(seed)
        for g in groups:
            idx = [i for i, c in enumerate(order) if cluster_group[c] == g]
            if not idx:
                continue
            xs = np.concatenate([pos[i] + rng.uniform(-jitter, jitter, len(values[i])) for i in idx])
            ys = np.concatenate([values[i] for i in idx])
            label = None if g is None else str((group_labels or {}).get(g, g))
            ax.scatter(xs, ys, s=7, color=colors[g], alpha=0.7, linewidths=0, zorder=3,
                       label=label, gid=f"points:{g}")
    if group is not None:
        for k in range(1, len(order)):
            if cluster_group[order[k]] != cluster_group[order[k - 1]]:
                ax.axvline(k + 0.5, color="0.6", ls=":", lw=1, gid="separator")
        if jitter > 0:
            ax.legend(title=group, fontsize="small", loc="best", markerscale=2)
    ax.set_xticks(pos, [str(c) for c in order], fontsize="small" if len(order) > 20 else None)
    ax.set_xlim(0.4, len(order) + 0.6)
    ax.set_xlabel(cluster)
    ax.set_ylabel(y)
    ax.set_title(title if title is not None else f"{y} by {cluster}" + (f", coloured by {group}" if group else ""))
    return fig


def plot_spaghetti(data: pd.DataFrame, y: str, time: str, unit: str, panel: str | None = None, *,
                   panels: Sequence | None = None, scatter: bool = False, ncols: int = 4,
                   time_labels: Mapping | None = None, figsize: tuple[float, float] | None = None,
                   sharey: bool = True) -> Figure:
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
        ax.scatter([tpos[t] for t in sub[time]], sub[y], s=5, color="C0", alpha=0.6, zorder=3,
                   gid=f"points:{lev}")
        ax.set_xticks(range(len(times)), tick_labels)
        ax.set_xlim(-0.3, len(times) - 0.7)
        ax.autoscale_view(scalex=False)
        ax.set_title(f"{panel} = {lev}" if panel else f"{len(wide)} {unit}", fontsize="medium")
        if scatter or ax.get_subplotspec().is_first_col():
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
                sax.set_title(f"{panel} = {lev}: r = {r:.2f}" if panel else f"r = {r:.2f}",
                              fontsize="medium")
            sax.set_xlabel(f"{y} at {tick_labels[0]}")
            sax.set_ylabel(f"{y} at {tick_labels[1]}")
    fig.suptitle(f"{y} per {unit} across {time}")
    return fig


# ----------------------------------------------------------------------------- the model
def plot_caterpillar(model: Any, group: str | None = None, level: float = 0.95, *,
                     figsize: tuple[float, float] | None = None, max_labels: int = 60) -> Figure:
    """Caterpillar plot: each level's conditional mode with a ±z·(conditional SD) interval.

    One panel per random-effect column of each grouping factor (or of ``group`` only); the
    levels of a factor are sorted by its first column, as lme4 sorts them.  Level names are
    written on the axis when there are at most ``max_labels`` levels.  The interval is the
    normal interval at ``level`` from ``model.ranef`` and ``model.ranef_condsd``.

    Mirrors lme4's ``dotplot(ranef(m, condVar = TRUE))`` (lattice).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), not {level!r}")
    modes, sds = model.ranef, model.ranef_condsd
    factors = list(modes) if group is None else [group]
    for g in factors:
        if g not in modes:
            raise KeyError(f"no grouping factor {g!r}; the model has {', '.join(map(repr, modes))}")
    z = stats.norm.ppf(0.5 + level / 2)
    panels = [(g, c) for g in factors for c in modes[g].columns]
    nmax = max(len(modes[g]) for g in factors)
    plt = _pyplot()
    fig = plt.figure(figsize=figsize or (3.2 * len(panels) + 1, min(2 + 0.16 * nmax, 14)),
                     layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False).ravel()
    first_ax: dict = {}
    for ax, (g, c) in zip(axes, panels):
        re, sd = modes[g], sds[g]
        order = np.argsort(re.iloc[:, 0].to_numpy(), kind="stable")
        est = re[c].to_numpy()[order]
        half = z * sd[c].to_numpy()[order]
        ypos = np.arange(len(est))
        eb = ax.errorbar(est, ypos, xerr=half, fmt="o", ms=3, color="C0", ecolor="0.5",
                         elinewidth=1, capsize=0)
        eb.lines[0].set_gid(f"modes:{g}:{c}")
        ax.axvline(0, color="0.3", lw=1, ls="--")
        if g in first_ax:
            ax.sharey(first_ax[g])
        first_ax.setdefault(g, ax)
        labels = [str(v) for v in re.index[order]]
        if len(labels) <= max_labels:
            ax.set_yticks(ypos, labels, fontsize="small" if len(labels) > 25 else None)
        else:
            ax.set_yticks([])
        ax.set_ylim(-1, len(est))
        ax.set_title(f"{g}: {c}", fontsize="medium")
        ax.set_xlabel(f"conditional mode ± {100 * level:g}% interval")
    return fig


def _used_rows(values) -> np.ndarray:
    """Per-row values of the rows the fit used (a model's Series has NaN for dropped rows)."""
    v = np.asarray(values, dtype=float)
    return v[~np.isnan(v)] if isinstance(values, pd.Series) else v


def _pearson_residuals(model: Any) -> np.ndarray:
    """Pearson residuals: ``resid(m, type = "pearson")`` for GLMMs, √w (y - fitted)/σ for LMMs."""
    resid = getattr(model, "resid", None)
    if callable(resid):
        return np.asarray(resid("pearson"), dtype=float)
    r = _used_rows(model.residuals)
    w = getattr(model.frame, "weights", None)
    if w is not None:
        r = r * np.sqrt(w)
    return r / float(model.sigma)


def plot_diagnostics(model: Any, *, ranef_qq: bool = False,
                     figsize: tuple[float, float] | None = None) -> Figure:
    """Residual diagnostics: Pearson residuals vs fitted values, and their normal QQ plot.

    The first panel has a zero line and a binned-mean trend; the second R's ``qqline``.
    ``ranef_qq=True`` adds a normal QQ plot of the conditional modes for each random-effect
    column of each grouping factor.

    Mirrors lme4's ``plot(m)`` (``plot.merMod``: Pearson residuals vs fitted) and
    ``qqnorm(resid(m)); qqline(resid(m))`` / ``lattice::qqmath(ranef(m))``.
    """
    fitted = _used_rows(model.fitted)
    res = _pearson_residuals(model)
    extra = [(g, c) for g, re in model.ranef.items() for c in re.columns] if ranef_qq else []
    fig, axes = _subplots(2 + len(extra), 4 if extra else 2, (4.2, 3.8), figsize)
    ax = axes[0]
    ax.scatter(fitted, res, s=8, alpha=0.5, color="C0", linewidths=0, gid="resid-vs-fitted")
    ax.axhline(0, color="0.3", lw=1, ls="--")
    if len(fitted) >= 20:
        edges = np.unique(np.quantile(fitted, np.linspace(0, 1, 16)))
        if len(edges) >= 3:
            which = np.clip(np.searchsorted(edges, fitted, side="right") - 1, 0, len(edges) - 2)
            cnt = np.bincount(which, minlength=len(edges) - 1)
            keep = cnt > 0
            mx = np.bincount(which, fitted, len(edges) - 1)[keep] / cnt[keep]
            my = np.bincount(which, res, len(edges) - 1)[keep] / cnt[keep]
            ax.plot(mx, my, color="C3", lw=1.5, gid="trend")
    ax.set_xlabel("fitted values")
    ax.set_ylabel("Pearson residuals")
    ax.set_title("Residuals vs fitted", fontsize="medium")
    _qq(axes[1], res, "qq:residuals")
    axes[1].set_ylabel("Pearson residuals")
    axes[1].set_title("Normal QQ: residuals", fontsize="medium")
    for ax, (g, c) in zip(axes[2:], extra):
        _qq(ax, model.ranef[g][c].to_numpy(), f"qq:{g}:{c}", color="C2")
        ax.set_ylabel("conditional modes")
        ax.set_title(f"Normal QQ: {g} {c}", fontsize="medium")
    return fig


def plot_profile(profile: pd.DataFrame, *, levels: Sequence[float] = PROFILE_LEVELS,
                 absolute: bool = False, ncols: int = 4,
                 figsize: tuple[float, float] | None = None) -> Figure:
    """Profile zeta plots: ζ against each parameter's value, one panel per parameter.

    ``profile`` has columns ``parameter``, ``value``, ``zeta`` (what ``m.profile()`` returns).
    Horizontal lines mark ±z at each confidence level in ``levels`` and vertical lines where
    ζ crosses them, i.e. the profile confidence intervals; a straight ζ means the Wald
    (quadratic) approximation is good.  ``absolute=True`` plots |ζ|.

    Mirrors lme4's ``xyplot(profile(m))`` (and ``absVal = TRUE``).
    """
    _need_columns(profile, "parameter", "value", "zeta")
    params = list(dict.fromkeys(profile["parameter"]))
    if not params:
        raise ValueError("empty profile")
    fig, axes = _subplots(len(params), ncols, (3.0, 2.8), figsize, sharey=True)
    zs = stats.norm.ppf(0.5 + np.asarray(levels, dtype=float) / 2)
    for ax, p in zip(axes, params):
        sub = profile.loc[profile["parameter"] == p, ["value", "zeta"]].dropna()
        sub = sub.sort_values("value")
        v, zeta = sub["value"].to_numpy(float), sub["zeta"].to_numpy(float)
        ax.plot(v, np.abs(zeta) if absolute else zeta, color="C0", lw=1.5, marker=".", ms=3,
                gid=f"zeta:{p}")
        byz = np.argsort(zeta, kind="stable")
        for zc in zs:
            for s in ((1,) if absolute else (-1, 1)):
                ax.axhline(s * zc, color="0.75", lw=0.6, zorder=0)
            for s in (-1, 1):
                target = s * zc
                if len(zeta) >= 2 and zeta.min() <= target <= zeta.max():
                    x = float(np.interp(target, zeta[byz], v[byz]))
                    ax.vlines(x, 0, abs(target) if absolute else target, color="C3", lw=0.8, ls=":",
                              gid=f"ci:{p}")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_title(str(p), fontsize="medium")
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("|ζ|" if absolute else "ζ")
    return fig


def plot_pvalues(pvalues: pd.DataFrame | Mapping[str, Sequence[float]] | pd.Series, *,
                 bins: int = 20, alpha: float = 0.05,
                 figsize: tuple[float, float] | None = None) -> Figure:
    """Histograms of p-values on [0, 1], one panel per column (method), e.g. ``lmm`` and ``lm``.

    Under the null (e.g. permuted group labels) a valid test's p-values are uniform: the
    dashed line is the uniform expectation, and each title gives the rejection rate
    P(p < ``alpha``) - the lecture's type I error check of the naive LM against the LMM.

    Mirrors R's ``hist(pvalues)`` (graphics) with ``abline(h = n / bins)``.
    """
    if isinstance(pvalues, pd.Series):
        pvalues = pvalues.to_frame(pvalues.name or "p")
    df = pd.DataFrame(pvalues) if not isinstance(pvalues, pd.DataFrame) else pvalues
    if df.shape[1] == 0:
        raise ValueError("no p-value columns")
    fig, axes = _subplots(df.shape[1], 4, (3.6, 3.0), figsize)
    edges = np.linspace(0.0, 1.0, bins + 1)
    for ax, col in zip(axes, df.columns):
        p = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
        p = p[np.isfinite(p)]
        if np.any((p < 0) | (p > 1)):
            raise ValueError(f"column {col!r} has values outside [0, 1]")
        _, _, bars = ax.hist(p, bins=edges, color="C0", edgecolor="white", alpha=0.85)
        for b in bars:
            b.set_gid(f"hist:{col}")
        ax.axhline(len(p) / bins, color="C3", ls="--", lw=1, gid=f"uniform:{col}")
        rate = float(np.mean(p < alpha)) if len(p) else float("nan")
        ax.set_title(f"{col}: P(p < {alpha:g}) = {rate:.3f} (n = {len(p)})", fontsize="medium")
        ax.set_xlim(0, 1)
        ax.set_xlabel("p-value")
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("count")
    return fig

"""Plots of a fitted model's estimates: caterpillar plots of the conditional modes, profile
zeta plots and p-value histograms (each returns a matplotlib Figure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

from .plot_base import _need_columns, _pyplot, _subplots

__all__ = ["plot_caterpillar", "plot_profile", "plot_pvalues"]

PROFILE_LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)  # lme4's xyplot.thpr confidence levels


def plot_caterpillar(
    model: Any,
    group: str | None = None,
    level: float = 0.95,
    *,
    figsize: tuple[float, float] | None = None,
    max_labels: int = 60,
) -> Figure:
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
    fig = plt.figure(figsize=figsize or (3.2 * len(panels) + 1, min(2 + 0.16 * nmax, 14)), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False).ravel()
    first_ax: dict = {}
    for ax, (g, c) in zip(axes, panels):
        re, sd = modes[g], sds[g]
        order = np.argsort(re.iloc[:, 0].to_numpy(), kind="stable")
        est = re[c].to_numpy()[order]
        half = z * sd[c].to_numpy()[order]
        ypos = np.arange(len(est))
        eb = ax.errorbar(est, ypos, xerr=half, fmt="o", ms=3, color="C0", ecolor="0.5", elinewidth=1, capsize=0)
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
        ax.set_ylabel(f"level of {g}")
    return fig


def plot_profile(
    profile: pd.DataFrame,
    *,
    levels: Sequence[float] = PROFILE_LEVELS,
    absolute: bool = False,
    ncols: int = 4,
    figsize: tuple[float, float] | None = None,
) -> Figure:
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
        ax.plot(v, np.abs(zeta) if absolute else zeta, color="C0", lw=1.5, marker=".", ms=3, gid=f"zeta:{p}")
        byz = np.argsort(zeta, kind="stable")
        for zc in zs:
            for s in (1,) if absolute else (-1, 1):
                ax.axhline(s * zc, color="0.75", lw=0.6, zorder=0)
            for s in (-1, 1):
                target = s * zc
                if len(zeta) >= 2 and zeta.min() <= target <= zeta.max():
                    x = float(np.interp(target, zeta[byz], v[byz]))
                    ax.vlines(x, 0, abs(target) if absolute else target, color="C3", lw=0.8, ls=":", gid=f"ci:{p}")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_title(str(p), fontsize="medium")
        ax.set_xlabel(f"value of {p}")
        ax.set_ylabel("|ζ|" if absolute else "ζ")
    return fig


def plot_pvalues(
    pvalues: pd.DataFrame | Mapping[str, Sequence[float]] | pd.Series,
    *,
    bins: int = 20,
    alpha: float = 0.05,
    figsize: tuple[float, float] | None = None,
) -> Figure:
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
        ax.set_ylabel("count")
    return fig

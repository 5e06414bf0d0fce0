"""Residual diagnostics of a fitted model: Pearson residuals against fitted values with normal
QQ plots (lme4's ``plot(m)``), and DHARMa-style plots of simulation-based scaled residuals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

from .plot_base import _ppoints, _qq, _subplots

__all__ = ["plot_diagnostics", "plot_simulated_residuals", "pearson_residuals"]


def _used_rows(values) -> np.ndarray:
    """Per-row values of the rows the fit used (a model's Series has NaN for dropped rows)."""
    v = np.asarray(values, dtype=float)
    return v[~np.isnan(v)] if isinstance(values, pd.Series) else v


def pearson_residuals(model: Any, scale: bool = True) -> np.ndarray:
    """Pearson residuals of the used rows: ``resid(m, type = "pearson")`` for GLMMs,
    √w (y - fitted) for LMMs, divided by σ̂ there if ``scale`` (unscaled, a refit's sum of
    squares stays comparable with the original fit's); with a variance function by σ̂ s_i
    (nlme's ``resid(type = "pearson")``)."""
    resid = getattr(model, "resid", None)
    if callable(resid):
        return np.asarray(resid("pearson"), dtype=float)
    r = _used_rows(model.residuals)
    w = getattr(model.frame, "weights", None)
    if w is not None:
        r = r * np.sqrt(w)
    sd = getattr(model, "residual_sd", None)  # a variance function: nlme's σ / weights per row
    if sd is not None and scale:
        return r / np.asarray(sd, dtype=float)
    return r / float(model.sigma) if scale else r


def plot_diagnostics(model: Any, *, ranef_qq: bool = False, figsize: tuple[float, float] | None = None) -> Figure:
    """Residual diagnostics: Pearson residuals vs fitted values, and their normal QQ plot.

    The first panel has a zero line and a binned-mean trend; the second R's ``qqline``.
    ``ranef_qq=True`` adds a normal QQ plot of the conditional modes for each random-effect
    column of each grouping factor.

    Mirrors lme4's ``plot(m)`` (``plot.merMod``: Pearson residuals vs fitted) and
    ``qqnorm(resid(m)); qqline(resid(m))`` / ``lattice::qqmath(ranef(m))``.
    """
    fitted = _used_rows(model.fitted)
    res = pearson_residuals(model)
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


def plot_simulated_residuals(residuals: Any, *, figsize: tuple[float, float] | None = None, seed: int = 0) -> Figure:
    """DHARMa's residual plot of simulation-based scaled residuals (``simulate_residuals``).

    Left: QQ plot of the scaled residuals against U(0, 1), titled with the KS uniformity,
    dispersion and zero-inflation (counts) tests' p-values.  Right: scaled residuals against
    the rank-transformed fitted values (ranks scaled to [0, 1]; ties broken at random) with
    dashed lines at 0.25, 0.5 and 0.75 and the binned quartiles of the residuals, which stay
    near those lines if the model is right.

    Mirrors ``plot(simulateResiduals(m))`` (DHARMa's ``plotQQunif`` and ``plotResiduals``).

    Parameters
    ----------
    residuals : SimulatedResiduals
        What ``simulate_residuals(m)`` / ``m.simulate_residuals()`` returns.
    figsize : (float, float), optional
    seed : int
        Breaks ties among the fitted values' ranks.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> plot_simulated_residuals(m.simulate_residuals(seed=1))  # doctest: +SKIP
    """
    u = np.asarray(residuals.scaled, dtype=float)
    n = len(u)
    fig, (qq_ax, rp_ax) = _subplots(2, 2, (4.4, 4.0), figsize)
    expected = _ppoints(n)
    qq_ax.scatter(expected, np.sort(u), s=8, alpha=0.6, color="C0", linewidths=0, gid="qq:uniform")
    qq_ax.plot([0, 1], [0, 1], color="C3", lw=1, gid="qq:identity")
    tests = [("KS", residuals.test_uniformity().p_value), ("dispersion", residuals.test_dispersion().p_value)]
    if residuals.integer_response:
        tests.append(("zero-inflation", residuals.test_zero_inflation().p_value))
    qq_ax.set_title(
        "QQ plot of scaled residuals\n" + ", ".join(f"{k} p = {p:.3g}" for k, p in tests), fontsize="medium"
    )
    qq_ax.set_xlabel("Expected (uniform quantiles)")
    qq_ax.set_ylabel("Observed (scaled residuals)")
    qq_ax.set_xlim(0, 1)
    qq_ax.set_ylim(0, 1)
    rng = np.random.default_rng(seed)
    fitted = np.asarray(residuals.fitted, dtype=float)
    order = np.lexsort((rng.uniform(size=n), fitted))
    rank = np.empty(n)
    rank[order] = np.arange(n) / max(n - 1, 1)
    rp_ax.scatter(rank, u, s=8, alpha=0.5, color="C0", linewidths=0, gid="resid-vs-rank")
    for q in (0.25, 0.5, 0.75):
        rp_ax.axhline(q, color="0.5", lw=1, ls="--", gid=f"expected:{q:g}")
    if n >= 40:
        nb = min(10, n // 20)
        which = np.minimum((rank * nb).astype(int), nb - 1)
        mids = (np.arange(nb) + 0.5) / nb
        for q, col in zip((0.25, 0.5, 0.75), ("C1", "C3", "C1")):
            rp_ax.plot(
                mids, [np.quantile(u[which == k], q) for k in range(nb)], color=col, lw=1.5, gid=f"quantile:{q:g}"
            )
    rp_ax.set_xlabel("Fitted values (rank transformed)")
    rp_ax.set_ylabel("Scaled residuals")
    rp_ax.set_ylim(0, 1)
    rp_ax.set_title("Residuals vs predicted", fontsize="medium")
    return fig

"""The plotting functions render valid PNGs on the bundled data and draw what they should."""

from __future__ import annotations

import struct
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection, PolyCollection  # noqa: E402
from matplotlib.image import imread  # noqa: E402

import mmfast  # noqa: E402
from mmfast.present import plots  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def render(fig, tmp_path, name: str):
    """Save ``fig`` as PNG, check it is a valid, non-blank image, close it; return the path."""
    path = tmp_path / f"{name}.png"
    fig.savefig(path, dpi=60)
    raw = path.read_bytes()
    assert raw[:8] == PNG_SIGNATURE and raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    assert width >= 200 and height >= 150
    assert len(raw) > 5_000
    img = imread(path)
    assert img.shape[:2] == (height, width)
    assert img[..., :3].std() > 0.02  # not a blank canvas
    plt.close(fig)
    return path


def by_gid(fig, gid: str) -> list:
    """Artists whose gid is ``gid``, or starts with it when ``gid`` ends with ':'."""

    def match(g) -> bool:
        return isinstance(g, str) and (g.startswith(gid) if gid.endswith(":") else g == gid)

    return [a for ax in fig.axes for a in ax.get_children() if match(a.get_gid())]


@pytest.fixture(scope="module")
def ex1():
    return mmfast.datasets.load("ex1")


@pytest.fixture(scope="module")
def ex3():
    return mmfast.datasets.load("ex3")


@pytest.fixture(scope="module")
def sleep_model():
    return mmfast.lmer("Reaction ~ Days + (Days | Subject)", mmfast.datasets.load("sleepstudy"))


# ----------------------------------------------------------------------------- by cluster
def test_box_per_cluster(ex1, tmp_path):
    fig = plots.plot_by_cluster(ex1, "res", "midx", "treatment_idx", group_labels={1: "baseline", 2: "24h"})
    render(fig, tmp_path, "box")
    ax = fig.axes[0]
    assert len(by_gid(fig, "box:")) == ex1["midx"].nunique() == 24
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 5  # one scatter per treatment group
    assert sum(len(c.get_offsets()) for c in points) == len(ex1)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["baseline", "24h", "3", "4", "5"]
    assert len(by_gid(fig, "separator")) == 4
    # clusters grouped by treatment: each group's mice are contiguous on the axis
    ticks = [int(t.get_text()) for t in ax.get_xticklabels()]
    group_of = ex1.groupby("midx")["treatment_idx"].first()
    assert list(group_of.loc[ticks]) == sorted(group_of.loc[ticks])


def test_violin_per_cluster(ex1, tmp_path):
    fig = plots.plot_by_cluster(ex1, "res", "midx", "treatment_idx", kind="violin", fill=True)
    render(fig, tmp_path, "violin")
    violins = by_gid(fig, "violin:")
    assert len(violins) == 24 and all(isinstance(v, PolyCollection) for v in violins)
    assert len(by_gid(fig, "innerbox:")) == 24


def test_by_cluster_without_group_and_errors(ex1, tmp_path):
    fig = plots.plot_by_cluster(ex1, "res", "midx", jitter=0)
    render(fig, tmp_path, "plain")
    assert len(by_gid(fig, "box:")) == 24 and not by_gid(fig, "points:")
    with pytest.raises(ValueError, match="kind"):
        plots.plot_by_cluster(ex1, "res", "midx", kind="bar")
    with pytest.raises(KeyError, match="'mouse'"):
        plots.plot_by_cluster(ex1, "res", "mouse")


def assert_labelled(fig) -> None:
    """Every panel names its x and y axes."""
    for ax in fig.axes:
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), ax.get_title()


def box_colours(fig, prefix: str = "box:") -> dict:
    """gid -> edge colour (RGBA) of the boxes."""
    return {a.get_gid(): tuple(a.get_edgecolor()) for a in by_gid(fig, prefix)}


@pytest.fixture(scope="module")
def ex2():
    return mmfast.datasets.load("ex2")


def test_group_varying_within_cluster_is_dodged(ex2, tmp_path):
    """Example 2: every mouse at four time points -> four boxes per mouse, one colour per time."""
    names = {1: "baseline", 2: "1h", 3: "24h", 4: "48h"}
    fig = plots.plot_by_cluster(ex2, "res", "midx", "treatment_idx", group_labels=names)
    render(fig, tmp_path, "dodge")
    ax = fig.axes[0]
    cells = ex2.groupby(["midx", "treatment_idx"]).size()
    colours = box_colours(fig)
    assert len(colours) == len(cells) == 16
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == list(names.values())
    assert legend.get_title().get_text() == "treatment_idx"
    legend_colour = {
        lab.get_text(): tuple(h.get_edgecolor()) for lab, h in zip(legend.get_texts(), legend.legend_handles)
    }
    assert len(set(legend_colour.values())) == 4
    for mouse, time in cells.index:
        assert colours[f"box:{mouse}:{time}"] == legend_colour[names[time]]
    # within a mouse the boxes sit side by side, in time order, around the mouse's tick
    boxes = {a.get_gid(): a.get_path().vertices[:, 0] for a in by_gid(fig, "box:")}
    for k, mouse in enumerate(sorted(ex2["midx"].unique()), start=1):
        centres = [(boxes[f"box:{mouse}:{t}"].min() + boxes[f"box:{mouse}:{t}"].max()) / 2 for t in (1, 2, 3, 4)]
        assert np.all(np.diff(centres) > 0) and abs(np.mean(centres) - k) < 1e-9
    points = [by_gid(fig, f"points:{t}")[0] for t in (1, 2, 3, 4)]
    assert [len(p.get_offsets()) for p in points] == list(ex2.groupby("treatment_idx").size())
    assert [tuple(p.get_facecolor()[0][:3]) for p in points] == [legend_colour[n][:3] for n in names.values()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4"]
    assert ax.get_xlabel() == "midx" and ax.get_ylabel() == "res"
    assert len(by_gid(fig, "cluster-separator")) == 3


def test_group_varying_within_cluster_faceted(ex2, tmp_path):
    fig = plots.plot_by_cluster(
        ex2, "res", "midx", "treatment_idx", within="facet", fill=True, xlabel="mouse", ylabel="residual (a.u.)"
    )
    render(fig, tmp_path, "facet")
    assert len(fig.axes) == 4
    colours = box_colours(fig)
    assert len(colours) == 16
    per_time = {t: {colours[f"box:{m}:{t}"] for m in range(1, 5)} for t in (1, 2, 3, 4)}
    assert all(len(c) == 1 for c in per_time.values())  # one colour per time point
    assert len(set.union(*per_time.values())) == 4  # four different colours
    for ax, t in zip(fig.axes, (1, 2, 3, 4)):
        assert ax.get_title() == f"treatment_idx = {t}"
        assert ax.get_xlabel() == "mouse" and ax.get_ylabel() == "residual (a.u.)"
        assert {a.get_gid() for a in ax.patches if a.get_gid()} == {f"box:{m}:{t}" for m in range(1, 5)}
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["1", "2", "3", "4"]
    with pytest.raises(mmfast.ArgumentError, match="within"):
        plots.plot_by_cluster(ex2, "res", "midx", "treatment_idx", within="stack")
    with pytest.raises(mmfast.ArgumentError, match="ax=None"):
        plots.plot_by_cluster(ex2, "res", "midx", "treatment_idx", within="facet", ax=plt.figure().add_subplot())
    plt.close("all")


def test_one_group_per_cluster_colours_boxes_and_lists_every_level(ex1, tmp_path):
    fig = plots.plot_by_cluster(ex1, "res", "midx", "treatment_idx", jitter=0, kind="box")
    render(fig, tmp_path, "box_nojitter")
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["1", "2", "3", "4", "5"]
    colours = box_colours(fig)
    group_of = ex1.groupby("midx")["treatment_idx"].first()
    by_group = {}
    for mouse, g in group_of.items():
        by_group.setdefault(g, set()).add(colours[f"box:{mouse}"])
    assert all(len(c) == 1 for c in by_group.values()) and len(set.union(*by_group.values())) == 5
    violin = plots.plot_by_cluster(ex1, "res", "midx", "treatment_idx", kind="violin")
    assert_labelled(violin)
    plt.close(violin)


def test_every_plot_labels_its_axes(ex1, ex3, sleep_model):
    figs = [
        plots.plot_by_cluster(ex1, "res", "midx"),
        plots.plot_spaghetti(ex3, "res", "treatment", "cidx", "midx", panels=[1, 2, 3, 4, 5]),
        plots.plot_spaghetti(ex3, "res", "treatment", "cidx", "midx", panels=[1, 2], scatter=True),
        plots.plot_caterpillar(sleep_model),
        plots.plot_diagnostics(sleep_model, ranef_qq=True),
        plots.plot_profile(synthetic_profile()),
        plots.plot_pvalues({"a": [0.1, 0.5, 0.9], "b": [0.2, 0.3, 0.4]}),
    ]
    for fig in figs:
        assert_labelled(fig)
        plt.close(fig)
    spag = figs[1]
    assert spag.axes[0].get_xlabel() == "treatment" and spag.axes[4].get_ylabel() == "res"


def test_simulated_residuals_plot(tmp_path):
    wl = mmfast.datasets.load("waterlick")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.glmer("lick ~ dff + (1 | mouseID)", wl, family="binomial")
    r = m.simulate_residuals(n_sim=100, seed=5)
    fig = r.plot()
    render(fig, tmp_path, "dharma")
    assert_labelled(fig)
    (qq,) = by_gid(fig, "qq:uniform")
    xy = qq.get_offsets()
    np.testing.assert_allclose(xy[:, 1], np.sort(r.scaled))
    n = len(r.scaled)
    np.testing.assert_allclose(xy[:, 0], (np.arange(1, n + 1) - 0.5) / n)  # R's ppoints, n > 10
    (rv,) = by_gid(fig, "resid-vs-rank")
    rank = rv.get_offsets()[:, 0]
    np.testing.assert_allclose(np.sort(rank), np.arange(n) / (n - 1))
    order = np.argsort(rank)  # rank follows the fitted values
    assert np.all(np.diff(np.asarray(r.fitted)[order]) >= 0)
    np.testing.assert_allclose(rv.get_offsets()[:, 1], r.scaled)
    assert len(by_gid(fig, "quantile:")) == 3
    title = fig.axes[0].get_title()
    assert f"KS p = {r.test_uniformity().p_value:.3g}" in title
    assert f"dispersion p = {r.test_dispersion().p_value:.3g}" in title


# ----------------------------------------------------------------------------- spaghetti
def test_spaghetti_one_line_per_paired_cell(ex3, tmp_path):
    fig = plots.plot_spaghetti(ex3, "res", "treatment", "cidx", "midx", time_labels={1: "baseline", 2: "24h"})
    render(fig, tmp_path, "spaghetti")
    assert len(fig.axes) == ex3["midx"].nunique() == 11
    complete = ex3.dropna(subset=["res"]).groupby(["midx", "cidx"]).size()
    paired = (complete == 2).groupby(level="midx").sum()
    for mouse in (1, 5, 11):
        (lines,) = by_gid(fig, f"lines:{mouse}")
        assert isinstance(lines, LineCollection)
        assert len(lines.get_segments()) == paired.loc[mouse]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["baseline", "24h"]


def test_spaghetti_with_before_after_scatter(ex3, tmp_path):
    fig = plots.plot_spaghetti(ex3, "res", "treatment", "cidx", "midx", panels=[1, 2, 3, 4], scatter=True)
    render(fig, tmp_path, "spaghetti_scatter")
    assert len(fig.axes) == 8
    assert len(by_gid(fig, "fit:")) == 4
    with pytest.raises(ValueError, match="two time points"):
        plots.plot_spaghetti(ex3.assign(treatment=ex3.index % 3), "res", "treatment", "cidx", "midx", scatter=True)


# ----------------------------------------------------------------------------- model plots
def test_caterpillar(sleep_model, tmp_path):
    m = sleep_model
    fig = plots.plot_caterpillar(m, level=0.95)
    render(fig, tmp_path, "caterpillar")
    assert len(fig.axes) == 2  # (Intercept) and Days of Subject
    re, sd = m.ranef["Subject"], m.ranef_condsd["Subject"]
    order = np.argsort(re["(Intercept)"].to_numpy(), kind="stable")
    for ax, col in zip(fig.axes, ["(Intercept)", "Days"]):
        (modes,) = [a for a in ax.get_lines() if a.get_gid() == f"modes:Subject:{col}"]
        np.testing.assert_allclose(modes.get_xdata(), re[col].to_numpy()[order])
        bars = [c for c in ax.collections if isinstance(c, LineCollection)][0]
        half = np.array([abs(s[1, 0] - s[0, 0]) / 2 for s in bars.get_segments()])
        np.testing.assert_allclose(half, 1.959964 * sd[col].to_numpy()[order], rtol=1e-5)
        assert [t.get_text() for t in ax.get_yticklabels()] == [str(v) for v in re.index[order]]
    one = plots.plot_caterpillar(m, group="Subject", level=0.5)
    assert len(one.axes) == 2
    plt.close(one)
    with pytest.raises(KeyError, match="Subj"):
        plots.plot_caterpillar(m, group="Subj")


def test_diagnostics_lmm(sleep_model, tmp_path):
    m = sleep_model
    fig = plots.plot_diagnostics(m)
    render(fig, tmp_path, "diagnostics")
    assert len(fig.axes) == 2
    (scatter,) = by_gid(fig, "resid-vs-fitted")
    xy = scatter.get_offsets()
    np.testing.assert_allclose(xy[:, 0], m.fitted)
    np.testing.assert_allclose(xy[:, 1], m.residuals / m.sigma)
    (qq,) = by_gid(fig, "qq:residuals")
    assert len(qq.get_offsets()) == m.nobs
    assert np.all(np.diff(qq.get_offsets()[:, 1]) >= 0)
    fig2 = plots.plot_diagnostics(m, ranef_qq=True)
    assert len(fig2.axes) == 4 and len(by_gid(fig2, "qq:Subject:Days")) == 1
    plt.close(fig2)


def test_diagnostics_glmm_uses_pearson_residuals(tmp_path):
    wl = mmfast.datasets.load("waterlick")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.glmer("lick ~ dff + (1 | mouseID)", wl, family="binomial")
    fig = plots.plot_diagnostics(m)
    render(fig, tmp_path, "diagnostics_glmm")
    (scatter,) = by_gid(fig, "resid-vs-fitted")
    np.testing.assert_allclose(scatter.get_offsets()[:, 1], m.resid("pearson"))
    assert np.all((scatter.get_offsets()[:, 0] > 0) & (scatter.get_offsets()[:, 0] < 1))


def synthetic_profile() -> pd.DataFrame:
    """ζ exactly linear in each parameter: the profile intervals are est ± z·se."""
    rows = []
    for name, est, se in [("sd_(Intercept)|g", 2.0, 0.5), ("sigma", 1.0, 0.1), ("x", -3.0, 1.0)]:
        v = est + se * np.linspace(-3, 3, 13)
        rows.append(pd.DataFrame({"parameter": name, "value": v, "zeta": (v - est) / se}))
    return pd.concat(rows, ignore_index=True)


def test_profile_zeta_plot(tmp_path):
    prof = synthetic_profile()
    fig = plots.plot_profile(prof, levels=[0.95])
    render(fig, tmp_path, "profile")
    assert len(fig.axes) == 3
    (line,) = by_gid(fig, "zeta:sigma")
    np.testing.assert_allclose(line.get_ydata(), prof.loc[prof.parameter == "sigma", "zeta"])
    ends = sorted(seg[0, 0] for c in by_gid(fig, "ci:sigma") for seg in c.get_segments())
    np.testing.assert_allclose(ends, [1.0 - 0.1 * 1.959964, 1.0 + 0.1 * 1.959964], rtol=1e-6)
    fig2 = plots.plot_profile(prof, absolute=True)
    assert np.all(by_gid(fig2, "zeta:x")[0].get_ydata() >= 0)
    plt.close(fig2)
    with pytest.raises(KeyError, match="zeta"):
        plots.plot_profile(prof.drop(columns="zeta"))


def test_profile_of_a_fit(sleep_model, tmp_path):
    prof = sleep_model.profile()
    fig = plots.plot_profile(prof)
    render(fig, tmp_path, "profile_fit")
    assert len(fig.axes) == prof["parameter"].nunique()


def test_pvalue_histograms(tmp_path):
    rng = np.random.default_rng(7)
    pv = pd.DataFrame({"lmm": rng.uniform(size=400), "lm": rng.beta(0.3, 1.0, size=400)})
    pv.loc[3, "lmm"] = np.nan
    fig = plots.plot_pvalues(pv, bins=20, alpha=0.05)
    render(fig, tmp_path, "pvalues")
    assert len(fig.axes) == 2
    for ax, col in zip(fig.axes, pv.columns):
        bars = [p for p in ax.patches if p.get_gid() == f"hist:{col}"]
        assert len(bars) == 20
        assert sum(b.get_height() for b in bars) == pv[col].notna().sum()
        rate = (pv[col].dropna() < 0.05).mean()
        assert f"= {rate:.3f}" in ax.get_title()
    single = plots.plot_pvalues(pv["lm"])
    assert len(single.axes) == 1
    plt.close(single)
    with pytest.raises(ValueError, match="outside"):
        plots.plot_pvalues({"bad": [0.1, 1.5]})


# ----------------------------------------------------------------------------- optional extra
def test_matplotlib_is_imported_lazily_with_a_clear_error():
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import mmfast, mmfast.present.plots as p\n"
        "try:\n    p.plot_pvalues({'a': [0.5]})\n"
        "except ImportError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ERR" in out.stdout and "mmfast[plot]" in out.stdout

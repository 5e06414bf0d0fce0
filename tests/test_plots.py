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
    fig = plots.plot_by_cluster(ex1, "res", "midx", "treatment_idx",
                                group_labels={1: "baseline", 2: "24h"})
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


# ----------------------------------------------------------------------------- spaghetti
def test_spaghetti_one_line_per_paired_cell(ex3, tmp_path):
    fig = plots.plot_spaghetti(ex3, "res", "treatment", "cidx", "midx",
                               time_labels={1: "baseline", 2: "24h"})
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
    fig = plots.plot_spaghetti(ex3, "res", "treatment", "cidx", "midx", panels=[1, 2, 3, 4],
                               scatter=True)
    render(fig, tmp_path, "spaghetti_scatter")
    assert len(fig.axes) == 8
    assert len(by_gid(fig, "fit:")) == 4
    with pytest.raises(ValueError, match="two time points"):
        plots.plot_spaghetti(ex3.assign(treatment=ex3.index % 3), "res", "treatment", "cidx",
                             "midx", scatter=True)


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
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "import mmfast, mmfast.present.plots as p\n"
            "try:\n    p.plot_pvalues({'a': [0.5]})\n"
            "except ImportError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ERR" in out.stdout and "mmfast[plot]" in out.stdout

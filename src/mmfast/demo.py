"""The lecture's four examples end to end on the bundled data (what ``make demo`` runs).

Example 1: cells within mice, naive LM vs LMM; Example 2: unbalanced cells per mouse and time
point; Example 3: cells measured twice within mice, nested and random-slope models;
Example 4: a GLMM decoding licks from neuronal activity.  Tables go to stdout and to CSV files
in ``out_dir``; figures are written there too when matplotlib is installed.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pandas as pd

from . import datasets

__all__ = ["run_demo"]


def _factor(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    """R's ``as.factor`` on numeric codes: categorical with sorted levels."""
    df = df.copy()
    for c in cols:
        df[c] = pd.Categorical(
            df[c].astype(int).astype(str), categories=[str(v) for v in sorted(df[c].dropna().unique().astype(int))]
        )
    return df


def _section(title: str) -> None:
    print("\n" + "=" * 78 + f"\n{title}\n" + "=" * 78)


def _save(df: pd.DataFrame, out: Path, name: str) -> None:
    df.to_csv(out / f"{name}.csv")


def _figure(out: Path, name: str, draw) -> None:
    """Draw a figure with mmfast.present.plots and write it as PNG (skipped without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig = draw()
    fig.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"[figure written: {out / (name + '.png')}]")


def example1(out: Path) -> None:
    import mmfast

    _section("Example 1: 1200 cells from 24 mice in 5 treatment groups")
    ex1 = _factor(datasets.load("ex1"), "treatment_idx", "midx")
    naive = mmfast.lm("res ~ treatment_idx", ex1)
    print("The 'familiar' analysis, lm(res ~ treatment_idx): cells treated as independent")
    print(naive.summary().coefficients.to_string(float_format=lambda v: f"{v:.4g}"))
    print("\nANOVA F test of the naive model:")
    print(naive.anova())
    m = mmfast.lmer("res ~ treatment_idx + (1 | midx)", ex1, reml=False)
    print("\nThe LMM, lmer(res ~ treatment_idx + (1 | midx), REML = FALSE):")
    print(m.summary())
    for ddf in ("between-within", "satterthwaite", "kenward-roger"):
        print(f"\nFixed effects with {ddf} df:")
        print(m.summary(ddf=ddf).coefficients.to_string(float_format=lambda v: f"{v:.4g}"))
    print("\nType III F test of treatment (Satterthwaite):")
    print(m.anova(type=3))
    icc = m.icc(by="treatment_idx")
    print("\nICC by treatment group (cells within a mouse are far from independent):")
    print(icc.to_string(float_format=lambda v: f"{v:.4g}"))
    from .present import plots

    _figure(out, "ex1_cells_by_mouse", lambda: plots.plot_by_cluster(ex1, "res", "midx", "treatment_idx"))
    _figure(out, "ex1_caterpillar", lambda: plots.plot_caterpillar(m))
    _figure(out, "ex1_diagnostics", lambda: plots.plot_diagnostics(m))
    _save(m.summary(ddf="satterthwaite").coefficients, out, "ex1_lmm_coefficients")
    _save(naive.summary().coefficients, out, "ex1_lm_coefficients")


def example2(out: Path) -> None:
    import mmfast

    _section("Example 2: 1724 cells, 4 mice, 4 time points (unequal cells per mouse)")
    ex2 = _factor(datasets.load("ex2"), "treatment_idx", "midx")
    counts = pd.crosstab(ex2["midx"], ex2["treatment_idx"], margins=True, margins_name="Total")
    print("Cells per mouse and time point (mouse 2 contributes 43% of the cells):")
    print(counts.to_string())
    naive = mmfast.lm("res ~ treatment_idx", ex2).summary().coefficients
    lmm = mmfast.lmer("res ~ treatment_idx + (1 | midx)", ex2, reml=False).summary().coefficients
    table = pd.DataFrame(
        {"LM est": naive["Estimate"], "LM p": naive["Pr(>|t|)"], "LMM est": lmm["Estimate"], "LMM p": lmm["Pr(>|t|)"]}
    ).iloc[1:]
    print("\nTime points vs 24h, naive pooling vs the LMM (mouse 2 drives the pooled 48h drop):")
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    from .present import plots

    _figure(out, "ex2_cells_by_mouse", lambda: plots.plot_by_cluster(ex2, "res", "midx", "treatment_idx"))
    _save(table, out, "ex2_lm_vs_lmm")


def example3(out: Path) -> None:
    import mmfast

    _section("Example 3: 1244 cells in 11 mice, each measured at baseline and 24h")
    ex3 = _factor(datasets.load("ex3"), "treatment", "midx", "cidx")
    naive = mmfast.lm("res ~ treatment", ex3.dropna())
    print("Naive LM:")
    print(naive.summary().coefficients.to_string(float_format=lambda v: f"{v:.4g}"))
    nested = mmfast.lmer("res ~ treatment + (1 | midx/cidx)", ex3, reml=False)
    print("\nNested random intercepts, (1 | midx/cidx):")
    print(nested.summary())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slope = mmfast.lmer(
            "res ~ treatment + (1 | midx) + (treatment | cidx)", ex3, reml=False, check_nobs_vs_nre="ignore"
        )
    print("\nRandom treatment slope per cell (lme4 refuses it by default; nlme fits it):")
    print(slope.varcorr.to_string())
    print("\nLikelihood-ratio test, nested vs random slope:")
    lrt = mmfast.anova(nested, slope)
    print(lrt)
    from .present import plots

    _figure(out, "ex3_spaghetti", lambda: plots.plot_spaghetti(ex3.dropna(), "res", "treatment", "cidx", "midx"))
    _save(lrt, out, "ex3_lrt")


def example4(out: Path) -> None:
    import mmfast

    _section("Example 4: GLMM, decoding licks from dF/F (8 mice x 64 trials)")
    wl = _factor(datasets.load("waterlick"), "mouseID")
    m = mmfast.glmer("lick ~ dff + (1 | mouseID)", wl, family="binomial")
    print(m.summary())
    orr = m.odds_ratios()
    print("\nOdds ratio per unit dF/F with a 95% Wald interval:")
    print(orr.to_string(float_format=lambda v: f"{v:.4f}"))
    small = mmfast.glmer("lick ~ (1 | mouseID)", wl, family="binomial")
    print("\nLikelihood-ratio test of dF/F:")
    print(mmfast.anova(small, m))
    print("\ndrop1(test = 'Chisq'):")
    print(m.drop1(test="Chisq"))
    _save(orr, out, "ex4_odds_ratios")


def run_demo(out_dir: str = "mmfast_demo_output") -> Path:
    """Run the four examples, print their tables and write them (and figures) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for example in (example1, example2, example3, example4):
        example(out)
    print(f"\nDone in {time.perf_counter() - t0:.1f} s; tables written to {out.resolve()}/")
    return out

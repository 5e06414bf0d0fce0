# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The lecture, executed
#
# The lecture's four examples on the bundled data (`mmfast.datasets`, simulated with the
# lecture's designs, so the numbers differ from the slides'). This page is a
# [jupytext](https://jupytext.readthedocs.io) notebook, `docs/lecture.py`, executed each time
# the site is built: every number below comes from the code above it. `make demo` runs the
# same examples from the shell.

# %%
import warnings

import pandas as pd

import mmfast
from mmfast.present import plots

pd.set_option("display.precision", 4)


def factor(df, *cols):
    """R's as.factor() on numeric codes: a categorical with numerically sorted levels."""
    df = df.copy()
    for c in cols:
        levels = sorted(df[c].dropna().unique().astype(int))
        df[c] = pd.Categorical(df[c].astype("Int64").astype(str), categories=[str(v) for v in levels])
    return df


# %% [markdown]
# ## Example 1: 1,200 cells from 24 mice
#
# Five treatment groups, cells within mice. The "familiar" analysis treats every cell as an
# independent observation:

# %%
ex1 = factor(mmfast.datasets.load("ex1"), "treatment_idx", "midx")
naive = mmfast.lm("res ~ treatment_idx", ex1)
naive.summary().coefficients

# %% [markdown]
# The mixed model gives each mouse its own intercept (R: `lmer(res ~ treatment_idx + (1 | midx),
# REML = FALSE)`); `summary()` prints lme4's layout with lmerTest's Satterthwaite df:

# %%
m = mmfast.lmer("res ~ treatment_idx + (1 | midx)", ex1, reml=False)
print(m.summary())

# %% [markdown]
# The denominator degrees of freedom as nlme (between-within) and pbkrtest (Kenward-Roger)
# count them, and lmerTest's type III F test:

# %%
m.summary(ddf="kenward-roger").coefficients

# %%
m.anova(type=3)

# %% [markdown]
# Cells within a mouse are far from independent: the intraclass correlation per treatment group.

# %%
m.icc(by="treatment_idx")

# %%
fig = plots.plot_by_cluster(ex1, "res", "midx", "treatment_idx")

# %% [markdown]
# ## Example 2: unequal numbers of cells per mouse
#
# Four mice at four time points; one mouse contributes 43% of the cells, so pooling the cells
# lets it drive the estimates.

# %%
ex2 = factor(mmfast.datasets.load("ex2"), "treatment_idx", "midx")
pd.crosstab(ex2["midx"], ex2["treatment_idx"], margins=True, margins_name="Total")

# %%
lm2 = mmfast.lm("res ~ treatment_idx", ex2).summary().coefficients
lmm2 = mmfast.lmer("res ~ treatment_idx + (1 | midx)", ex2, reml=False).summary().coefficients
pd.DataFrame({"LM est": lm2["Estimate"], "LM p": lm2["Pr(>|t|)"],
              "LMM est": lmm2["Estimate"], "LMM p": lmm2["Pr(>|t|)"]}).iloc[1:]

# %% [markdown]
# "Compare 24h with the other time points", as emmeans answers it (treatment-vs-control
# contrasts with Kenward-Roger df and Dunnett's adjustment):

# %%
m2 = mmfast.lmer("res ~ treatment_idx + (1 | midx)", ex2, reml=False)
print(mmfast.emmeans(m2, "treatment_idx", ddf="kenward-roger").contrast("trt.vs.ctrl", ref=0))

# %% [markdown]
# ## Example 3: cells measured twice within mice
#
# Each cell is measured at baseline and at 24h: cells are nested in mice (`(1 | midx/cidx)`).
# The 75 missing responses are dropped, as R drops them.

# %%
ex3 = factor(mmfast.datasets.load("ex3"), "treatment", "midx", "cidx")
nested = mmfast.lmer("res ~ treatment + (1 | midx/cidx)", ex3, reml=False)
print(nested.summary())

# %% [markdown]
# A random treatment effect per cell has as many random effects as observations: lme4 refuses
# it unless told otherwise, nlme fits it. The likelihood-ratio test keeps the nested model.

# %%
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    slope = mmfast.lmer("res ~ treatment + (1 | midx) + (treatment | cidx)", ex3, reml=False,
                        check_nobs_vs_nre="ignore")
mmfast.anova(nested, slope)

# %%
fig = plots.plot_spaghetti(ex3.dropna(), "res", "treatment", "cidx", "midx")

# %% [markdown]
# ## Example 4: a GLMM decoding licks from dF/F
#
# Does a mouse's neuronal activity (dF/F) predict whether it licks? A logistic mixed model with
# a random intercept per mouse:

# %%
wl = factor(mmfast.datasets.load("waterlick"), "mouseID")
lick = mmfast.glmer("lick ~ dff + (1 | mouseID)", wl, family="binomial")
print(lick.summary())

# %%
lick.odds_ratios()

# %%
null = mmfast.glmer("lick ~ (1 | mouseID)", wl, family="binomial")
mmfast.anova(null, lick)

# %% [markdown]
# The odds of a lick rise by about 6% per unit dF/F on the simulated data (the lecture's data
# give 6.4%).

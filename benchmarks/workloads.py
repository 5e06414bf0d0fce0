"""The peer-comparison workloads of issue 19: model, data (simulated with fixed seeds, or the
bundled InstEval) and the quick / full sizes.

Every workload is fitted by maximum likelihood, so that the logLik of every engine is the same
quantity (REML criteria differ in their constants between packages).  ``data(size)`` returns a
pandas frame whose grouping factors are integer codes; the adapters turn them into factors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

REPO = Path(__file__).resolve().parents[1]
KB07_TERMS = ["S", "P", "C", "SP", "SC", "PC", "SPC"]
KB07_RE = "1 + " + " + ".join(KB07_TERMS)


@dataclass
class Workload:
    """One model on one data shape; ``sizes`` maps a size label to the simulator's argument."""

    name: str
    kind: str  # "LMM" or "GLMM"
    formula: str  # lme4 syntax; every workload is an ML fit
    factors: list  # columns that are grouping / categorical factors
    simulate: Callable  # size -> pandas.DataFrame
    quick: list  # sizes run with --quick
    full: list  # sizes of the full run
    family: str | None = None  # GLMMs: "binomial"
    description: str = ""
    stages: bool = False  # also time set-up and one evaluation (scaling series)
    levels: dict = field(default_factory=dict)  # factor levels where the order matters

    def sizes(self, quick: bool) -> list:
        return self.quick if quick else self.full

    def label(self, size) -> str:
        """The name of one size of this workload in tables and JSON, e.g. ``nested_1e5``."""
        return f"{self.name}_{size}" if self.stages else self.name


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def insteval(size) -> "pd.DataFrame":
    """lme4's InstEval as bundled with mmfast (73,421 ratings); ``size`` is ignored."""
    import mmfast.datasets

    return mmfast.datasets.load("InstEval")[["y", "service", "s", "d", "dept"]]


def _cov(sds, rho: float) -> np.ndarray:
    """Covariance with standard deviations ``sds`` and one common correlation ``rho``."""
    sds = np.asarray(sds, dtype=float)
    corr = np.full((len(sds), len(sds)), rho)
    np.fill_diagonal(corr, 1.0)
    return corr * np.outer(sds, sds)


def kb07(size) -> "pd.DataFrame":
    """A kb07-like design: 56 subjects x 32 items, each pair once, the 2x2x2 within-subject
    and within-item conditions (S, P, C coded -0.5/+0.5) rotated by a Latin square; random
    effects for all 8 columns of subject and item, as in Kronmüller & Barr (2007)."""
    import pandas as pd

    rng = _rng(2007)
    n_subj, n_item = 56, 32
    subj, item = np.meshgrid(np.arange(n_subj), np.arange(n_item), indexing="ij")
    subj, item = subj.ravel(), item.ravel()
    cond = (subj + item) % 8
    S, P, C = (((cond >> k) & 1) - 0.5 for k in (0, 1, 2))
    X = np.column_stack([np.ones_like(S), S, P, C, S * P, S * C, P * C, S * P * C])
    beta = np.array([2180.0, 68.0, 300.0, -180.0, -20.0, 30.0, 5.0, -10.0])
    b_subj = rng.multivariate_normal(np.zeros(8), _cov([300, 80, 100, 60, 40, 40, 30, 30], 0.3), n_subj)
    b_item = rng.multivariate_normal(np.zeros(8), _cov([350, 50, 150, 80, 40, 30, 30, 20], 0.2), n_item)
    y = X @ beta + np.einsum("ij,ij->i", X, b_subj[subj] + b_item[item])
    y += rng.normal(0.0, 650.0, len(y))
    cols = dict(zip(["S", "P", "C"] + KB07_TERMS[3:], X[:, 1:].T))
    return pd.DataFrame({"rt": y, **cols, "subj": subj + 1, "item": item + 1})


def crossed_binomial(size) -> "pd.DataFrame":
    """Binary responses of ``n_subj`` subjects to ``per_subj`` of ``n_item`` items each (drawn
    without replacement), logit = -0.5 + 0.4 x + subject (sd 1) + item (sd 0.7)."""
    import pandas as pd

    n_subj, n_item, per_subj = size
    rng = _rng(1_000_000 + n_subj)
    subj = np.repeat(np.arange(n_subj), per_subj)
    item = np.argsort(rng.random((n_subj, n_item)), axis=1)[:, :per_subj].ravel()
    x = rng.normal(size=len(subj))
    eta = -0.5 + 0.4 * x + rng.normal(0, 1.0, n_subj)[subj] + rng.normal(0, 0.7, n_item)[item]
    y = (rng.random(len(subj)) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int8)
    return pd.DataFrame({"y": y, "x": x, "subj": subj + 1, "item": item + 1})


def nested(size) -> "pd.DataFrame":
    """``size`` rows: 10 per subject, 50 subjects per site (subjects numbered across sites),
    y = 1 + 0.5 x + site (sd 0.5) + subject (sd 1) + noise (sd 1)."""
    import pandas as pd

    n = int(float(size))
    rng = _rng(n % 1_000_003)
    subj = np.arange(n) // 10
    site = subj // 50
    x = rng.normal(size=n)
    y = (
        1.0
        + 0.5 * x
        + rng.normal(0, 0.5, site[-1] + 1)[site]
        + rng.normal(0, 1.0, subj[-1] + 1)[subj]
        + rng.normal(0, 1.0, n)
    )
    return pd.DataFrame({"y": y, "x": x, "site": site + 1, "subj": subj + 1})


WORKLOADS = {
    w.name: w
    for w in [
        Workload(
            "insteval2025",
            "LMM",
            "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept) + (0 + service | dept)",
            ["service", "s", "d", "dept"],
            insteval,
            quick=[73421],
            full=[73421],
            description="lme4's InstEval with the model of Bates, Alday & Kokandakar (2025); "
            "service a factor (0/1), so (0 + service | dept) is a 2x2 block",
            levels={"service": ["0", "1"]},
        ),
        Workload(
            "kb07",
            "LMM",
            f"rt ~ {KB07_RE} + ({KB07_RE} | subj) + ({KB07_RE} | item)",
            ["subj", "item"],
            kb07,
            quick=[1792],
            full=[1792],
            description="simulated kb07-like maximal model: two 8x8 covariance blocks",
        ),
        Workload(
            "crossed_glmm",
            "GLMM",
            "y ~ 1 + x + (1 | subj) + (1 | item)",
            ["subj", "item"],
            crossed_binomial,
            quick=[(500, 200, 100)],
            full=[(5000, 2000, 200)],
            family="binomial",
            description="simulated crossed binomial GLMM (full: 5,000 subjects x 2,000 items, "
            "200 items each, 10^6 rows; quick: 500 x 200, 5 x 10^4 rows)",
        ),
        Workload(
            "nested",
            "LMM",
            "y ~ 1 + x + (1 | site) + (1 | subj)",
            ["site", "subj"],
            nested,
            quick=["1e4", "1e5", "1e6"],
            full=["1e4", "1e5", "1e6", "1e7"],
            stages=True,
            description="simulated nested LMM scaling series (subjects within sites)",
        ),
    ]
}


def get(names: list[str] | None) -> list[Workload]:
    """The named workloads in the order given (all, in the registry's order, when ``names`` is
    empty): a long run can start with the workload whose numbers matter most."""
    if not names:
        return list(WORKLOADS.values())
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; known: {', '.join(WORKLOADS)}")
    return [WORKLOADS[n] for n in names]

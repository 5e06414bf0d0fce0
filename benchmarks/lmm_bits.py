"""Bit identity of LMM fits between two trees, and evaluation counts per reference case.

Usage: ``PYTHONPATH=<tree>/src python benchmarks/lmm_bits.py <tree> out.json`` for each tree,
then ``cmp a.json b.json`` (or compare the ``evaluations``/``objective`` of each case).
Records float.hex of θ, β and the minimised criterion and the evaluation count of every LMM
reference case (``tests/reference``) and of a check set: sleepstudy REML and ML,
``(Days || Subject)``, Penicillin, Pastes, a crossed slope model on text ids and a weighted
fit.  Issue 15's speed work was checked with it (and ``glmm_bits.py`` for GLMMs).
"""

import json
import sys
import warnings

import numpy as np
import pandas as pd

sys.path.insert(0, sys.argv[1] + "/tests")
import mmfast  # noqa: E402
from reference_cases import case_data, case_fit_kwargs, load_reference, reference_cases  # noqa: E402

warnings.simplefilter("ignore")


def record(m) -> dict:
    o = getattr(m, "optsummary", None)
    evals = o.evaluations if o is not None else m.optinfo["evaluations"]  # (before issue 15: optinfo)
    hexes = lambda a: [float(v).hex() for v in np.ravel(a)]  # noqa: E731
    return {
        "theta": hexes(m.theta),
        "beta": hexes(m.beta),
        "objective": hexes([m.objective_value]),
        "evaluations": evals,
    }


def check_set() -> dict:
    ds = mmfast.datasets
    sleep, pen, pastes = ds.load("sleepstudy"), ds.load("Penicillin"), ds.load("Pastes")
    rng = np.random.default_rng(1)
    n = 600
    sim = pd.DataFrame({"g": rng.integers(0, 30, n), "h": rng.integers(0, 12, n), "x": rng.normal(size=n)})
    sim["y"] = rng.normal(size=n) + sim["x"] + rng.normal(size=30)[sim["g"]] + rng.normal(size=12)[sim["h"]]
    sim["gs"] = "s" + sim["g"].astype(str)
    fits = {
        "sleepstudy": lambda: mmfast.lmer("Reaction ~ Days + (Days | Subject)", sleep),
        "sleepstudy_ml": lambda: mmfast.lmer("Reaction ~ Days + (Days | Subject)", sleep, reml=False),
        "sleepstudy_uncorr": lambda: mmfast.lmer("Reaction ~ Days + (Days || Subject)", sleep),
        "penicillin": lambda: mmfast.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", pen),
        "pastes": lambda: mmfast.lmer("strength ~ 1 + (1 | batch/cask)", pastes),
        "crossed_text_ids": lambda: mmfast.lmer("y ~ x + (x | gs) + (1 | h)", sim),
        "weighted": lambda: mmfast.lmer("y ~ x + (1 | g)", sim, weights=np.linspace(0.5, 2, n)),
    }
    return {name: record(f()) for name, f in fits.items()}


def main() -> None:
    out = {"check_set": check_set(), "reference": {}}
    for case in reference_cases("LMM"):
        if case in ("insteval_ml", "big_nested_ml"):  # seconds each: run.py times them
            continue
        ref = load_reference(case)
        out["reference"][case] = record(mmfast.lmer(ref["formula"], case_data(ref), **case_fit_kwargs(ref)))
    with open(sys.argv[2], "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()

"""Bit identity of GLMM fits between two trees (issue 15's speed work must not move a result).

Usage: ``PYTHONPATH=<tree>/src python benchmarks/glmm_bits.py <tree> out.json`` for each tree,
then ``cmp a.json b.json``.  Records float.hex of θ, β, the objective, deviance, vcov, u,
conditional variances and σ, the optimiser's record and the engine's evaluation and PIRLS
iteration counts, for every GLMM reference case but VerbAgg (``--big`` adds it) and a dozen
more fits: cbpp (Laplace, nAGQ 25 and 0, probit, cbind), Poisson on grouseticks (one and two
terms), negative binomial, Gamma (log and inverse link: θ scaled), 0/1 binomial with a slope.
"""

import json
import sys
import warnings

import numpy as np
import pandas as pd

sys.path.insert(0, sys.argv[1] + "/tests")
import mmfast  # noqa: E402
from reference_cases import case_data, load_reference, reference_cases  # noqa: E402

warnings.simplefilter("ignore")


def hexes(a) -> list[str]:
    return [float(v).hex() for v in np.ravel(np.asarray(a, dtype=float))]


def record(m) -> dict:
    e = m.engine
    return {
        "theta": hexes(m.theta),
        "beta": hexes(m.beta),
        "obj": hexes([m.objective_value]),
        "dev": hexes([m.deviance]),
        "vcov": hexes(m.vcov_array),
        "u": hexes(m.u),
        "condvar": hexes(np.concatenate([c.ravel() for c in m.condvar()])),
        "sigma": hexes([m.sigma]),
        "optinfo": {k: v for k, v in m.optinfo.items() if k != "seconds"},
        "counts": [int(getattr(e, "evaluations", -1)), int(getattr(e, "iterations", -1))],
    }


def main() -> None:
    out = {}
    big = ["verbagg_laplace"] if "--big" in sys.argv else []  # (its reference kind is not "GLMM")
    for case in reference_cases("GLMM") + big:
        ref = load_reference(case)
        out[case] = record(mmfast.glmer(ref["formula"], case_data(ref), family=ref["family"], n_agq=ref["nAGQ"]))
    ds, fam = mmfast.datasets, mmfast.families
    cbpp = ds.load("cbpp")
    cbpp["incid_p"] = cbpp["incidence"] / cbpp["size"]
    f = "incid_p ~ period + (1 | herd)"
    fits = {
        "cbpp_w": lambda: mmfast.glmer(f, cbpp, family="binomial", weights="size"),
        "cbpp_w25": lambda: mmfast.glmer(f, cbpp, family="binomial", weights="size", n_agq=25),
        "cbpp_w0": lambda: mmfast.glmer(f, cbpp, family="binomial", weights="size", n_agq=0),
        "cbpp_probit": lambda: mmfast.glmer(f, cbpp, family=fam.Binomial("probit"), weights="size"),
        "cbpp_cbind": lambda: mmfast.glmer(
            "cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial"
        ),
    }
    g = ds.load("grouseticks")
    fits["grouse"] = lambda: mmfast.glmer("TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION)", g, family="poisson")
    fits["grouse1"] = lambda: mmfast.glmer("TICKS ~ YEAR + (1 | LOCATION)", g, family="poisson")
    fits["grouse_nb"] = lambda: mmfast.glmer("TICKS ~ YEAR + (1 | LOCATION)", g, family="negative_binomial")
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"g": np.repeat(np.arange(20), 10), "x": rng.normal(size=200)})
    d["y"] = rng.gamma(2.0, np.exp(1 + 0.3 * d["x"] + np.repeat(rng.normal(0, 0.5, 20), 10)) / 2.0)
    d["b"] = (rng.random(200) < 1 / (1 + np.exp(-d["x"] - np.repeat(rng.normal(0, 1, 20), 10)))).astype(float)
    fits["gamma_log"] = lambda: mmfast.glmer("y ~ x + (1 | g)", d, family=fam.Gamma("log"))
    fits["gamma_inv"] = lambda: mmfast.glmer("y ~ x + (1 | g)", d, family="gamma")
    fits["bin01"] = lambda: mmfast.glmer("b ~ x + (1 | g)", d, family="binomial")
    fits["bin01_slope"] = lambda: mmfast.glmer("b ~ x + (x | g)", d, family="binomial")
    for name, fit in fits.items():
        out[name] = record(fit())
    with open(sys.argv[2], "w") as fh:
        json.dump(out, fh, indent=0, sort_keys=True, default=str)
    print(len(out), "fits")


if __name__ == "__main__":
    main()

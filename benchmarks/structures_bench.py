"""Issue 16's G-side benchmark: trial-level neural data fitted with an ar1 random-effect structure
by mmfast and glmmTMB (when R is present) in the same run, each in its own child process.

Trials fall in 10 blocks of 10, and each neuron's block effects follow an AR(1) over blocks (an
AR(1) over the 100 single trials would be a 100 x 100 G-side block per neuron: trial-level
serial correlation belongs on the R side):

    y ~ stim + (1 | mouse) + ar1(0 + factor(block) | neuron)

Two cases: ``lmm`` (Gaussian responses, 50 mice x 40 neurons x 100 trials = 200,000 rows, ML)
and ``glmm`` (Poisson spike counts, log link, 20 mice x 20 neurons x 100 trials = 40,000 rows,
Laplace).

    python benchmarks/structures_bench.py [--json out.json] [--case lmm|glmm|all] [--mice 50]
                                          [--glmm-mice 20] [--no-r]

Reported per case: fit seconds inside each process (data already loaded; glmmTMB's own timer
around its fit, ours around ``lmer``/``glmer``), the CPU seconds of the same fit (user +
system: a fairer comparison when other processes load the machine), the ratios, both
log-likelihoods, and each child's peak memory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from peer_bench import run_measured  # noqa: E402

FORMULA = "y ~ stim + (1 | mouse) + ar1(0 + factor(block) | neuron)"

CHILD = """
import json, sys, time
import pandas as pd
import mmfast
d = pd.read_csv(sys.argv[1])
family = sys.argv[4]
t0, c0 = time.perf_counter(), time.process_time()
if family == "gaussian":
    m = mmfast.lmer(sys.argv[3], d, reml=False)
else:
    m = mmfast.glmer(sys.argv[3], d, family=family)
sec, cpu = time.perf_counter() - t0, time.process_time() - c0
json.dump({"seconds": sec, "cpu_seconds": cpu, "loglik": float(m.loglik), "theta": [float(x) for x in m.theta],
           "sigma": float(m.sigma), "fixef": [float(x) for x in m.beta]}, open(sys.argv[2], "w"))
"""


def _effects(rng, mice: int, neurons: int, trials: int, blocks: int, sd: float, rho: float):
    """Codes (mouse, neuron, block) and the per-row sum of the mouse intercept (SD 0.7 x sd/0.8)
    and the neuron's AR(1) block effect (SD ``sd``, correlation ``rho`` between adjacent blocks)."""
    nn = mice * neurons
    lag = np.abs(np.subtract.outer(np.arange(blocks), np.arange(blocks)))
    L = np.linalg.cholesky(sd**2 * rho**lag)
    b = rng.standard_normal((nn, blocks)) @ L.T
    neuron = np.repeat(np.arange(nn), trials)
    block = np.tile(np.repeat(np.arange(blocks), trials // blocks), nn)
    mouse = neuron // neurons
    re = rng.normal(0, 0.7 * sd / 0.8, mice)[mouse] + b[neuron, block]
    return mouse, neuron, block, re


def simulate(mice: int = 50, neurons: int = 40, trials: int = 100, blocks: int = 10, seed: int = 16) -> pd.DataFrame:
    """Gaussian responses with a mouse intercept and per-neuron AR(1) block effects (ρ 0.6, SD 0.8)."""
    rng = np.random.default_rng(seed)
    mouse, neuron, block, re = _effects(rng, mice, neurons, trials, blocks, 0.8, 0.6)
    stim = rng.integers(0, 2, len(neuron))
    y = 1.0 + 0.5 * stim + re + rng.standard_normal(len(neuron))
    return pd.DataFrame({"mouse": mouse, "neuron": neuron, "block": block, "stim": stim, "y": y})


def simulate_counts(
    mice: int = 20, neurons: int = 20, trials: int = 100, blocks: int = 10, seed: int = 16
) -> pd.DataFrame:
    """Poisson spike counts, log rate 1 + 0.3 stim + mouse intercept + AR(1) block effects
    (ρ 0.6, SD 0.4)."""
    rng = np.random.default_rng(seed)
    mouse, neuron, block, re = _effects(rng, mice, neurons, trials, blocks, 0.4, 0.6)
    stim = rng.integers(0, 2, len(neuron))
    y = rng.poisson(np.exp(1.0 + 0.3 * stim + re))
    return pd.DataFrame({"mouse": mouse, "neuron": neuron, "block": block, "stim": stim, "y": y})


def run_case(d: pd.DataFrame, family: str, tmp: Path, args) -> dict:
    """Fit ``d`` by mmfast and (if available) glmmTMB, each in a child process; the comparison."""
    out = {"formula": FORMULA, "family": family, "rows": len(d), "engines": {}}
    csv = tmp / f"trials_{family}.csv"
    d.to_csv(csv, index=False)
    runs = {"mmfast": [sys.executable, "-c", CHILD, str(csv), str(tmp / "mmfast.json"), FORMULA, family]}
    if not args.no_r and shutil.which("Rscript"):
        r = HERE / "structures_glmmtmb.R"
        runs["glmmTMB"] = ["Rscript", str(r), str(csv), str(tmp / "glmmTMB.json"), family]
    print(f"{family}: {len(d)} rows, {FORMULA}")
    for name, cmd in runs.items():
        (tmp / f"{name}.json").unlink(missing_ok=True)
        code, mb, wall = run_measured(cmd, args.timeout)
        res = json.loads((tmp / f"{name}.json").read_text()) if code == 0 else {"status": f"exit {code}"}
        res.update(peak_mb=round(mb, 1), wall_seconds=round(wall, 2))
        out["engines"][name] = res
        print(
            f"  {name:8s} fit {res.get('seconds', float('nan')):8.2f} s"
            f"  (CPU {res.get('cpu_seconds', float('nan')):7.2f} s)"
            f"  logLik {res.get('loglik', float('nan')):.4f}  peak {mb:7.1f} MB"
        )
    e = out["engines"]
    if "glmmTMB" in e and "seconds" in e["glmmTMB"] and "seconds" in e["mmfast"]:
        out["speedup"] = e["glmmTMB"]["seconds"] / e["mmfast"]["seconds"]
        out["cpu_speedup"] = e["glmmTMB"]["cpu_seconds"] / e["mmfast"]["cpu_seconds"]
        out["loglik_diff"] = e["mmfast"]["loglik"] - e["glmmTMB"]["loglik"]
        print(
            f"  speed-up over glmmTMB: {out['speedup']:.1f}x (CPU {out['cpu_speedup']:.1f}x);"
            f" logLik mmfast - glmmTMB: {out['loglik_diff']:.2e}"
        )
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--case", choices=["lmm", "glmm", "all"], default="all")
    ap.add_argument("--mice", type=int, default=50, help="mice in the LMM case (40 neurons each)")
    ap.add_argument("--glmm-mice", type=int, default=20, help="mice in the GLMM case (20 neurons each)")
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600.0)
    args = ap.parse_args(argv)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.case in ("lmm", "all"):
            out["lmm"] = run_case(simulate(mice=args.mice), "gaussian", tmp, args)
        if args.case in ("glmm", "all"):
            out["glmm"] = run_case(simulate_counts(mice=args.glmm_mice), "poisson", tmp, args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()

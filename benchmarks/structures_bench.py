"""Issue 16's G-side benchmark: trial-level neural data fitted with an ar1 random-effect structure
by mmfast and glmmTMB (when R is present) in the same run, each in its own child process.

50 mice x 40 neurons x 100 trials (200,000 rows); trials fall in 10 blocks of 10, and each
neuron's block effects follow an AR(1) over blocks (an AR(1) over the 100 single trials would
be a 100 x 100 G-side block per neuron: trial-level serial correlation belongs on the R side):

    y ~ stim + (1 | mouse) + ar1(0 + factor(block) | neuron)

    python benchmarks/structures_bench.py [--json out.json] [--mice 50] [--no-r]

Reported: fit seconds inside each process (data already loaded; glmmTMB's own timer around
its fit, ours around ``lmer``), the ratio, both log-likelihoods, and each child's peak memory.
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
t0 = time.perf_counter()
m = mmfast.lmer(sys.argv[3], d, reml=False)
sec = time.perf_counter() - t0
json.dump({"seconds": sec, "loglik": float(m.loglik), "theta": [float(x) for x in m.theta],
           "sigma": float(m.sigma), "fixef": [float(x) for x in m.beta]}, open(sys.argv[2], "w"))
"""


def simulate(mice: int = 50, neurons: int = 40, trials: int = 100, blocks: int = 10, seed: int = 16) -> pd.DataFrame:
    """Responses with a mouse intercept and per-neuron AR(1) block effects (ρ 0.6, SD 0.8)."""
    rng = np.random.default_rng(seed)
    nn = mice * neurons
    lag = np.abs(np.subtract.outer(np.arange(blocks), np.arange(blocks)))
    L = np.linalg.cholesky(0.8**2 * 0.6**lag)
    b = rng.standard_normal((nn, blocks)) @ L.T
    neuron = np.repeat(np.arange(nn), trials)
    block = np.tile(np.repeat(np.arange(blocks), trials // blocks), nn)
    mouse = neuron // neurons
    stim = rng.integers(0, 2, len(neuron))
    y = 1.0 + 0.5 * stim + rng.normal(0, 0.7, mice)[mouse] + b[neuron, block] + rng.standard_normal(len(neuron))
    return pd.DataFrame({"mouse": mouse, "neuron": neuron, "block": block, "stim": stim, "y": y})


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--mice", type=int, default=50)
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600.0)
    args = ap.parse_args(argv)
    out = {"formula": FORMULA, "engines": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        d = simulate(mice=args.mice)
        out["rows"] = len(d)
        csv = tmp / "trials.csv"
        d.to_csv(csv, index=False)
        runs = {"mmfast": [sys.executable, "-c", CHILD, str(csv), str(tmp / "mmfast.json"), FORMULA]}
        if not args.no_r and shutil.which("Rscript"):
            runs["glmmTMB"] = ["Rscript", str(HERE / "structures_glmmtmb.R"), str(csv), str(tmp / "glmmTMB.json")]
        for name, cmd in runs.items():
            code, mb, wall = run_measured(cmd, args.timeout)
            res = json.loads((tmp / f"{name}.json").read_text()) if code == 0 else {"status": f"exit {code}"}
            res.update(peak_mb=round(mb, 1), wall_seconds=round(wall, 2))
            out["engines"][name] = res
            print(
                f"{name:8s} fit {res.get('seconds', float('nan')):8.2f} s  logLik {res.get('loglik', float('nan')):.4f}"
                f"  peak {mb:7.1f} MB"
            )
    e = out["engines"]
    if "glmmTMB" in e and "seconds" in e["glmmTMB"] and "seconds" in e["mmfast"]:
        out["speedup"] = e["glmmTMB"]["seconds"] / e["mmfast"]["seconds"]
        out["loglik_diff"] = e["mmfast"]["loglik"] - e["glmmTMB"]["loglik"]
        print(f"speed-up over glmmTMB: {out['speedup']:.1f}x; logLik mmfast - glmmTMB: {out['loglik_diff']:.2e}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()

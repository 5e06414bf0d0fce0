"""R-side benchmark (issue 16): trial-level data, AR(1) over trials within neuron, mmfast vs nlme.

    .venv/bin/python benchmarks/residual_bench.py [--mice 50 --neurons 40 --trials 100]
                     [--nlme-mice 50] [--json benchmarks/results/residual.json]

Data: mice x neurons x trials (default 50 x 40 x 100 = 200,000 rows), y = 1 + 0.01 trial +
mouse + neuron-within-mouse effects + AR(1) noise (φ = 0.5) along trials; both fit
``lme(y ~ trial, random = ~1 | mouse/neuron, correlation = corAR1(form = ~trial | mouse/neuron))``
by REML.  Each fit runs in its own process (fresh import, data read from the same CSV); time
is the fit alone, peak memory the process's maximum resident set (``os.wait4``), with the
process's peak before the fit (imports and data) reported as ``base``.  ``--nlme-mice`` fits
nlme on the first that many mice only (nlme on the full size may take long).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

R_SCRIPT = r"""
suppressMessages(library(nlme))
a <- commandArgs(TRUE)
d <- read.csv(a[1]); d$mouse <- factor(d$mouse); d$neuron <- factor(d$neuron)
base <- as.numeric(system(paste("ps -o rss= -p", Sys.getpid()), intern = TRUE)) / 1024
t <- system.time(f <- lme(y ~ trial, d, random = ~1 | mouse/neuron,
                          correlation = corAR1(form = ~trial | mouse/neuron)))[["elapsed"]]
writeLines(jsonlite::toJSON(list(seconds = t, logLik = as.numeric(logLik(f)), base_mb = base,
  phi = as.numeric(coef(f$modelStruct$corStruct, unconstrained = FALSE)), fixef = unname(fixef(f))),
  digits = NA, auto_unbox = TRUE), a[2])
"""


def make_data(mice: int, neurons: int, trials: int, seed: int = 16):
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = mice * neurons * trials
    mouse = np.repeat(np.arange(1, mice + 1), neurons * trials)
    neuron = np.repeat(np.arange(1, mice * neurons + 1), trials)
    trial = np.tile(np.arange(1, trials + 1), mice * neurons)
    e = rng.standard_normal((mice * neurons, trials))
    for t in range(1, trials):
        e[:, t] = 0.5 * e[:, t - 1] + np.sqrt(1 - 0.25) * e[:, t]
    y = (
        1
        + 0.01 * trial
        + 0.8 * rng.standard_normal(mice)[mouse - 1]
        + 0.5 * rng.standard_normal(mice * neurons)[neuron - 1]
    )
    y = y + e.ravel()
    return pd.DataFrame({"mouse": mouse, "neuron": neuron, "trial": trial, "y": np.round(y, 6)}).iloc[:n]


def measured(cmd: list[str]) -> tuple[float, str]:
    """(peak resident MB, stderr) of the process ``cmd``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {err[-1500:]}")
    return usage.ru_maxrss / 1024.0, err


def child(csv: str, out: str) -> None:
    """The measured mmfast process: read the CSV, fit once, write the results."""
    import resource
    import time
    import warnings

    import pandas as pd

    import mmfast

    d = pd.read_csv(csv)
    for c in ("mouse", "neuron"):
        d[c] = pd.Categorical(d[c])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = mmfast.lme(
            "y ~ trial", d, random="~1 | mouse/neuron", correlation=mmfast.corAR1(form="~ trial | mouse/neuron")
        )
    sec = time.perf_counter() - t0
    phi = f.model.residual.correlation.natural(f.model.phi)
    Path(out).write_text(
        json.dumps(
            {
                "seconds": sec,
                "logLik": f.loglik,
                "base_mb": base,
                "phi": float(phi[0]),
                "fixef": f.fixef.tolist(),
                "evaluations": f.model.optsummary.evaluations,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mice", type=int, default=50)
    ap.add_argument("--neurons", type=int, default=40)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--nlme-mice", type=int, default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", nargs=2, default=None)
    a = ap.parse_args()
    if a.child:
        child(*a.child)
        return
    data = make_data(a.mice, a.neurons, a.trials)
    res = {"rows": len(data), "design": f"{a.mice} mice x {a.neurons} neurons x {a.trials} trials"}
    with tempfile.TemporaryDirectory() as tmp:
        csv, out = Path(tmp) / "d.csv", Path(tmp) / "mm.json"
        data.to_csv(csv, index=False)
        peak, _ = measured([sys.executable, __file__, "--child", str(csv), str(out)])
        res["mmfast"] = {**json.loads(out.read_text()), "peak_mb": peak}
        print("mmfast", res["mmfast"], flush=True)
        rscript = "Rscript"
        if subprocess.run([rscript, "-e", "library(nlme)"], capture_output=True).returncode == 0:
            rcsv = csv
            if a.nlme_mice and a.nlme_mice < a.mice:
                rcsv = Path(tmp) / "d_r.csv"
                data[data["mouse"] <= a.nlme_mice].to_csv(rcsv, index=False)
                res["nlme_rows"] = int((data["mouse"] <= a.nlme_mice).sum())
            rs, rout = Path(tmp) / "b.R", Path(tmp) / "r.json"
            rs.write_text(R_SCRIPT)
            peak, _ = measured([rscript, str(rs), str(rcsv), str(rout)])
            res["nlme"] = {**json.loads(rout.read_text()), "peak_mb": peak}
            print("nlme", res["nlme"], flush=True)
            if "nlme_rows" not in res:
                res["speedup"] = res["nlme"]["seconds"] / res["mmfast"]["seconds"]
                res["memory_ratio"] = res["mmfast"]["peak_mb"] / res["nlme"]["peak_mb"]
                res["loglik_diff"] = res["mmfast"]["logLik"] - res["nlme"]["logLik"]
    print(json.dumps(res, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Peak memory of one fit, mmfast against lme4: the maximum resident set of a fresh process.

    .venv/bin/python benchmarks/memory.py [--cases insteval_ml big_nested_ml verbagg] [--json F]

Each measurement is its own process, read with ``os.wait4`` (``ru_maxrss``): mmfast imports,
loads the case's data and fits it once; lme4 runs ``lme4_timing.R`` on the same case (one fit,
no warm-up).  "base" is the same process without the fit (imports and data only), so
``peak - base`` is what the fit itself needs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_cases  # noqa: E402

DEFAULT_CASES = ["insteval_ml", "big_nested_ml", "verbagg"]


def _peak_mb(cmd: list[str]) -> float:
    """Maximum resident set size of the process ``cmd`` (MB); raises if it fails."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {err[-1500:]}")
    return usage.ru_maxrss / 1024.0  # kilobytes on Linux


def child(case_name: str, fit: bool) -> None:
    """Runs in the measured process: data, then (if ``fit``) one fit."""
    import warnings

    case = bench_cases.build_cases([case_name])[0]
    data = bench_cases.case_data(case)
    if fit:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bench_cases._fitter(case, data)()


def measure_r(case, rscript: str) -> tuple[float, float]:
    spec = dict(case.r_spec(1), n_fits=1, warmup=False)
    with tempfile.TemporaryDirectory() as tmp:
        cases, out = Path(tmp) / "cases.json", Path(tmp) / "out.json"
        cases.write_text(json.dumps([spec]))
        peak = _peak_mb([rscript, str(HERE / "lme4_timing.R"), str(cases), str(out)])
    base = _peak_mb(
        [
            rscript,
            "-e",
            "suppressPackageStartupMessages({library(jsonlite); "
            f"library(lme4)}}); d <- read.csv(gzfile('{spec['data_path']}'))",
        ]
    )
    return peak, base


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES)
    ap.add_argument("--json", type=Path, help="write the figures to this file")
    ap.add_argument("--child", nargs=2, metavar=("CASE", "FIT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1] == "1")
        return 0
    rscript = shutil.which("Rscript")
    rows = []
    print(f"{'case':16s} {'mmfast MB':>10s} {'(fit)':>8s} {'lme4 MB':>9s} {'(fit)':>8s} {'ratio':>6s}")
    for case in bench_cases.build_cases(args.cases):
        me = [sys.executable, str(Path(__file__).resolve()), "--child", case.name]
        peak, base = _peak_mb(me + ["1"]), _peak_mb(me + ["0"])
        row = {"case": case.name, "mmfast_peak_mb": peak, "mmfast_base_mb": base}
        if rscript:
            row["lme4_peak_mb"], row["lme4_base_mb"] = measure_r(case, rscript)
            row["ratio"] = peak / row["lme4_peak_mb"]
        rows.append(row)
        r = (
            (f"{row['lme4_peak_mb']:9.0f} {row['lme4_peak_mb'] - row['lme4_base_mb']:8.0f} {row['ratio']:6.2f}")
            if rscript
            else "        (no Rscript)"
        )
        print(f"{case.name:16s} {peak:10.0f} {peak - base:8.0f} {r}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

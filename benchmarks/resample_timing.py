"""Issue 5's speed targets, measured beside R in one run: PBmodcomp and the permutation check.

    .venv/bin/python benchmarks/resample_timing.py [--nsim 1000] [--r-nsim 200] [--nperm 1000]
                                                   [--r-nperm 100] [--no-r] [--jobs 2]

* per simulation: ``mmfast.pbmodcomp`` on waterlick (binomial GLMMs lick ~ dff vs lick ~ 1,
  (1 | mouseID)) against ``pbkrtest::PBmodcomp`` (serial, pbkrtest's default);
* per permutation: ``mmfast.cluster_permutation_test`` on ex1 (treatment labels shuffled
  across the 24 mice; the LMM's Type III Satterthwaite F test and the naive LM's F test)
  against ``lmerTest::lmer`` + ``anova()`` (and, separately, ``anova(lm())``) in R.

mmfast runs serially (n_jobs=1) for the ratios, and again with ``--jobs`` processes (wall
time once the worker processes are running; their start-up is printed separately).
R runs ``benchmarks/resample_lme4.R``.
Prints a table and the ratios; ``--json`` writes them too.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / "src" / "mmfast" / "datasets" / "data"
EX1 = "res ~ factor(treatment_idx) + (1 | midx)"


def run_r(nsim: int, nperm: int) -> dict | None:
    if shutil.which("Rscript") is None:
        print("Rscript not found: mmfast figures only", file=sys.stderr)
        return None
    cmd = ["Rscript", str(REPO / "benchmarks" / "resample_lme4.R"), str(nsim), str(nperm), str(DATA_DIR)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall"] = time.perf_counter() - t0
    return out


def run_mmfast(nsim: int, nperm: int, jobs: int) -> dict:
    import mmfast
    from mmfast import datasets

    wl, ex1 = datasets.load("waterlick"), datasets.load("ex1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        big = mmfast.glmer("lick ~ dff + (1 | mouseID)", wl, family="binomial")
        small = mmfast.glmer("lick ~ 1 + (1 | mouseID)", wl, family="binomial")
    mmfast.pbmodcomp(big, small, nsim=5, seed=0)  # warm-up (imports, first calls)
    out = {}
    t0 = time.perf_counter()
    pb = mmfast.pbmodcomp(big, small, nsim=nsim, seed=1, progress=False)
    out["pb_seconds"] = time.perf_counter() - t0
    out["pb_per_sim"] = out["pb_seconds"] / nsim
    out["pb_lrt"] = float(pb.test.loc["LRT", "stat"])
    out["pb_p"] = pb.p_value
    out["pb_failed"] = pb.n_failed
    t0 = time.perf_counter()
    perm = mmfast.cluster_permutation_test(EX1, ex1, "treatment_idx", "midx", n_perm=nperm, seed=1, progress=False)
    out["perm_seconds"] = time.perf_counter() - t0
    out["perm_per"] = out["perm_seconds"] / nperm
    rate = perm.rejection_rate(0.05)
    out["perm_rate_lmm"], out["perm_rate_lm"] = rate["lmm"], rate["lm"]
    out["perm_band"] = perm.binomial_band(0.05)
    out["perm_failed"] = perm.n_failed
    if jobs > 1:  # start the worker processes first: the figures below are steady-state
        t0 = time.perf_counter()
        mmfast.pbmodcomp(big, small, nsim=2 * jobs, seed=0, n_jobs=jobs, progress=False)
        out["pool_start_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pb2 = mmfast.pbmodcomp(big, small, nsim=nsim, seed=1, n_jobs=jobs, progress=False)
        out["pb_per_sim_jobs"] = (time.perf_counter() - t0) / nsim
        out["pb_same_with_jobs"] = bool((pb2.ref == pb.ref).all())
        t0 = time.perf_counter()
        perm2 = mmfast.cluster_permutation_test(
            EX1, ex1, "treatment_idx", "midx", n_perm=nperm, seed=1, n_jobs=jobs, progress=False
        )
        out["perm_per_jobs"] = (time.perf_counter() - t0) / nperm
        out["perm_same_with_jobs"] = bool(perm2.pvalues.equals(perm.pvalues))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nsim", type=int, default=1000, help="mmfast PBmodcomp simulations")
    ap.add_argument("--r-nsim", type=int, default=200, help="R PBmodcomp simulations (timed)")
    ap.add_argument("--nperm", type=int, default=1000, help="mmfast permutations")
    ap.add_argument("--r-nperm", type=int, default=100, help="R permutations (timed)")
    ap.add_argument("--jobs", type=int, default=2, help="processes for the parallel runs")
    ap.add_argument("--no-r", action="store_true", help="skip R")
    ap.add_argument("--json", type=Path, help="write the figures to this file")
    args = ap.parse_args(argv)
    r = None if args.no_r else run_r(args.r_nsim, args.r_nperm)
    py = run_mmfast(args.nsim, args.nperm, args.jobs)
    print(
        f"machine: {platform.node()} ({platform.processor() or platform.machine()}), python {platform.python_version()}"
    )
    if r:
        print(f"R: {r['R']}, lme4 {r['lme4']}, lmerTest {r['lmerTest']}, pbkrtest {r['pbkrtest']}")
    print()
    print(f"PBmodcomp, waterlick, mmfast {args.nsim} / R {args.r_nsim} simulations")
    print(
        f"  mmfast  : {1e3 * py['pb_per_sim']:8.2f} ms/simulation  (LRT {py['pb_lrt']:.6f}, "
        f"p_PB {py['pb_p']:.4f}, failed refits {py['pb_failed']})"
    )
    if "pb_per_sim_jobs" in py:
        print(
            f"  mmfast {args.jobs} jobs: {1e3 * py['pb_per_sim_jobs']:6.2f} ms/simulation (wall, "
            f"identical: {py['pb_same_with_jobs']}; starting the {args.jobs} worker processes "
            f"took {py['pool_start_seconds']:.1f} s once)"
        )
    if r:
        print(
            f"  R       : {1e3 * r['pb_per_sim']:8.2f} ms/simulation  (LRT {r['pb_lrt']:.6f}, "
            f"p_PB {r['pb_p']:.4f}; {r['pb_seconds']:.1f} s)"
        )
        print(
            f"  ratio   : {r['pb_per_sim'] / py['pb_per_sim']:8.1f}x serial"
            + (
                f", {r['pb_per_sim'] / py['pb_per_sim_jobs']:.1f}x with {args.jobs} jobs"
                if "pb_per_sim_jobs" in py
                else ""
            )
        )
    print()
    print(f"Permutation check, ex1 (24 mice, 5 groups), mmfast {args.nperm} / R {args.r_nperm} permutations")
    lo, hi = py["perm_band"]
    print(
        f"  mmfast  : {1e3 * py['perm_per']:8.3f} ms/permutation (LMM + LM); rejection rate at "
        f"0.05: LMM {py['perm_rate_lmm']:.3f} (band {lo:.3f}-{hi:.3f}), LM {py['perm_rate_lm']:.3f}"
    )
    if "perm_per_jobs" in py:
        print(
            f"  mmfast {args.jobs} jobs: {1e3 * py['perm_per_jobs']:6.3f} ms/permutation (wall, "
            f"identical: {py['perm_same_with_jobs']})"
        )
    if r:
        print(
            f"  R       : {1e3 * r['perm_lmm_per']:8.2f} ms/permutation lmerTest::lmer + anova(); "
            f"{1e3 * r['perm_lm_per']:.2f} ms anova(lm); rejection rates LMM "
            f"{r['perm_rate_lmm']:.3f}, LM {r['perm_rate_lm']:.3f}"
        )
        print(
            f"  ratio   : {r['perm_lmm_per'] / py['perm_per']:8.1f}x serial vs lmerTest + anova "
            f"({(r['perm_lmm_per'] + r['perm_lm_per']) / py['perm_per']:.1f}x vs lmerTest + lm)"
            + (
                f", {r['perm_lmm_per'] / py['perm_per_jobs']:.1f}x with {args.jobs} jobs"
                if "perm_per_jobs" in py
                else ""
            )
        )
    if args.json:
        args.json.write_text(json.dumps({"mmfast": py, "R": r}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

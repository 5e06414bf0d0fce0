"""mmfast's time on every ``make bench`` case, for two or more built trees in one session.

Usage: ``python benchmarks/ab_trees.py --rounds 3 --out results/ab_trees.json OLD NEW``, each
tree built in place (``python setup.py build_ext --inplace``).  Each round times every case
once per tree, in a fresh process per tree with that tree's ``src`` first on the path and
its own ``benchmarks/bench_cases.py``, alternating the trees so that both see the same load;
a case's time is the smallest median over the rounds.  lme4's time is the same for both
trees, so the ratio of two trees' times is the ratio of their ``make bench`` ratios (issue 15:
"ratios no worse" than before the consolidation, bcd9dc9).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))


def child(tree: str, repeat: int, cases: list[str] | None) -> None:
    """Time each case with the mmfast of ``tree`` (already first on the path); JSON lines."""
    sys.path.insert(0, os.path.join(tree, "benchmarks"))
    warnings.simplefilter("ignore")
    import bench_cases

    for case in bench_cases.build_cases(cases):
        r = bench_cases.time_mmfast(case, repeat)
        print(json.dumps({"case": case.name, "median_s": r.get("median_s"), "status": r.get("status")}), flush=True)


def run_tree(tree: str, repeat: int, cases: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.path.join(tree, "src"), OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", tree, "--repeat", str(repeat), "--cases", cases]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {r["case"]: r["median_s"] for r in rows if r["median_s"] is not None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="*")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=20, help="timed fits per case (big cases: at most 3)")
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "ab_trees.json"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.repeat, args.cases.split(",") if args.cases else None)
        return
    if len(args.trees) < 2:
        ap.error("give two or more trees")
    names = [os.path.basename(os.path.abspath(t)) for t in args.trees]
    times: dict = {n: {} for n in names}
    for _ in range(args.rounds):
        for tree, name in zip(args.trees, names):
            for case, s in run_tree(tree, args.repeat, args.cases).items():
                times[name].setdefault(case, []).append(s)
    best = {n: {c: min(v) for c, v in times[n].items()} for n in names}
    first, last = names[0], names[-1]
    rows = {c: {n: best[n].get(c) for n in names} for c in best[first]}
    for r in rows.values():
        if r[last] is not None:
            r["ratio"] = round(r[last] / r[first], 3)
    with open(args.out, "w") as fh:
        json.dump({"trees": dict(zip(names, args.trees)), "rounds": args.rounds, "cases": rows}, fh, indent=1)
    print(f"{'case':26s}" + "".join(f"{n:>12s}" for n in names) + "   ratio")
    for c, r in rows.items():
        print(f"{c:26s}" + "".join(f"{r[n] * 1e3:12.3f}" for n in names) + f"   {r.get('ratio', float('nan')):.3f}")


if __name__ == "__main__":
    main()

"""Satterthwaite and Kenward-Roger df: mmfast's time beside lmerTest's and pbkrtest's.

When ``Rscript`` with lmerTest is present, R is timed in the same run
(benchmarks/inference_lmertest.R: lmerTest's derivatives and summary, and pbkrtest's
Kenward-Roger, after the fit); otherwise the seconds recorded in the reference files are
shown.  mmfast's times are for the whole coefficient table (df, t, p) after the fit.
pbkrtest inverts the n x n covariance, so KR is not run in R for the two large cases;
mmfast computes it through the sparse structure.

    .venv/bin/python benchmarks/inference_timing.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import mmfast  # noqa: E402
from reference_cases import case_data, case_fit_kwargs, load_reference, reference_cases  # noqa: E402


def _best(model, ddf: str, repeat: int) -> float:
    """Fastest of ``repeat`` first-time computations (the per-model cache is cleared each time)."""
    times = []
    for _ in range(repeat):
        model._fit_cache.store.clear()  # the fit's FitCache (model.results)
        t = time.perf_counter()
        _ = model.summary(ddf=ddf).coefficients
        times.append(time.perf_counter() - t)
    return min(times)


def _time_r(refs: dict) -> dict:
    """{case: R timings} from inference_lmertest.R, or {} when R/lmerTest is not available."""
    if not shutil.which("Rscript"):
        return {}
    data = ROOT / "src" / "mmfast" / "datasets" / "data"
    cases = [
        {
            "case": c,
            "data_path": str(data / ref["data"].replace(".csv", ".csv.gz")),
            "formula": ref["formula"],
            "REML": bool(ref["REML"]),
            "factor_levels": ref.get("factor_levels") or {},
            "kr": ref["nobs"] < 5000,
        }
        for c, ref in refs.items()
    ]
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "cases.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(cases))
        try:
            subprocess.run(
                ["Rscript", str(ROOT / "benchmarks" / "inference_lmertest.R"), str(src), str(out)],
                check=True,
                timeout=1800,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"R timing failed ({exc}); showing the reference files' seconds")
            return {}
        return {r["case"]: r for r in json.loads(out.read_text())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-r", action="store_true", help="do not time lmerTest/pbkrtest")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "inference.json"))
    args = ap.parse_args(argv)
    rows = []
    refs = {case: load_reference(case) for case in reference_cases("LMM")}
    r_times = {} if args.no_r else _time_r(refs)
    for case in reference_cases("LMM"):
        ref = load_reference(case)
        res = ref["results"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            m = mmfast.lmer(ref["formula"], case_data(ref), **case_fit_kwargs(ref))
            fit_s = time.perf_counter() - t
            sat = _best(m, "satterthwaite", args.repeat)
            kr = _best(m, "kenward-roger", 1 if m.nobs > 50000 else args.repeat)
        r = r_times.get(case)
        rows.append(
            {
                "case": case,
                "nobs": m.nobs,
                "fit_s": fit_s,
                "satterthwaite_s": sat,
                "lmerTest_s": r["satterthwaite_s"] if r else (res.get("satterthwaite") or {}).get("seconds"),
                "kenward_roger_s": kr,
                "pbkrtest_s": r["kenward_roger_s"] if r else (res.get("kenward_roger") or {}).get("seconds"),
                "r_same_run": bool(r),
            }
        )
    head = f"{'case':24s} {'rows':>7s} {'fit s':>7s} {'Satt s':>8s} {'lmerTest':>9s} {'KR s':>8s} {'pbkrtest':>9s}"
    print(head + "\n" + "-" * len(head))
    fmt = lambda v: f"{v:9.3f}" if isinstance(v, (int, float)) else f"{'-':>9s}"  # noqa: E731
    for r in rows:
        print(
            f"{r['case']:24s} {r['nobs']:7d} {r['fit_s']:7.3f} {r['satterthwaite_s']:8.4f} "
            f"{fmt(r['lmerTest_s'])} {r['kenward_roger_s']:8.4f} {fmt(r['pbkrtest_s'])}"
        )
    same = all(r["r_same_run"] for r in rows)
    print(
        "mmfast: the full coefficient table with df (KR on an ML fit includes its REML refit); "
        + (
            "lmerTest/pbkrtest: timed in this run, after the fit"
            if same
            else "lmerTest/pbkrtest: seconds recorded in tests/reference (reference machine)"
        )
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Satterthwaite and Kenward-Roger df: mmfast's time beside lmerTest's and pbkrtest's.

R's seconds are those recorded in the reference files (lmerTest's ``summary()`` with the
Satterthwaite or Kenward-Roger method, on the reference machine with R's reference BLAS);
mmfast's are measured here, after the fit, for the whole coefficient table (df, t, p).
pbkrtest inverts the n x n covariance, so the reference has no KR for the two large cases;
mmfast computes it through the sparse structure.

    .venv/bin/python benchmarks/inference_timing.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import sys
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
        model.__dict__.pop("_inference_cache", None)
        t = time.perf_counter()
        model.summary(ddf=ddf).coefficients
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "inference.json"))
    args = ap.parse_args(argv)
    rows = []
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
        rows.append({"case": case, "nobs": m.nobs, "fit_s": fit_s, "satterthwaite_s": sat,
                     "lmerTest_s": (res.get("satterthwaite") or {}).get("seconds"),
                     "kenward_roger_s": kr, "pbkrtest_s": (res.get("kenward_roger") or {}).get("seconds")})
    head = f"{'case':24s} {'rows':>7s} {'fit s':>7s} {'Satt s':>8s} {'lmerTest':>9s} {'KR s':>8s} {'pbkrtest':>9s}"
    print(head + "\n" + "-" * len(head))
    fmt = lambda v: f"{v:9.3f}" if isinstance(v, (int, float)) else f"{'-':>9s}"  # noqa: E731
    for r in rows:
        print(f"{r['case']:24s} {r['nobs']:7d} {r['fit_s']:7.3f} {r['satterthwaite_s']:8.4f} "
              f"{fmt(r['lmerTest_s'])} {r['kenward_roger_s']:8.4f} {fmt(r['pbkrtest_s'])}")
    print("mmfast: the full coefficient table with df (KR on an ML fit includes its REML refit);"
          " lmerTest/pbkrtest: seconds recorded in tests/reference (reference machine)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One engine fitting one workload, in its own process (run by ``peer_bench.py``).

    python benchmarks/peers/child.py PEER WORKLOAD DATA.csv OUT.json N_FITS

Reads the data, lets the adapter prepare it (untimed), times the first fit; when that took
under ``REPEAT_BELOW`` seconds it was the warm-up and ``N_FITS`` more fits are timed.  Writes
{status, seconds, median_s, logLik, evaluations, warnings, phases?, stages?} to OUT.json.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[0] = str(HERE.parent)  # not peers/: its glmm.py, mmfast.py... would shadow the engines

REPEAT_BELOW = 2.0  # seconds: a first fit quicker than this is a warm-up, then N_FITS timed


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(peer: str, workload: str, csv: str, out: str, n_fits: int) -> None:
    import pandas as pd

    import peers
    import workloads

    mod, w = peers.adapter(peer), workloads.WORKLOADS[workload]
    result = {"status": "ok"}
    try:
        result["version"] = peers.version(mod)
        data = pd.read_csv(csv)
        data = mod.prepare(w, data) if hasattr(mod, "prepare") else peers.as_factors(w, data)
        reason = mod.cannot_fit(w, data) if hasattr(mod, "cannot_fit") else None
        if reason:
            result.update(status="cannot fit", note=reason)
        else:
            fit_once = mod.fitter(w, data)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                first, fit = _timed(fit_once)
            seconds = [first]
            if first < REPEAT_BELOW and n_fits > 1:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    seconds = [_timed(fit_once)[0] for _ in range(n_fits)]
            result.update(
                status="ok",
                seconds=seconds,
                median_s=statistics.median(seconds),
                logLik=float(mod.loglik(fit)),
                evaluations=mod.evaluations(fit) if hasattr(mod, "evaluations") else None,
                warnings=sorted({str(c.message)[:160] for c in caught})[:5],
            )
            if hasattr(mod, "phases"):  # where the first fit's time went
                result["phases"] = mod.phases(fit, first)
            if w.stages and hasattr(mod, "stages"):  # a second fit: the peak before it is one fit's
                result["peak_fit_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
                result["stages"] = mod.stages(w, data, fit)
    except NotImplementedError as exc:  # the engine says so itself
        result.update(status="cannot fit", note=f"NotImplementedError: {exc}"[:300])
    except Exception as exc:  # noqa: BLE001 - reported in the table, the run goes on
        result.update(
            status="error", note=f"{type(exc).__name__}: {exc}"[:300], traceback=traceback.format_exc()[-2000:]
        )
    Path(out).write_text(json.dumps(result, default=float))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))

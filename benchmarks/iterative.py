"""The iterative solver (PCG + SLQ) on a simulated ml-32m-like crossed LMM, and its accuracy
against the exact fit where that one can be computed.

ml-32m: 32,000,204 ratings, 200,948 users x 84,432 movies; every user has >= 20 ratings,
activity and popularity are heavy-tailed.  Here users draw their counts from a shifted
log-normal (median ~ 70, mean ~ 160, as ml-32m), items are drawn with log-normal popularity
weights (a few thousand movies carry most ratings, a long tail has a handful each), duplicate
(user, item) pairs are dropped and items left without a rating get one.  The response is
μ + b_user + b_item + ε with SDs 0.45, 0.55 and 0.85 (rating-scale-like).

    python benchmarks/iterative.py --rows 32000000 --users 200948 --items 84432       # the target
    python benchmarks/iterative.py --rows 1000000 --users 20000 --items 2000 --exact  # accuracy
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
import pandas as pd

SD_USER, SD_ITEM, SD_RES = 0.45, 0.55, 0.85


def simulate(rows: int, users: int, items: int, seed: int = 19) -> pd.DataFrame:
    """A crossed ratings table of about ``rows`` rows (ml-32m's shape scaled), fixed seed."""
    rng = np.random.default_rng(seed)
    floor = min(20, max(1, rows // users // 2))
    act = rng.lognormal(0.0, 1.2, users)
    pop = rng.lognormal(0.0, 2.0, items)
    pop /= pop.sum()
    keys = np.zeros(0, dtype=np.int64)
    need = rows
    for _ in range(2):  # a draw and a top-up towards `rows` distinct pairs (repeats dropped)
        counts = floor * (len(keys) == 0) + np.floor(act / act.sum() * (need - floor * users * (len(keys) == 0)))
        counts = np.minimum(counts.astype(np.int64), items)
        user = np.repeat(np.arange(users, dtype=np.int64), counts)
        item = rng.choice(items, size=len(user), p=pop)
        before = len(keys)
        keys = np.union1d(keys, user * items + item)
        need = rows - len(keys)
        if need <= 0 or len(keys) - before < 0.05 * len(user):  # saturated
            break
    if len(keys) > rows:
        keys = np.sort(rng.choice(keys, rows, replace=False))
    user, item = keys // items, keys % items
    missing = np.setdiff1d(np.arange(items), item)
    user = np.concatenate([user, rng.integers(0, users, len(missing))])
    item = np.concatenate([item, missing])
    bu = rng.normal(0, SD_USER, users)
    bi = rng.normal(0, SD_ITEM, items)
    y = 3.5 + bu[user] + bi[item] + rng.normal(0, SD_RES, len(user))
    return pd.DataFrame({"y": y, "user": user.astype(np.int32), "item": item.astype(np.int32)})


def peak_gb() -> float:
    """Peak resident memory of this process, GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=2_000)
    ap.add_argument("--probes", type=int, default=32)
    ap.add_argument("--ml", action="store_true", help="ML instead of REML")
    ap.add_argument("--exact", action="store_true", help="also fit with the exact solver and compare")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args(argv)

    import mmfast
    from mmfast.model.control import IterativeControl, LmmControl

    t0 = time.perf_counter()
    data = simulate(a.rows, a.users, a.items)
    t_sim = time.perf_counter() - t0
    formula = "y ~ 1 + (1 | user) + (1 | item)"
    ctl = LmmControl(solver="iterative", iterative=IterativeControl(probes=a.probes))
    t0 = time.perf_counter()
    model = mmfast.lmer(formula, data, reml=not a.ml, control=ctl)
    t_fit = time.perf_counter() - t0
    s = model.optsummary
    out = {
        "rows": len(data),
        "users": int(data.user.nunique()),
        "items": int(data.item.nunique()),
        "pairs_nnz": int(model.kernel.cross.nnz),
        "probes": a.probes,
        "reml": not a.ml,
        "simulate_s": round(t_sim, 1),
        "fit_s": round(t_fit, 1),
        "optimise_s": round(s.seconds, 1),
        "evaluations": s.evaluations,
        "pcg_steps_last": model.kernel.steps,
        "theta": model.theta.tolist(),
        "sigma": model.sigma,
        "loglik": model.loglik,
        "truth_theta": [SD_USER / SD_RES, SD_ITEM / SD_RES],
        "peak_rss_gb": round(peak_gb(), 2),
    }
    print(json.dumps(out), flush=True)
    if a.exact:
        t0 = time.perf_counter()
        exact = mmfast.lmer(formula, data, reml=not a.ml)
        out["exact_fit_s"] = round(time.perf_counter() - t0, 1)
        out["exact_theta"] = exact.theta.tolist()
        out["theta_rel_err"] = ((model.theta - exact.theta) / exact.theta).tolist()
        out["exact_loglik"] = exact.loglik
        out["loglik_diff"] = model.loglik - exact.loglik
        # the criterion's own error at the exact optimum: SLQ vs the exact log-determinant
        out["criterion_diff_at_exact_theta"] = model.objective(exact.theta) - exact.objective_value
        out["peak_rss_gb"] = round(peak_gb(), 2)
        print(json.dumps(out), flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 17's genomics-scale target: per-gene NB GLMMs with fit_many, beside glmer.nb and glmmTMB.

    .venv/bin/python benchmarks/nb_pipeline.py [--genes 20000] [--cells 2000] [--donors 20]
                                               [--r-genes 200] [--jobs 2] [--no-r] [--json F]

Simulates (fixed seed) ``count ~ condition + offset(log(size_factor)) + (1 | donor)`` counts:
donors split between two conditions, cells evenly over donors, log-normal size factors
(sd 0.35), gene means log-normal (log mean ~ N(-0.5, 1.5²): many sparse genes, some with
hundreds of counts per cell), θ_NB log-uniform on 0.5..10, donor sd uniform on 0..0.5, a
condition effect N(0, 0.5²) on 20% of genes.  Times ``mmfast.fit_many(cells, ..., counts=Y,
family="negative_binomial", n_jobs=--jobs)`` on every gene (wall clock, design and all), then in
the same run R's ``glmer.nb`` and ``glmmTMB(family=nbinom2)`` one gene at a time on the first
--r-genes genes (benchmarks/nb_pipeline.R, wall clock per fit), and compares the estimates of
those genes with glmmTMB's (logLik relative difference where glmmTMB converged with a positive
definite Hessian).  Prints the load average before and after each part.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
FORMULA = "count ~ condition + offset(log(size_factor)) + (1 | donor)"
SEED = 20251


def simulate(genes: int, cells: int, donors: int, seed: int = SEED):
    """(cells table, genes x cells counts) as the module docstring describes."""
    rng = np.random.default_rng(seed)
    donor = np.repeat(np.arange(donors), -(-cells // donors))[:cells]
    treated = donor >= donors // 2
    cell_table = pd.DataFrame(
        {
            "donor": [f"donor{d:02d}" for d in donor],
            "condition": np.where(treated, "treated", "control"),
            "size_factor": np.exp(rng.normal(0.0, 0.35, cells)),
        }
    )
    log_mean = rng.normal(-0.5, 1.5, genes)
    theta = np.exp(rng.uniform(np.log(0.5), np.log(10.0), genes))
    sd = rng.uniform(0.0, 0.5, genes)
    effect = np.where(rng.random(genes) < 0.2, rng.normal(0.0, 0.5, genes), 0.0)
    counts = np.empty((genes, cells), dtype=np.float64)
    sf = cell_table["size_factor"].to_numpy()
    for s in range(0, genes, 1000):
        g = slice(s, min(s + 1000, genes))
        u = rng.normal(0.0, 1.0, (g.stop - g.start, donors)) * sd[g, None]
        mu = sf * np.exp(log_mean[g, None] + effect[g, None] * treated + u[:, donor])
        th = theta[g, None]
        counts[g] = rng.negative_binomial(th, th / (th + mu))
    truth = pd.DataFrame({"log_mean": log_mean, "theta": theta, "sd_donor": sd, "effect": effect})
    return cell_table, counts, truth


def run_mmfast(cells, counts, jobs: int) -> tuple[pd.DataFrame, float]:
    import mmfast

    names = [f"gene{g:05d}" for g in range(len(counts))]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Poisson-limit count is reported below
        res = mmfast.fit_many(
            cells, FORMULA, by="gene", counts=pd.DataFrame(counts, index=names, copy=False),
            family="negative_binomial", n_jobs=jobs,
        )  # fmt: skip
    return res, time.perf_counter() - t0


def run_r(cells, counts, rscript: str) -> dict | None:
    if shutil.which(rscript) is None:
        print("Rscript not found: mmfast figures only", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        cells.to_csv(path / "cells.csv", index=False)
        pd.DataFrame(counts.astype(np.int64)).to_csv(path / "counts.csv", index=False)
        cmd = [rscript, str(REPO / "benchmarks" / "nb_pipeline.R"), str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return None
        return json.loads((path / "out.json").read_text())


def compare(res: pd.DataFrame, r: dict) -> dict:
    """logLik, β and θ of the R subset against glmmTMB (genes where it converged)."""
    rel, dfix, dth, nconv = [], [], [], 0
    for g, tmb in enumerate(r["glmmTMB"]):
        if tmb.get("logLik") is None or tmb["convergence"] != 0 or not tmb["pdHess"]:
            continue
        nconv += 1
        rows = res[res.gene == f"gene{g:05d}"].set_index("term")
        if rows["error"].notna().any():
            rel.append(np.inf)
            continue
        rel.append(abs(rows["loglik"].iloc[0] - tmb["logLik"]) / abs(tmb["logLik"]))
        se = np.array(tmb["se"], dtype=float)
        dfix.append(np.max(np.abs(rows.loc[["(Intercept)", "conditiontreated"], "estimate"] - tmb["fixef"]) / se))
        dth.append(abs(rows.loc["theta", "estimate"] / tmb["theta"] - 1.0))
    rel = np.array(rel)
    return {
        "glmmTMB_converged": nconv,
        "loglik_within_1e-5": int(np.sum(rel <= 1e-5)),
        "max_loglik_rel": float(np.max(rel)) if rel.size else None,
        "median_loglik_rel": float(np.median(rel)) if rel.size else None,
        "max_fixef_diff_in_se": float(np.max(dfix)) if dfix else None,
        "max_theta_rel": float(np.max(dth)) if dth else None,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--genes", type=int, default=20000)
    ap.add_argument("--cells", type=int, default=2000)
    ap.add_argument("--donors", type=int, default=20)
    ap.add_argument("--r-genes", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--rscript", default="Rscript")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    cells, counts, truth = simulate(a.genes, a.cells, a.donors)
    print(f"simulated {a.genes} genes x {a.cells} cells x {a.donors} donors in {time.perf_counter() - t0:.1f} s; "
          f"mean count {counts.mean():.2f}, zeros {np.mean(counts == 0):.0%}")  # fmt: skip
    out = {"genes": a.genes, "cells": a.cells, "donors": a.donors, "jobs": a.jobs, "seed": SEED}
    out["load_before_mmfast"] = os.getloadavg()
    res, wall = run_mmfast(cells, counts, a.jobs)
    out["load_after_mmfast"] = os.getloadavg()
    theta = res.loc[res.term == "theta", "estimate"].to_numpy(float)
    per_gene = res.groupby("gene", sort=False)
    summary = {
        "mmfast_wall_s": wall,
        "mmfast_ms_per_gene": 1e3 * wall / a.genes,
        "errors": int(per_gene["error"].first().notna().sum()),
        "not_converged": int((per_gene["converged"].first() == False).sum()),  # noqa: E712
        "poisson_limit": int(np.isinf(theta).sum()),
    }
    out.update(summary)
    print(f"mmfast: {wall:.1f} s for {a.genes} genes ({summary['mmfast_ms_per_gene']:.2f} ms a gene, {a.jobs} jobs); "
          f"{summary['errors']} error rows, {summary['not_converged']} not converged, "
          f"{summary['poisson_limit']} at the Poisson limit; load {out['load_before_mmfast'][0]:.1f} -> "
          f"{out['load_after_mmfast'][0]:.1f}")  # fmt: skip
    if not a.no_r and a.r_genes > 0:
        k = min(a.r_genes, a.genes)
        out["load_before_r"] = os.getloadavg()
        r = run_r(cells, counts[:k], a.rscript)
        out["load_after_r"] = os.getloadavg()
        if r is not None:
            t_nb, t_tmb = np.array(r["time_glmer_nb"]), np.array(r["time_glmmTMB"])
            mm = summary["mmfast_ms_per_gene"] / 1e3
            out.update(
                r_genes=k,
                glmer_nb_s_per_gene=float(t_nb.mean()),
                glmmTMB_s_per_gene=float(t_tmb.mean()),
                ratio_glmer_nb=float(t_nb.mean() / mm),
                ratio_glmmTMB=float(t_tmb.mean() / mm),
                agreement=compare(res, r),
                glmer_nb_errors=int(sum(e is not None for e in r["glmer_nb_error"])),
            )
            print(f"glmer.nb: {t_nb.mean():.3f} s a gene, glmmTMB: {t_tmb.mean():.3f} s a gene ({k} genes); "
                  f"mmfast {out['ratio_glmer_nb']:.0f}x glmer.nb, {out['ratio_glmmTMB']:.0f}x glmmTMB per gene; "
                  f"load {out['load_before_r'][0]:.1f} -> {out['load_after_r'][0]:.1f}")  # fmt: skip
            print("agreement with glmmTMB:", json.dumps(out["agreement"]))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

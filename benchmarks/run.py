"""Time mmfast against lme4 in one run on this machine; print one table, save JSON.

Usage (``make bench`` runs the first form)::

    .venv/bin/python benchmarks/run.py [--cases a,b] [--no-r] [--repeat N]
    .venv/bin/python benchmarks/run.py --workloads [--quick]   # issue 19: peers, new workloads
    .venv/bin/python benchmarks/run.py --only kb07 --quick

For every case (``bench_cases.build_cases``: the LMM reference cases, many_small, the GLMM
reference cases, verbagg) mmfast is timed first: one untimed warm-up, then the median of
``--repeat`` fits (default 20; at most 3 for insteval_ml, big_nested_ml and many_small, 5 for
verbagg).  Then, if
``Rscript`` with lme4 and jsonlite is available and ``--no-r`` is not given, the same cases
are timed with lme4 by ``benchmarks/lme4_timing.R`` in a child process (same machine, same
run, sequentially).  Results go to ``benchmarks/results/latest.json`` with machine info.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_cases  # noqa: E402

R_SCRIPT = HERE / "lme4_timing.R"
R_CHECK = (
    "quit(status = as.integer(!(requireNamespace('lme4', quietly = TRUE) && "
    "requireNamespace('jsonlite', quietly = TRUE))))"
)


# --- lme4 via Rscript ----------------------------------------------------------------------
def r_available(rscript: str | None) -> str | None:
    """Why lme4 cannot be timed here, or None when Rscript + lme4 + jsonlite are present."""
    if not rscript:
        return "Rscript not found"
    try:
        done = subprocess.run([rscript, "-e", R_CHECK], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Rscript failed: {exc}"
    return None if done.returncode == 0 else "R packages lme4/jsonlite missing"


def run_lme4(rscript: str, specs: list[dict], timeout: float) -> tuple[dict, dict]:
    """Run lme4_timing.R on ``specs``: ({case: result}, R session info).

    If the R process dies (crash, timeout), the case it was on is marked as failed and R
    is restarted on the remaining cases, so one bad case never loses the others.
    """
    results, session, todo = {}, {}, list(specs)
    with tempfile.TemporaryDirectory(prefix="mmfast-bench-") as tmp:
        while todo:
            cases_json, out_json = Path(tmp, "cases.json"), Path(tmp, "out.json")
            cases_json.write_text(json.dumps(todo))
            out_json.unlink(missing_ok=True)
            failure = None
            try:
                done = subprocess.run(
                    [rscript, str(R_SCRIPT), str(cases_json), str(out_json)], timeout=timeout, stdout=sys.stderr
                )
                if done.returncode != 0:
                    failure = f"R exited with status {done.returncode}"
            except subprocess.TimeoutExpired:
                failure = f"R timed out after {timeout:.0f} s"
            except OSError as exc:
                failure = f"R could not run: {exc}"
            if out_json.exists():
                try:
                    out = json.loads(out_json.read_text())
                    session = out.get("session") or session
                    for res in out.get("results") or []:
                        results[res["case"]] = res
                except (ValueError, KeyError) as exc:
                    failure = failure or f"unreadable R output: {exc}"
            todo = [s for s in todo if s["case"] not in results]
            if todo and failure is None:
                failure = "R stopped before this case"
            if todo:  # the first unfinished case is the one R was on
                results[todo[0]["case"]] = {"case": todo[0]["case"], "status": "error", "error": failure}
                todo = todo[1:]
    return results, session


# --- machine info --------------------------------------------------------------------------
def _cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or None
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return m.group(1).strip() if m else None


def _blas_from_ldd(ext_dir: Path) -> dict:
    """{library name: resolved path} of the BLAS/LAPACK the compiled extensions load (ldd)."""
    found = {}
    for so in sorted(ext_dir.glob("*.so")):
        try:
            text = subprocess.run(["ldd", str(so)], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        for m in re.finditer(r"^\s*(\S+)\s*=>\s*(/\S+)", text, re.M):
            if re.search(r"blas|lapack|mkl|blis", m.group(1), re.I):
                found[m.group(1)] = os.path.realpath(m.group(2))
    return found


def cholmod_blas() -> dict:
    """The BLAS used by mmfast's CHOLMOD.

    ``ldd`` of the extension modules (``mmfast._ext``) names the libraries CHOLMOD links;
    when threadpoolctl is installed, its entries for those same files (version, threads)
    are the summary -- numpy's and scipy's own bundled BLAS are listed but not CHOLMOD's.
    """
    try:
        import mmfast._ext._pls as pls
    except Exception as exc:  # noqa: BLE001
        return {"summary": None, "error": f"mmfast extension not importable: {exc}"}
    ldd = _blas_from_ldd(Path(pls.__file__).parent)
    info = {"ldd": ldd, "summary": ldd.get("libblas.so.3") or next(iter(ldd.values()), None)}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return info
    linked = set(ldd.values())
    blas = []
    for i in threadpool_info():
        if i.get("user_api") != "blas":
            continue
        entry = {k: i.get(k) for k in ("internal_api", "version", "num_threads", "filepath")}
        entry["used_by_cholmod"] = os.path.realpath(i.get("filepath") or "") in linked
        blas.append(entry)
        if entry["used_by_cholmod"]:
            info["summary"] = (
                f"{entry['internal_api']} {entry['version']} ({entry['num_threads']} threads) {entry['filepath']}"
            )
    info["threadpoolctl"] = blas
    return info


def machine_info(r_session: dict) -> dict:
    """CPU, cores, Python/mmfast versions, CHOLMOD's BLAS and R's BLAS."""
    try:
        import mmfast

        mm_version = mmfast.__version__
    except Exception:  # noqa: BLE001
        mm_version = None
    try:
        commit = subprocess.run(
            ["git", "-C", str(HERE.parent), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except OSError:
        commit = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mmfast": mm_version,
        "git_commit": commit or None,
        "thread_env": {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if k in os.environ},
        "cholmod_blas": cholmod_blas(),
        "r": r_session or None,
    }


# --- the table -----------------------------------------------------------------------------
def _secs(x) -> str:
    if x is None:
        return "-"
    return f"{x:.1f}" if x >= 10 else f"{x:.3f}" if x >= 0.1 else f"{x:.4f}"


def _slim(res: dict) -> dict:
    """``res`` without the per-gene lists (kept out of latest.json)."""
    return {k: v for k, v in res.items() if not k.endswith("_by_group")}


def compare(case, mm: dict, r: dict | None) -> dict:
    """One row: both timings, their ratio, logLik difference and evaluations."""
    r = r or {}
    mm_ok, r_ok = mm.get("status") == "ok", r.get("status") == "ok"
    row = {
        "case": case.name,
        "kind": case.kind,
        "rows": (mm.get("nobs") if mm_ok else None) or r.get("nobs"),
        "mmfast_s": mm.get("median_s") if mm_ok else None,
        "lme4_s": r.get("median_s") if r_ok else None,
        "ratio": None,
        "loglik_diff": None,
        "evaluations": [mm.get("evaluations"), r.get("feval")],
        "note": "; ".join(filter(None, [mm.get("note"), r.get("error") and f"lme4: {r['error']}"])),
        "mmfast": _slim(mm),
        "lme4": _slim(r) or None,
    }
    if row["mmfast_s"] and row["lme4_s"]:
        row["ratio"] = row["lme4_s"] / row["mmfast_s"]
    if mm_ok and r_ok:
        if case.kind == "LMM-loop":
            a, b = mm.get("logLik_by_group") or {}, r.get("logLik_by_group") or {}
            diffs = [a[g] - b[g] for g in a if g in b]
            if diffs:  # the largest per-gene difference, with its sign
                row["loglik_diff"] = max(diffs, key=abs)
            row["note"] = row["note"] or f"{len(b) or '?'} fits; logLik: max per gene"
        elif mm.get("logLik") is not None and r.get("logLik") is not None:
            row["loglik_diff"] = mm["logLik"] - r["logLik"]
    return row


def print_table(rows: list[dict], r_note: str | None, machine: dict) -> None:
    head = ["case", "rows", "mmfast s", "lme4 s", "ratio", "logLik diff", "evals mm/lme4", "note"]
    body = []
    for row in rows:
        ev = ["-" if e is None else str(e) for e in row["evaluations"]]
        body.append(
            [
                row["case"],
                "-" if row["rows"] is None else str(row["rows"]),
                _secs(row["mmfast_s"]),
                _secs(row["lme4_s"]),
                "-" if row["ratio"] is None else f"{row['ratio']:.1f}x",
                "-" if row["loglik_diff"] is None else f"{row['loglik_diff']:+.2e}",
                "/".join(ev),
                row["note"][:60],
            ]
        )
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    right = {1, 2, 3, 4, 5, 6}

    def fmt(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    print(fmt(head))
    print("  ".join("-" * w for w in widths))
    for r in body:
        print(fmt(r))
    print("ratio = lme4 s / mmfast s (median elapsed seconds, same machine, same run); logLik diff = mmfast - lme4")
    if r_note:
        print(f"lme4 not timed: {r_note}")
    r = machine.get("r") or {}
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores; CHOLMOD BLAS: "
        f"{machine['cholmod_blas'].get('summary')}; R {r.get('R', '-')} lme4 "
        f"{r.get('lme4', '-')} BLAS: {r.get('blas', '-')}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", help="comma-separated case names (default: all)")
    ap.add_argument("--no-r", action="store_true", help="do not time lme4")
    ap.add_argument(
        "--repeat", type=int, default=20, help="timed fits per case after a warm-up (big cases: at most 3, verbagg 5)"
    )
    ap.add_argument("--rscript", default=shutil.which("Rscript"), help="Rscript to use")
    ap.add_argument("--r-timeout", type=float, default=3600, help="seconds for the R run")
    ap.add_argument(
        "--out",
        help="JSON output (default results/latest.json; with --workloads "
        "or --only: results/peers.json, --quick: results/peers_quick.json)",
    )
    peer = ap.add_argument_group("issue 19's workloads against lme4, glmmTMB and Python peers")
    peer.add_argument("--workloads", action="store_true", help="run all of them")
    peer.add_argument("--only", help="comma-separated workloads, e.g. kb07,nested")
    peer.add_argument("--quick", action="store_true", help="the small sizes (development)")
    peer.add_argument("--peers", help="comma-separated engines (default: all), e.g. mmfast,lme4")
    peer.add_argument("--sizes", help="rows of the nested scaling series, e.g. 1e4,1e5")
    peer.add_argument("--timeout", type=float, help="seconds per engine and workload (default 1800, --quick 300)")
    peer.add_argument("--no-tight", action="store_true", help="skip lme4's tight refit")
    args = ap.parse_args(argv)
    if args.workloads or args.only:
        import peer_bench

        split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None  # noqa: E731
        args.only, args.peers, args.sizes = split(args.only), split(args.peers), split(args.sizes)
        try:
            peer_bench.peers.select(args.peers)
        except ValueError as err:
            ap.error(str(err))
        args.repeat = max(1, min(args.repeat, 3))
        args.timeout = args.timeout or (300 if args.quick else 1800)
        return peer_bench.main(args, machine_info)
    args.out = args.out or str(HERE / "results" / "latest.json")

    selected = [c.strip() for c in args.cases.split(",") if c.strip()] if args.cases else None
    cases = bench_cases.build_cases(selected)
    mm = {}
    for case in cases:
        print(f"[mmfast] {case.name} ...", file=sys.stderr, flush=True)
        mm[case.name] = bench_cases.time_mmfast(case, args.repeat)
    r_note = "--no-r" if args.no_r else r_available(args.rscript)
    r_results, r_session = {}, {}
    if r_note is None:
        specs = [c.r_spec(args.repeat) for c in cases]
        r_results, r_session = run_lme4(args.rscript, specs, args.r_timeout)
    rows = [compare(c, mm[c.name], r_results.get(c.name)) for c in cases]
    machine = machine_info(r_session)
    print_table(rows, r_note, machine)

    out = {
        "generated": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
        "repeat": args.repeat,
        "lme4_timed": r_note is None,
        "lme4_note": r_note,
        "machine": machine,
        "cases": rows,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"written {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 19's workloads fitted by mmfast, lme4, glmmTMB and the Python peers in one run: one
table per workload (time, ratios to lme4 and to mmfast, logLik minus lme4's tight fit, peak
memory) and, for the nested scaling series, set-up and per-evaluation time against n.

    python benchmarks/run.py --workloads [--quick]         # all workloads
    python benchmarks/run.py --only kb07 --quick           # one workload

Each engine fits each workload in its own child process (``peers/child.py`` for Python,
``peers/fit_r.R`` for R), one after the other, so that the timings do not overlap and the
child's peak resident set (``os.wait4``) is that engine's memory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import peers  # noqa: E402
import tables  # noqa: E402
import workloads  # noqa: E402
from tables import fmt_s  # noqa: E402

CHILD = HERE / "peers" / "child.py"


def run_measured(cmd: list[str], timeout: float) -> tuple[int | None, float, float]:
    """(exit code or None on timeout, peak resident MB, seconds) of the process ``cmd``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.perf_counter() - t0 > timeout:
            os.killpg(proc.pid, signal.SIGKILL)  # the child's own session: it and its children
            _, status, usage = os.wait4(proc.pid, 0)
            code = None
            break
        time.sleep(0.05)
    proc.returncode = 0  # reaped by wait4 above
    proc.stderr.close()
    return code, usage.ru_maxrss / 1024.0, time.perf_counter() - t0


def run_peer(name: str, w, csv: Path, tmp: Path, args) -> dict:
    """One engine on one data set: the child's result, its peak memory, or why there is none."""
    mod = peers.adapter(name)
    external = getattr(mod, "EXTERNAL", False)
    reason = mod.unavailable() if external else peers.installed(mod)
    if reason:
        return {"status": "not installed", "note": reason}
    out = tmp / f"{name}.json"
    out.unlink(missing_ok=True)
    if external:
        cmd = mod.command(w, csv, out, args.repeat, {"tight": not args.no_tight})
    else:
        cmd = [sys.executable, str(CHILD), name, w.name, str(csv), str(out), str(args.repeat)]
    code, peak, wall = run_measured(cmd, args.timeout)
    if code is None and out.exists():  # lme4: timed fit saved, its tight refit unfinished
        res = json.loads(out.read_text())
        res.update(
            peak_mb=peak, wall_s=wall, note=f"killed after {args.timeout:.0f} s in the refits after the timed fit"
        )
        return res
    ver = None if external else peers.version(mod)  # the child writes it only with a result
    if code is None:
        return {"status": "timeout", "note": f"no result after {args.timeout:.0f} s", "peak_mb": peak, "version": ver}
    if not out.exists():
        return {"status": "error", "note": f"child exited with status {code}, no result", "version": ver}
    res = json.loads(out.read_text())
    res.update(peak_mb=peak, wall_s=wall)
    return res


def table(label: str, rows: int, results: dict) -> list[str]:
    """The workload's table as text: one line per engine (numbers from ``tables.engine_rows``,
    the markdown tables' own)."""
    engine_rows, ref, ref_name = tables.engine_rows(results)
    head = ["engine", "seconds", "lme4 s/this", "mmfast s/this", "logLik - lme4 tight", "evals", "peak MB", "note"]
    body = [
        [
            r["label"],
            fmt_s(r["seconds"]) if r["status"] == "ok" else r["status"],
            "-" if r["ratio"] is None else f"{r['ratio']:.2f}x",
            "-" if r["vs_mmfast"] is None else f"{1 / r['vs_mmfast']:.2f}x",
            "-" if r["dloglik"] is None else f"{r['dloglik']:+.2e}",
            "-" if r["evaluations"] is None else str(r["evaluations"]),
            f"{r['peak_mb']:.0f}" if r["peak_mb"] else "-",
            r["note"][:70],
        ]
        for r in engine_rows
    ]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]

    def fmt(x):
        return "  ".join(c.rjust(wd) if 0 < i < 7 else c.ljust(wd) for i, (c, wd) in enumerate(zip(x, widths))).rstrip()

    lines = [f"== {label} ({rows} rows)", fmt(head), "  ".join("-" * wd for wd in widths)]
    lines += [fmt(b) for b in body]
    if ref is not None:
        lines.append(f"{ref_name} logLik {ref:.6f}")
    return lines


def scaling_table(series: list[tuple[str, int, dict]]) -> list[str]:
    """Set-up seconds, one evaluation, evaluations, total and peak memory against n."""
    lines = [
        "== nested scaling: set-up, one evaluation, total, peak memory",
        (f"{'n':>10}  {'engine':8}  {'set-up s':>9}  {'eval ms':>9}  {'evals':>6}  {'total s':>8}  {'peak MB':>8}"),
    ]
    for _, n, results in series:
        for name in ("mmfast", "lme4"):
            r = results.get(name) or {}
            st = r.get("stages") or {}
            if r.get("status") != "ok":
                lines.append(f"{n:>10}  {name:8}  {r.get('status', '-')}")
                continue
            ev = st.get("eval_s")
            lines.append(
                f"{n:>10}  {name:8}  {fmt_s(st.get('setup_s')):>9}  "
                f"{'-' if ev is None else f'{1e3 * ev:.3f}':>9}  "
                f"{r.get('evaluations') or '-'!s:>6}  {fmt_s(r['median_s']):>8}  "
                f"{r['peak_mb']:8.0f}"
            )
    return lines


def _save(path: Path, args, machine: dict, lines: list[str], cases: list[dict], complete: bool) -> None:
    """Write the run so far: after every engine, so a run stopped early keeps what finished."""
    out = {
        "generated": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "quick": args.quick,
        "complete": complete,
        "machine": machine,
        "tables": lines,
        "cases": cases,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(out, indent=1, default=str) + "\n")
    tmp.replace(path)


def main(args, machine_info) -> int:
    """Run the selected workloads (``args.only`` or all) with the selected engines."""
    selected = workloads.get(args.only)
    engines = peers.select(args.peers)
    cases, lines = [], []
    machine = machine_info({})
    path = Path(args.out or HERE / "results" / ("peers_quick.json" if args.quick else "peers.json"))
    with tempfile.TemporaryDirectory(prefix="mmfast-peers-") as tmpdir:
        tmp = Path(tmpdir)
        for w in selected:
            sizes = args.sizes if (args.sizes and w.stages) else w.sizes(args.quick)
            series, gave_up = [], {}
            for size in sizes:
                label = w.label(size)
                data = w.simulate(size)
                csv = tmp / f"{label}.csv"
                data.to_csv(csv, index=False)
                results, load = {}, []
                case = {
                    "workload": w.name,
                    "label": label,
                    "rows": len(data),
                    "formula": w.formula,
                    "family": w.family,
                    "results": results,
                    "load": load,  # 1-minute load average before and after each engine
                }
                cases.append(case)
                for name in engines:
                    if name in gave_up:  # a larger n of the series cannot be quicker
                        results[name] = {"status": "skipped", "note": gave_up[name]}
                        continue
                    print(f"[peers] {label}: {name} ...", file=sys.stderr, flush=True)
                    before = os.getloadavg()[0]
                    results[name] = run_peer(name, w, csv, tmp, args)
                    results[name]["load"] = [before, os.getloadavg()[0]]
                    load += results[name]["load"]
                    if results[name]["status"] == "timeout":
                        gave_up[name] = f"timed out at {label}"
                    _save(path, args, machine, lines, cases, complete=False)
                csv.unlink()
                block = table(label, len(data), results)
                print("\n".join(block) + "\n", flush=True)
                lines += block + [""]
                series.append((label, len(data), results))
            if w.stages:
                block = scaling_table(series)
                print("\n".join(block) + "\n", flush=True)
                lines += block + [""]
    note = (
        "lme4 s/this, mmfast s/this: that engine's median seconds over this one's (> 1: this "
        "engine is faster); logLik - lme4 tight: this engine's logLik minus lme4's refit to "
        "BOBYQA rhoend 1e-10 (ML, all workloads)"
    )
    r_session = next((r["session"] for c in cases for r in c["results"].values() if r.get("session")), {})
    blas = machine["cholmod_blas"].get("summary")
    note += (
        f"\nmachine: {machine['cpu']}, {machine['cores']} cores; CHOLMOD BLAS: {blas}; "
        f"R {r_session.get('R', '-')} BLAS: {r_session.get('blas', '-')}"
    )
    print(note)
    lines.append(note)
    _save(path, args, machine, lines, cases, complete=True)
    print(f"written {path}", file=sys.stderr)
    return 0

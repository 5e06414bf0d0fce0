"""Markdown tables of the benchmark results (``benchmarks/results/*.json``), written between
marker comments into ``benchmarks/README.md`` (every table) and README.md's Speed section (one
summary line per workload), so that new result files only need ``make bench-tables``.

    python benchmarks/tables.py [--results DIR] [--print]

Inputs, each optional: the peer runs of ``run.py --workloads/--only`` (any JSON with ``cases``
holding per-engine ``results``: frontier_lmm.json, crossed_glmm_1e6.json, nested_series.json;
``--quick`` runs are skipped), ``latest.json`` (``make bench``), ``structures.json``,
``residual.json`` and ``nb_pipeline.json``.  Ratios are lme4's seconds over the engine's, from
the same run; ΔlogLik is the engine's logLik minus lme4's tight refit (else lme4's own fit).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import peers  # noqa: E402
import workloads  # noqa: E402

BEGIN, END = "<!-- bench-tables:begin -->", "<!-- bench-tables:end -->"
# a logLik this far below the reference is a false convergence, flagged in the note (mmfast and
# lme4's default fits are within 2e-3 of lme4's tight refit on every workload so far)
WORSE_LOGLIK = 1e-2
SUMMARY_BEGIN, SUMMARY_END = "<!-- bench-summary:begin -->", "<!-- bench-summary:end -->"


# --- numbers -------------------------------------------------------------------------------
def engine_rows(results: dict) -> tuple[list[dict], float | None, str]:
    """One row per engine of one workload (engine, status, seconds, ratio = lme4 s / its s,
    vs_mmfast = its s / mmfast s, dloglik vs the reference, evaluations, peak MB, note), the
    reference logLik and what it is (lme4's tight refit, else lme4's default fit)."""

    def ok(r):
        return (r or {}).get("status") == "ok"

    lme4, mm = results.get("lme4") or {}, results.get("mmfast") or {}
    ref, ref_name = None, "lme4 tight refit"
    if ok(lme4):
        ref = lme4.get("logLik_tight")
        if ref is None:
            ref, ref_name = lme4.get("logLik"), "lme4 default fit (tight refit unfinished)"
    t_lme4 = lme4.get("median_s") if ok(lme4) else None
    t_mm = mm.get("median_s") if ok(mm) else None
    rows = []
    for name, r in results.items():
        t = r.get("median_s") if ok(r) else None
        ll = r.get("logLik") if ok(r) else None
        note = r.get("note") or "; ".join(r.get("warnings") or r.get("messages") or [])
        if ll is not None and ref is not None and ll - ref < -WORSE_LOGLIK:
            note = "; ".join(filter(None, [f"stopped {ref - ll:.3g} below the reference logLik", note]))
        rows.append(
            {
                "engine": name,
                "label": _engine_label(name, r),
                "status": r.get("status", "?"),
                "seconds": t,
                "ratio": t_lme4 / t if t and t_lme4 else None,
                "vs_mmfast": t / t_mm if t and t_mm else None,
                "dloglik": ll - ref if ll is not None and ref is not None else None,
                "evaluations": r.get("evaluations"),
                "peak_mb": r.get("peak_mb"),
                "load": r.get("load"),
                "note": note,
            }
        )
    return rows, ref, ref_name


def _engine_label(name: str, r: dict) -> str:
    try:
        label = peers.adapter(name).NAME
    except ImportError:
        label = name
    return f"{label} {r.get('version') or ''}".strip()


def where_time_goes(results: dict) -> str:
    """One line per workload: mmfast's set-up and optimiser runs (its ``phases``: evaluations,
    seconds each) or its set-up / one-evaluation ``stages``; lme4's evaluations and seconds
    per evaluation (its whole fit over its count, or its own set-up / evaluation stages)."""
    parts = []
    mm = results.get("mmfast") or {}
    if mm.get("status") == "ok":
        ph, st = mm.get("phases") or {}, mm.get("stages") or {}
        if ph:
            runs = [
                f"{r['name']} start {r['optimizer']} {r['evaluations']} evaluations"
                + (
                    f" {fmt_s(r['seconds'])} s ({1e3 * r['seconds'] / r['evaluations']:.3g} ms each)"
                    if r.get("seconds") and r["evaluations"]
                    else ""
                )
                for r in ph.get("runs") or []
            ]
            parts.append(
                f"mmfast (first fit): set-up {fmt_s(ph['setup_s'])} s, optimisation {fmt_s(ph['optimize_s'])} s"
                + (f" = {', '.join(runs)}" if runs else "")
            )
        if st.get("setup_s") is not None:
            ev = st.get("eval_s")
            parts.append(
                f"mmfast stages: set-up {fmt_s(st['setup_s'])} s"
                + ("" if ev is None else f", one evaluation at the optimum {1e3 * ev:.3g} ms")
            )
        if not ph and not st and mm.get("evaluations"):
            parts.append(f"mmfast: {mm['evaluations']} evaluations in {fmt_s(mm['median_s'])} s")
    lme4 = results.get("lme4") or {}
    if lme4.get("status") == "ok":
        st, ev = lme4.get("stages") or {}, lme4.get("evaluations")
        if st.get("setup_s") is not None:
            parts.append(
                f"lme4: set-up {fmt_s(st['setup_s'])} s, one evaluation {1e3 * st['eval_s']:.3g} ms, "
                f"{ev or '?'} evaluations"
            )
        elif ev:
            parts.append(f"lme4: {ev} evaluations, {1e3 * lme4['median_s'] / ev:.3g} ms each on average")
    return "; ".join(parts)


# --- formatting ----------------------------------------------------------------------------
def fmt_s(x) -> str:
    if x is None:
        return "-"
    return f"{x:.1f}" if x >= 10 else f"{x:.3f}" if x >= 0.1 else f"{x:.4f}"


def _x(r) -> str:
    if r is None:
        return "-"
    return f"{r:.0f}x" if r >= 100 else f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(head: list[str], body: list[list]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in body]


def workload_table(case: dict) -> list[str]:
    """The per-engine markdown table of one peer-run case, with its reference and time line."""
    rows, ref, ref_name = engine_rows(case["results"])
    body = []
    for r in rows:
        ok = r["status"] == "ok"
        body.append(
            [
                f"**{r['label']}**" if r["engine"] == "mmfast" else r["label"],
                fmt_s(r["seconds"]) if ok else r["status"],
                _x(r["ratio"]),
                _x(r["vs_mmfast"]),
                "-" if r["dloglik"] is None else f"{r['dloglik']:+.2e}",
                "-" if r["evaluations"] is None else r["evaluations"],
                "-" if not r["peak_mb"] else f"{r['peak_mb']:.0f}",
                "-" if not r["load"] else "→".join(f"{x:.1f}" for x in r["load"]),
                r["note"][:160],
            ]
        )
    head = [
        "engine",
        "seconds",
        "lme4 s / this",
        "this s / mmfast",
        "ΔlogLik vs lme4",
        "evals",
        "peak MB",
        "load",
        "note",
    ]
    lines = [f"#### {case['label']} ({case['rows']:,} rows)", "", f"`{case['formula']}`", ""]
    lines += md_table(head, body) + [""]
    if ref is not None:
        lines.append(f"Reference: {ref_name}, logLik {ref:.6f}.")
    lines += case.get("notes") or []  # e.g. how a case was assembled from several runs
    goes = where_time_goes(case["results"])
    if goes:
        lines.append(f"Where the time goes: {goes}.")
    return lines + [""]


def scaling_table(cases: list[dict]) -> list[str]:
    """Set-up, one evaluation, evaluations, whole fit and peak memory against n (stages)."""
    body = []
    for case in cases:
        for name in ("mmfast", "lme4"):
            r = case["results"].get(name) or {}
            st = r.get("stages") or {}
            if r.get("status") != "ok":
                body.append([f"{case['rows']:,}", name, r.get("status", "-"), "-", "-", "-", "-"])
                continue
            ev = st.get("eval_s")
            body.append(
                [
                    f"{case['rows']:,}",
                    name,
                    fmt_s(st.get("setup_s")),
                    "-" if ev is None else f"{1e3 * ev:.3g}",
                    r.get("evaluations") or "-",
                    fmt_s(r.get("median_s")),
                    "-" if not r.get("peak_mb") else f"{r['peak_mb']:.0f}",
                ]
            )
    head = ["n", "engine", "set-up s", "one evaluation ms", "evaluations", "fit s", "peak MB"]
    return ["#### Scaling with n", ""] + md_table(head, body) + [""]


# --- the result files ----------------------------------------------------------------------
def load_results(folder: Path) -> dict[str, dict]:
    """{file name: parsed JSON} of every readable ``*.json`` in ``folder``."""
    out = {}
    for path in sorted(folder.glob("*.json")):
        try:
            out[path.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return out


def peer_cases(files: dict[str, dict]) -> list[dict]:
    """The cases of every full (not ``--quick``) peer run, one per label (the newest run's),
    in the workloads' order and then by size; each carries its file name and machine."""
    newest: dict[str, dict] = {}
    for name, d in files.items():
        if not isinstance(d, dict) or d.get("quick") or not isinstance(d.get("cases"), list):
            continue
        for case in d["cases"]:
            if not isinstance(case, dict) or "results" not in case:
                continue
            case = dict(case, source=name, generated=d.get("generated") or "", machine=d.get("machine") or {})
            old = newest.get(case["label"])
            if old is None or case["generated"] > old["generated"]:
                newest[case["label"]] = case
    order = list(workloads.WORKLOADS)
    return sorted(
        newest.values(), key=lambda c: (order.index(c["workload"]) if c["workload"] in order else len(order), c["rows"])
    )


def machine_lines(files: dict[str, dict], cases: list[dict]) -> list[str]:
    """CPU, cores, CHOLMOD's BLAS and R's, from the newest file that records a machine."""
    dated = [
        (d.get("generated") or "", d["machine"]) for d in files.values() if isinstance(d, dict) and d.get("machine")
    ]
    if not dated:
        return []
    m = max(dated, key=lambda x: x[0])[1]
    r = m.get("r") or next(
        (
            (c["results"].get("lme4") or {}).get("session")
            for c in cases
            if (c["results"].get("lme4") or {}).get("session")
        ),
        None,
    )
    blas = (m.get("cholmod_blas") or {}).get("summary")
    text = f"Machine: {m.get('cpu')}, {m.get('cores')} cores, Python {m.get('python')}; mmfast's BLAS: {blas}"
    if r:
        text += f"; R {r.get('R', '-')} BLAS: {r.get('blas', '-')}"
    return [text + ".", ""]


def reference_table(latest: dict) -> list[str]:
    """``make bench``'s reference cases against lme4 (latest.json)."""
    body = [
        [
            c["case"],
            "-" if c.get("rows") is None else f"{c['rows']:,}",
            fmt_s(c.get("mmfast_s")),
            fmt_s(c.get("lme4_s")),
            _x(c.get("ratio")),
            "-" if c.get("loglik_diff") is None else f"{c['loglik_diff']:+.1e}",
            "/".join("-" if e is None else str(e) for e in c.get("evaluations") or []),
        ]
        for c in latest.get("cases") or []
    ]
    head = ["case", "rows", "mmfast s", "lme4 s", "lme4 s / mmfast s", "ΔlogLik (mmfast - lme4)", "evals mm/lme4"]
    return [f"### Reference cases (`make bench`, {latest.get('generated', '?')})", ""] + md_table(head, body) + [""]


def pair_table(title: str, d: dict, engines: tuple[str, str], loglik_key: str) -> list[str]:
    """mmfast against one other engine (structures.json, residual.json)."""
    got = d.get("engines") or d
    body = []
    for e in engines:
        r = got.get(e) or {}
        peak = r.get("peak_mb")
        ll = r.get(loglik_key)
        body.append(
            [e, fmt_s(r.get("seconds")), "-" if ll is None else f"{ll:.6f}", "-" if peak is None else f"{peak:.0f}"]
        )
    head = ["engine", "seconds", "logLik", "peak MB"]
    mm, other = (got.get(e) or {} for e in engines)
    ratio = other["seconds"] / mm["seconds"] if mm.get("seconds") and other.get("seconds") else None
    lines = [f"### {title}", ""] + md_table(head, body) + [""]
    return lines + [f"{engines[1]} s / mmfast s: {_x(ratio)} ({d.get('rows', '?'):,} rows).", ""]


def render(files: dict[str, dict]) -> str:
    """Everything between the markers of benchmarks/README.md."""
    cases = peer_cases(files)
    lines = ["_Generated by `make bench-tables` (`benchmarks/tables.py`) from `benchmarks/results/`._", ""]
    lines += machine_lines(files, cases)
    if cases:
        lines += ["### Issue 19's workloads: mmfast, lme4, glmmTMB and the Python peers", ""]
    for w in dict.fromkeys(c["workload"] for c in cases):
        of_w = [c for c in cases if c["workload"] == w]
        srcs = sorted({c["source"] for c in of_w})
        lines += [f"**{w}** (`results/{'`, `results/'.join(srcs)}`, {of_w[0]['generated']})", ""]
        for c in of_w:
            lines += workload_table(c)
        if any((c["results"].get("mmfast") or {}).get("stages") for c in of_w) and len(of_w) > 1:
            lines += scaling_table(of_w)
    if "latest.json" in files:
        lines += reference_table(files["latest.json"])
    if "structures.json" in files:
        s = files["structures.json"]
        for case in [s[k] for k in ("lmm", "glmm") if k in s] or [s]:  # one case per family, or the old flat file
            title = f"G-side structure, {case.get('family', 'gaussian')} `{case.get('formula', '')}`"
            lines += pair_table(title, case, ("mmfast", "glmmTMB"), "loglik")
    if "residual.json" in files:
        r = files["residual.json"]
        lines += pair_table(f"R-side structure ({r.get('design', '')})", r, ("mmfast", "nlme"), "logLik")
    if "nb_pipeline.json" in files:
        nb = files["nb_pipeline.json"]
        lines += [
            "### Negative binomial GLMM per gene (nb_pipeline.json)",
            "",
            f"{nb.get('genes', '?'):,} genes: mmfast {nb.get('mmfast_ms_per_gene', 0):.1f} ms a gene; "
            f"glmer.nb {nb.get('glmer_nb_s_per_gene', 0):.2f} s ({_x(nb.get('ratio_glmer_nb'))}), "
            f"glmmTMB {nb.get('glmmTMB_s_per_gene', 0):.2f} s ({_x(nb.get('ratio_glmmTMB'))}).",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def render_summary(files: dict[str, dict]) -> str:
    """README.md's summary: one line per workload and size (mmfast, lme4, ratio, peers)."""
    body = []
    for c in peer_cases(files):
        rows, _, _ = engine_rows(c["results"])
        by = {r["engine"]: r for r in rows}
        mm, lme4 = by.get("mmfast") or {}, by.get("lme4") or {}
        good = [
            r
            for r in rows
            if r["engine"] not in ("mmfast", "lme4") and r["seconds"] and not (r["dloglik"] or 0) < -WORSE_LOGLIK
        ]
        best = min(good, key=lambda r: r["seconds"], default=None)
        peer = "-"
        if best:
            peer = f"{best['label']} {fmt_s(best['seconds'])} s" + (" (ΔlogLik n/a)" if best["dloglik"] is None else "")
        body.append(
            [
                c["label"],
                f"{c['rows']:,}",
                fmt_s(mm.get("seconds")) if mm.get("seconds") else mm.get("status", "-"),
                fmt_s(lme4.get("seconds")) if lme4.get("seconds") else lme4.get("status", "-"),
                _x(mm.get("ratio")),
                peer,
                "-" if mm.get("dloglik") is None else f"{mm['dloglik']:+.1e}",
            ]
        )
    if not body:
        return "_No full peer run in benchmarks/results/ yet._\n"
    head = [
        "workload",
        "rows",
        "mmfast s",
        "lme4 s",
        "lme4 / mmfast",
        "fastest other engine at the optimum",
        "ΔlogLik mmfast vs lme4",
    ]
    foot = [
        "",
        "Seconds: median elapsed time of one fit, each workload's engines one after another on the same "
        "machine and BLAS; ΔlogLik: against lme4's tight refit (its default fit where the refit did not "
        "finish); a peer more than 0.01 below it is not counted as at the optimum. Every engine, the loads, "
        "the machine and where the time goes: [benchmarks/README.md](benchmarks/README.md#result-tables).",
    ]
    return "\n".join(md_table(head, body) + foot) + "\n"


def replace_between(text: str, block: str, begin: str, end: str) -> str:
    """``text`` with what lies between the ``begin`` and ``end`` lines replaced by ``block``."""
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise SystemExit(f"markers {begin} ... {end} not found")
    return text[: i + len(begin)] + "\n" + block + text[j:]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=str(HERE / "results"), help="folder of result JSON files")
    ap.add_argument("--print", action="store_true", help="print the tables instead of writing the READMEs")
    args = ap.parse_args(argv)
    files = load_results(Path(args.results))
    block, summary = render(files), render_summary(files)
    if args.print:
        print(block + "\n" + summary)
        return 0
    for path, text, (b, e) in [
        (HERE / "README.md", block, (BEGIN, END)),
        (HERE.parent / "README.md", summary, (SUMMARY_BEGIN, SUMMARY_END)),
    ]:
        path.write_text(replace_between(path.read_text(), text, b, e))
        print(f"written {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""benchmarks/tables.py turns peer-run JSON into markdown tables: the ratios are lme4's seconds
over each engine's, ΔlogLik is against lme4's tight refit (its own fit when the refit did not
finish), a peer without a number shows why, and the README text outside the markers is kept."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
# by path, under its own name: "tables" is also PyTables' module name
_spec = importlib.util.spec_from_file_location("mmfast_bench_tables", BENCH / "tables.py")
tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tables)
sys.path.remove(str(BENCH))  # tables.py put it first, for its peers and workloads imports


def _results(tight=True):
    lme4 = {"status": "ok", "median_s": 50.0, "logLik": -100.001, "evaluations": 500, "peak_mb": 300.0}
    if tight:
        lme4["logLik_tight"] = -99.9995
    return {
        "mmfast": {
            "status": "ok",
            "median_s": 2.0,
            "logLik": -100.0,
            "evaluations": 40,
            "peak_mb": 200.0,
            "load": [7.5, 8.0],
            "phases": {
                "setup_s": 0.5,
                "optimize_s": 1.5,
                "runs": [{"name": "moment", "optimizer": "lbfgsb", "evaluations": 30, "seconds": 1.2}],
            },
        },
        "lme4": lme4,
        "glmm": {"status": "ok", "median_s": 10.0, "logLik": -100.0005, "evaluations": 90},
        "lme_python": {"status": "cannot fit", "note": "factor in the random-effects term (0 + service | dept)"},
        "interlace": {"status": "timeout", "note": "no result after 1500 s", "peak_mb": 900.0},
        "statsmodels": {"status": "not installed", "note": "not installed (ModuleNotFoundError)"},
    }


def _run(results, generated="2026-12-03T12:00:00+00:00", quick=False, label="kb07"):
    case = {"workload": "kb07", "label": label, "rows": 1792, "formula": "rt ~ 1 + (1 | subj)", "results": results}
    return {"generated": generated, "quick": quick, "machine": {"cpu": "TestCPU", "cores": 2}, "cases": [case]}


def test_rows_ratio_and_loglik_against_the_tight_refit():
    rows, ref, ref_name = tables.engine_rows(_results())
    by = {r["engine"]: r for r in rows}
    assert ref == -99.9995 and ref_name == "lme4 tight refit"
    assert by["mmfast"]["ratio"] == pytest.approx(50.0 / 2.0)
    assert by["glmm"]["ratio"] == pytest.approx(5.0) and by["glmm"]["vs_mmfast"] == pytest.approx(5.0)
    assert by["mmfast"]["dloglik"] == pytest.approx(-100.0 + 99.9995)
    assert by["lme4"]["dloglik"] == pytest.approx(-100.001 + 99.9995)
    assert by["interlace"]["ratio"] is None and by["interlace"]["dloglik"] is None
    assert by["glmm"]["note"] == "" and by["lme4"]["note"] == ""  # 1e-3 and 1.5e-3 below: no flag


def test_false_convergence_is_flagged():
    res = _results()
    res["glmm"]["logLik"] = -360.5  # 260.5005 below the tight refit's -99.9995
    by = {r["engine"]: r for r in tables.engine_rows(res)[0]}
    assert by["glmm"]["note"] == "stopped 261 below the reference logLik"
    assert by["glmm"]["dloglik"] == pytest.approx(-260.5005)


def test_reference_falls_back_to_lme4s_own_fit():
    rows, ref, ref_name = tables.engine_rows(_results(tight=False))
    assert ref == -100.001 and "default fit" in ref_name
    assert {r["engine"]: r for r in rows}["mmfast"]["dloglik"] == pytest.approx(0.001)


def test_table_shows_every_engine_with_its_reason(tmp_path):
    (tmp_path / "frontier_lmm.json").write_text(json.dumps(_run(_results())))
    text = tables.render(tables.load_results(tmp_path))
    lines = text.splitlines()
    mm = next(ln for ln in lines if ln.startswith("| **mmfast"))
    assert "| 2.000 | 25.0x | 1.00x | -5.00e-04 | 40 | 200 | 7.5→8.0 |" in mm
    assert any("| cannot fit |" in ln and "(0 + service \\| dept)" in ln for ln in lines)  # pipe escaped
    assert any("| timeout |" in ln and "no result after 1500 s" in ln for ln in lines)
    assert any("| not installed |" in ln for ln in lines)
    assert "Reference: lme4 tight refit, logLik -99.999500." in text
    assert "30 evaluations 1.200 s (40 ms each)" in text  # 1.2 s / 30
    assert "lme4: 500 evaluations, 100 ms each on average" in text  # 50 s / 500
    assert "Machine: TestCPU, 2 cores" in text
    summary = tables.render_summary(tables.load_results(tmp_path))
    assert "| kb07 | 1,792 | 2.000 | 50.0 | 25.0x | glmm 10.0 s | -5.0e-04 |" in summary
    res = _results()
    res["glmm"]["logLik"] = -150.0  # a quicker peer at a false optimum is not "the fastest"
    res["lme_python"] = {"status": "ok", "median_s": 20.0, "logLik": -99.9996}
    (tmp_path / "frontier_lmm.json").write_text(json.dumps(_run(res)))
    summary = tables.render_summary(tables.load_results(tmp_path))
    assert "| 25.0x | lme-python 20.0 s |" in summary


def test_newest_full_run_wins_and_quick_runs_are_skipped(tmp_path):
    old = _results()
    old["mmfast"]["median_s"] = 5.0
    quick = _results()
    quick["mmfast"]["median_s"] = 0.5
    (tmp_path / "a.json").write_text(json.dumps(_run(old, generated="2026-12-01T00:00:00+00:00")))
    (tmp_path / "b.json").write_text(json.dumps(_run(_results())))
    (tmp_path / "c.json").write_text(json.dumps(_run(quick, generated="2026-12-09T00:00:00+00:00", quick=True)))
    (tmp_path / "broken.json").write_text("{not json")
    cases = tables.peer_cases(tables.load_results(tmp_path))
    assert len(cases) == 1 and cases[0]["source"] == "b.json"


def test_replace_between_keeps_the_rest():
    text = "head\n<!-- bench-tables:begin -->\nold\n<!-- bench-tables:end -->\ntail\n"
    out = tables.replace_between(text, "new\n", tables.BEGIN, tables.END)
    assert out == "head\n<!-- bench-tables:begin -->\nnew\n<!-- bench-tables:end -->\ntail\n"
    assert tables.replace_between(out, "new\n", tables.BEGIN, tables.END) == out
    with pytest.raises(SystemExit):
        tables.replace_between("no markers", "x", tables.BEGIN, tables.END)


def test_engine_selection_keeps_order_ignores_case_and_refuses_unknown_names():
    select = tables.peers.select
    assert select(["glmmTMB", "mmfast"]) == ["mmfast", "glmmtmb"]  # ORDER, not the caller's order
    assert select(None) == tables.peers.ORDER
    with pytest.raises(ValueError, match="glmmtbm"):
        select(["mmfast", "glmmTBM"])  # a typo is an error, never an engine silently dropped

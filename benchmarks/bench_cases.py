"""Benchmark cases for ``benchmarks/run.py``: what to fit, the data, and the mmfast timing.

The cases are every ``LMM`` reference case in ``tests/reference``, the per-gene loop
``many_small``, every ``GLMM`` reference case and ``verbagg`` (lme4's classic VerbAgg
binomial GLMM).  Reference definitions come from ``tests/reference_cases.py`` when that
module is importable (its ``load_reference``, ``reference_cases``, ``case_data`` and
``case_fit_kwargs``); otherwise a small private loader below reads the same JSON files.

``Case.r_spec()`` is the case as ``benchmarks/lme4_timing.R`` reads it; ``time_mmfast()``
times the same fit with mmfast.
"""

from __future__ import annotations

import gzip
import inspect
import json
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / "src" / "mmfast" / "datasets" / "data"
REFERENCE_DIR = REPO / "tests" / "reference"
BIG_CASES = {"insteval_ml", "big_nested_ml", "many_small"}
BIG_REPEAT = 3
MEDIUM_CASES = {"verbagg"}  # seconds per lme4 fit: a few fits, after a warm-up
MEDIUM_REPEAT = 5
MANY_SMALL_FORMULA = "y ~ group + (1 | animal)"
VERBAGG_FORMULA = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)"

try:  # the shared loader of the test suite, if it is there
    sys.path.insert(0, str(REPO / "tests"))
    import reference_cases as _rc

    if not all(hasattr(_rc, n) for n in ("load_reference", "reference_cases", "case_data", "case_fit_kwargs")):
        _rc = None
except Exception:  # noqa: BLE001 - any import problem: use the private loader
    _rc = None
finally:
    sys.path.pop(0)


# --- private fallback loader (same JSON files, same data conventions) ---------------------
def _load_reference(case: str) -> dict:
    with gzip.open(REFERENCE_DIR / f"{case}.json.gz", "rt", encoding="utf-8") as fh:
        return json.load(fh)


def _reference_cases(kind: str) -> list[str]:
    names = [p.name[: -len(".json.gz")] for p in sorted(REFERENCE_DIR.glob("*.json.gz"))]
    return [n for n in names if _load_reference(n).get("kind") == kind]


def _label(value) -> str:
    """A CSV value as R's factor label: 3.0 -> "3"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def apply_levels(data, factor_levels: dict):
    """``data`` with each listed column a Categorical with exactly the given levels."""
    import pandas as pd

    data = data.copy()
    for column, levels in (factor_levels or {}).items():
        labels = data[column].map(lambda v: v if pd.isna(v) else _label(v))
        data[column] = pd.Categorical(labels, categories=[str(x) for x in levels])
    return data


load_reference = _rc.load_reference if _rc else _load_reference
reference_cases = _rc.reference_cases if _rc else _reference_cases


# --- cases ---------------------------------------------------------------------------------
@dataclass
class Case:
    """One benchmark case (a single fit, or the many_small loop)."""

    name: str
    kind: str  # "LMM", "GLMM" or "LMM-loop"
    formula: str
    data_name: str  # bundled data set, e.g. "InstEval"
    factor_levels: dict = field(default_factory=dict)
    reml: bool = True
    family: str | None = None
    nagq: int = 1
    ignore_nobs_check: bool = False
    binary_response: dict | None = None  # {"column", "success"}: response -> 0/1
    ref: dict | None = None  # the reference JSON, when the case has one

    @property
    def big(self) -> bool:
        return self.name in BIG_CASES

    def n_fits(self, repeat: int) -> int:
        """Timed fits: ``repeat``, at most 3 for the big cases and 5 for the medium ones."""
        cap = BIG_REPEAT if self.big else MEDIUM_REPEAT if self.name in MEDIUM_CASES else repeat
        return max(1, min(repeat, cap))

    def r_spec(self, repeat: int) -> dict:
        """The case as ``lme4_timing.R`` reads it."""
        return {
            "case": self.name,
            "data_path": str(DATA_DIR / f"{self.data_name}.csv.gz"),
            "formula": self.formula,
            "REML": self.reml,
            "factor_levels": self.factor_levels,
            "kind": self.kind,
            "family": self.family,
            "nAGQ": self.nagq,
            # R's loop over 2000 genes takes ~35 s: one pass
            "n_fits": 1 if self.kind == "LMM-loop" else self.n_fits(repeat),
            "warmup": not self.big,
            "by": "gene" if self.kind == "LMM-loop" else None,
            "control": "ignore" if self.ignore_nobs_check else None,
            "binary_response": self.binary_response,
        }


def _from_reference(name: str) -> Case:
    ref = load_reference(name)
    kwargs = _rc.case_fit_kwargs(ref) if _rc and ref.get("kind") == "LMM" else {}
    control = str(ref.get("control") or "")
    return Case(
        name=name,
        kind=ref["kind"],
        formula=ref["formula"],
        data_name=ref["data"][: -len(".csv")] if ref["data"].endswith(".csv") else ref["data"],
        factor_levels=ref.get("factor_levels") or {},
        reml=bool(ref.get("REML")),
        family=ref.get("family") if ref["kind"] == "GLMM" else None,
        nagq=int(ref.get("nAGQ") or 1),
        ignore_nobs_check=(kwargs.get("check_nobs_vs_nre") == "ignore" or "check.nobs.vs.nRE = 'ignore'" in control),
        ref=ref,
    )


def build_cases(selected: list[str] | None = None) -> list[Case]:
    """All cases in table order (LMMs, many_small, GLMMs, verbagg), optionally filtered."""
    cases = [_from_reference(n) for n in reference_cases("LMM")]
    try:
        ms_ref = load_reference("many_small")
    except FileNotFoundError:
        ms_ref = None
    cases.append(
        Case(
            "many_small",
            "LMM-loop",
            (ms_ref or {}).get("formula") or MANY_SMALL_FORMULA,
            "many_small",
            {"group": ["ctrl", "treat"]},
            reml=True,
            ref=ms_ref,
        )
    )
    cases += [_from_reference(n) for n in reference_cases("GLMM")]
    cases.append(
        Case(
            "verbagg",
            "GLMM",
            VERBAGG_FORMULA,
            "VerbAgg",
            {"Gender": ["F", "M"], "btype": ["curse", "scold", "shout"], "situ": ["other", "self"]},
            reml=False,
            family="binomial",
            nagq=1,
            binary_response={"column": "r2", "success": "Y"},
        )
    )
    if selected:
        known = {c.name for c in cases}
        unknown = [s for s in selected if s not in known]
        if unknown:
            raise SystemExit(f"unknown case(s) {unknown}; known: {', '.join(sorted(known))}")
        cases = [c for c in cases if c.name in selected]
    return cases


def case_data(case: Case):
    """The case's data frame, factors built as in the reference fits."""
    import mmfast.datasets

    if case.ref is not None and _rc is not None and case.kind != "LMM-loop":
        return _rc.case_data(case.ref)
    data = apply_levels(mmfast.datasets.load(case.data_name), case.factor_levels)
    if case.binary_response:
        col, success = case.binary_response["column"], case.binary_response["success"]
        data[col] = (data[col].astype(str) == success).astype(int)
    return data


# --- mmfast timing -------------------------------------------------------------------------
class Skip(Exception):
    """The case cannot be run with this mmfast (e.g. no glmer yet)."""


def _fitter(case: Case, data):
    """A no-argument function doing one plain mmfast fit of ``case``."""
    import mmfast

    if case.kind == "GLMM":
        glmer = getattr(mmfast, "glmer", None)
        if glmer is None:
            raise Skip("mmfast.glmer not available")
        kwargs = {"family": case.family}
        if case.nagq != 1:
            params = inspect.signature(glmer).parameters
            name = next((n for n in ("nAGQ", "nagq", "n_agq") if n in params), None)
            if name is None and any(p.kind == p.VAR_KEYWORD for p in params.values()):
                name = "nAGQ"
            if name is None:
                raise Skip("mmfast.glmer has no nAGQ argument")
            kwargs[name] = case.nagq
        return lambda: glmer(case.formula, data, **kwargs)
    if case.ref is not None and _rc is not None:
        kwargs = _rc.case_fit_kwargs(case.ref)
    else:
        kwargs = {"reml": case.reml}
        if case.ignore_nobs_check:
            kwargs["check_nobs_vs_nre"] = "ignore"
    return lambda: mmfast.lmer(case.formula, data, **kwargs)


def _warm_up(fn) -> list[str]:
    """Call ``fn`` once, untimed; its warning messages (the timed calls ignore warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return sorted({str(w.message) for w in caught})[:5]


def _time_n(fn, n: int):
    """(seconds of each of ``n`` calls of ``fn``, the last result), warnings ignored."""
    seconds, result = [], None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            t0 = time.perf_counter()
            result = fn()
            seconds.append(time.perf_counter() - t0)
    return seconds, result


def _evaluations(model):
    info = getattr(model, "optinfo", None) or {}
    return info.get("evaluations")


def _many_small(case: Case, data, n: int) -> dict:
    """Time the per-gene loop: ``mmfast.fit_many`` if it exists, else a loop of ``lmer``."""
    import mmfast

    if hasattr(mmfast, "fit_many"):
        genes = data["gene"].unique()
        small = data[data["gene"].isin(genes[:2])]
        warned = _warm_up(lambda: mmfast.fit_many(small, case.formula, by="gene", n_jobs=1))
        seconds, result = _time_n(lambda: mmfast.fit_many(data, case.formula, by="gene", n_jobs=1), n)
        return {
            "seconds": seconds,
            "split_s": None,
            "method": "fit_many",
            "warnings": warned,
            "logLik_by_group": _loglik_by_group(result),
            "evaluations": None,
        }
    t0 = time.perf_counter()
    groups = list(data.groupby("gene", sort=True, observed=True))
    split_s = time.perf_counter() - t0
    fits = {}

    def loop():
        for gene, piece in groups:
            fits[gene] = mmfast.lmer(case.formula, piece, reml=True)

    warned = _warm_up(lambda: mmfast.lmer(case.formula, groups[0][1], reml=True))  # one gene
    seconds, _ = _time_n(loop, n)
    evals = [_evaluations(m) for m in fits.values()]
    return {
        "seconds": seconds,
        "split_s": split_s,
        "method": "lmer loop",
        "warnings": warned,
        "logLik_by_group": {str(g): float(m.loglik) for g, m in fits.items()},
        "evaluations": sum(evals) if all(e is not None for e in evals) else None,
    }


def _loglik_by_group(result) -> dict | None:
    """Best effort: per-gene logLik from whatever ``fit_many`` returned."""
    try:
        if isinstance(result, dict):
            return {str(g): float(m.loglik) for g, m in result.items()}
        cols = getattr(result, "columns", None)
        if cols is not None:
            col = next((c for c in ("loglik", "logLik") if c in cols), None)
            if col is not None:
                keys = result["gene"] if "gene" in cols else result.index
                return {str(g): float(v) for g, v in zip(keys, result[col])}
    except Exception:  # noqa: BLE001
        pass
    return None


def time_mmfast(case: Case, repeat: int) -> dict:
    """Time ``case`` with mmfast: status, seconds, median_s, logLik, evaluations, nobs."""
    n = case.n_fits(repeat)
    try:
        data = case_data(case)
        if case.kind == "LMM-loop":
            out = _many_small(case, data, n)
            out.update(nobs=len(data), logLik=None)
            if out["logLik_by_group"]:
                out["logLik"] = sum(out["logLik_by_group"].values())
        else:
            fit = _fitter(case, data)
            warned = _warm_up(fit)
            seconds, model = _time_n(fit, n)
            out = {
                "seconds": seconds,
                "logLik": float(model.loglik),
                "warnings": warned,
                "evaluations": _evaluations(model),
                "nobs": getattr(model, "nobs", None) or len(data),
            }
    except Skip as exc:
        return {"status": "skipped", "note": str(exc)}
    except NotImplementedError as exc:
        return {"status": "skipped", "note": f"not implemented: {exc}"[:120]}
    except Exception as exc:  # noqa: BLE001 - one failing case must not stop the run
        return {"status": "error", "note": f"{type(exc).__name__}: {exc}"[:200]}
    out.update(status="ok", median_s=statistics.median(out["seconds"]))
    return out

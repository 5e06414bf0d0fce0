"""Access to the R/lme4 reference fits in tests/reference/*.json.gz.

A plain module (no pytest), imported by the tests and by the benchmarks
(``sys.path.insert(0, "<repo>/tests")``).  See tests/reference/README.md for the
JSON schema and the data conventions reproduced here.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"

# lme4 refuses this model by default (observations <= random effects); the
# reference fit used lmerControl(check.nobs.vs.nRE = "ignore").
_NOBS_CHECK_IGNORED = {"ex3_cell_slope_ml"}

__all__ = ["REFERENCE_DIR", "load_reference", "reference_cases", "case_data", "case_fit_kwargs"]


def load_reference(case: str) -> dict:
    """The reference JSON of ``case`` (e.g. ``"sleepstudy_slope_reml"``) as a dict."""
    path = REFERENCE_DIR / f"{case}.json.gz"
    if not path.exists():
        raise FileNotFoundError(f"no reference file {path}")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def reference_cases(kind: str = "LMM") -> list[str]:
    """Sorted names of the reference cases whose JSON has ``kind`` (``"LMM"``, ``"GLMM"``...)."""
    names = []
    for path in sorted(REFERENCE_DIR.glob("*.json.gz")):
        case = path.name[: -len(".json.gz")]
        if load_reference(case).get("kind") == kind:
            names.append(case)
    return names


def _label(value) -> str:
    """A data value as a factor label the way R writes it: 3.0 -> "3", "a" -> "a"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_factor(column: pd.Series, levels: list, variable: str) -> pd.Categorical:
    """``column`` as a Categorical with exactly ``levels`` (missing values stay missing)."""
    if all(isinstance(level, str) for level in levels):
        column = column.map(lambda v: v if pd.isna(v) else _label(v))
    factor = pd.Categorical(column, categories=list(levels))
    unknown = column[column.notna() & pd.isna(factor)]
    if len(unknown):
        raise ValueError(
            f"column {variable!r} has values not among the reference levels: {sorted(set(map(str, unknown)))[:5]}"
        )
    return factor


def case_data(ref: dict) -> pd.DataFrame:
    """The data set of a reference case, with the reference's factors (levels in lme4's order).

    Rows with missing values are kept: mmfast drops them itself, as lme4 does.
    """
    import mmfast.datasets

    name = ref["data"]
    if name.endswith(".csv"):
        name = name[: -len(".csv")]
    data = mmfast.datasets.load(name).copy()
    for variable, levels in (ref.get("factor_levels") or {}).items():
        if variable not in data.columns:
            raise KeyError(f"factor {variable!r} of case {ref['case']!r} is not a column of {name}")
        data[variable] = _as_factor(data[variable], levels, variable)
    return data


def case_fit_kwargs(ref: dict) -> dict:
    """Keyword arguments of ``mmfast.lmer`` that reproduce the reference fit's settings."""
    kwargs = {"reml": bool(ref["REML"])}
    if ref["case"] in _NOBS_CHECK_IGNORED:
        kwargs["check_nobs_vs_nre"] = "ignore"
    return kwargs

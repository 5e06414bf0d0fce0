"""The R number formatter (mmfast.present.rformat) against R's own ``format()``, ``format.pval``
and ``printCoefmat`` output for a table of numbers (tests/oracle/printing.R -> printing.json.gz)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmfast.rformat import abbreviate, coefmat_lines, format_num, format_pval, zapsmall

with gzip.open(Path(__file__).parent / "reference" / "printing.json.gz", "rt", encoding="utf-8") as fh:
    REF = json.load(fh)["formatter"]


def _vec(v):
    """jsonlite writes length-1 vectors as scalars and NA/Inf as strings."""
    v = v if isinstance(v, list) else [v]
    return [{"NA": np.nan, "Inf": np.inf, "-Inf": -np.inf}.get(x, x) if isinstance(x, str) else x for x in v]


@pytest.mark.parametrize("case", REF["format"], ids=lambda c: f"{_vec(c['x'])}-{c['digits']}")
def test_format_matches_r(case):
    assert format_num(_vec(case["x"]), case["digits"]) == case["out"]


@pytest.mark.parametrize("case", REF["format_pval"], ids=lambda c: f"{_vec(c['p'])}-{c['digits']}")
def test_format_pval_matches_r(case):
    assert format_pval(_vec(case["p"]), case["digits"]) == _vec(case["out"])


@pytest.mark.parametrize("case", REF["coefmat"], ids=lambda c: str(len(c["cols"])))
def test_print_coefmat_matches_r(case):
    table = pd.DataFrame(np.array(case["x"], dtype=float), index=case["rows"], columns=case["cols"])
    assert coefmat_lines(table, case["digits"]) == case["text"]


def test_tiny_estimate_is_scientific():
    # R 4.2: format(c(8.6e-04, 17), digits = 4); fixed "0.00086" would be wider, never 0.0009
    assert format_num([8.6e-04, 17], 4) == ["8.6e-04", "1.7e+01"]


@pytest.mark.parametrize("case", REF["abbreviate"], ids=lambda c: str(c["minlength"]))
def test_abbreviate_matches_r(case):
    # the correlation block's row (minlength 11) and column (6) names
    assert abbreviate(case["names"], case["minlength"]) == case["out"]


def test_zapsmall():
    # R 4.2: zapsmall(c(1, 1e-20)) is c(1, 0); zapsmall(c(123.456, 0.001), 5) rounds to 3 decimals
    assert list(zapsmall([1.0, 1e-20])) == [1.0, 0.0]
    assert list(zapsmall([123.456, 0.001], 5)) == [123.456, 0.001]
    assert list(zapsmall([123.4567, 0.0001], 5)) == [123.457, 0.0]
    # zapsmall(c(Inf, 12.345, NA)) is c(Inf, 12, NA): an infinite maximum rounds to integers
    z = zapsmall([np.inf, 12.345, np.nan])
    assert z[0] == np.inf and z[1] == 12.0 and np.isnan(z[2])

"""Formula text is never executed: payloads on every entry point raise an MmfastError and
leave no trace.  Each payload would write a sentinel file if any part of it ran as Python
(the fit_many one did before formulas were parsed: its response went to eval())."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.errors import DataError, FormulaError, MmfastError
from mmfast.formula import deparse, evaluate_expr, parse_expr

SRC = Path(__file__).resolve().parents[1] / "src"


def _payloads(sentinel: Path) -> list[str]:
    s = repr(str(sentinel))
    return [  # builtins reached without names, a plain call, a package-qualified call
        "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'catch_warnings']"
        f"[0]()._module.__builtins__['open']({s}, 'w').write('x')",
        f"open({s}, 'w').write('x')",
        f"os::system('touch ' + {s})",
        f"eval(parse(text = 'x'), {s})",
    ]


@pytest.fixture(scope="module")
def sleep():
    d = mmfast.datasets.load("sleepstudy").copy()
    d["lk"] = (d["Reaction"] > 290).astype(int)
    d["grp"] = np.where(d["Days"] < 5, "early", "late")
    return d


def _formulas(p: str) -> list[tuple[str, str]]:
    return [
        ("response", f"Reaction + 0*({p}) ~ Days + (1 | Subject)"),
        ("fixed term", f"Reaction ~ Days + I({p}) + (1 | Subject)"),
        ("random term", f"Reaction ~ Days + (I({p}) | Subject)"),
        ("offset", f"Reaction ~ Days + offset({p}) + (1 | Subject)"),
    ]


def _run_all(sleep, sentinel):
    for payload in _payloads(sentinel):
        for where, formula in _formulas(payload):
            calls = {
                "lmer": lambda: mmfast.lmer(formula, sleep),
                "glmer": lambda: mmfast.glmer(formula.replace("Reaction", "lk", 1), sleep, family="binomial"),
                "lm": lambda: mmfast.lm(formula.replace(" + (1 | Subject)", ""), sleep),
                "fit_many": lambda: mmfast.fit_many(sleep, formula, by="grp"),
            }
            for entry, call in calls.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with pytest.raises(MmfastError):
                        call()
                assert not sentinel.exists(), f"{entry}: the {where} payload ran"


def test_payloads_raise_and_never_run(sleep, tmp_path):
    _run_all(sleep, tmp_path / "sentinel")


def test_payload_in_lme(sleep, tmp_path):
    sentinel = tmp_path / "sentinel"
    for p in _payloads(sentinel):
        for fixed, random in (
            (f"Reaction + 0*({p}) ~ Days", "~ 1 | Subject"),
            ("Reaction ~ Days", f"~ I({p}) | Subject"),
        ):
            with pytest.raises(MmfastError):
                mmfast.lme(fixed, sleep, random=random)
            assert not sentinel.exists()


def test_payload_in_cli(tmp_path):
    sentinel = tmp_path / "sentinel"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    for p in _payloads(sentinel)[:2]:  # each run imports mmfast afresh (~2 s)
        r = subprocess.run(
            [sys.executable, "-m", "mmfast", "fit", "sleepstudy", f"Reaction + 0*({p}) ~ Days + (1 | Subject)"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert r.returncode != 0
        assert "Error" in r.stderr or "error" in r.stderr
        assert not sentinel.exists()


def test_fit_many_checks_names_before_evaluating(sleep):
    """The hole: fit_many evaluated its response before lmer's name check."""
    with pytest.raises(FormulaError, match="open"):
        mmfast.fit_many(sleep, "Reaction + 0*open('x') ~ Days + (1 | Subject)", by="grp")
    with pytest.raises(DataError, match="'nosuch'"):
        mmfast.fit_many(sleep, "log(nosuch) ~ Days + (1 | Subject)", by="grp")


@pytest.mark.parametrize(
    "text, message",
    [
        ("__import__('os')", "unexpected character"),
        ("x.__class__", "'x.__class__' in the formula is not a column"),  # an R name: no attributes
        ("os::system('ls')", "package 'os'"),
        ("getattr(x, 'y')", "getattr"),
        ("x[1]", "unexpected token|missing operator"),
        ("lambda: 1", "'lambda' in the formula is not a column"),
    ],
)
def test_evaluator_refuses_python(text, message):
    data = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(MmfastError, match=message):
        evaluate_expr(text, data)


def test_unknown_names_are_named():
    data = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(DataError, match="'Dayz'"):
        evaluate_expr("log(Dayz + 1)", data)
    with pytest.raises(FormulaError, match="'foo\\(\\)'"):
        evaluate_expr("foo(x)", data)


def test_r_precedence_and_deparse():
    data = pd.DataFrame({"x": [2.0, 3.0], "a b": [1.0, 4.0]})
    np.testing.assert_array_equal(evaluate_expr("-x^2", data), [-4.0, -9.0])  # R: -(x^2)
    np.testing.assert_array_equal(evaluate_expr("x %% 2 + x %/% 2", data), [1.0, 2.0])
    np.testing.assert_array_equal(evaluate_expr("log(`a b`, 2)", data), [0.0, 2.0])
    np.testing.assert_array_equal(evaluate_expr("ifelse(x > 2 & TRUE, pi, 0)", data), [0, np.pi])
    assert deparse(parse_expr("I( x ^ 2 )")) == "I(x^2)"
    assert deparse(parse_expr("ns(x,df=3)")) == "ns(x, df = 3)"
    assert deparse(parse_expr("log(`a b`+1)")) == "log(`a b` + 1)"
    assert deparse(parse_expr("relevel(f,ref='b')")) == 'relevel(f, ref = "b")'


def test_integer_columns_compute_in_doubles():
    d = pd.DataFrame(
        {
            "x": np.array([100, 120], dtype=np.int8),
            "u": np.array([60000, 65000], dtype=np.uint16),
            "w": np.array([2**31 - 1, 2**30], dtype=np.int32),
        }
    )
    np.testing.assert_array_equal(evaluate_expr("I(x^2)", d), [10000.0, 14400.0])
    np.testing.assert_array_equal(evaluate_expr("x * x + u * u", d), [100.0**2 + 60000.0**2, 120.0**2 + 65000.0**2])
    np.testing.assert_array_equal(evaluate_expr("w + w", d), [2.0 * (2**31 - 1), 2.0**31])


def test_nullable_and_small_integer_columns_in_terms():
    from mmfast.formula import build_matrix

    d = pd.DataFrame({"x": pd.array([100, 120, 90, 7], dtype="Int16"), "z": np.array([100, 120, 3, 9], dtype=np.int8)})
    X, names, _ = build_matrix("I(x^2) + x:z", d)
    assert names == ["(Intercept)", "I(x^2)", "x:z"]
    x = np.array([100.0, 120, 90, 7])
    z = np.array([100.0, 120, 3, 9])
    np.testing.assert_array_equal(X, np.column_stack([np.ones(4), x**2, x * z]))


def test_deeply_nested_text_is_a_formula_error():
    with pytest.raises(FormulaError, match="nested"):
        parse_expr("(" * 5000 + "x" + ")" * 5000)

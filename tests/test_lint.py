"""Issue 18: the code (src, tests and benchmarks) passes ruff's lint rules (pyproject's
[tool.ruff]: E, F, W, B) and mypy on the public API (pyproject's [tool.mypy];
tests/static_types/public_api.py asserts the accessors' static types: fixef -> Series,
summary() -> Summary, ...).  Skipped only when the tools (the ``test`` extra: ruff, mypy,
pandas-stubs) are not installed."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return importlib.util.find_spec(name) is not None
    return True


def _need(*packages: str) -> None:
    missing = [m for m in packages if not _installed(m)]
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)} (the test extra: pip install -e '.[test]')")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_check():
    _need("ruff")
    r = _run("ruff", "check", "src", "tests", "benchmarks")
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format():
    """The code is as ``ruff format`` writes it (pyproject's [tool.ruff.format])."""
    _need("ruff")
    r = _run("ruff", "format", "--check", "src", "tests", "benchmarks")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_public_api():
    _need("mypy", "pandas-stubs")  # without the stubs every pandas type is Any
    r = _run("mypy")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout

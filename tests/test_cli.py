"""Issue 18's command line: ``--version``, ``fit-many`` to Parquet or CSV, the --ddf/--family
choices in --help, one-line errors (status 2, no traceback, no usage block)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.cli import main

ROOT = Path(__file__).resolve().parents[1]
FORMULA = "y ~ group + (1 | animal)"


@pytest.fixture(scope="module")
def genes_csv(tmp_path_factory):
    rng = np.random.default_rng(1)
    rows = [
        (f"g{g}", f"a{a}", "ab"[a % 2], 1.0 + 0.5 * (a % 2) + u + rng.normal())
        for g in range(5)
        for a, u in enumerate(rng.normal(size=6))
        for _ in range(3)
    ]
    path = tmp_path_factory.mktemp("cli") / "genes.csv"
    pd.DataFrame(rows, columns=["gene", "animal", "group", "y"]).to_csv(path, index=False)
    return path


def _run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's --help, --version and usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(code, err, text):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("mmfast: error: ") and text in lines[0], err
    assert "Traceback" not in err and "usage:" not in err


def test_version_is_the_package_version(capsys):
    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    code, out, _ = _run(["--version"], capsys)
    assert code == 0 and out.strip() == f"mmfast {declared.group(1)}" == f"mmfast {mmfast.__version__}"


def test_help_lists_ddf_and_family_choices(capsys):
    code, out, _ = _run(["fit", "--help"], capsys)
    assert code == 0
    assert "{gaussian,binomial,poisson,gamma}" in out
    ddfs = "{satterthwaite,kenward-roger,between-within,residual,asymptotic,lme4}"
    assert ddfs in out
    code, out, _ = _run(["fit-many", "--help"], capsys)
    assert code == 0 and ddfs in out and "--by COLUMN" in out and "{loky,dask,serial}" in out
    code, out, _ = _run(["--help"], capsys)
    assert "fit-many" in out and "--version" in out


def test_fit_many_parquet_and_csv(genes_csv, tmp_path, capsys):
    expect = mmfast.fit_many(pd.read_csv(genes_csv), FORMULA, by="gene")
    pq = tmp_path / "results.parquet"
    code, out, err = _run(["fit-many", str(genes_csv), FORMULA, "--by", "gene", "--out", str(pq)], capsys)
    assert code == 0 and err == "" and "5 groups fitted (0 failed)" in out
    got = pd.read_parquet(pq).sort_values(["gene", "effect", "term"], kind="stable")
    ref = expect.sort_values(["gene", "effect", "term"], kind="stable")
    np.testing.assert_allclose(got.estimate, ref.estimate, rtol=1e-12)
    np.testing.assert_allclose(got.p_value, ref.p_value, rtol=1e-12)
    csv = tmp_path / "results.csv"
    code, out, _ = _run(
        ["fit-many", str(genes_csv), FORMULA, "--by", "gene", "--out", str(csv), "--ddf", "KR", "--ml"], capsys
    )
    assert code == 0
    kr = mmfast.fit_many(pd.read_csv(genes_csv), FORMULA, by="gene", ddf="kenward-roger", reml=False)
    back = pd.read_csv(csv)
    assert list(back.columns) == list(kr.columns)
    np.testing.assert_allclose(back.df, kr.df, rtol=1e-12)  # NaN (ran_pars) where kr has NaN
    code, out, _ = _run(["fit-many", str(genes_csv), FORMULA, "--by", "gene"], capsys)
    assert code == 0 and out.splitlines()[0].startswith("gene,effect,group,term,estimate")
    assert len(out.splitlines()) == len(expect) + 1


def test_fit_many_parquet_without_pyarrow(genes_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    code, _, err = _run(
        ["fit-many", str(genes_csv), FORMULA, "--by", "gene", "--out", str(tmp_path / "r.parquet")], capsys
    )
    _one_line_error(code, err, "writing Parquet needs pyarrow")
    assert not (tmp_path / "r.parquet").exists()


@pytest.mark.parametrize(
    "argv, text",
    [
        (["fit-many", "GENES", FORMULA, "--by", "gene", "--out", "r.txt"], "must end in .parquet or .csv"),
        (["fit-many", "GENES", FORMULA, "--by", "genes"], "['genes'] not in the data"),
        (["fit-many", "GENES", FORMULA], "the following arguments are required: --by"),
        (["fit-many", "GENES", FORMULA, "--by", "gene", "--ddf", "satterwaite"], "ddf must be one of"),
        (["fit-many", "GENES", FORMULA, "--by", "gene", "--n-jobs", "0"], "n_jobs must not be 0"),
        (["fit-many", "GENES", FORMULA, "--by", "gene", "--backend", "threads"], "invalid choice"),
        (["fit", "sleepstudy", FORMULA, "--family", "binomal"], "unknown family 'binomal'"),
        (["fitmany"], "invalid choice: 'fitmany'"),
    ],
)
def test_user_errors_are_one_line(genes_csv, argv, text, capsys):
    argv = [str(genes_csv) if a == "GENES" else a for a in argv]
    code, _, err = _run(argv, capsys)
    _one_line_error(code, err, text)


def test_console_entry_point(genes_csv, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmfast",
            "fit-many",
            str(genes_csv),
            FORMULA,
            "--by",
            "gene",
            "--out",
            str(tmp_path / "r.csv"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0 and r.stderr == "" and "results written to" in r.stdout

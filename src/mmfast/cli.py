"""The ``mmfast`` command: ``mmfast fit DATA "FORMULA"``, ``mmfast fit-many DATA "FORMULA"
--by COL --out results.parquet``, ``mmfast demo``, ``mmfast bench``, ``mmfast --version``.

A user error (bad formula, data, file or option, including a misspelt option) prints one line,
``mmfast: error: ...``, and exits with status 2 (argparse's convention); ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from . import __version__
from .errors import DataError, MmfastError
from .present.serialize import results_dict

if TYPE_CHECKING:  # annotations only
    from .api import GeneralizedLinearMixedModel, LinearMixedModel

__all__ = ["main", "read_table", "results_dict"]

FAMILY_CHOICES = ("gaussian", "binomial", "poisson", "gamma")
DDF_CHOICES = ("satterthwaite", "kenward-roger", "between-within", "residual", "asymptotic", "lme4")


def read_table(path: str) -> pd.DataFrame:
    """A CSV (optionally gzipped) or Parquet file, or the name of a bundled data set."""
    p = Path(path)
    if not p.exists():
        from . import datasets

        if path in datasets.names():
            return datasets.load(path)
        raise DataError(f"no such file or bundled data set: {path}")
    try:
        if p.suffix == ".parquet":
            return pd.read_parquet(p)
        return pd.read_csv(p)
    except (OSError, ValueError, ImportError) as exc:  # empty, unparsable, unreadable
        raise DataError(f"cannot read {path}: {exc}") from exc


def _need_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise DataError("writing Parquet needs pyarrow (pip install pyarrow); or write CSV: --out results.csv") from exc


def _choice(name: str, choices: tuple[str, ...], canonical=None):
    """An argparse ``type``: case-insensitive, aliases through ``canonical``, one-line errors."""

    def convert(value: str) -> str:
        key = value.strip().lower()
        if canonical is not None:
            try:
                key = canonical(key)
            except MmfastError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None
        if key not in choices:
            raise argparse.ArgumentTypeError(f"unknown {name} {value!r}; use one of " + ", ".join(choices))
        return key

    convert.__name__ = name
    return convert


def _choice_option(parser, name: str, choices: tuple[str, ...], help: str, default=None, canonical=None) -> None:
    """A ``--name`` option taking one of ``choices`` (``_choice``: any letter case, aliases)."""
    kind = _choice(name, choices, canonical)
    parser.add_argument(f"--{name}", default=default, type=kind, choices=choices, help=help)


def _ddf(value: str) -> str:
    from .inference.ftests import resolve_ddf

    return resolve_ddf(value)


def _fit(args) -> int:
    from . import lmer

    data = read_table(args.data)
    if args.family and args.family != "gaussian":
        from . import glmer

        m: GeneralizedLinearMixedModel | LinearMixedModel = glmer(args.formula, data, family=args.family)
    else:
        m = lmer(args.formula, data, reml=not args.ml)
    summary = m.summary(ddf=args.ddf) if args.ddf else m.summary()
    print(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(results_dict(m, ddf=args.ddf), indent=2, allow_nan=False) + "\n")
        print(f"\nresults written to {args.json}")
    return 0


def _fit_many(args) -> int:
    from . import fit_many

    out = args.out
    suffix = Path(out).suffix.lower() if out else ""
    if out and suffix not in (".parquet", ".csv"):
        raise DataError(f"--out must end in .parquet or .csv, not {out!r}")
    if suffix == ".parquet":
        _need_pyarrow()  # written by fit_many as it goes: an interrupted run resumes
    data = read_table(args.data)  # after the checks of --out: no fits before a refusal
    ddf = None if args.ddf == "asymptotic" else args.ddf
    res = fit_many(
        data,
        args.formula,
        by=args.by,
        n_jobs=args.n_jobs,
        backend=args.backend,
        output=out if suffix == ".parquet" else None,
        reml=not args.ml,
        ddf=ddf,
        progress=args.progress,
    )
    if out is None:
        res.to_csv(sys.stdout, index=False)
        return 0
    if suffix == ".csv":
        res.to_csv(out, index=False)
    failed = res.drop_duplicates(args.by)["error"].notna().sum()
    groups = len(res.drop_duplicates(args.by))
    print(f"{groups} groups fitted ({failed} failed); results written to {out}")
    return 0


def _demo(args) -> int:
    from .demo import run_demo

    run_demo(out_dir=args.out)
    return 0


def _bench(args) -> int:
    import subprocess

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"
    if not script.exists():
        raise SystemExit("mmfast bench needs a source checkout (benchmarks/run.py); run `make bench` there")
    return subprocess.call([sys.executable, str(script), *args.rest])


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``mmfast: error: ...`` and status 2, no usage block."""

    def error(self, message: str):
        self.exit(2, f"mmfast: error: {_one_line(message)} (see {self.prog} --help)\n")


def main(argv=None) -> int:
    parser = _Parser(prog="mmfast", description="lme4's mixed models, fast, from Python")
    parser.add_argument("--version", action="version", version=f"mmfast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="fit a model and print its summary (lme4 formula syntax)")
    f.add_argument("data", help="CSV or Parquet file, or a bundled data set name (e.g. sleepstudy)")
    f.add_argument("formula", help='lme4 formula, e.g. "Reaction ~ Days + (Days | Subject)"')
    _choice_option(f, "family", FAMILY_CHOICES, "GLMM family (default: gaussian, a linear mixed model)")
    f.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    ddf_help = "denominator df of the coefficient table (default: satterthwaite)"
    _choice_option(f, "ddf", DDF_CHOICES, ddf_help, canonical=_ddf)
    f.add_argument("--json", default=None, help="write the results as JSON to this file")
    f.set_defaults(func=_fit)
    fm = sub.add_parser("fit-many", help="fit one linear mixed model per group (e.g. per gene), tidy results")
    fm.add_argument("data", help="CSV or Parquet file, or a bundled data set name")
    fm.add_argument("formula", help='lme4 formula, e.g. "expr ~ group + (1 | animal)"')
    fm.add_argument(
        "--by",
        required=True,
        action="append",
        metavar="COLUMN",
        help="column whose values define the groups (repeat for several)",
    )
    fm.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="results.parquet (written as groups finish; a rerun resumes) or results.csv; default: CSV on stdout",
    )
    fm.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    ddf_help = "denominator df of the t tests (default: satterthwaite)"
    _choice_option(fm, "ddf", DDF_CHOICES, ddf_help, default="satterthwaite", canonical=_ddf)
    fm.add_argument("--n-jobs", type=int, default=1, metavar="N", help="worker processes (-1: all cores; default 1)")
    fm.add_argument(
        "--backend", default="loky", choices=("loky", "dask", "serial"), help="where the fits run (default: loky)"
    )
    fm.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    fm.set_defaults(func=_fit_many)
    d = sub.add_parser("demo", help="the lecture's four examples on the bundled data")
    d.add_argument("--out", default="mmfast_demo_output", help="folder for the figures and tables")
    d.set_defaults(func=_demo)
    b = sub.add_parser("bench", help="time mmfast against lme4 (source checkout)")
    b.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for benchmarks/run.py")
    b.set_defaults(func=_bench)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    for p in (f, fm, d, b):
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (MmfastError, OSError) as exc:  # the user's input: one line, no traceback
        if args.debug:
            raise
        print(f"mmfast: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug: still one line, the traceback on request
        if args.debug:
            raise
        print(
            f"mmfast: error: {type(exc).__name__}: {_one_line(exc)} (internal error: "
            "rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``mmfast`` command: ``mmfast fit DATA "FORMULA"``, ``mmfast demo``, ``mmfast bench``.

A user error (bad formula, data, file or option) prints one line, ``mmfast: error: ...``, and
exits with status 2 (argparse's convention); ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from .errors import DataError, MmfastError
from .present.serialize import results_dict

__all__ = ["main", "read_table", "results_dict"]


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


def _fit(args) -> int:
    from . import lmer
    data = read_table(args.data)
    kwargs = {}
    if args.family and args.family != "gaussian":
        from . import glmer
        m = glmer(args.formula, data, family=args.family)
    else:
        m = lmer(args.formula, data, reml=not args.ml, **kwargs)
    summary = m.summary(ddf=args.ddf) if args.ddf else m.summary()
    print(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(results_dict(m, ddf=args.ddf), indent=2, allow_nan=False) + "\n")
        print(f"\nresults written to {args.json}")
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mmfast", description="lme4's mixed models, fast, from Python")
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="fit a model and print its summary (lme4 formula syntax)")
    f.add_argument("data", help="CSV or Parquet file, or a bundled data set name (e.g. sleepstudy)")
    f.add_argument("formula", help='lme4 formula, e.g. "Reaction ~ Days + (Days | Subject)"')
    f.add_argument("--family", default=None, help="GLMM family: binomial, poisson, gamma")
    f.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    f.add_argument("--ddf", default=None, help="denominator df: satterthwaite, kenward-roger, ...")
    f.add_argument("--json", default=None, help="write the results as JSON to this file")
    f.set_defaults(func=_fit)
    d = sub.add_parser("demo", help="the lecture's four examples on the bundled data")
    d.add_argument("--out", default="mmfast_demo_output", help="folder for the figures and tables")
    d.set_defaults(func=_demo)
    b = sub.add_parser("bench", help="time mmfast against lme4 (source checkout)")
    b.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for benchmarks/run.py")
    b.set_defaults(func=_bench)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    for p in (f, d, b):
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error")
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
        print(f"mmfast: error: {type(exc).__name__}: {_one_line(exc)} (internal error: "
              "rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

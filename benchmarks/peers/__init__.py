"""Adapters that fit a benchmark workload with one engine each (mmfast, lme4, glmmTMB and the
Python peers), behind one interface so that ``peer_bench.py`` treats them alike.

A Python adapter module defines ``NAME``, ``IMPORT`` (the module whose absence means "not
installed"), ``DIST`` (its distribution, for the version), ``fitter(workload, data)`` (a
no-argument function doing one fit), ``loglik(fit)`` and optionally ``cannot_fit(workload,
data)`` (a reason, or None), ``evaluations(fit)``, ``prepare(workload, data)`` (factor columns
as the engine wants them), ``phases(fit, seconds)`` (where the first fit's time went) and
``stages(workload, data, fit)`` (set-up and per-evaluation seconds).  Each fit runs in a
fresh child process (``child.py``), so a crash, a timeout or the memory of one engine never
touches another, and the child's peak resident memory is measured.  An R adapter
(``EXTERNAL = True``) defines ``unavailable()`` and ``command(workload, csv, out, n_fits,
options)``: the ``fit_r.R`` call writing the same result JSON.
"""

from __future__ import annotations

import importlib
import re

ORDER = ["mmfast", "lme4", "glmmtmb", "lme_python", "mixedlm_rs", "glmm", "interlace", "statsmodels"]


def select(names: list[str] | None) -> list[str]:
    """The engines named (any letter case: ``glmmTMB`` is ``glmmtmb``), in ``ORDER``; all when
    ``names`` is empty.  An unknown name is an error, not an engine silently left out."""
    if not names:
        return list(ORDER)
    wanted = {n.lower().replace("-", "_") for n in names}
    unknown = sorted(wanted - set(ORDER))
    if unknown:
        raise ValueError(f"unknown engine(s) {', '.join(unknown)}: choose from {', '.join(ORDER)}")
    return [p for p in ORDER if p in wanted]


def adapter(name: str):
    """The adapter module ``benchmarks/peers/<name>.py``."""
    return importlib.import_module(f"peers.{name}")


def installed(mod) -> str | None:
    """None when the adapter's engine imports, else why not."""
    try:
        importlib.import_module(mod.IMPORT)
    except Exception as exc:  # noqa: BLE001 - any import failure means "not installed"
        return f"not installed ({type(exc).__name__}: {exc})"[:120]
    return None


def version(mod) -> str | None:
    """The installed version of the adapter's distribution (``DIST``), or None."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version(mod.DIST)
    except (PackageNotFoundError, AttributeError):
        return None


def split_formula(formula: str) -> tuple[str, list[str], list[tuple[str, str]]]:
    """(response, fixed terms, random terms as (expression, grouping)) of an lme4 formula
    made of ``+``-separated terms (no ``||``): what the adapters need to re-express it."""
    lhs, rhs = (s.strip() for s in formula.split("~", 1))
    terms, depth, cur = [], 0, ""
    for ch in rhs:
        depth += (ch == "(") - (ch == ")")
        if ch == "+" and depth == 0:
            terms.append(cur.strip())
            cur = ""
        else:
            cur += ch
    terms.append(cur.strip())
    fixed, random = [], []
    for t in terms:
        m = re.fullmatch(r"\((.+)\|(.+)\)", t)
        if m:
            random.append((m.group(1).strip(), m.group(2).strip()))
        else:
            fixed.append(t)
    return lhs, fixed, random


def as_factors(workload, data, categorical: bool = False):
    """``data`` with the workload's factor columns as strings (or pandas Categoricals with
    the workload's level order when ``categorical``)."""
    import pandas as pd

    data = data.copy()
    for col in workload.factors:
        labels = data[col].astype(str)
        if categorical:
            levels = workload.levels.get(col)
            data[col] = pd.Categorical(labels, categories=levels) if levels else labels.astype("category")
        else:
            data[col] = labels
    return data

"""The lecture's data sets and lme4's classic examples, bundled as gzipped CSV.

``load(name)`` returns a DataFrame exactly as the CSV holds it; factors stay as their
labels (mmfast builds factors with sorted levels, as the reference fits do).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from ..errors import DataError

__all__ = ["load", "names"]


def names() -> list[str]:
    """Names of the bundled data sets."""
    root = resources.files(__package__) / "data"
    return sorted(p.name[: -len(".csv.gz")] for p in root.iterdir() if p.name.endswith(".csv.gz"))


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set by name (``"ex1"``, ``"sleepstudy"``, ``"InstEval"``, ...)."""
    available = names()
    if name not in available:
        lower = {n.lower(): n for n in available}
        if name.lower() not in lower:
            raise DataError(f"unknown data set {name!r}; available: {', '.join(available)}")
        name = lower[name.lower()]
    with (resources.files(__package__) / "data" / f"{name}.csv.gz").open("rb") as fh:
        return pd.read_csv(fh, compression="gzip")

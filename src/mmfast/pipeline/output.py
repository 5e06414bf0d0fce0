"""Resumable results on disk: a Parquet dataset written one finished chunk at a time.

``output="results.parquet"`` is a directory of part files (``pandas.read_parquet`` and
pyarrow read it as one table).  Each chunk of finished groups becomes one part, written
to a hidden temporary name and renamed into place, so a run killed at any moment leaves
only complete parts.  Started again with the same arguments, ``fit_many`` reads the groups
already there and fits only the others: every group ends up exactly once.  The call's
formula, ``by`` and REML flag are stored in each part's metadata, and a directory
written by a different call is refused rather than mixed.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["ResultStore"]

_META_KEY = b"mmfast.fit_many"


class ResultStore:
    """A directory of Parquet parts holding tidy ``fit_many`` rows."""

    def __init__(self, path, by: list[str], signature: dict):
        import pyarrow  # noqa: F401 - fail early with a clear message if it is missing

        self.path = Path(path)
        self.by = list(by)
        self.signature = dict(signature)
        if self.path.exists() and not self.path.is_dir():
            raise FileExistsError(f"output {str(self.path)!r} exists and is not a fit_many results "
                                  "directory: choose another path")
        self.path.mkdir(parents=True, exist_ok=True)
        self.schema = None
        self._check_signature()

    # --- reading ---------------------------------------------------------------------------
    def parts(self) -> list[Path]:
        return sorted(p for p in self.path.glob("part-*.parquet") if p.is_file())

    def _check_signature(self) -> None:
        import pyarrow.parquet as pq

        parts = self.parts()
        if not parts:
            return
        meta = pq.read_schema(parts[0]).metadata or {}
        theirs = json.loads(meta.get(_META_KEY, b"{}").decode())
        if theirs != self.signature:
            raise ValueError(
                f"output {str(self.path)!r} holds results of another fit_many call "
                f"({theirs}); this call is {self.signature}: use a new output path")

    def read(self, columns: list[str] | None = None) -> pd.DataFrame | None:
        """Every row written so far (None if nothing was)."""
        parts = self.parts()
        if not parts:
            return None
        import pyarrow.parquet as pq

        tables = [pq.read_table(p, columns=columns) for p in parts]
        import pyarrow as pa

        return pa.concat_tables(tables, promote_options="default").to_pandas()

    def done(self, keys: pd.DataFrame) -> np.ndarray:
        """Which of the groups in ``keys`` already have rows here (bool per group)."""
        have = self.read(columns=self.by)
        if have is None or not len(have):
            return np.zeros(len(keys), dtype=bool)
        return _key_index(keys, self.by).isin(_key_index(have.drop_duplicates(), self.by))

    # --- writing ---------------------------------------------------------------------------
    def write(self, frame: pd.DataFrame) -> None:
        """One part, atomically (temporary name, then rename)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not len(frame):
            return
        if self.schema is None:
            schema = pa.Schema.from_pandas(frame, preserve_index=False)
            meta = dict(schema.metadata or {})
            meta[_META_KEY] = json.dumps(self.signature).encode()
            self.schema = schema.with_metadata(meta)
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        name = f"part-{uuid.uuid4().hex}.parquet"
        tmp = self.path / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, self.path / name)


def _key_index(frame: pd.DataFrame, by: list[str]) -> pd.Index:
    """The groups' keys as one index (plain values, so dtypes read back from Parquet compare)."""
    cols = [pd.Series(frame[c].to_numpy(dtype=object)) for c in by]
    if len(by) == 1:
        return pd.Index(cols[0])
    return pd.MultiIndex.from_arrays(cols)

"""Resumable results on disk: a Parquet dataset written one finished chunk at a time.

``output="results.parquet"`` is a directory of part files (``pandas.read_parquet`` and
pyarrow read it as one table).  Each chunk of finished groups becomes one part, written
to a hidden temporary name and renamed into place, so a run killed at any moment leaves
only complete parts.  Started again with the same arguments, ``fit_many`` reads the groups
already there and fits only the others: every group ends up exactly once.  The call's
formula, ``by`` and REML flag are stored in each part's metadata, and a directory
written by a different call is refused rather than mixed.

Each part also stores, per group, a 64-bit hash of the group's rows in the columns the model
uses (array weights and offsets are such columns): a resumed run whose data changed for a
group already on disk is refused (``DataError`` naming the groups) rather than returning
stale rows; groups not yet on disk may be new.  A part that cannot be read (truncated,
corrupt) is named in the error.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["ResultStore", "group_hashes"]

_META_KEY = b"mmfast.fit_many"
_HASH_KEY = b"mmfast.group_hashes"  # JSON list: one hash per group, in the part's group order
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9))


def group_hashes(data: pd.DataFrame, columns: list[str], gid: np.ndarray, ngroups: int) -> np.ndarray:
    """A 64-bit hash per group of its rows' values in ``columns``, in row order (vectorised:
    pandas' row hashes, mixed with the row's position in its group, summed per group)."""
    rows = (
        pd.util.hash_pandas_object(data[list(columns)], index=False).to_numpy(np.uint64)
        if columns
        else np.zeros(len(data), dtype=np.uint64)
    )
    ok = gid >= 0
    g, h = gid[ok], rows[ok]
    order = np.argsort(g, kind="stable")
    g, h = g[order], h[order]
    sizes = np.bincount(g, minlength=ngroups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = (np.arange(len(g)) - starts[g]).astype(np.uint64)
    with np.errstate(over="ignore"):
        mixed = (h ^ (pos * _MIX[0])) * _MIX[1]
        out = np.zeros(ngroups, dtype=np.uint64)
        nz = sizes > 0
        if nz.any():
            out[nz] = np.add.reduceat(mixed, starts[nz])
        out = out ^ (sizes.astype(np.uint64) * _MIX[0])
    return out


class ResultStore:
    """A directory of Parquet parts holding tidy ``fit_many`` rows."""

    def __init__(self, path, by: list[str], signature: dict):
        import pyarrow  # noqa: F401 - fail early with a clear message if it is missing

        self.path = Path(path)
        self.by = list(by)
        self.signature = dict(signature)
        if self.path.exists() and not self.path.is_dir():
            raise DataError(
                f"output {str(self.path)!r} exists and is not a fit_many results directory: choose another path"
            )
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
        meta = _read(parts[0], pq.read_schema).metadata or {}
        theirs = json.loads(meta.get(_META_KEY, b"{}").decode())
        if theirs != self.signature:
            raise DataError(
                f"output {str(self.path)!r} holds results of another fit_many call "
                f"({theirs}); this call is {self.signature}: use a new output path"
            )

    def read(self, columns: list[str] | None = None) -> pd.DataFrame | None:
        """Every row written so far (None if nothing was)."""
        parts = self.parts()
        if not parts:
            return None
        import pyarrow.parquet as pq

        tables = [_read(p, pq.read_table, columns=columns) for p in parts]
        import pyarrow as pa

        return pa.concat_tables(tables, promote_options="default").to_pandas()

    def done(self, keys: pd.DataFrame, hashes: np.ndarray | None = None) -> np.ndarray:
        """Which of the groups in ``keys`` already have rows here (bool per group); with
        ``hashes`` (``group_hashes`` of this call's data), a stored group whose hash differs
        is an error: its rows were fitted to other data."""
        import pyarrow.parquet as pq

        parts = self.parts()
        if not parts:
            return np.zeros(len(keys), dtype=bool)
        frames, stored = [], []
        for p in parts:
            table = _read(p, pq.read_table, columns=self.by)
            have = table.to_pandas().drop_duplicates()
            frames.append(have)
            if hashes is not None:
                meta = table.schema.metadata or {}
                h = json.loads(meta.get(_HASH_KEY, b"null").decode())
                if h is None or len(h) != len(have):
                    raise DataError(
                        f"output part {str(p)!r} has no data hashes (written by an "
                        "older mmfast?): use a new output path"
                    )
                stored.append(np.array([int(x, 16) for x in h], dtype=np.uint64))
        have = pd.concat(frames, ignore_index=True)
        index = _key_index(keys, self.by)
        pos = index.get_indexer(_key_index(have, self.by))
        if hashes is not None:
            old = np.concatenate(stored)
            changed = (pos >= 0) & (old != hashes[np.maximum(pos, 0)])
            if changed.any():
                names = [str(k) for k in index[pos[changed]][:5]]
                raise DataError(
                    f"the data changed since output {str(self.path)!r} was written: "
                    f"{int(changed.sum())} group(s) already there were fitted to other values "
                    f"({', '.join(names)}{', ...' if changed.sum() > 5 else ''}); use a new "
                    "output path, or delete it to fit everything again"
                )
        out = np.zeros(len(keys), dtype=bool)
        out[pos[pos >= 0]] = True
        return out

    # --- writing ---------------------------------------------------------------------------
    def write(self, frame: pd.DataFrame, hashes: np.ndarray | None = None) -> None:
        """One part, atomically (temporary name, then rename); ``hashes``: one per group of
        ``frame``, in the order the groups first appear in it."""
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
        if hashes is not None:
            meta = dict(self.schema.metadata)
            meta[_HASH_KEY] = json.dumps([format(int(h), "016x") for h in hashes]).encode()
            table = table.replace_schema_metadata(meta)
        name = f"part-{uuid.uuid4().hex}.parquet"
        tmp = self.path / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, self.path / name)


def _read(path: Path, reader, **kwargs):
    """``reader(path)``, a failure naming the part (a truncated or corrupt file)."""
    try:
        return reader(path, **kwargs)
    except Exception as exc:  # noqa: BLE001 - pyarrow's errors vary with the damage
        raise DataError(
            f"output part {str(path)!r} cannot be read ({type(exc).__name__}: "
            f"{exc}); it is truncated or corrupt: delete it and run again (its "
            "groups will be fitted again)"
        ) from exc


def _key_index(frame: pd.DataFrame, by: list[str]) -> pd.Index:
    """The groups' keys as one index (plain values, so dtypes read back from Parquet compare)."""
    cols = [pd.Series(frame[c].to_numpy(dtype=object)) for c in by]
    if len(by) == 1:
        return pd.Index(cols[0])
    return pd.MultiIndex.from_arrays(cols)

"""``fit_many(cells, formula, by="gene", counts=matrix, family="negative_binomial")``: genes given
as a genes x cells count matrix beside a table of cells.

Every gene shares the cells' design, so it is built once (``templates.build_template`` on the
complete cells) and the count matrix is cut into tasks of ``nb.NB_CHUNK`` genes: nothing is
split, hashed or grouped per (gene, cell) row.  Resumable output as for long data: the parts
store one hash per gene of its counts and the cells' design columns.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ..errors import ArgumentError, DataError
from .nb import check_counts_matrix, nb_family_signature, nb_model_tasks
from .output import ResultStore

__all__ = ["fit_counts"]


def fit_counts(
    data, formula, parsed, by, counts, n_jobs, backend, output, progress, kwargs, family="negative_binomial"
) -> pd.DataFrame:
    """The counts-matrix form of ``fit_many`` (arguments as there, already checked)."""
    from .api import _Spec, _collect

    if len(by) != 1:
        raise ArgumentError(f"with counts=, by names the result's gene column: one name, not {by}")
    Y, names = check_counts_matrix(counts, len(data))
    resp = parsed.response.strip().strip("`")
    if not resp.isidentifier():
        raise DataError(f"with counts=, the response must be a plain name (it names the counts), not {resp!r}")
    if resp in data.columns:
        raise DataError(f"with counts=, the response '{resp}' names the count matrix: it must not be a column")
    data = data.assign(**{resp: 1.0})  # a placeholder: the template replaces it
    spec = _Spec(parsed, data, by, False, None, kwargs, family)
    complete = data[spec.design_cols].notna().all(axis=1).to_numpy()
    rows = np.flatnonzero(complete)
    if not rows.size:
        raise DataError("no cell has all the design's values")
    template = spec.template(data, rows)
    keys = pd.DataFrame({by[0]: names})
    if keys[by[0]].duplicated().any():
        raise DataError("counts has duplicated gene names")
    store, pending = None, np.ones(len(keys), dtype=bool)
    hashes = None
    if output is not None:
        signature = {"formula": formula, "by": by, "family": nb_family_signature(family), "counts": "matrix",
                     "data": "gene-hash-1", "options": {k: repr(v) for k, v in sorted(kwargs.items())}}  # fmt: skip
        store = ResultStore(output, by, signature)
        hashes = _gene_hashes(Y, data[spec.design_cols].iloc[rows])
        pending = ~store.done(keys, hashes)
    todo = np.flatnonzero(pending)
    tasks = nb_model_tasks(template, family, np.ascontiguousarray(Y[np.ix_(todo, rows)]), todo) if todo.size else []
    return _collect([], tasks, n_jobs, backend, progress, keys, by, store, hashes, pending, True)


def _gene_hashes(Y: np.ndarray, design: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per gene of its counts and of the cells' design values."""
    base = hashlib.blake2b(pd.util.hash_pandas_object(design, index=False).to_numpy().tobytes(), digest_size=8)
    out = np.empty(len(Y), dtype=np.uint64)
    for g, row in enumerate(Y):
        h = base.copy()
        h.update(np.ascontiguousarray(row).tobytes())
        out[g] = np.frombuffer(h.digest(), dtype=np.uint64)[0]
    return out

"""Split the data by ``by`` and find the groups that share a design, without a loop over groups.

Two groups share a design when, after dropping incomplete rows and putting their rows in a
canonical order, every design column agrees row by row: the fixed-effects variables (and
weights/offset columns) by value, the grouping-factor columns up to a renaming of levels
that keeps their order (animals 1..12 in one gene and 13..24 in the next give the same
integer codes).  Then the model matrices, the random-effects structure and the cross-
products of X and Z are the same and only the response changes.

Rows are first taken in data order; if that does not make all same-sized groups share one
design, rows are sorted within each group by a hash of their design values (the model does
not depend on the row order) and grouping columns are replaced by their within-group ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["GroupPlan", "DesignClass", "plan_groups", "group_keys"]


@dataclass
class DesignClass:
    """Groups with one design: their indices and their rows (canonical order) in the data."""

    groups: np.ndarray  # (G_c,) group indices, increasing
    rows: np.ndarray  # (G_c, n) row positions into the data, canonical order


@dataclass
class GroupPlan:
    keys: pd.DataFrame  # one row per group, the by columns, sorted
    classes: list[DesignClass] = field(default_factory=list)
    empty: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # no rows left

    @property
    def ngroups(self) -> int:
        return len(self.keys)


def group_keys(data: pd.DataFrame, by: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Group index of every row (-1: a missing key) and the sorted key table."""
    codes, uniques = [], []
    for col in by:
        c, u = pd.factorize(data[col], sort=True, use_na_sentinel=True)
        codes.append(c.astype(np.int64))
        uniques.append(u)
    if len(by) == 1:
        gid, keycodes = codes[0], [np.arange(len(uniques[0]))]
    else:
        missing = np.any(np.stack(codes) < 0, axis=0)
        key = np.zeros(len(data), dtype=np.int64)
        for c, u in zip(codes, uniques):
            key = key * max(len(u), 1) + np.maximum(c, 0)
        uniq, gid = np.unique(np.where(missing, -1, key), return_inverse=True)
        if missing.any():
            gid, uniq = gid - 1, uniq[1:]
        keycodes, rest = [], uniq
        for u in reversed(uniques):
            keycodes.append(rest % max(len(u), 1))
            rest = rest // max(len(u), 1)
        keycodes = keycodes[::-1]
        gid = np.where(missing, -1, gid)
    keys = pd.DataFrame(
        {col: pd.Series(u).take(kc).reset_index(drop=True) for col, u, kc in zip(by, uniques, keycodes)}
    )
    for col in by:  # keep the column's dtype (categories included)
        if isinstance(data[col].dtype, pd.CategoricalDtype):
            keys[col] = pd.Categorical(keys[col], categories=data[col].cat.categories, ordered=data[col].cat.ordered)
    return gid.astype(np.int64), keys


def _within_group_rank(values: pd.Series, gid: np.ndarray) -> np.ndarray:
    """Dense rank of each row's value among its group's values (sorted as factor levels are)."""
    v, uniq = pd.factorize(values, sort=True)
    nv = max(len(uniq), 1)
    key = gid * nv + v
    ukeys, inv = np.unique(key, return_inverse=True)
    ugroup = ukeys // nv
    first = np.searchsorted(ugroup, ugroup, side="left")
    return (np.arange(len(ukeys)) - first)[inv]


def _row_hash(data: pd.DataFrame, cols: list[str], gid: np.ndarray, rank_cols: list[str]) -> np.ndarray:
    if not cols:
        return np.zeros(len(data), dtype=np.uint64)
    frame = {}
    for c in cols:
        frame[c] = _within_group_rank(data[c], gid) if c in rank_cols else data[c]
    return pd.util.hash_pandas_object(pd.DataFrame(frame), index=False).to_numpy()


def _unique_rows(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first index, inverse) of the distinct rows of a uint64 matrix.

    Rows are first reduced to one 64-bit key (a polynomial in the row's hashes, mod 2^64);
    the classes this gives are checked element by element, and on a collision the exact
    (slower) row-wise unique is used instead.
    """
    mult = np.uint64(0x9E3779B97F4A7C15)
    key = np.zeros(H.shape[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(H.shape[1]):
            key = key * mult + H[:, j]
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    inv = inv.ravel()
    if np.array_equal(H[first[inv]], H):
        return first, inv
    _, first, inv = np.unique(H, axis=0, return_index=True, return_inverse=True)
    return first, inv.ravel()


def _classes(gid: np.ndarray, order: np.ndarray, h: np.ndarray, sizes: np.ndarray):
    """Design classes from the rows in ``order`` (grouped by gid): equal hash sequences."""
    starts = np.concatenate([[0], np.cumsum(sizes)])
    out = []
    for s in np.unique(sizes[sizes > 0]):
        groups = np.flatnonzero(sizes == s)
        pos = starts[groups][:, None] + np.arange(s)  # into `order`
        rows = order[pos]
        first, inv = _unique_rows(h[rows])
        for c in np.argsort(first, kind="stable"):
            sel = inv == c
            out.append(DesignClass(groups=groups[sel], rows=rows[sel]))
    return out


def plan_groups(
    data: pd.DataFrame, by: list[str], design_cols: list[str], grouping_cols: list[str], complete: np.ndarray
) -> GroupPlan:
    """Group index, design classes and empty groups (see the module docstring)."""
    gid_all, keys = group_keys(data, by)
    keep = complete & (gid_all >= 0)
    G = len(keys)
    sizes = np.bincount(gid_all[keep], minlength=G)
    plan = GroupPlan(keys=keys, empty=np.flatnonzero(sizes == 0))
    idx = np.flatnonzero(keep)
    gid = gid_all[idx]
    sub = data.iloc[idx] if len(idx) < len(data) else data
    # first try: data order, raw values
    h = _row_hash(sub, design_cols, gid, [])
    order = np.argsort(gid, kind="stable") if np.any(np.diff(gid) < 0) else np.arange(len(gid))
    classes = _classes(gid, order, h, sizes)
    if len(classes) > len(np.unique(sizes[sizes > 0])):
        h2 = _row_hash(sub, design_cols, gid, grouping_cols)
        order2 = np.lexsort((h2, gid))
        classes2 = _classes(gid, order2, h2, sizes)
        if len(classes2) < len(classes):
            classes = classes2
    for c in classes:  # positions in `sub` -> positions in `data`
        c.rows = idx[c.rows]
    plan.classes = classes
    return plan

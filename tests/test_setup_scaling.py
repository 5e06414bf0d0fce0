"""The model set-up's O(n) paths (issue 19): the block cross-products against a dense Z built
from the codes, pair coding of int32 and int64 codes against ``np.unique``, the row-block QR
of the rank check against one QR of the whole matrix, and factor coding of categorical, text,
integer and float grouping columns against R's sorted-level rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmfast._ext._pairs import add_pair_products, dense_codes, pair_codes
from mmfast.design.blocks import build_blocks, build_Z, zt_times
from mmfast.design.remat import build_terms, grouping_factor, level_label, level_labels
from mmfast.formula import parse_formula
from mmfast.model import frame as frame_mod


def _terms(formula: str, data: pd.DataFrame):
    return build_terms(parse_formula(formula).bars, data, "ignore", "ignore", "ignore")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(19)
    n = 700
    subj = rng.integers(0, 40, n)
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.normal(size=n),
            "site": pd.Categorical((subj // 8).astype(str)),
            "subj": subj,
            "item": rng.choice(["a", "b", "c", "d", "e", "f"], n),
            "cond": pd.Categorical(rng.choice(["u", "v", "w"], n)),
        }
    )


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ 1 + (1 | site) + (1 | subj)",  # nested scalar terms: the tree kernel's case
        "y ~ 1 + (1 + x | subj) + (1 | item)",  # crossed, a 2 x 2 block
        "y ~ 1 + (0 + cond | item) + (1 | site:subj)",  # indicator columns, an interaction factor
        "y ~ 1 + (1 + x | subj)",  # one term: its own path, W read in column-major order
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_blocks_equal_the_dense_cross_products(data, formula, weighted):
    terms = _terms(formula, data)
    q = 0
    for t in terms:
        t.offset, q = q, q + t.q
    n = len(data)
    rng = np.random.default_rng(3)
    sqrtw = rng.uniform(0.5, 2.0, n) if weighted else None
    W = np.asfortranarray(np.column_stack([np.ones(n), data["x"], data["y"]]))
    Ww = W if sqrtw is None else W * sqrtw[:, None]
    b = build_blocks(terms, Ww, sqrtw)
    Z = build_Z(terms, n, sqrtw).toarray()
    ZtZ = Z.T @ Z
    for r, c, o0, o1 in zip(b.pair_row, b.pair_col, b.pair_vofs[:-1], b.pair_vofs[1:]):
        r0, c0 = b.blk_start[r], b.blk_start[c]
        pr, pc = b.term_p[b.blk_term[r]], b.term_p[b.blk_term[c]]
        np.testing.assert_allclose(b.V[o0:o1].reshape(pr, pc), ZtZ[r0 : r0 + pr, c0 : c0 + pc], atol=1e-12)
    # every nonzero block of Z'Z is one of the pairs: their squares sum to ||lower(Z'Z)||
    assert np.isclose(
        np.sum(b.V**2) * 2
        - sum(
            np.sum(b.V[o0:o1] ** 2)
            for r, c, o0, o1 in zip(b.pair_row, b.pair_col, b.pair_vofs[:-1], b.pair_vofs[1:])
            if r == c
        ),
        np.sum(ZtZ**2),
    )
    np.testing.assert_allclose(b.ZtW, Z.T @ Ww, atol=1e-12)
    np.testing.assert_allclose(zt_times(terms, np.ascontiguousarray(Ww), sqrtw), Z.T @ Ww, atol=1e-12)
    assert b.row_pair.dtype == np.int32


def test_add_pair_products_checks_its_arguments():
    V = np.zeros(4)
    vofs = np.array([0, 4], dtype=np.int64)
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match="out of range"):
        add_pair_products(V, vofs, np.array([0, 1, 0], dtype=np.int32), X, X)
    add_pair_products(V, vofs, np.zeros(3, dtype=np.int64), X, X)
    np.testing.assert_array_equal(V, [3.0, 3.0, 3.0, 3.0])


@pytest.mark.parametrize(
    "dtypes", [(np.int32, np.int32), (np.int64, np.int64), (np.int32, np.int64), (np.int8, np.uint16)]
)
def test_pair_codes_of_any_integer_width(dtypes):
    rng = np.random.default_rng(11)
    na, nb, n = 30, 50, 2000
    a, b = rng.integers(0, na, n), rng.integers(0, nb, n)
    keys_ref, codes_ref = np.unique(a * nb + b, return_inverse=True)
    codes, keys = pair_codes(a.astype(dtypes[0]), b.astype(dtypes[1]), na, nb)
    np.testing.assert_array_equal(keys, keys_ref)
    np.testing.assert_array_equal(codes, codes_ref.ravel())


def test_rank_check_by_row_blocks_matches_one_qr(monkeypatch):
    rng = np.random.default_rng(5)
    n = 1000
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    X = np.column_stack([np.ones(n), x1, x2, x1 - 2 * x2 + 1e-12 * rng.normal(size=n), np.zeros(n), x1 * x2])
    scale = np.sqrt((X**2).sum(axis=0))
    cols = np.flatnonzero(scale > 0)
    monkeypatch.setattr(frame_mod, "RANK_CHUNK", 97)  # 11 blocks, the last one short
    good = cols[[0, 1, 2, 4]]  # without the near-dependent column R is well conditioned
    R_one = np.linalg.qr(X[:, good] / scale[good], mode="r")
    R_blocks = frame_mod._stacked_r(X, good, scale[good])
    np.testing.assert_allclose(np.abs(np.diag(R_blocks)), np.abs(np.diag(R_one)), rtol=1e-12)
    R_near = frame_mod._stacked_r(X, cols, scale[cols])
    assert abs(R_near[3, 3]) < 1e-11 and np.all(np.abs(np.diag(R_near))[[0, 1, 2, 4]] > 0.9)
    keep = frame_mod.keep_full_rank(X, [f"c{j}" for j in range(X.shape[1])])
    np.testing.assert_array_equal(keep, [0, 1, 2, 5])  # the near-dependent and the zero column dropped


def test_rank_check_of_a_small_matrix_matches_the_row_block_path(monkeypatch):
    rng = np.random.default_rng(8)
    n = 300
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    g = np.eye(4)[rng.integers(0, 4, n)]
    cases = [
        np.column_stack([np.ones(n), x1, x2]),
        np.column_stack([np.ones(n), x1, 3 * x1 - 2]),  # exactly dependent
        np.column_stack([np.ones(n), g, x1]),  # the intercept is the sum of the indicators
        np.column_stack([np.ones(n), x1, x1 + 1e-10 * x2, x2]),  # dependent within the tolerance
    ]
    small = [frame_mod.keep_full_rank(X, [""] * X.shape[1]) for X in cases]  # one QR
    monkeypatch.setattr(frame_mod, "RANK_CHUNK", 64)  # the same matrices by blocks of rows
    blocked = [frame_mod.keep_full_rank(X, [""] * X.shape[1]) for X in cases]
    for a, b in zip(small, blocked):
        np.testing.assert_array_equal(a, b)
    assert [list(k) for k in small] == [[0, 1, 2], [0, 1], [0, 1, 2, 3, 5], [0, 1, 3]]


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32])
def test_integer_ids_coded_as_sorted_levels(dtype):
    rng = np.random.default_rng(2)
    info = np.iinfo(dtype)
    lo = max(int(info.min), -100)
    for ids in [
        rng.integers(lo, min(int(info.max), 100) + 1, 500).astype(dtype),
        np.array([info.max, info.min, 0], dtype=dtype),
    ]:
        codes_ref, uniq = pd.factorize(ids, sort=True)
        f = grouping_factor(pd.DataFrame({"g": ids}), "g")
        np.testing.assert_array_equal(f.codes, codes_ref)
        assert f.codes.dtype == np.int32 and f.levels == [str(v) for v in uniq]
    # ids spread far beyond their number are left to hashing; extremes do not overflow
    assert dense_codes(np.array([0, 10**9], dtype=np.int64), 1000) is None
    assert dense_codes(np.array([-(2**63), 2**63 - 1], dtype=np.int64), 1000) is None
    assert dense_codes(np.zeros(0, dtype=np.int64), 10) is None


def test_rank_check_with_fewer_rows_than_columns():
    X = np.arange(6.0).reshape(2, 3) + 1.0
    assert list(frame_mod.keep_full_rank(X, ["a", "b", "c"])) == [0, 1]


@pytest.mark.parametrize(
    "column, levels",
    [
        (pd.Categorical(["b", "a", "b", "c"], categories=["c", "b", "a", "z"]), ["c", "b", "a"]),  # unused 'z' dropped
        (np.array(["b", "a", "b", "c"]), ["a", "b", "c"]),
        (np.array([3, 1, 3, 2]), ["1", "2", "3"]),
        (np.array([3.0, 1.0, 3.0, 2.5]), ["1", "2.5", "3"]),
        (pd.Categorical([3.0, 1.0, 3.0, 2.0]), ["1", "2", "3"]),
        (pd.array(["b", "a", "b", "c"], dtype="string"), ["a", "b", "c"]),
    ],
)
def test_factor_coding_of_column_types(column, levels):
    f = grouping_factor(pd.DataFrame({"g": column}), "g")
    assert f.levels == levels
    assert f.codes.dtype == np.int32
    labels = np.asarray(pd.Series(column).map(level_label).astype(str))
    np.testing.assert_array_equal(np.asarray(levels)[f.codes], labels)


def test_level_labels_match_level_label_one_by_one():
    cases = [
        pd.Index(["x", "y"]),
        pd.Index([1, 20]),
        np.array([1.0, 2.5]),
        pd.Index([True, False]),
        pd.Index(["a", 1.0], dtype=object),
        np.array(["p", "q"]),
    ]
    for values in cases:
        assert level_labels(values) == [level_label(v) for v in values]


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_code_counts_equal_bincount_and_skip_missing(dtype):
    from mmfast._ext._pairs import code_counts

    codes = np.array([2, -1, 0, 2, 2, -1, 4], dtype=dtype)
    np.testing.assert_array_equal(code_counts(codes, 6), [1, 0, 3, 0, 1, 0])
    with pytest.raises(ValueError, match="out of range"):
        code_counts(codes, 4)


@pytest.mark.parametrize("table_type, code_type", [(np.int32, np.int32), (np.int32, np.int64), (np.int64, np.int32)])
def test_gather_codes_is_a_checked_take(table_type, code_type):
    from mmfast._ext._pairs import gather_codes

    table = np.array([7, 3, 9], dtype=table_type)
    codes = np.array([2, 0, 0, 1], dtype=code_type)
    out = np.empty(4, dtype=table_type)
    gather_codes(out, table, codes)
    np.testing.assert_array_equal(out, table[codes])
    with pytest.raises(ValueError, match="out of range"):
        gather_codes(out, table, np.array([0, 3, 0, 0], dtype=code_type))

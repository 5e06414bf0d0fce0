"""The per-fit caches and shortcuts of issue 15's overhead work give what the full computation
gives: θ layouts built from shared per-size arrays, the moment start's collinearity pre-check,
the shared default controls and the LAPACK thin QR."""

import numpy as np
import pytest

import mmfast
from mmfast.design.theta import LowerCholesky, ThetaLayout, _layout_arrays
from mmfast.model.control import GlmmControl, LmmControl, check_control
from mmfast.model.fixed_basis import solve_upper, thin_qr
from mmfast.model.frame import model_frame
from mmfast.model.start import _independent_columns


@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_lower_cholesky_arrays(p):
    """lme4's θ order: T's lower triangle column by column; bounds 0 on the diagonal only;
    start T = I; the arrays are shared between terms of one size and read-only."""
    a, b = LowerCholesky(p, [f"x{i}" for i in range(p)], "g"), LowerCholesky(p, ["y"] * p, "h")
    rows = [i for j in range(p) for i in range(j, p)]
    cols = [j for j in range(p) for i in range(j, p)]
    assert a.rows.tolist() == rows and a.cols.tolist() == cols
    assert a.flat_pos.tolist() == [r + c * p for r, c in zip(rows, cols)]
    assert a.lower.tolist() == [0.0 if r == c else -np.inf for r, c in zip(rows, cols)]
    assert a.start.tolist() == [1.0 if r == c else 0.0 for r, c in zip(rows, cols)]
    assert a.ntheta == p * (p + 1) // 2 and a.rows is b.rows
    with pytest.raises(ValueError):
        a.lower[0] = 1.0
    assert a.names[0] == "g.x0" and b.names[0] == "h.y"  # names stay per term


def test_layout_from_cache_equals_fresh_build():
    """Two models with the same term sizes share the layout arrays; they equal a fresh build."""
    sleep = mmfast.datasets.load("sleepstudy")
    f1 = model_frame("Reaction ~ Days + (Days | Subject) + (1 | Days)", sleep)
    f2 = model_frame("Reaction ~ 1 + (Days | Subject) + (1 | Days)", sleep)
    l1, l2 = ThetaLayout(f1.terms), ThetaLayout(f2.terms)
    fresh = _layout_arrays([t.param for t in f1.terms])
    offsets, ntheta, size, slices, lower, start, diagonal, pos, linear, nentries = fresh
    assert l1.ntheta == ntheta == 4 and l1.size == size == 5 and l1.nentries == nentries == 4
    assert l1.slices == list(slices) == [slice(0, 3), slice(3, 4)]
    for got, want in [(l1.offsets, offsets), (l1.lower, lower), (l1.start, start), (l1.pos, pos)]:
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(l1.diagonal, diagonal)
    assert l1.pos.tolist() == [0, 1, 3, 4]  # T_1 2 x 2 column-major (entries 0, 1, 3), then T_2
    assert l1.pos is l2.pos and l1.slices is not l2.slices  # arrays shared, the list per layout
    assert l1.names == ["Subject.(Intercept)", "Subject.Days.(Intercept)", "Subject.Days", "Days.(Intercept)"]
    with pytest.raises(ValueError):
        l1.start[0] = 2.0


def test_independent_columns_precheck_agrees_with_pivoted_qr():
    """The eigenvalue pre-check only answers "independent" where the pivoted-QR rank rule does."""
    from scipy.linalg import qr

    def qr_rule(X):  # the rank rule of _independent_columns, always by the QR
        R = qr(X, mode="r", pivoting=True)[0]
        d = np.abs(np.diag(R))
        return int(np.sum(d > 1e-9 * max(d[0], 1e-300)))

    rng = np.random.default_rng(1)
    g = rng.integers(0, 3, 60)
    ind = (g[:, None] == np.arange(3)).astype(float)
    x = rng.normal(size=60)
    independent = np.column_stack([np.ones(60), x])
    collinear = np.column_stack([np.ones(60), ind])  # intercept = sum of the indicators
    nearly = np.column_stack([x, x + 1e-7 * rng.normal(size=60)])  # rank 2 by the rule, ill-conditioned
    assert _independent_columns(independent) is None and qr_rule(independent) == 2
    keep, pinv = _independent_columns(collinear)
    assert len(keep) == qr_rule(collinear) == 3
    np.testing.assert_allclose(collinear[:, keep] @ np.linalg.pinv(pinv), collinear, atol=1e-12)
    assert qr_rule(nearly) == 2 and _independent_columns(nearly) is None


def test_default_controls_shared_and_equal():
    """The default control is built once (frozen, so sharing it is safe) and equals a new one."""
    for kind in (LmmControl, GlmmControl):
        a, b = check_control(None, kind), check_control(None, kind)
        assert a is b and a == kind()
    mine = LmmControl(dense_schur_max=10)
    assert check_control(mine, LmmControl) is mine


def test_thin_qr_and_solve_upper():
    """X = QR with Q orthonormal and R upper triangular (exact zeros below the diagonal)."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 4))
    Q, R = thin_qr(X)
    np.testing.assert_allclose(Q @ R, X, atol=1e-12)
    np.testing.assert_allclose(Q.T @ Q, np.eye(4), atol=1e-12)
    assert np.all(R[np.tril_indices(4, -1)] == 0.0)
    b = rng.normal(size=4)
    np.testing.assert_allclose(R @ solve_upper(R, b), b, atol=1e-12)

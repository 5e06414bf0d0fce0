"""θ's layout (design.theta) against lme4's: names, bounds, start and the scatter into Λ.

tests/reference/theta_layout.json.gz is written by tests/oracle/theta_layout.R: per formula
lme4's ``names(getME(m, "theta"))``, ``reTrms$lower`` and ``reTrms$theta`` (the start), and
Λ = t(Lambdat) with θ = (1.5, 2.5, ...) scattered by lme4's ``Lind``.
"""

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import mmfast
from mmfast.design.theta import LowerCholesky, ThetaLayout
from mmfast.resample.simulate import lambda_times

REF = json.load(gzip.open(Path(__file__).parent / "reference" / "theta_layout.json.gz"))
CASES = sorted(k for k in REF if not k.startswith("_"))


def _list(v):
    return list(v) if isinstance(v, list) else [v]  # jsonlite unboxes length-1 vectors


@pytest.fixture(scope="module")
def models():
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in CASES:
            c = REF[k]
            d = mmfast.datasets.load(c["data"])
            if c["glmm"]:
                out[k] = mmfast.glmer(c["formula"], d, family="binomial")
            else:
                out[k] = mmfast.lmer(c["formula"], d, check_nobs_vs_nre="ignore")
    return out


@pytest.mark.parametrize("case", CASES)
def test_names_bounds_and_start_are_lme4s(models, case):
    ref, m = REF[case], models[case]
    lay = m.layout
    assert lay.names == _list(ref["theta_names"])
    assert m.theta_names == lay.names
    lower = np.array([-np.inf if v is None else v for v in _list(ref["lower"])])
    np.testing.assert_array_equal(lay.lower, lower)
    np.testing.assert_array_equal(lay.start, np.array(_list(ref["start"]), dtype=float))
    # the model's bounds and start (what the optimisers use) are the layout's
    np.testing.assert_array_equal(m.theta_lower, lower)
    np.testing.assert_array_equal(m.theta_start, lay.start)
    assert lay.ntheta == len(lower) == len(m.theta)


@pytest.mark.parametrize("case", CASES)
def test_scatter_into_lambda_is_lme4s(models, case):
    """Λ built from the layout's templates equals lme4's Lambdat (via Lind), transposed."""
    ref, m = REF[case], models[case]
    q = ref["q"]
    expected = np.zeros((q, q))
    expected[_list(ref["lambda_i"]), _list(ref["lambda_j"])] = _list(ref["lambda_x"])
    theta = np.arange(m.layout.ntheta) + 1.5
    lam = lambda_times(m.frame.terms, m.layout.templates(theta), np.eye(q))
    np.testing.assert_array_equal(lam, expected)


@pytest.mark.parametrize("case", CASES)
def test_round_trips(models, case):
    lay = models[case].layout
    rng = np.random.default_rng(15)
    theta = rng.standard_normal(lay.ntheta)
    Ts = lay.templates(theta)
    for T, pm in zip(Ts, lay.params):
        assert T.shape == (pm.p, pm.p)
        assert np.all(np.triu(T, 1) == 0)  # lower triangular
    np.testing.assert_array_equal(lay.from_templates(Ts), theta)
    for k in range(len(lay.params)):
        np.testing.assert_array_equal(lay.template(theta, k), Ts[k])
        np.testing.assert_array_equal(lay.term_theta(theta, k), theta[lay.slices[k]])
    # the flat, column-major concatenation the kernels take holds the same templates
    flat = lay.flat(theta)
    assert flat.shape == (lay.size,)
    np.testing.assert_array_equal(flat[lay.pos], theta)
    ofs = 0
    for T in Ts:
        p = T.shape[0]
        np.testing.assert_array_equal(flat[ofs : ofs + p * p].reshape(p, p, order="F"), T)
        ofs += p * p
    assert ofs == lay.size
    # into a reused buffer (the criterion's path) the result is the same
    out = np.zeros(lay.size)
    lay.flat(-theta, out)
    np.testing.assert_array_equal(lay.flat(theta, out), flat)


def test_lower_is_zero_exactly_on_the_diagonal():
    """lme4's rule: diagonal entries of T bounded below by 0, the rest free; start T = I."""
    pm = LowerCholesky(3, ["(Intercept)", "x", "z"], "g")
    assert pm.ntheta == 6
    np.testing.assert_array_equal(pm.rows, [0, 1, 2, 1, 2, 2])
    np.testing.assert_array_equal(pm.cols, [0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(pm.lower, [0, -np.inf, -np.inf, 0, -np.inf, 0])
    np.testing.assert_array_equal(pm.start, [1, 0, 0, 1, 0, 1])
    np.testing.assert_array_equal(pm.to_template(pm.start), np.eye(3))
    np.testing.assert_array_equal(pm.flat_pos, [0, 1, 2, 4, 5, 8])  # column-major in T
    assert pm.names == ["g.(Intercept)", "g.x.(Intercept)", "g.z.(Intercept)", "g.x", "g.z.x", "g.z"]
    th = np.arange(1.0, 7.0)
    T = pm.to_template(th)
    np.testing.assert_array_equal(T, [[1, 0, 0], [2, 4, 0], [3, 5, 6]])
    np.testing.assert_array_equal(pm.from_template(T + np.triu(np.ones((3, 3)), 1)), th)
    assert [pm.diagonal_position(j) for j in range(3)] == [0, 3, 5]
    np.testing.assert_array_equal(pm.below_positions(0), [1, 2])
    np.testing.assert_array_equal(pm.below_positions(1), [4])
    assert pm.below_positions(2).size == 0


def test_layout_offsets_follow_term_order(models):
    lay = models["vector_and_crossed"].layout
    assert [pm.ntheta for pm in lay.params] == [3, 1]
    np.testing.assert_array_equal(lay.offsets, [0, 3, 4])
    np.testing.assert_array_equal(lay.diagonal, [True, False, True, True])
    assert lay.size == 2 * 2 + 1
    with pytest.raises(ValueError):
        lay.lower[0] = 1.0  # shared by the model: read-only
    assert len(ThetaLayout([])) == 0

"""Issue 15, problem objects: ``with_response(y)``, ``with_fixed(X)``, ``subset(rows)`` build a
new model of the same class through its constructor; each fitted equals ``lmer``/``glmer`` on
the data changed the same way (the reference: a fresh fit from the formula)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mmfast
from mmfast.errors import DataError, FitError
from mmfast.model.subset import subset_frame

SLEEP = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep():
    return mmfast.datasets.load("sleepstudy")


def _same_fit(a, b, rtol=1e-6):
    assert type(a) is type(b)
    np.testing.assert_allclose(a.loglik, b.loglik, rtol=1e-9)
    np.testing.assert_allclose(a.theta, b.theta, rtol=rtol, atol=1e-7)
    np.testing.assert_allclose(a.beta, b.beta, rtol=rtol)
    assert list(a.fixef.index) == list(b.fixef.index)


def test_with_response_is_lmer_on_the_new_response(sleep):
    m = mmfast.lmer(SLEEP, sleep)
    y = np.sqrt(sleep["Reaction"].to_numpy())
    new = m.with_response(y)
    assert not new.fitted_ and new.blocks.V is m.blocks.V  # Z'Z shared, not recomputed
    _same_fit(new.fit(), mmfast.lmer(SLEEP, sleep.assign(Reaction=y)))
    assert m.frame.y[0] == sleep["Reaction"].iloc[0]  # the original is untouched


def test_with_fixed_is_lmer_with_the_new_columns(sleep):
    m = mmfast.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    perm = np.random.default_rng(1).permutation(len(sleep))
    shuffled = sleep.assign(DaysP=sleep["Days"].to_numpy()[perm])
    X = np.column_stack([np.ones(len(sleep)), shuffled["DaysP"].to_numpy(float)])
    got = m.with_fixed(X).fit()
    ref = mmfast.lmer("Reaction ~ DaysP + (1 | Subject)", shuffled)
    np.testing.assert_allclose(got.loglik, ref.loglik, rtol=1e-9)
    np.testing.assert_allclose(got.theta, ref.theta, rtol=1e-6)
    np.testing.assert_allclose(got.beta, ref.beta, rtol=1e-6)
    assert type(got) is mmfast.LinearMixedModel
    with pytest.raises(DataError, match="shape"):
        m.with_fixed(X[:, :1])
    with pytest.raises(FitError, match="rank deficient"):
        m.with_fixed(np.column_stack([X[:, 0], X[:, 0]]))


@pytest.mark.parametrize(
    "formula, column",
    [
        (SLEEP, None),  # rows selected from the design
        ("Reaction ~ D + (1 | Subject)", "D"),  # a level of D disappears: the formula is run again
    ],
)
def test_subset_is_lmer_on_the_rows(sleep, formula, column):
    data = sleep.assign(D=sleep["Days"].astype(str))
    keep = data["Days"].to_numpy() != 0
    m = mmfast.lmer(formula, data)
    assert (subset_frame(m.frame, keep) is None) == (column is not None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = m.subset(keep).fit()
        ref = mmfast.lmer(formula, data[keep])
    _same_fit(got, ref)
    pos = np.flatnonzero(keep)  # positions give the same model as the mask
    np.testing.assert_array_equal(m.subset(pos).frame.X, got.frame.X)
    with pytest.raises(DataError):
        m.subset(keep[:-1])


def test_glmm_with_response_is_glmer_on_the_new_response():
    cbpp = mmfast.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    g = mmfast.glmer(formula, cbpp, family="binomial")
    inc = np.minimum(cbpp["incidence"].to_numpy() + 1, cbpp["size"].to_numpy())
    new = g.with_response(inc).fit()
    ref = mmfast.glmer(formula, cbpp.assign(incidence=inc), family="binomial")
    assert type(new) is type(ref)
    np.testing.assert_allclose(new.loglik, ref.loglik, rtol=1e-7)
    np.testing.assert_allclose(new.beta, ref.beta, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def cbpp():
    return mmfast.datasets.load("cbpp")


CBPP = "cbind(incidence, size - incidence) ~ factor(period) + (1 | herd)"


def test_glmm_subset_is_glmer_on_the_rows(cbpp):
    g = mmfast.glmer(CBPP, cbpp, family="binomial")
    for keep, selected in (
        (cbpp["herd"].to_numpy() != 3, True),  # rows selected from the design
        (cbpp["period"].to_numpy() != 4, False),
    ):  # a period level disappears
        assert (subset_frame(g.frame, keep) is not None) == selected
        got = g.subset(keep).fit()
        ref = mmfast.glmer(CBPP, cbpp[keep], family="binomial")
        assert type(got) is type(ref) and list(got.fixef.index) == list(ref.fixef.index)
        np.testing.assert_allclose(got.loglik, ref.loglik, rtol=1e-9)
        np.testing.assert_allclose(got.beta, ref.beta, rtol=1e-5, atol=1e-7)


def test_glmm_with_fixed_is_glmer_with_the_new_columns(cbpp):
    g = mmfast.glmer(
        "cbind(incidence, size - incidence) ~ x + (1 | herd)",
        cbpp.assign(x=np.arange(len(cbpp)) % 4),
        family="binomial",
    )
    x = np.random.default_rng(3).permutation(len(cbpp)) % 4
    got = g.with_fixed(np.column_stack([np.ones(len(cbpp)), x])).fit()
    ref = mmfast.glmer("cbind(incidence, size - incidence) ~ x + (1 | herd)", cbpp.assign(x=x), family="binomial")
    np.testing.assert_allclose(got.loglik, ref.loglik, rtol=1e-9)
    np.testing.assert_allclose(got.beta, ref.beta, rtol=1e-5, atol=1e-7)
    with pytest.raises(DataError, match="shape"):
        g.with_fixed(np.ones((len(cbpp), 1)))

"""The main-effects fast path builds exactly what the general formula path (formulaic) builds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.formula.fixed import build_matrix
from mmfast.formula.terms import TermSpec
from mmfast.formula.simple import SimpleSpec


@pytest.fixture(scope="module")
def data():
    o = mmfast.datasets.load("Orthodont")
    o["s2"] = pd.Categorical(o["Sex"], categories=["Male", "Female"])  # non-sorted order kept
    o["a"] = o["age"] % 3
    return o


CASES = [
    "age + Sex",
    "0 + Sex + age",
    "age + Sex - 1",
    "factor(a)",
    "0 + factor(a) + age",
    "s2",
    "age + s2 - 1",
    "Subject",
    "1 + age",
]


@pytest.mark.parametrize("rhs", CASES)
def test_fast_path_equals_formulaic(data, rhs):
    X, names, spec = build_matrix(rhs, data)
    assert isinstance(spec, SimpleSpec)
    general, gnames = TermSpec(rhs).fit(data)  # the general (formulaic) route
    np.testing.assert_array_equal(X, general)
    assert names == gnames
    np.testing.assert_array_equal(spec.get_model_matrix(data.iloc[::-1]), X[::-1])


@pytest.mark.parametrize("rhs", ["age * Sex", "age:Sex", "log(age)", "I(age^2)", "poly(age, 2)"])
def test_everything_else_goes_to_formulaic(data, rhs):
    _, _, spec = build_matrix(rhs, data)
    assert not isinstance(spec, SimpleSpec)


def test_unseen_level_in_new_data_is_an_error(data):
    _, _, spec = build_matrix("Sex", data)
    with pytest.raises(mmfast.MmfastError, match="new levels of 'Sex'"):
        spec.get_model_matrix(pd.DataFrame({"Sex": ["Other"]}))

"""Assertions shared by the inference tests (df, t and p against lmerTest/pbkrtest)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def single_threaded_blas():
    """The machine is shared: multi-threaded BLAS spinning on a busy core made the same insteval fit
    take 1.3 s or 15 s; one thread gives steady times.  (Numbers do not depend on it.)"""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1):
        yield


def assert_close(actual, expected, rtol, atol=0.0, what=""):
    a = np.asarray(actual, dtype=float)
    e = np.asarray([np.nan if v is None else v for v in np.ravel(expected)], dtype=float).reshape(a.shape)
    bad = ~(np.abs(a - e) <= atol + rtol * np.abs(e))
    assert not bad.any(), f"{what}: got {a[bad]}, expected {e[bad]} (rtol {rtol}, atol {atol})"


def assert_p(actual, expected, t, tol, what):
    """p-values: the README's 1e-4 plus what the df tolerance implies through t."""
    t = np.abs(np.asarray(t, dtype=float))
    assert_close(actual, expected, 1e-4 + (t**2 + 1) * tol, 1e-10, what)

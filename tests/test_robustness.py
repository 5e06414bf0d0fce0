"""Never crash, never lie: bad input gets an error naming the problem, random input never
crashes the process, results are deterministic, models pickle, refits do not leak."""

from __future__ import annotations

import pickle
import resource
import warnings

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.errors import DataError, FormulaError, MmfastError, ModelSpecError

F = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep():
    return mmfast.datasets.load("sleepstudy")


# ----------------------------------------------------------------------------- the catalogue
BAD_INPUT = [
    # (name, formula, data transformation, keyword arguments, error class, text in the message)
    ("missing response column", "Foo ~ Days + (1 | Subject)", None, {}, DataError, "'Foo'"),
    ("missing fixed column", "Reaction ~ Dayz + (1 | Subject)", None, {}, DataError, "'Dayz'"),
    ("missing grouping column", "Reaction ~ Days + (1 | Subj)", None, {}, FormulaError, "'Subj'"),
    (
        "non-numeric response",
        "Subject ~ Days + (1 | g)",
        lambda d: d.assign(Subject="s" + d.Subject.astype(str), g=d.Days % 3),
        {},
        DataError,
        "numeric",
    ),
    ("no complete rows", F, lambda d: d.assign(Reaction=np.nan), {}, DataError, "no rows left"),
    ("empty data", F, lambda d: d.iloc[:0], {}, DataError, "no rows"),
    ("infinite value", F, lambda d: d.assign(Days=d.Days.where(d.index > 0, np.inf)), {}, DataError, "'Days'"),
    ("one-level grouping factor", "Reaction ~ Days + (1 | g)", lambda d: d.assign(g=1), {}, ModelSpecError, "'g'"),
    (
        "as many levels as rows",
        "Reaction ~ Days + (1 | g)",
        lambda d: d.assign(g=np.arange(len(d))),
        {},
        ModelSpecError,
        "number of levels",
    ),
    (
        "more random effects than rows",
        "Reaction ~ 1 + (Days | g)",
        lambda d: d.assign(g=d.index // 2),
        {},
        ModelSpecError,
        "number of observations",
    ),
    ("unbalanced parenthesis", "Reaction ~ Days + (Days | Subject", None, {}, FormulaError, "'('"),
    ("no tilde", "Reaction Days", None, {}, FormulaError, "'y ~ terms'"),
    ("no random effects", "Reaction ~ Days", None, {}, FormulaError, "random-effects"),
    ("negative weights", F, None, {"weights": -np.ones(180)}, DataError, "weights"),
    ("weights of wrong length", F, None, {"weights": np.ones(3)}, DataError, "3 values"),
    ("weights column missing", F, None, {"weights": "w"}, DataError, "'w'"),
    ("constant response", F, lambda d: d.assign(Reaction=1.0), {}, DataError, "constant"),
    (
        "response explained by X",
        F,
        lambda d: d.assign(Reaction=2.0 * d.Days + 1),
        {},
        DataError,
        "exact linear function",
    ),
]


@pytest.mark.parametrize("name,formula,transform,kwargs,error,text", BAD_INPUT, ids=[b[0] for b in BAD_INPUT])
def test_bad_input_raises_a_clear_error(sleep, name, formula, transform, kwargs, error, text):
    data = transform(sleep) if transform else sleep
    with pytest.raises(error) as info:
        mmfast.lmer(formula, data, **kwargs)
    assert text in str(info.value)
    assert isinstance(info.value, MmfastError)


def test_degenerate_scale_is_an_error_not_a_crash():
    """Found by hypothesis: a slope covariate of 1e12 with one informative row."""
    data = pd.DataFrame(
        {
            "y": [0, 0, np.nan, 0, np.nan, 0, 0, 0, 0, 1.0],
            "x": [0, np.nan, 0, np.nan, 0, -1e12, 0, 0, 0, 1.0],
            "g": [0] * 9 + [1],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            m = mmfast.lmer("y ~ x + (x | g)", data)
        except MmfastError as exc:
            assert "could not be evaluated" in str(exc) or "observations" in str(exc)
        else:
            assert np.isfinite(m.loglik)


def test_rank_deficient_columns_are_dropped_with_a_warning(sleep):
    data = sleep.assign(D2=2 * sleep.Days)
    with pytest.warns(mmfast.RankDeficiencyWarning, match="dropping 1 column"):
        m = mmfast.lmer("Reaction ~ Days + D2 + (1 | Subject)", data)
    assert list(m.fixef.index) == ["(Intercept)", "Days"]
    ref = mmfast.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    assert m.loglik == pytest.approx(ref.loglik, abs=1e-8)


def test_missing_rows_are_dropped_and_counted(sleep):
    data = sleep.assign(Reaction=sleep.Reaction.where(sleep.index >= 6))
    m = mmfast.lmer(F, data)
    assert m.nobs == 174 and m.frame.n_dropped == 6
    ref = mmfast.lmer(F, sleep.iloc[6:].reset_index(drop=True))
    assert m.reml_criterion == pytest.approx(ref.reml_criterion, abs=1e-9)


def test_scale_and_location_of_the_response_do_not_matter(sleep):
    """θ is scale free; β scales and shifts with y (up to 1e9 offsets: no cancellation)."""
    m = mmfast.lmer(F, sleep)
    for a, b in [(1e-9, 0.0), (1e9, 0.0), (1.0, 1e9)]:
        s = mmfast.lmer(F, sleep.assign(Reaction=a * sleep.Reaction + b))
        np.testing.assert_allclose(s.theta, m.theta, rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose((s.fixef - [b, 0]) / a, m.fixef, rtol=1e-6)


# ---------------------------------------------------------------- determinism, pickle, leaks
def test_same_input_gives_bit_identical_results(sleep):
    a = mmfast.lmer(F, sleep)
    b = mmfast.lmer(F, sleep)
    assert a.theta.tobytes() == b.theta.tobytes()
    assert a.fixef.to_numpy().tobytes() == b.fixef.to_numpy().tobytes()
    assert a.loglik == b.loglik


def test_fitted_model_pickles_without_its_data(sleep):
    m = mmfast.lmer(F, sleep)
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.loglik == m.loglik
    np.testing.assert_array_equal(m2.fixef, m.fixef)
    np.testing.assert_array_equal(m2.ranef["Subject"], m.ranef["Subject"])
    assert m2.objective(m.theta) == m.objective(m.theta)  # the kernel is rebuilt
    np.testing.assert_array_equal(m2.predict(sleep.iloc[:5]), m.predict(sleep.iloc[:5]))


def test_thousands_of_refits_keep_memory_flat(sleep):
    m = mmfast.lmer(F, sleep)
    rng = np.random.default_rng(0)
    y = sleep.Reaction.to_numpy()

    def batch(k):
        for _ in range(k):
            m.refit(y + rng.normal(0, 5, len(y)))

    batch(200)  # warm up allocators and caches
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    batch(2000)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 20_000, f"peak memory grew by {grown_kib} KiB over 2000 refits"


# ------------------------------------------------------------------------------ random input
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FORMULAS = [
    "y ~ x + (1 | g)",
    "y ~ x + (x | g)",
    "y ~ 1 + (1 | g) + (1 | h)",
    "y ~ x + (x || g)",
    "y ~ factor(h) + (1 | g/h)",
    "y ~ x + (0 + x | g)",
]
values = st.one_of(st.floats(min_value=-1e12, max_value=1e12), st.just(0.0), st.just(np.nan))


@st.composite
def frames(draw):
    n = draw(st.integers(0, 40))
    cols = {
        "y": draw(st.lists(values, min_size=n, max_size=n)),
        "x": draw(st.lists(st.one_of(values, st.just(1.0)), min_size=n, max_size=n)),
        "g": draw(st.lists(st.integers(0, draw(st.integers(0, 6))), min_size=n, max_size=n)),
        "h": draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n)),
    }
    return pd.DataFrame(cols), draw(st.sampled_from(FORMULAS))


@settings(
    max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(frames())
def test_random_input_never_crashes(case):
    """Any mmfast exception is fine; a crash, a hang or a non-mmfast exception is not."""
    data, formula = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            m = mmfast.lmer(formula, data)
        except MmfastError:
            return
    assert np.isfinite(m.loglik) or not m.converged
    assert len(m.fixef) <= m.nobs


def test_cholmod_factors_are_freed():
    """Thousands of CHOLMOD kernels built, used and dropped (and failed factorisations) stay flat."""
    from mmfast._ext._pls import PLSKernel

    d = mmfast.datasets.load("Penicillin")
    m = mmfast.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", d)
    T_ok, T_bad = m.templates(m.theta), m.templates(np.array([np.nan, 1.0]))

    def batch(k):
        for _ in range(k):
            kern = PLSKernel(m.blocks)
            kern.update(T_ok)
            kern.update(T_bad)  # error path: not positive definite

    batch(200)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    batch(3000)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 20_000, f"peak memory grew by {grown_kib} KiB over 3000 CHOLMOD kernels"


@pytest.mark.parametrize("n_agq", [0, 1, 5])
def test_fitted_glmm_pickles(n_agq):
    wl = mmfast.datasets.load("waterlick")
    g = mmfast.glmer("lick ~ dff + (1 | mouseID)", wl, family="binomial", n_agq=n_agq)
    g2 = pickle.loads(pickle.dumps(g))
    assert g2.loglik == g.loglik
    np.testing.assert_array_equal(g2.fixef, g.fixef)
    np.testing.assert_array_equal(g2.predict(wl.iloc[:5], type="response"), g.predict(wl.iloc[:5], type="response"))
    np.testing.assert_allclose(g2.ranef_condsd["mouseID"], g.ranef_condsd["mouseID"], rtol=1e-10)
    assert g2.deviance_at(g.theta, g.beta) == pytest.approx(g.deviance_at(g.theta, g.beta), rel=1e-12)


def test_model_data_is_a_snapshot_of_the_fit():
    """The model frame keeps the columns as they were at the fit (no copy of the data is made,
    pandas' copy-on-write does it): changing the caller's data frame afterwards changes neither
    ``frame.data`` nor a refit such as ``drop1``."""
    d = mmfast.datasets.load("sleepstudy")
    expected = mmfast.lmer("Reaction ~ Days + (Days | Subject)", d.copy()).drop1()
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", d)
    y0 = float(d["Reaction"].iloc[0])
    d.loc[0, "Reaction"] = 1e6  # after the fit, before anything asked for frame.data
    d["Days"] = d["Days"] * 100
    assert m.frame.data["Reaction"].iloc[0] == y0
    assert m.frame.data["Days"].max() == 9
    pd.testing.assert_frame_equal(m.drop1(), expected)

"""Issue 14, threads: inference on one fitted model from several threads at once must give the
serial answers.  Profiles, derivatives and criteria at other θ move the model's kernel and fill a
shared cache; before the per-model lock (mmfast.inference.locking) four concurrent
``confint(method="profile")`` calls returned intervals off by up to ~10 (sleepstudy).
The reference is the same call, serially, on a separately fitted identical model."""

from __future__ import annotations

import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import mmfast

FORMULA = "Reaction ~ Days + (Days | Subject)"


def _fit(reml):
    return mmfast.lmer(FORMULA, mmfast.datasets.load("sleepstudy"), reml=reml)


def _run_concurrently(fns, workers=4):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ThreadPoolExecutor(workers) as ex:
            futures = [ex.submit(f) for f in fns]
            return [f.result() for f in futures]


@pytest.mark.parametrize("reml", [False, True])
def test_profile_confint_from_four_threads(reml):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = _fit(reml).confint(method="profile").to_numpy()
    for _ in range(2):  # a fresh model each round: the threads race to build its profile
        m = _fit(reml)
        res = _run_concurrently([lambda: m.confint(method="profile").to_numpy()] * 4)
        for r in res:
            np.testing.assert_allclose(r, serial, rtol=1e-12)
        np.testing.assert_allclose(m.objective(m.theta), m.objective_value, rtol=1e-12)


def test_mixed_inference_from_threads():
    """Profile, Satterthwaite/KR tables, variance test and the profile trace at once (ML fit:
    the profile moves the model's own kernel)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _fit(False)
        expect = [
            ref.confint(method="profile").to_numpy(),
            ref.summary().coefficients.to_numpy(),
            ref.summary(ddf="Kenward-Roger").coefficients.to_numpy(),
            mmfast.variance_test(ref).stat,
            ref.profile("(Intercept)")["zeta"].to_numpy(),
        ]
    m = _fit(False)
    jobs = [
        lambda: m.confint(method="profile").to_numpy(),
        lambda: m.summary().coefficients.to_numpy(),
        lambda: m.summary(ddf="Kenward-Roger").coefficients.to_numpy(),
        lambda: mmfast.variance_test(m).stat,
        lambda: m.profile("(Intercept)")["zeta"].to_numpy(),
    ]
    got = _run_concurrently(jobs * 2, workers=4)
    for k, g in enumerate(got):
        np.testing.assert_allclose(g, expect[k % len(jobs)], rtol=1e-10)
    m2 = pickle.loads(pickle.dumps(m))  # the lock is not pickled, a new one is made on use
    np.testing.assert_allclose(m2.confint(method="profile").to_numpy(), expect[0], rtol=1e-10)


def test_simulate_and_bootstrap_from_threads():
    m = _fit(True)
    sim = m.simulate(nsim=3, seed=11).to_numpy()
    boot = m.bootstrap(nsim=4, seed=3).to_numpy()
    got = _run_concurrently(
        [lambda: m.simulate(nsim=3, seed=11).to_numpy(), lambda: m.bootstrap(nsim=4, seed=3).to_numpy()] * 2
    )
    for k, g in enumerate(got):
        np.testing.assert_array_equal(g, sim if k % 2 == 0 else boot)

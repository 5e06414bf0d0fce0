"""Issue 14, refit state: ``m.refit(y2)`` must be indistinguishable from a fresh fit on the data
with the new response (every public method), and must not see later changes to the caller's y.

The reference is the fresh fit (``lmer``/``glmer`` on a copy of the data with y replaced), so
each assertion is "refit == fresh fit" up to the optimiser's tolerance; before the fix the
refit's refit_ml/profile/drop1/anova/KR/variance_test used the original response.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mmfast

RTOL = 1e-4  # two BOBYQA runs from different starts (old θ̂ vs moment start) agree to ~3e-5 in
# the variance parameters; the criterion itself agrees to ~1e-10 (checked tightly below)


def lrt(*models):
    """anova() with rows named alike (by default they carry the caller's variable names)."""
    return mmfast.anova(*models, names=[f"m{i}" for i in range(len(models))])


def close(a, b, rtol=RTOL, atol=1e-6):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            close(a[k], b[k], rtol, atol)
        return
    if isinstance(a, (pd.DataFrame, pd.Series)):
        assert list(a.index) == list(b.index)
        if isinstance(a, pd.DataFrame):
            assert list(a.columns) == list(b.columns)
            num = a.select_dtypes("number").columns
            for c in num:
                close(a[c].to_numpy(float), b[c].to_numpy(float), rtol, atol)
            other = [c for c in a.columns if c not in num]
            assert a[other].astype(str).equals(b[other].astype(str))
            return
        a, b = a.to_numpy(float), b.to_numpy(float)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = np.nanmax(np.abs(b), initial=0.0)  # values near 0 in a vector: relative to its size
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol + rtol * scale, equal_nan=True)


def _close_json(a, b, path="") -> None:
    """Two ``to_dict()`` results: same keys and strings, numbers within RTOL (``optinfo``'s
    evaluation counts and timings excepted: the two optimisations differ; ``ranef`` is compared
    as whole vectors in test_lmm_refit_accessors_match_fresh_fit, not value by value)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            if k not in ("optinfo", "timing", "evaluations", "seconds", "message", "ranef"):
                _close_json(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and a and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in a):
        close(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for k, (u, v) in enumerate(zip(a, b)):
            _close_json(u, v, f"{path}[{k}]")
    elif isinstance(a, float):
        close(a, b)
    else:
        assert a == b, path


@pytest.fixture(scope="module")
def lmm_pair():
    sleep = mmfast.datasets.load("sleepstudy")
    f = "Reaction ~ Days + (Days | Subject)"
    m = mmfast.lmer(f, sleep)
    rng = np.random.default_rng(14)
    # a response quite unlike the original: the old y's estimates are far from the new ones
    y2 = 300.0 - 4.0 * sleep["Days"].to_numpy() + rng.normal(0, 30, len(sleep)) + np.repeat(rng.normal(0, 40, 18), 10)
    caller = y2.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refit = m.refit(caller)
        data2 = sleep.assign(Reaction=y2)
        fresh = mmfast.lmer(f, data2)
    caller[:] = 0.0  # the caller reuses its array: the refit must not change
    return m, refit, fresh, data2


def test_lmm_refit_accessors_match_fresh_fit(lmm_pair):
    m, r, f, data2 = lmm_pair
    assert abs(r.loglik - m.loglik) > 10  # the new response really is different
    assert r.objective_value == pytest.approx(f.objective_value, rel=1e-9)
    for name in (
        "theta",
        "beta",
        "sigma",
        "loglik",
        "aic",
        "bic",
        "deviance",
        "reml_criterion",
        "fixef",
        "vcov",
        "varcorr",
        "fitted",
        "residuals",
        "nobs",
    ):
        close(getattr(r, name), getattr(f, name))
    close(r.ranef, f.ranef)
    close(r.ranef_condsd, f.ranef_condsd)
    close(r.coef, f.coef)
    close(r.frame.y, data2["Reaction"].to_numpy())
    close(r.frame.data["Reaction"], data2["Reaction"])
    nd = data2.iloc[[0, 15, 170]]
    close(r.predict(nd), f.predict(nd))
    close(r.predict(), f.predict())


def test_lmm_refit_inference_matches_fresh_fit(lmm_pair):
    m, r, f, _ = lmm_pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        close(r.summary().coefficients, f.summary().coefficients)
        close(r.summary(ddf="Kenward-Roger").coefficients, f.summary(ddf="Kenward-Roger").coefficients)
        close(r.anova(), f.anova())
        close(r.anova(ddf="Kenward-Roger"), f.anova(ddf="Kenward-Roger"))
        close(r.refit_ml().theta, f.refit_ml().theta, rtol=1e-4)
        close(r.refit_ml().loglik, f.refit_ml().loglik)
        close(r.confint(method="profile"), f.confint(method="profile"), rtol=1e-4)
        close(r.confint(method="wald"), f.confint(method="wald"))
        close(r.drop1(), f.drop1())
        r0 = mmfast.lmer("Reaction ~ 1 + (Days | Subject)", r.frame.data)
        f0 = mmfast.lmer("Reaction ~ 1 + (Days | Subject)", f.frame.data)
        close(lrt(r, r0), lrt(f, f0))
        close(lrt(r0, r), lrt(f0, f))
        vr, vf = mmfast.variance_test(r), mmfast.variance_test(f)
        close([vr.stat, vr.p_value], [vf.stat, vf.p_value])
        # exact RLRT: one scalar term; an ML template, so the test refits it by REML
        sleep = mmfast.datasets.load("sleepstudy")
        f1 = "Reaction ~ Days + (1 | Subject)"
        ri = mmfast.lmer(f1, sleep, reml=False).refit(r.frame.y)
        fi = mmfast.lmer(f1, f.frame.data, reml=False)
        vr = mmfast.variance_test(ri, method="exact-rlrt", nsim=500, seed=1)
        vf = mmfast.variance_test(fi, method="exact-rlrt", nsim=500, seed=1)
        close([vr.stat, vr.p_value], [vf.stat, vf.p_value])
        close(r.simulate(nsim=3, seed=5), f.simulate(nsim=3, seed=5), rtol=1e-4, atol=1e-3)
        close(r.bootstrap(nsim=5, seed=2), f.bootstrap(nsim=5, seed=2), rtol=1e-3, atol=1e-3)


def test_refit_of_refit_and_template_unchanged(lmm_pair):
    m, r, f, data2 = lmm_pair
    y = data2["Reaction"].to_numpy()
    again = m.refit(y).refit(y)  # a chain of refits is still the fresh fit
    close(again.theta, f.theta, rtol=1e-4)
    assert m.frame.data["Reaction"].iloc[0] == mmfast.datasets.load("sleepstudy")["Reaction"].iloc[0]
    assert m.refit_ml().loglik != pytest.approx(r.refit_ml().loglik)


def test_refit_copies_the_callers_array():
    sleep = mmfast.datasets.load("sleepstudy")
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    y = sleep["Reaction"].to_numpy().astype(float) * 1.5
    r = m.refit(y)
    theta, ll = r.theta.copy(), r.loglik
    y[:] = np.arange(len(y))
    assert r.frame.y[0] == sleep["Reaction"].iloc[0] * 1.5
    r2 = r.refit_ml()
    assert np.all(r.theta == theta) and r.loglik == ll
    close(
        r2.loglik,
        mmfast.lmer(
            "Reaction ~ Days + (Days | Subject)", sleep.assign(Reaction=sleep["Reaction"] * 1.5), reml=False
        ).loglik,
    )


@pytest.fixture(scope="module")
def glmm_pair():
    cbpp = mmfast.datasets.load("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    m = mmfast.glmer(f, cbpp, family="binomial")
    rng = np.random.default_rng(7)
    y2 = rng.binomial(cbpp["size"].to_numpy(), 0.25).astype(float)
    caller = y2.copy()
    refit = m.refit(caller)
    caller[:] = 0.0
    data2 = cbpp.assign(incidence=y2)
    fresh = mmfast.glmer(f, data2, family="binomial")
    return m, refit, fresh, data2


def test_glmm_refit_matches_fresh_fit(glmm_pair):
    m, r, f, data2 = glmm_pair
    assert abs(r.loglik - m.loglik) > 1
    for name in (
        "theta",
        "beta",
        "loglik",
        "aic",
        "bic",
        "deviance",
        "fixef",
        "vcov",
        "varcorr",
        "fitted",
        "residuals",
    ):
        close(getattr(r, name), getattr(f, name), rtol=1e-4, atol=1e-5)
    close(r.ranef, f.ranef, rtol=1e-4, atol=1e-5)
    close(r.frame.data["incidence"], data2["incidence"])
    nd = data2.iloc[[0, 20, 50]]
    close(r.predict(nd, type="response"), f.predict(nd, type="response"), rtol=1e-4)
    close(r.summary().coefficients, f.summary().coefficients, rtol=1e-4, atol=1e-5)
    close(r.drop1(), f.drop1(), rtol=1e-4, atol=1e-4)
    r0 = r.refit_formula("cbind(incidence, size - incidence) ~ 1 + (1 | herd)")
    f0 = f.refit_formula("cbind(incidence, size - incidence) ~ 1 + (1 | herd)")
    close(r0.loglik, f0.loglik, rtol=1e-6)
    close(lrt(r, r0), lrt(f, f0), rtol=1e-4, atol=1e-4)
    close(r.simulate(nsim=2, seed=3), f.simulate(nsim=2, seed=3), rtol=1e-3, atol=1e-2)


def test_glmm_bernoulli_refit_copies_and_carries_over():
    data = mmfast.datasets.load("cbpp")
    data = data.assign(any=(data["incidence"] > 0).astype(float))
    f = "any ~ period + (1 | herd)"
    m = mmfast.glmer(f, data, family="binomial")
    y2 = np.random.default_rng(5).binomial(1, 0.25, len(data)).astype(float)  # not 1 - y: symmetric
    y = y2.copy()
    r = m.refit(y)
    y[:] = 0
    fresh = mmfast.glmer(f, data.assign(any=y2), family="binomial")
    assert abs(r.loglik - m.loglik) > 1
    close(r.beta, fresh.beta, rtol=1e-4, atol=1e-5)
    close(r.drop1(), fresh.drop1(), rtol=1e-4, atol=1e-4)


def test_lmm_refit_serialized_contest_profile_emmeans(lmm_pair):
    import pickle

    m, r, f, _ = lmm_pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _close_json(r.to_dict(), f.to_dict())
        close(r.contest([[0, 1]]), f.contest([[0, 1]]))
        close(r.profile("(Intercept)"), f.profile("(Intercept)"), rtol=1e-3, atol=1e-3)
        close(pd.DataFrame(mmfast.emmeans(r, "Days").table), pd.DataFrame(mmfast.emmeans(f, "Days").table))
        p = pickle.loads(pickle.dumps(r))
        close(p.confint(method="profile"), f.confint(method="profile"), rtol=1e-4)
        close(p.refit_ml().loglik, f.refit_ml().loglik)


def test_refit_with_a_response_expression():
    """log(Reaction): the refit's y is on the log scale; refits by formula (ML, drop1, profile,
    icc by group) must use it, not re-evaluate log() on the stored column."""
    sleep = mmfast.datasets.load("sleepstudy")
    f = "log(Reaction) ~ Days + (1 | Subject)"
    m = mmfast.lmer(f, sleep)
    rng = np.random.default_rng(3)
    y2 = np.log(sleep["Reaction"].to_numpy()) + rng.normal(0, 0.2, len(sleep))
    r = m.refit(y2)
    data2 = sleep.assign(Reaction=np.exp(y2))
    fresh = mmfast.lmer(f, data2)
    assert abs(r.loglik - m.loglik) > 10
    close(r.theta, fresh.theta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        close(r.refit_ml().loglik, fresh.refit_ml().loglik)
        close(r.drop1(), fresh.drop1())
        close(r.confint(method="profile"), fresh.confint(method="profile"), rtol=1e-4)
        close(r.summary(ddf="Kenward-Roger").coefficients, fresh.summary(ddf="Kenward-Roger").coefficients)


def test_refit_bad_response_is_a_named_error(lmm_pair, glmm_pair):
    for model in (lmm_pair[0], glmm_pair[0]):
        n = model.frame.nobs
        with pytest.raises(mmfast.MmfastError, match=f"new response has {n - 1} values.*{n} rows"):
            model.refit(np.ones(n - 1))
        bad = np.ones(n)
        bad[2] = np.nan
        with pytest.raises(mmfast.MmfastError, match="non-finite"):
            model.refit(bad)

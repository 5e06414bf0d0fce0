"""A fitted model is read-only (issue 15): attributes cannot be set or deleted, later calls keep
what they derive in the fit's one ``FitCache``, refits and ``fit`` build new models, and
pickling keeps all of it.  The labels summary prints of the call are looked up lazily."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import mmfast
from mmfast.callnames import CallLabels
from mmfast.datasets import load
from mmfast.model.results import FitCache

SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def sleepstudy():
    return load("sleepstudy")


@pytest.fixture(scope="module")
def lmm(sleepstudy):
    return mmfast.lmer(SLEEP, sleepstudy)


@pytest.fixture(scope="module")
def glmm():
    cbpp = load("cbpp")
    cbpp["period"] = cbpp["period"].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.glmer(CBPP, cbpp)


@pytest.mark.parametrize("which", ["lmm", "glmm"])
@pytest.mark.parametrize("name", ["theta", "beta", "sigma", "converged", "optsummary", "frame", "new_name", "_private"])
def test_setting_an_attribute_of_a_fit_raises(which, name, request):
    m = request.getfixturevalue(which)
    assert m.sealed
    before = getattr(m, name, None)
    with pytest.raises(AttributeError, match="read-only"):
        setattr(m, name, 0)
    with pytest.raises(AttributeError, match="read-only"):
        delattr(m, "frame")
    assert getattr(m, name, None) is before


def test_an_unfitted_model_is_writable(sleepstudy):
    from mmfast.model.frame import model_frame
    from mmfast.model.lmm import LinearMixedModel

    model = LinearMixedModel(model_frame(SLEEP, sleepstudy))
    model.note = 1  # a problem object, not yet a result
    assert not model.sealed and model.fit() is model and model.sealed


def test_inference_leaves_the_fit_unchanged(lmm):
    """summary, anova, KR, profiles and condvar fill the fit's cache, not the model."""
    keys = set(vars(lmm))
    theta, beta = lmm.theta.copy(), lmm.beta.copy()
    str(lmm.summary())
    lmm.anova(ddf="Kenward-Roger")
    lmm.confint(method="profile")
    lmm.condvar()
    added = set(vars(lmm)) - keys
    assert added <= {"_condvar", "Z", "_column_sizes"}  # cached_property values only
    assert isinstance(lmm._fit_cache, FitCache) and len(lmm._fit_cache.store) >= 2
    np.testing.assert_array_equal(lmm.theta, theta)
    np.testing.assert_array_equal(lmm.beta, beta)


def test_fit_and_refit_give_new_models(lmm):
    again = lmm.fit()
    assert again is not lmm and again.sealed
    assert again.loglik == pytest.approx(lmm.loglik, rel=1e-10)
    y = lmm.frame.y + 1.0
    new = lmm.refit(y)
    assert new is not lmm and new.fixef["(Intercept)"] == pytest.approx(lmm.fixef["(Intercept)"] + 1, rel=1e-6)
    assert lmm.frame.y[0] == new.frame.y[0] - 1.0


@pytest.mark.parametrize("which", ["lmm", "glmm"])
def test_pickled_fit_is_sealed_with_a_fresh_cache(which, request):
    m = request.getfixturevalue(which)
    str(m.summary())
    back = pickle.loads(pickle.dumps(m))
    assert back.sealed and back.loglik == pytest.approx(m.loglik, rel=1e-12)
    assert back._fit_cache is not m._fit_cache and back._fit_cache.store == {}
    np.testing.assert_allclose(back.vcov_array, m.vcov_array, rtol=1e-12)
    assert str(back.summary()) == str(m.summary())
    with pytest.raises(AttributeError):
        back.theta = None


def test_call_labels_are_looked_up_when_read(sleepstudy):
    m = mmfast.lmer(SLEEP, sleepstudy)
    labels = m.call_labels
    assert isinstance(labels, CallLabels)
    assert dict(labels) == {"data": "sleepstudy", "weights": None, "offset": None}
    assert "Data: sleepstudy" in str(m.summary())
    copy = sleepstudy.copy()
    assert mmfast.lmer(SLEEP, copy).call_labels["data"] == "copy"
    assert pickle.loads(pickle.dumps(labels)) == {"data": "sleepstudy", "weights": None, "offset": None}


def _module_level_labels():
    """What a script's global scope gives: the name, found on first read (weak reference)."""
    scope = {"mmfast": mmfast, "SLEEP": SLEEP, "sleep": load("sleepstudy"), "__name__": "user_script"}
    exec("m = mmfast.lmer(SLEEP, sleep)", scope)
    return scope


def test_call_labels_of_a_script_resolve_lazily():
    scope = _module_level_labels()
    labels = scope["m"].call_labels
    assert labels._pending  # not scanned at fit time
    assert labels["data"] == "sleep" and not labels._pending
    scope = _module_level_labels()
    del scope["sleep"]  # the data gone before anything read the label: no name, no error
    assert scope["m"].call_labels["data"] is None


def test_glmm_fit_again_is_a_new_model(glmm):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = glmm.fit()
    assert again is not glmm and again.sealed
    assert again.loglik == pytest.approx(glmm.loglik, rel=1e-10)

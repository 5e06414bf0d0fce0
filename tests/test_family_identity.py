"""Every model's ``family`` is a ``Family`` object (LMMs and linear models: Gaussian, identity
link), equal to its name and hashed consistently with that equality (a == b must give
hash(a) == hash(b): a GLMM's family was equal to "binomial" but hashed apart from it)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mmfast
from mmfast import datasets
from mmfast.errors import ModelSpecError
from mmfast.families import Binomial, Family, Gaussian


@pytest.fixture(scope="module")
def models():
    ss = datasets.load("sleepstudy").assign(w=lambda d: 1.0 + d["Days"])
    cbpp = datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "lmm": mmfast.lmer("Reaction ~ Days + (Days | Subject)", ss),
            "lm": mmfast.lm("Reaction ~ Days", ss, weights="w"),
            "glmm": mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial"),
        }


def test_every_model_carries_a_family_object(models):
    for kind, name in (("lmm", "gaussian"), ("lm", "gaussian"), ("glmm", "binomial")):
        fam = models[kind].family
        assert isinstance(fam, Family) and fam == name and str(fam) == name
    assert models["lmm"].family.link.name == "identity"
    assert models["lmm"].family != models["glmm"].family


def test_family_equal_to_its_name_hashes_like_it(models):
    fam = models["glmm"].family
    assert fam == "binomial" and hash(fam) == hash("binomial")
    assert {"binomial": 1}[fam] == 1 and len({fam, "binomial"}) == 1
    assert {models["lmm"].family: "x"}["gaussian"] == "x"
    assert Binomial() == Binomial("logit") and hash(Binomial()) == hash(Binomial("logit"))
    assert Binomial("probit") != Binomial("logit")


def test_gaussian_family_is_the_least_squares_one(models):
    """R's gaussian(): variance 1, dev.resids wt (y - mu)²: summed over a weighted lm's
    fitted values they give its weighted residual sum of squares."""
    m = models["lm"]
    w = m.frame.weights
    fam = m.family
    np.testing.assert_array_equal(fam.variance(m.fitted), np.ones(len(m.fitted)))
    assert float(np.sum(fam.dev_resids(m.frame.y, m.fitted, w))) == pytest.approx(m.rss, rel=1e-12)
    np.testing.assert_array_equal(fam.linkinv(m.fitted), m.fitted)


def test_glmer_with_the_gaussian_family_points_to_lmer():
    with pytest.raises(ModelSpecError, match="lmer"):
        mmfast.glmer("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy"), family=Gaussian())

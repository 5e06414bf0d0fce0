"""Fit strategies are explicit objects (LmmControl, GlmmControl) passed to the fit and kept by
refits, not module constants patched from outside."""

import dataclasses
import warnings

import numpy as np
import pytest

import mmfast
from mmfast import GlmmControl, LmmControl, datasets
from mmfast._ext._blocked import BlockedKernel
from mmfast._ext._pls import PLSKernel


@pytest.fixture(scope="module")
def cbpp():
    return datasets.load("cbpp")


def test_controls_are_immutable_and_checked(cbpp):
    with pytest.raises(dataclasses.FrozenInstanceError):
        LmmControl().dense_schur_max = 0
    with pytest.raises(mmfast.ArgumentError, match="LmmControl"):
        mmfast.lmer("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy"), control=GlmmControl())
    with pytest.raises(mmfast.ArgumentError, match="GlmmControl"):
        mmfast.glmer(
            "cbind(incidence, size - incidence) ~ period + (1 | herd)",
            cbpp,
            family="binomial",
            control={"grad_tol": 1.0},
        )


def test_lmm_control_chooses_the_kernel_and_refits_keep_it():
    d = datasets.load("Penicillin")
    f = "diameter ~ 1 + (1 | plate) + (1 | sample)"
    default = mmfast.lmer(f, d)
    sparse = mmfast.lmer(f, d, control=LmmControl(dense_schur_max=0))
    assert isinstance(default.kernel, BlockedKernel) and isinstance(sparse.kernel, PLSKernel)
    assert sparse.reml_criterion == pytest.approx(default.reml_criterion, abs=1e-7)
    for refit in (
        sparse.refit_ml(),
        sparse.refit(d["diameter"].to_numpy() * 2.0),
        sparse.refit_formula("diameter ~ 1 + (1 | sample) + (1 | plate)"),
    ):
        assert refit.control is sparse.control and isinstance(refit.kernel, PLSKernel)


def test_glmm_control_forces_the_gradient_path_on_one_term(cbpp):
    """use_gradient=True takes the analytic scalar-term gradient (quasi-Newton stage 2) where
    the default runs BOBYQA: the same optimum."""
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    default = mmfast.glmer(f, cbpp, family="binomial")
    forced = mmfast.glmer(f, cbpp, family="binomial", control=GlmmControl(use_gradient=True))
    assert default.optinfo["stage2"]["optimizer"] == "bobyqa"
    assert forced.optinfo["stage2"]["optimizer"].startswith("newton")
    assert forced.loglik == pytest.approx(default.loglik, abs=1e-6)
    np.testing.assert_allclose(forced.beta, default.beta, atol=1e-3)


def test_glmm_refits_keep_the_control(cbpp):
    ctl = GlmmControl(use_gradient=True)
    m = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial", control=ctl)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.refit(m.frame.y)
        small = m.refit_formula("cbind(incidence, size - incidence) ~ 1 + (1 | herd)")
    assert r.control is ctl and small.control is ctl
    assert r.loglik == pytest.approx(m.loglik, abs=1e-6)

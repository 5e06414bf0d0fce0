"""Likelihood-ratio tests and drop1 for GLMMs (mmfast.anova, m.drop1) against lme4's extras.

lme4's numbers come from its default fits, which are this far from the optimum in deviance:
``tight_refit.objective_default_minus_tight`` (cbpp: 5.7e-4); the tolerances allow for it.
"""

from __future__ import annotations

import numpy as np
import pytest

import mmfast
from reference_cases import case_data, load_reference


def fit(case):
    ref = load_reference(case)
    data = case_data(ref)
    return ref, data, mmfast.glmer(ref["formula"], data, family=ref["family"], n_agq=ref["nAGQ"])


def gap(ref):
    return abs(ref["results"]["tight_refit"]["objective_default_minus_tight"])


def test_waterlick_lrt_vs_null():
    ref, data, m1 = fit("waterlick_laplace")
    ref0, _, m0 = fit("waterlick_null_laplace")
    lrt = ref["results"]["extras"]["lrt_vs_null"]
    tol = 1e-5 + 2 * (gap(ref) + gap(ref0))
    # by hand: 2 (l1 - l0) on 1 df
    np.testing.assert_allclose(2 * (m1.loglik - m0.loglik), lrt["Chisq"][1], atol=tol)
    tab = mmfast.anova(m0, m1)
    np.testing.assert_allclose(tab["Chisq"].iloc[1], lrt["Chisq"][1], atol=tol)
    np.testing.assert_allclose(tab["Pr(>Chisq)"].iloc[1], lrt["p"][1], rtol=1e-4)
    np.testing.assert_allclose(tab["npar"].to_numpy(), lrt["npar"])
    np.testing.assert_allclose(tab["AIC"].to_numpy(), lrt["AIC"], atol=tol)
    np.testing.assert_allclose(tab["BIC"].to_numpy(), lrt["BIC"], atol=tol)
    np.testing.assert_allclose(tab["logLik"].to_numpy(), lrt["logLik"], atol=tol)
    # the same through the model's method and through refit_formula
    tab2 = m1.anova(m1.refit_formula("lick ~ 1 + (1 | mouseID)"))
    np.testing.assert_allclose(tab2["Chisq"].to_numpy()[1], tab["Chisq"].to_numpy()[1], atol=1e-7)
    assert m1.refit_ml() is m1


@pytest.mark.parametrize("case", ["cbpp_laplace", "waterlick_laplace", "spikes_poisson"])
def test_drop1(case):
    ref, _, m = fit(case)
    want = ref["results"]["drop1_chisq"]
    tab = m.drop1(test="Chisq")
    assert list(tab.index) == want["terms"]
    tol = 1e-5 + 4 * gap(ref)
    np.testing.assert_allclose(tab["npar"].to_numpy()[1:], want["npar"][1:])
    np.testing.assert_allclose(tab["AIC"].to_numpy(), want["AIC"], atol=tol)
    np.testing.assert_allclose(tab["LRT"].to_numpy()[1:], want["LRT"][1:], atol=tol)
    np.testing.assert_allclose(tab["Pr(Chi)"].to_numpy()[1:], want["p"][1:], rtol=1e-3)


def test_refit_formula_keeps_data_weights_and_options():
    ref, data, m = fit("cbpp_laplace")
    m0 = m.refit_formula("cbind(incidence, size - incidence) ~ 1 + (1 | herd)")
    assert m0.nobs == m.nobs and m0.family == m.family and m0.n_agq == m.n_agq
    w = mmfast.glmer("incidence / size ~ period + (1 | herd)", data, weights="size")
    w0 = w.refit_formula("incidence / size ~ 1 + (1 | herd)")
    np.testing.assert_allclose(w0.loglik, m0.loglik, atol=1e-7)

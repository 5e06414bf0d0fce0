"""model.criterion: the one profiled (RE)ML deviance, checked against a dense derivation
and against lme4's own pieces (devcomp) and criteria."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mmfast import lmer
from mmfast.datasets import load
from mmfast.model.criterion import deviance_at_sigma, profiled_deviance
from reference_cases import load_reference

THETA = np.array([0.8, 0.1, 0.3])  # an arbitrary θ, not an optimum


def _weights(n):
    return np.linspace(0.5, 2.0, n)


def _dense(data, theta, w, reml, sigma2=None):
    """-2 log L (REML: of the restricted likelihood) of sleepstudy's slope model, written
    out from V = σ²(ZΛΛ'Z' + W⁻¹) with β̂ its GLS estimate and σ² profiled (or given)."""
    y = data["Reaction"].to_numpy(float)
    days = data["Days"].to_numpy(float)
    codes = data["Subject"].astype("category").cat.codes.to_numpy()
    n, g = len(y), codes.max() + 1
    X = np.column_stack([np.ones(n), days])
    Z = np.zeros((n, 2 * g))
    Z[np.arange(n), 2 * codes] = 1.0
    Z[np.arange(n), 2 * codes + 1] = days
    lam = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
    Lam = np.kron(np.eye(g), lam)
    V0 = Z @ Lam @ Lam.T @ Z.T + np.diag(1.0 / w)
    V0i = np.linalg.inv(V0)
    XtVX = X.T @ V0i @ X
    beta = np.linalg.solve(XtVX, X.T @ V0i @ y)
    r = y - X @ beta
    q = float(r @ V0i @ r)
    p = X.shape[1]
    if sigma2 is None:
        sigma2 = q / (n - p if reml else n)
    m2ll = -2.0 * stats.multivariate_normal(X @ beta, sigma2 * V0).logpdf(y)
    if reml:  # ∫ L dβ = L(β̂) (2π)^{p/2} |X'V⁻¹X|^{-1/2}
        m2ll += np.linalg.slogdet(XtVX / sigma2)[1] - p * math.log(2.0 * math.pi)
    return m2ll


@pytest.fixture(scope="module")
def sleep():
    return load("sleepstudy")


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_profiled_deviance_is_dense_loglik(sleep, reml, weighted):
    n = len(sleep)
    w = _weights(n) if weighted else np.ones(n)
    data = sleep.assign(w=w)
    kw = {"weights": "w"} if weighted else {}
    m = lmer("Reaction ~ Days + (Days | Subject)", data, reml=reml, **kw)
    ldL2, ldRX2, r2, _, _ = m._profile(THETA)  # the PLS pieces at θ
    logw = float(np.sum(np.log(w)))
    got = profiled_deviance(ldL2, ldRX2, math.log(r2), n, 2, reml, logw)
    assert got == pytest.approx(_dense(data, THETA, w, reml), rel=1e-11)
    assert m.objective(THETA, reml=reml) == pytest.approx(got, rel=1e-12)
    # σ² given rather than profiled: the same likelihood
    s2 = 700.0
    got_s = deviance_at_sigma(ldL2, ldRX2, r2, s2, n, 2, reml, logw)
    assert got_s == pytest.approx(_dense(data, THETA, w, reml, sigma2=s2), rel=1e-11)


def test_vectorised_matches_scalar():
    ld = np.array([10.0, 20.0, 30.0])
    lr = np.log(np.array([100.0, 2000.0, 3.0]))
    for reml in (False, True):
        vec = profiled_deviance(ld, 1.5, lr, 50, 3, reml, 0.25)
        one = [profiled_deviance(a, 1.5, b, 50, 3, reml, 0.25) for a, b in zip(ld, lr)]
        np.testing.assert_array_equal(vec, one)


@pytest.mark.parametrize("case", ["sleepstudy_slope_reml", "sleepstudy_slope_ml"])
def test_lme4_devcomp_and_fit(sleep, case):
    ref = load_reference(case)
    res, reml = ref["results"], ref["REML"]
    cmp, dims = res["devcomp"]["cmp"], res["devcomp"]["dims"]
    # lme4's own pieces give lme4's own criterion
    want = cmp["REML"] if reml else cmp["dev"]
    got = profiled_deviance(cmp["ldL2"], cmp["ldRX2"], math.log(cmp["pwrss"]), dims["n"], dims["p"], reml)
    assert got == pytest.approx(want, rel=1e-12)
    # our fit's criterion is the function at its fitted state, and lme4's value
    m = lmer("Reaction ~ Days + (Days | Subject)", sleep, reml=reml)
    crit = m.reml_criterion if reml else m.ml_deviance
    assert crit == profiled_deviance(m._ldL2, m._ldRX2, m._log_pwrss, m.nobs, 2, reml, m._logw)
    assert crit == pytest.approx(want, rel=1e-9)

"""mmfast.glmer against lme4 on every GLMM reference case (tests/reference, README tolerances).

Parameters are compared with ``results.tight_refit`` (lme4 with bobyqa rhoend 1e-12 and PIRLS
tolPwrss 1e-10), quantities computed at lme4's default fit (conditional modes, lme4's
``deviance()``) with a tolerance that allows the default-vs-tight gap.  For nAGQ > 1 lme4's
logLik is on a different scale (lme4 issue #161): mmfast reports the proper integrated
log-likelihood, compared with ``extras.integrated_logLik``.

Standard errors: lme4 takes them from a finite-difference Hessian whose PIRLS noise shows at
the 1e-3 level (spikes: 2.5e-3); glmmTMB's come from an exact (AD) Hessian.  mmfast's agree
with glmmTMB's to 1e-4, and with lme4's within lme4's own noise.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mmfast
from reference_cases import case_data, load_reference, reference_cases

GLMM_CASES = reference_cases("GLMM")
TMB_CASES = [c for c in GLMM_CASES if load_reference(c)["results"].get("glmmTMB_check")]
PARAM_RTOL = 1e-4  # fixed effects and theta vs tight_refit
LIK_ATOL = 1e-5  # logLik vs tight_refit (Laplace) or the integrated logLik (AGQ)
SE_RTOL_TMB = 2e-4  # SEs vs glmmTMB's exact-Hessian SEs
SE_RTOL_LME4 = 5e-3  # SEs vs lme4's finite-difference-Hessian SEs
SE_RTOL_TIGHT = 1e-4  # (cases without a glmmTMB check: lme4's tight SEs)

_CACHE: dict = {}


def fit(case: str):
    """(reference, model, warnings) for a case, fitted once per session."""
    if case not in _CACHE:
        ref = load_reference(case)
        data = case_data(ref)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = mmfast.glmer(ref["formula"], data, family=ref["family"], n_agq=ref["nAGQ"])
        _CACHE[case] = (ref, model, [str(w.message) for w in caught])
    return _CACHE[case]


def close(actual, expected, rtol=0.0, atol=0.0, what=""):
    a, e = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert a.shape == e.shape, f"{what}: shape {a.shape} vs {e.shape}"
    err = np.abs(a - e)
    tol = atol + rtol * np.abs(e)
    bad = ~(err <= tol)
    assert not bad.any(), f"{what}: max |diff| {err.max():.3g}; actual {a[bad]}, expected {e[bad]}, tol {tol[bad]}"


def test_all_glmm_cases_present():
    assert set(GLMM_CASES) >= {
        "cbpp_laplace",
        "cbpp_agq25",
        "waterlick_laplace",
        "waterlick_null_laplace",
        "spikes_poisson",
    }


@pytest.mark.parametrize("case", GLMM_CASES)
def test_fixef_and_theta(case):
    ref, m, _ = fit(case)
    tight = ref["results"]["tight_refit"]
    assert list(m.fixef.index) == ref["results"]["fixef"]["names"]
    close(m.fixef.to_numpy(), tight["fixef"], PARAM_RTOL, 1e-7, "fixef")
    close(m.theta, tight["theta"], PARAM_RTOL, 1e-7, "theta")
    assert m.theta_names == ref["results"]["theta"]["names"]


@pytest.mark.parametrize("case", GLMM_CASES)
def test_loglik(case):
    ref, m, _ = fit(case)
    res = ref["results"]
    if ref["nAGQ"] > 1:  # the proper integrated log-likelihood, not lme4's deviance-residual scale
        close(m.loglik, res["extras"]["integrated_logLik"]["logLik"], atol=LIK_ATOL, what="logLik")
        sat = res["extras"]["integrated_logLik"]["saturated_logLik"]
        close(m.loglik - sat, res["tight_refit"]["logLik"], atol=LIK_ATOL, what="lme4-scale logLik")
    else:
        close(m.loglik, res["tight_refit"]["logLik"], atol=LIK_ATOL, what="logLik")
        assert m.loglik >= res["logLik"] - 1e-8, "worse than lme4's default fit"
    assert m.npar == res["logLik_df"]
    close(m.aic, -2 * m.loglik + 2 * m.npar, atol=1e-9)
    close(m.bic, -2 * m.loglik + np.log(m.nobs) * m.npar, atol=1e-9)
    assert m.nobs == ref["nobs"]


@pytest.mark.parametrize("case", GLMM_CASES)
def test_standard_errors(case):
    ref, m, _ = fit(case)
    res = ref["results"]
    se = np.sqrt(np.diag(m.vcov_array))
    close(se, res["tight_refit"]["se"], SE_RTOL_LME4, what="SE vs lme4")
    tmb = res.get("glmmTMB_check")
    if tmb:
        close(se, tmb["se"], SE_RTOL_TMB, what="SE vs glmmTMB")
    else:
        close(se, res["tight_refit"]["se"], SE_RTOL_TIGHT, what="SE vs lme4 tight")
    z = m.summary().coefficients["z value"].to_numpy()
    close(z, m.fixef.to_numpy() / se, 1e-12)


@pytest.mark.parametrize("case", TMB_CASES)
def test_glmmTMB_objective(case):
    """lme4's Laplace deviance at glmmTMB's estimates = -2 logLik there; ours is never above it."""
    ref, m, _ = fit(case)
    tmb = ref["results"]["glmmTMB_check"]
    assert -2 * m.loglik <= tmb["lme4_objective_at_glmmTMB_estimates"] + 1e-6
    close(-2 * m.loglik, -2 * tmb["logLik"], atol=2e-5, what="deviance vs glmmTMB")


@pytest.mark.parametrize("case", GLMM_CASES)
def test_ranef_and_condsd(case):
    ref, m, _ = fit(case)
    res = ref["results"]
    gap = res["tight_refit"]["max_abs_diff_theta"]  # lme4's default fit is this far from the optimum
    for group, blk in res["ranef"].items():
        mine = m.ranef[group]
        assert [str(v) for v in mine.index] == [str(v) for v in blk["levels"]]
        for term, vals in blk["values"].items():
            scale = np.max(np.abs(vals))
            close(mine[term].to_numpy(), vals, atol=(1e-4 + 10 * gap) * scale, what=f"ranef {group}")
            sd = m.ranef_condsd[group][term].to_numpy()
            close(sd, blk["condsd"][term], 1e-4 + 10 * gap, what=f"condsd {group}")


@pytest.mark.parametrize("case", GLMM_CASES)
def test_lme4_deviance(case):
    """lme4's ``deviance()`` of a GLMM: the sum of squared deviance residuals (not -2 logLik)."""
    ref, m, _ = fit(case)
    close(m.deviance, ref["results"]["lme4_deviance"], 1e-4, what="deviance")
    close(m.deviance, np.sum(m.resid("deviance") ** 2), 1e-12)


@pytest.mark.parametrize("case", GLMM_CASES)
def test_no_spurious_warnings(case):
    _, m, caught = fit(case)
    assert m.converged
    assert not [w for w in caught if "converge" in w], caught
    assert not m.singular


def test_agq_logLik_scale_differs_from_lme4():
    """lme4's nAGQ = 25 logLik (-50.0) is the exact one (-91.98) minus the saturated one (-41.98)."""
    ref, m, _ = fit("cbpp_agq25")
    sat = ref["results"]["extras"]["integrated_logLik"]["saturated_logLik"]
    close(m.loglik - sat, ref["results"]["logLik"], atol=1e-4)
    laplace = fit("cbpp_laplace")[1]
    assert abs(m.loglik - laplace.loglik) < 0.1  # AGQ refines the Laplace approximation


def test_summary_glmer_style():
    ref, m, _ = fit("cbpp_laplace")
    text = str(m.summary())
    # lme4 wraps the title at R's width 80 (.prt.methTitle): "(Laplace" / "  Approximation) [glmerMod]"
    assert text.startswith(
        "Generalized linear mixed model fit by maximum likelihood (Laplace\n  Approximation) [glmerMod]\n"
    )
    assert "Family: binomial  ( logit )" in text
    assert "z value" in text and "Pr(>|z|)" in text
    assert "184.1" in text  # the deviance column is -2 logLik, as lme4's summary prints it
    agq = fit("cbpp_agq25")[1]
    assert "(Adaptive\n  Gauss-Hermite Quadrature, nAGQ = 25) [glmerMod]" in str(agq.summary())  # R 4.2, lme4

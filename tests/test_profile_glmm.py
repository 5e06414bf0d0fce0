"""Profile-likelihood intervals of GLMMs (``inference.profile_glmm``), structured and not.

lme4's ``confint`` of cbpp (tests/oracle/profile_glmm.R) checks the unstructured case.

Reference: glmmTMB 1.1.5's ``confint(method = "profile")`` on the Poisson ar1 GLMMs of
tests/oracle/structures.R (tests/reference/structures.json.gz, ``profile``).  glmmTMB profiles on
its internal scale (β, log SD, ar1's φ); the maps to (SD, ρ = φ/√(1 + φ²)) are monotone, so its
bounds transform exactly.  Tolerance 1e-2 relative on every bound (the brief's; tmbprofile
interpolates its profile linearly between traced points: we see up to ~1.1e-3 on ρ's lower bound,
~2e-4 on stim's, ~3e-5 on the SD).  Our own bounds are checked against their definition: the minimum of
the Laplace deviance with the parameter held at the bound is d̂ + z².
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

import mmfast
from mmfast.errors import ModelSpecError

REF = json.load(gzip.open(Path(__file__).parent / "reference" / "structures.json.gz"))


def _fit(case):
    ref = REF[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # glmm_two_terms' batch SD is at its boundary
        return mmfast.glmer(ref["formula"], pd.DataFrame(ref["data"]), family=ref["family"])


def _glmmtmb_bounds(case) -> dict[str, np.ndarray]:
    """glmmTMB's profile bounds mapped to (β, SD, ρ), keyed by our confint names."""
    pr = REF[case]["profile"]
    lo = np.array([np.nan if v is None else v for v in pr["lower"]])
    hi = np.array([np.nan if v is None else v for v in pr["upper"]])
    b = np.column_stack([lo, hi])
    th = b[2:]
    rho = lambda phi: phi / np.sqrt(1 + phi * phi)  # noqa: E731
    out = {"(Intercept)": b[0], "stim": b[1], "sd|neuron": np.exp(th[-2]), "rho|neuron": rho(th[-1])}
    return out


@pytest.fixture(scope="module")
def ar1():
    m = _fit("glmm_ar1_poisson")
    return m, m.confint()


def test_profile_intervals_match_glmmtmb(ar1):
    m, ci = ar1
    assert list(ci.index) == ["sd|neuron", "rho|neuron", "(Intercept)", "stim"]
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    for name, bounds in _glmmtmb_bounds("glmm_ar1_poisson").items():
        np.testing.assert_allclose(ci.loc[name].to_numpy(), bounds, rtol=1e-2, err_msg=name)
        # observed: within 1.1e-3 (tmbprofile's linear interpolation; our bounds are exact roots)
        np.testing.assert_allclose(ci.loc[name].to_numpy(), bounds, rtol=2e-3, err_msg=name)


def test_profile_bounds_are_roots_of_the_laplace_deviance(ar1):
    """At each bound of ρ (and of stim) the deviance minimised over everything else is d̂ + z²."""
    m, ci = ar1
    (t,) = m.frame.terms
    pm = t.param
    base = m.deviance_at(m.theta, m.beta)
    z2 = stats.norm.ppf(0.975) ** 2
    for rho in ci.loc["rho|neuron"]:
        phi = pm.rho_to_phi(np.array([rho]))[0]
        f = lambda v: m.deviance_at(np.array([v[0], phi]), v[1:])  # noqa: E731
        res = optimize.minimize(
            f,
            np.concatenate([[m.theta[0]], m.beta]),
            method="Nelder-Mead",
            options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 4000},
        )
        assert res.fun - base == pytest.approx(z2, abs=2e-4)
    for x in ci.loc["stim"]:
        f = lambda v: m.deviance_at(v[:2], np.array([v[2], x]))  # noqa: E731
        res = optimize.minimize(
            f,
            np.concatenate([m.theta, m.beta[:1]]),
            method="Nelder-Mead",
            options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 4000},
        )
        assert res.fun - base == pytest.approx(z2, abs=2e-4)
    # profiling leaves the fit's state: the deviance at the estimate is unchanged
    assert m.deviance_at(m.theta, m.beta) == pytest.approx(base, abs=1e-9)


def test_profile_with_an_unstructured_term_at_its_boundary():
    """Two terms: (1 | batch) (SD ~ 0, glmmTMB's profile fails there) and the ar1 term, whose
    interval matches glmmTMB's; the zero SD's interval starts at 0, its upper end is a root."""
    m = _fit("glmm_two_terms")
    ci = m.confint(parm=["rho|neuron", "sd_(Intercept)|batch"])
    ref = _glmmtmb_bounds("glmm_two_terms")["rho|neuron"]
    np.testing.assert_allclose(ci.loc["rho|neuron"].to_numpy(), ref, rtol=1e-2)
    lo, hi = ci.loc["sd_(Intercept)|batch"]
    assert lo == 0.0 and 0.05 < hi < 1.0
    prof = m.profile(which="sd_(Intercept)|batch")
    z = stats.norm.ppf(0.975)
    zz = np.interp(hi, prof["value"], prof["zeta"])
    assert zz == pytest.approx(z, abs=2e-2)  # the traced profile crosses z at the bound


def test_wald_intervals_have_no_sigma_row(ar1):
    m, _ = ar1
    w = m.confint(method="wald")
    assert list(w.index) == ["sd|neuron", "rho|neuron", "(Intercept)", "stim"]
    assert w.loc["sd|neuron"].isna().all()
    se = np.sqrt(np.diag(m.vcov_array))
    np.testing.assert_allclose(w.loc["stim"], m.beta[1] + np.array([-1, 1]) * stats.norm.ppf(0.975) * se[1])


def test_profile_refused_for_a_family_with_a_scale():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(20), 6)
    d = pd.DataFrame({"g": g, "x": rng.normal(size=g.size)})
    d["y"] = rng.gamma(4.0, np.exp(0.5 + 0.3 * d["x"] + rng.normal(0, 0.3, 20)[g]) / 4.0)
    m = mmfast.glmer("y ~ x + (1 | g)", d, family=mmfast.families.Gamma(link="log"))
    with pytest.raises(ModelSpecError, match="scale or dispersion"):
        m.confint(method="profile")


LME4 = json.load(gzip.open(Path(__file__).parent / "reference" / "profile_glmm.json.gz"))


@pytest.mark.parametrize("case", [k for k in LME4 if not k.startswith("_")])
def test_unstructured_glmm_profile_matches_lme4(case):
    """cbpp (binomial, (1 | herd)), Laplace and 10-point AGQ, against lme4's ``confint``:
    rtol 2e-4 (lme4 interpolates its profile by splines; observed ≤ 6e-5)."""
    ref = LME4[case]
    m = mmfast.glmer(ref["formula"], mmfast.datasets.load("cbpp"), family="binomial", n_agq=ref["n_agq"])
    ci = m.confint()
    names = [n.replace("period", "factor(period)") if n.startswith("period") else n for n in ref["names"]]
    assert list(ci.index) == names
    np.testing.assert_allclose(ci.to_numpy(), np.column_stack([ref["lower"], ref["upper"]]), rtol=2e-4)

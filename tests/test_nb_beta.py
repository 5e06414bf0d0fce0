"""Negative binomial (nbinom2, nbinom1) and beta GLMMs against glmmTMB 1.1.5 and lme4's glmer.nb
(tests/oracle/nb_beta.R -> tests/reference/nb_beta.json.gz).

Agreement as for the other GLMMs: logLik within 5e-4 relative of the better of the anchor's
default and tight fits, fixef within 2e-3 SE, the dispersion within 2e-3 relative.  ``glmer``
with these families is glmmTMB's exact Laplace (observed information); ``glmer_nb`` is lme4's
(expected information) and is compared with glmer.nb.
"""

import gzip
import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.errors import ConvergenceWarning, DataError, ModelSpecError
from mmfast.families import Beta, NegativeBinomial, NegativeBinomial1, get_family

REF = json.load(gzip.open(Path(__file__).parent / "reference" / "nb_beta.json.gz"))
FAMILY = {"nbinom2": "negative_binomial", "nbinom1": "nbinom1", "beta_family": "beta"}
LIMIT = {"spikes_nb2"}  # θ -> ∞ (Poisson data): glmmTMB reports false convergence at θ ~ 1e7
FLAT_NB = {"pois_limit", "spikes_nb2"}  # glmer.nb's alternation stops early on a flat θ profile


def data(case: str) -> pd.DataFrame:
    c = REF[case]
    if c["data"] == "grouseticks":
        d = mmfast.datasets.load("grouseticks")
        cols = ["YEAR", "BROOD", "LOCATION"]
    elif c["data"] == "spikes":
        d = mmfast.datasets.load("spikes")
        cols = ["condition", "mouse", "neuron"]
    else:
        return pd.DataFrame(
            {k: np.array(v, dtype=float) if k in ("y", "x") else np.array(v) for k, v in c["columns"].items()}
        )
    for k in cols:
        d[k] = d[k].astype(str)
    return d


@lru_cache(maxsize=None)
def fitted(case: str, nb: bool = False):
    c = REF[case]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        if nb:
            m = mmfast.glmer_nb(c["formula"], data(case))
        else:
            m = mmfast.glmer(c["formula"], data(case), family=FAMILY[c["family"]])
    return m, [x for x in w if issubclass(x.category, ConvergenceWarning)]


def f(xs):
    return np.array(xs, dtype=float).ravel()


TMB_CASES = [k for k in REF if k != "versions"]
NB_CASES = [k for k in TMB_CASES if "glmer_nb" in REF[k]]


@pytest.mark.parametrize("case", TMB_CASES)
def test_against_glmmtmb(case):
    c = REF[case]
    m, warns = fitted(case)
    d, t = c["tmb_default"], c["tmb_tight"]
    best = max(float(d["logLik"]), float(t["logLik"]))
    anchor = d if float(d["logLik"]) >= float(t["logLik"]) else t
    assert abs(m.loglik - best) <= 5e-4 * abs(best)
    assert m.loglik >= best - 1e-4 * abs(best)
    assert np.all(np.abs(m.fixef.to_numpy() - f(anchor["fixef"])) <= 2e-3 * f(anchor["se"]))
    np.testing.assert_allclose(np.abs(m.theta), f(anchor["sd"]), rtol=2e-3, atol=2e-3)
    if case in LIMIT:  # θ -> ∞: a clear warning and the Poisson answer, finite
        assert m.dispersion >= 1e6 and np.isfinite(m.loglik)
        assert any("Poisson limit" in str(x.message) for x in warns)
    else:
        assert m.dispersion == pytest.approx(float(anchor["sigma"]), rel=2e-3)
        assert not warns
    assert m.npar == len(m.fixef) + len(m.theta) + 1


@pytest.mark.parametrize("case", NB_CASES)
def test_against_glmer_nb(case):
    c = REF[case]
    m, _ = fitted(case, nb=True)
    d, t = c["glmer_nb"], c["glmer_nb_tight"]
    best = max(float(d["logLik"]), float(t["logLik"]))
    assert abs(m.loglik - best) <= 5e-4 * abs(best)
    assert m.loglik >= best - 1e-6 * abs(best)  # joint ML: never below glmer.nb's alternation
    assert str(m.family).startswith("Negative Binomial(")
    if case in FLAT_NB:
        return
    anchor = d if float(d["logLik"]) >= float(t["logLik"]) else t
    assert m.dispersion == pytest.approx(float(anchor["theta_nb"]), rel=2e-3)
    assert np.all(np.abs(m.fixef.to_numpy() - f(anchor["fixef"])) <= 2e-3 * f(anchor["se"]))
    assert f"Family: Negative Binomial({round(m.dispersion, 4):g})" in str(m.summary())


def test_fixed_dispersion_is_the_profile():
    """θ fixed at the estimate: the same fit, one parameter fewer."""
    m, _ = fitted("grouse_nb2_location")
    c = REF["grouse_nb2_location"]
    g = mmfast.glmer(c["formula"], data("grouse_nb2_location"), family=NegativeBinomial(theta=m.dispersion))
    assert g.loglik == pytest.approx(m.loglik, abs=1e-7)
    assert g.npar == m.npar - 1
    assert g.dispersion == m.dispersion


def test_dispersion_standard_error():
    """The SE of log θ from the profile's curvature; θ enters the deviance through
    log θ alone, so a second difference of the profiled deviance gives it back."""
    m, _ = fitted("grouse_nb2_location")
    assert m.dispersion_se is not None and 0 < m.dispersion_se < m.dispersion
    from mmfast.model.dispersion import profiled_deviance

    c = REF["grouse_nb2_location"]
    g = mmfast.glmer(c["formula"], data("grouse_nb2_location"), family="negative_binomial")
    t, h = np.log(g.dispersion), 0.05
    work = g.with_frame(g.frame)  # a fitted model is read-only: the profile runs on a copy
    vals = [profiled_deviance(work, t + k * h, g.theta) for k in (-1, 0, 1)]
    curv = (vals[0] - 2 * vals[1] + vals[2]) / h**2
    assert m.dispersion_se / m.dispersion == pytest.approx(np.sqrt(2 / curv), rel=0.02)


def test_family_names_and_equality():
    assert get_family("nbinom2") == "negative_binomial"
    assert isinstance(get_family("negative_binomial"), NegativeBinomial)
    assert isinstance(get_family("nbinom1"), NegativeBinomial1)
    assert isinstance(get_family("beta"), Beta)
    assert NegativeBinomial(2.0) == NegativeBinomial(2.0) and NegativeBinomial(2.0) != NegativeBinomial()
    with pytest.raises(ModelSpecError, match="positive"):
        NegativeBinomial(theta=-1)
    with pytest.raises(ModelSpecError, match="link"):
        NegativeBinomial(link="identity")


def test_bad_responses():
    d = data("pois_limit").copy()
    bad = d.copy()
    bad.loc[0, "y"] = -1.0
    with pytest.raises(DataError, match="negative"):
        mmfast.glmer_nb("y ~ x + (1 | g)", bad)
    bad = d.copy()
    bad.loc[0, "y"] = 1.5
    with pytest.raises(DataError, match="integer"):
        mmfast.glmer("y ~ x + (1 | g)", bad, family="nbinom1")
    b = data("beta_sim").copy()
    b.loc[3, "y"] = 1.0
    with pytest.raises(DataError, match="strictly between 0 and 1"):
        mmfast.glmer("y ~ x + (1 | g)", b, family="beta")


def test_dispersion_profile_interval():
    """At both ends the profiled deviance is the χ²₁(0.95) quantile above its minimum (a
    derivation, checked by refitting there); near the Wald interval on the log scale."""
    from scipy.stats import chi2

    from mmfast.model.dispersion import profiled_deviance

    m, _ = fitted("grouse_nb2_location")
    lo, hi = m.dispersion_confint(0.95)
    assert lo < m.dispersion < hi
    work = m.with_frame(m.frame)
    for end in (lo, hi):
        assert profiled_deviance(work, np.log(end), m.theta) - m.objective_value == pytest.approx(
            chi2.ppf(0.95, 1), abs=1e-4
        )
    wald = np.exp(np.log(m.dispersion) + np.array([-1.96, 1.96]) * m.dispersion_log_se)
    np.testing.assert_allclose([lo, hi], wald, rtol=0.05)
    assert m.loglik == pytest.approx(-0.5 * m.objective_value)  # the fit itself is unchanged


def test_simulated_draws_have_the_family_moments():
    """simulate() draws from the fitted family: conditional on the modes (no new random
    effects here: a long draw at fixed mu), NB2 var = mu + mu²/θ, beta var = mu(1-mu)/(1+φ)."""
    from mmfast.resample.simulate import ResponseSimulator

    for case, var in (
        ("grouse_nb2_location", lambda mu, d: mu + mu**2 / d),
        ("beta_sim", lambda mu, d: mu * (1 - mu) / (1 + d)),
        ("grouse_nb1", lambda mu, d: mu * (1 + d)),
    ):
        m, _ = fitted(case)
        sim = ResponseSimulator(m, conditional=True)
        rng = np.random.default_rng(5)
        Y = np.column_stack([sim.draw(rng) for _ in range(4000)])
        mu = m.family.linkinv(sim.eta_conditional)
        z = (Y.mean(axis=1) - mu) / np.sqrt(var(mu, m.dispersion) / Y.shape[1])
        assert np.abs(z).max() < 5.0
        ratio = Y.var(axis=1).sum() / var(mu, m.dispersion).sum()
        assert ratio == pytest.approx(1.0, abs=0.05)


def test_refit_and_bootstrap_reestimate_the_dispersion():
    m, _ = fitted("beta_sim")
    y = m.simulate(1, seed=3, as_frame=False)[:, 0]
    r = m.refit(y)
    assert r.dispersion != m.dispersion and r.family.estimated
    g = mmfast.glmer(REF["beta_sim"]["formula"], data("beta_sim").assign(y=y), family="beta")
    assert r.loglik == pytest.approx(g.loglik, abs=1e-6)
    assert r.dispersion == pytest.approx(g.dispersion, rel=1e-4)
    reps = m.bootstrap(3, seed=1)
    assert "phi" in reps.columns and reps["phi"].notna().all()


def test_pickle_keeps_the_fit():
    import pickle

    m, _ = fitted("nb_crossed")
    p = pickle.loads(pickle.dumps(m))
    assert p.dispersion == m.dispersion
    assert p.deviance_at(m.theta, m.beta) == pytest.approx(m.objective_value, abs=1e-8)


def test_emmeans_on_the_response_scale():
    """type="response": exp of the link-scale means, delta-method SEs, back-transformed
    intervals (emmeans' regrid for a log link)."""
    m, _ = fitted("grouse_nb2_location")
    link = mmfast.emmeans(m, "YEAR").table
    resp = mmfast.emmeans(m, "YEAR", type="response").table
    np.testing.assert_allclose(resp["response"], np.exp(link["emmean"]), rtol=1e-12)
    np.testing.assert_allclose(resp["SE"], np.exp(link["emmean"]) * link["SE"], rtol=1e-12)
    np.testing.assert_allclose(resp["asymp.LCL"], np.exp(link["asymp.LCL"]), rtol=1e-12)
    np.testing.assert_allclose(resp["asymp.UCL"], np.exp(link["asymp.UCL"]), rtol=1e-12)
    # the grid mean at cHEIGHT's mean: X β by hand for YEAR 95 (the reference level)
    x0 = np.array([1.0, 0.0, 0.0, m.frame.data["cHEIGHT"].mean()])
    assert resp["response"].iloc[0] == pytest.approx(np.exp(x0 @ m.beta), rel=1e-10)
    with pytest.raises(mmfast.ArgumentError):
        mmfast.emmeans(m, "YEAR", type="probability")


def test_agq_is_the_integrated_likelihood():
    """n_agq > 1 with one scalar term: the log-likelihood at the fit is the integral over each
    LOCATION's random effect of its rows' NB likelihood (scipy's quad, a derivation), whichever
    information (observed or expected) sets the adaptive scale."""
    from scipy import integrate, stats

    d = data("grouse_nb2_location")
    fam = NegativeBinomial(theta=2.0)
    m = mmfast.glmer("TICKS ~ YEAR + cHEIGHT + (1 | LOCATION)", d, family=fam, n_agq=15)
    fixed = m.frame.X @ m.beta
    sd = float(m.theta[0])
    codes = m.frame.terms[0].factor.codes
    y = m.y
    total = 0.0
    for j in np.unique(codes):
        rows = codes == j

        def integrand(u):
            mu = np.exp(fixed[rows] + sd * u)
            return np.exp(np.sum(stats.nbinom.logpmf(y[rows], 2.0, 2.0 / (2.0 + mu)))) * stats.norm.pdf(u)

        total += np.log(integrate.quad(integrand, -12, 12, epsabs=0, epsrel=1e-12, limit=200)[0])
    assert m.loglik == pytest.approx(total, abs=1e-5)
    e = mmfast.glmer(
        "TICKS ~ YEAR + cHEIGHT + (1 | LOCATION)", d, family=NegativeBinomial(2.0, hessian="expected"), n_agq=15
    )
    assert e.deviance_at(m.theta, m.beta) == pytest.approx(m.objective_value, abs=1e-5)


def test_pbmodcomp_refits_the_dispersion():
    """pbmodcomp between NB GLMMs: the LRT is 2 Δ logLik of the two fits (θ estimated in each)
    and every simulated pair is refitted (full refits: the dispersion is re-estimated)."""
    from mmfast.resample.pbmodcomp import pbmodcomp

    big, _ = fitted("grouse_nb2_location")
    small = mmfast.glmer("TICKS ~ YEAR + (1 | LOCATION)", data("grouse_nb2_location"), family="negative_binomial")
    assert small.dispersion != big.dispersion
    res = pbmodcomp(big, small, nsim=4, seed=1)
    text = str(res)
    assert f"{2 * (big.loglik - small.loglik):.3f}"[:5] in text
    assert "failed refits: 0" in text

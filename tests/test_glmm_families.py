"""Families, links, response forms, n_agq variants and the vector-term path against lme4.

The numbers below were computed once with R 4.2.2 / lme4 1.1-31 from the bundled CSVs
(factors with sorted levels), every fit with
``glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5), tolPwrss = 1e-10)``
(nAGQ = 0: tolPwrss = 1e-12):

    cbpp_probit        glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial(link = "probit"))
    cbpp_cloglog_prop  glmer(incidence / size ~ period + (1 | herd), cbpp, weights = size, binomial(link = "cloglog"))
    cbpp_nagq0         glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial, nAGQ = 0)
    waterlick_agq7     glmer(lick ~ dff + (1 | mouseID), waterlick, binomial, nAGQ = 7)
    cake_gamma_log     glmer(angle ~ recipe + temperature + (1 | replicate), cake, Gamma(link = "log"))
    spikes_slope       glmer(count ~ condition + stim + (stim | mouse), spikes, offset = log(duration), poisson)

with theta = getME(m, "theta"), se = sqrt(diag(vcov(m))), se_rx = the same with
``use.hessian = FALSE``, deviance = deviance(m), sigma = sigma(m), df = attr(logLik(m), "df"),
ranef1 / condsd1 = the first three conditional modes / conditional sds of the first term.
(lme4 flags the cake fits as "nearly unidentifiable" (temperature in degrees): its
finite-difference Hessian is unreliable there, so for Gamma the R_X-based SEs are compared.)
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.errors import ConvergenceWarning
from mmfast.families import Binomial, Gamma, Poisson, get_family

R = {
    "cbpp_probit": {
        "theta": [0.337991747060738],
        "fixef": [-0.835477477763099, -0.528033819564532, -0.616886703972892, -0.79956316737904],
        "se": [0.126236610081118, 0.160604234427025, 0.169476925902723, 0.204698534243591],
        "se_rx": [0.124247547725565, 0.158023930643723, 0.167388535209302, 0.203031007338601],
        "logLik": -92.6212233727796,
        "deviance": 74.8035910227949,
        "sigma": 1,
        "df": 5,
        "ranef1": [0.324180304670338, -0.163802095926078, 0.195079456530728],
        "condsd1": [0.191830947560641, 0.189054431296961, 0.161620389835053],
    },  # noqa: E501
    "cbpp_cloglog_prop": {
        "theta": [0.586689732134845],
        "fixef": [-1.52597953661645, -0.916321363444477, -1.03516287439431, -1.48363408524251],
        "se": [0.210915656878626, 0.284887707368498, 0.306312942885046, 0.409044575307777],
        "se_rx": [0.205201414821774, 0.284772204331307, 0.304701035216526, 0.411243565103208],
        "logLik": -91.8020392507234,
        "deviance": 72.6970322346033,
        "sigma": 1,
        "df": 5,
        "ranef1": [0.511252325603875, -0.267741674917457, 0.391764231638043],
        "condsd1": [0.312914294793338, 0.340376725637721, 0.267586465977465],
    },  # noqa: E501
    "cbpp_nagq0": {
        "theta": [0.641815090014152],
        "fixef": [-1.36047175869808, -0.976177467385322, -1.11107688986012, -1.55968051158031],
        "se": [0.227574626292509, 0.303287349082726, 0.323511803330837, 0.424455501613418],
        "se_rx": [0.227574626292509, 0.303287349082726, 0.323511803330837, 0.424455501613418],
        "logLik": -92.0542954728184,
        "deviance": 73.4846433672653,
        "sigma": 1,
        "df": 5,
        "ranef1": [0.556918860093693, -0.329484055105502, 0.368973588191998],
        "condsd1": [0.347082484116128, 0.363969637766753, 0.296358136135712],
    },  # noqa: E501
    "waterlick_agq7": {
        "theta": [0.628653251183226],
        "fixef": [-0.540000323878492, 0.0578566584104603],
        "se": [0.259799025677221, 0.0196351758314325],
        "se_rx": [0.259029141957354, 0.0194694444689307],
        "logLik": -333.975762887836,
        "deviance": 646.163677404506,
        "sigma": 1,
        "df": 3,
        "ranef1": [0.760901075237127, 0.455595506479888, -0.729960280120403],
        "condsd1": [0.239242154318601, 0.23517659453834, 0.256238642418575],
    },  # noqa: E501
    "cake_gamma_log": {
        "theta": [0.589873027420973],
        "fixef": [2.48244481904757, -0.0563466847448751, -0.059333876671843, 0.00501511708154109],
        "se": [0.121102981647443, 0.0217582040443149, 0.0217697093972782, 0.000521197747845872],
        "se_rx": [0.115394537198318, 0.0233604656691591, 0.0233604656691591, 0.000558421937903057],
        "logLik": -809.122822981031,
        "deviance": 5.7593768947088,
        "sigma": 0.15670676766687,
        "df": 6,
        "ranef1": [0.346170902581374, 0.317908454480214, 0.135804384304953],
        "condsd1": [0.0342992937330295, 0.0342992937330295, 0.0342992937330295],
    },  # noqa: E501
    "spikes_slope": {
        "theta": [0.18794348639542, 0.105062869294701, 0.0849774580404486],
        "fixef": [1.22019830993209, -0.343386107141014, 0.962349022039182],
        "se": [0.0803360105835168, 0.0192127258256301, 0.0657191110600019],
        "se_rx": [0.0801894629151596, 0.0192153811735681, 0.0652020898120635],
        "logLik": -5909.87105785062,
        "deviance": 6051.17218698627,
        "sigma": 1,
        "df": 6,
        "ranef1": [-0.145643908363138, 0.126975542715374, -0.335322730395438],
        "condsd1": [0.0358950320306968, 0.0332761234559846, 0.038915617100615],
    },  # noqa: E501
}


def load(name, factors):
    d = mmfast.datasets.load(name)
    for v in factors:
        d[v] = pd.Categorical(d[v], categories=sorted(d[v].unique()))
    return d


@pytest.fixture(scope="module")
def cbpp():
    return load("cbpp", ["herd", "period"])


@pytest.fixture(scope="module")
def waterlick():
    return load("waterlick", ["mouseID"])


@pytest.fixture(scope="module")
def spikes():
    d = load("spikes", ["condition", "mouse", "neuron"])
    d["logdur"] = np.log(d["duration"])
    return d


FITS = {
    "cbpp_probit": (
        "cbpp",
        lambda d: mmfast.glmer(
            "cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family=Binomial(link="probit")
        ),
    ),
    "cbpp_cloglog_prop": (
        "cbpp",
        lambda d: mmfast.glmer(
            "incidence / size ~ period + (1 | herd)", d, family=Binomial(link="cloglog"), weights="size"
        ),
    ),
    "cbpp_nagq0": (
        "cbpp",
        lambda d: mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, n_agq=0),
    ),
    "waterlick_agq7": ("waterlick", lambda d: mmfast.glmer("lick ~ dff + (1 | mouseID)", d, n_agq=7)),
    "cake_gamma_log": (
        "cake",
        lambda d: mmfast.glmer("angle ~ recipe + temperature + (1 | replicate)", d, family=Gamma(link="log")),
    ),
    "spikes_slope": (
        "spikes",
        lambda d: mmfast.glmer("count ~ condition + stim + (stim | mouse)", d, family="poisson", offset="logdur"),
    ),
}


@pytest.fixture(scope="module")
def datasets(cbpp, waterlick, spikes):
    return {"cbpp": cbpp, "waterlick": waterlick, "spikes": spikes, "cake": load("cake", ["recipe", "replicate"])}


@pytest.mark.parametrize("case", list(FITS))
def test_against_lme4(case, datasets):
    r = R[case]
    name, f = FITS[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        m = f(datasets[name])
    gamma = case.startswith("cake")
    np.testing.assert_allclose(m.theta, r["theta"], rtol=1e-4 if not gamma else 1e-3, atol=1e-7)
    np.testing.assert_allclose(m.beta, r["fixef"], rtol=1e-4 if not gamma else 1e-3)
    assert m.loglik >= r["logLik"] - 1e-5 and abs(m.loglik - r["logLik"]) < (1e-5 if not gamma else 5e-5)
    assert m.npar == r["df"]
    np.testing.assert_allclose(m.sigma, r["sigma"], rtol=1e-4)
    np.testing.assert_allclose(m.deviance, r["deviance"], rtol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov_rx)), r["se_rx"], rtol=5e-4)
    if not gamma:
        np.testing.assert_allclose(np.sqrt(np.diag(m.vcov_array)), r["se"], rtol=5e-4)
    first = list(m.ranef)[0]
    np.testing.assert_allclose(m.ranef[first].iloc[:3, 0], r["ranef1"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m.ranef_condsd[first].iloc[:3, 0], r["condsd1"], rtol=1e-4)


@pytest.mark.parametrize(
    "n_agq,theta,fixef,loglik_lme4",
    [
        (2, 0.641589309889, [-1.397944766279, -0.992683595083, -1.129062054185, -1.580847183291], -50.057015725054),  # noqa: E501
        (9, 0.647517707701, [-1.399230192948, -0.991403866508, -1.127819636637, -1.579471025887], -50.005018027399),  # noqa: E501
    ],
)
def test_agq_even_and_odd_rules(cbpp, n_agq, theta, fixef, loglik_lme4):
    """lme4 nAGQ = 2 (no centre node) and 9 (tight control); lme4's logLik = ours - saturated."""
    m = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, n_agq=n_agq)
    np.testing.assert_allclose(m.theta, [theta], rtol=1e-4)
    np.testing.assert_allclose(m.beta, fixef, rtol=1e-4)
    saturated = -41.9783537689356  # tests/reference/cbpp_agq25.json.gz, extras.integrated_logLik
    assert abs(m.loglik - saturated - loglik_lme4) < 1e-6


def test_poisson_sqrt_link_stays_on_the_positive_branch(spikes):
    """mu = eta^2 has a mirror mode at eta < 0; PIRLS keeps eta > 0 as R's valideta requires.
    lme4 (tight control): theta 0.290965197757, fixef 1.853307106540 1.196041744763,
    logLik -6771.684474429173."""
    m = mmfast.glmer("count ~ stim + (1 | mouse)", spikes, family=Poisson(link="sqrt"))
    np.testing.assert_allclose(m.theta, [0.290965197757], rtol=1e-5)
    np.testing.assert_allclose(m.beta, [1.853307106540, 1.196041744763], rtol=1e-5)
    assert abs(m.loglik - -6771.684474429173) < 1e-6


def test_cauchit_link(waterlick):
    """lme4 (tight control): theta 0.549125329570, fixef -0.449694776148 0.048096281157,
    logLik -334.494557241065.  With a non-canonical link PIRLS converges linearly and lme4's
    lagged log-determinant is 1.5e-5 off here (our deviance at lme4's estimates: -334.49457227),
    so the optimum moves by ~7e-5."""
    m = mmfast.glmer("lick ~ dff + (1 | mouseID)", waterlick, family=Binomial(link="cauchit"))
    np.testing.assert_allclose(m.theta, [0.549125329570], rtol=2e-4)
    np.testing.assert_allclose(m.beta, [-0.449694776148, 0.048096281157], rtol=2e-4)
    assert abs(m.loglik - -334.494557241065) < 5e-5
    assert m.loglik >= -0.5 * m.deviance_at([0.549125329570], [-0.449694776148, 0.048096281157])


def test_gamma_reports_a_residual_scale(datasets):
    m = FITS["cake_gamma_log"][1](datasets["cake"])
    assert m.use_scale and "Residual" in set(m.varcorr["grp"])
    vc = m.varcorr.set_index("grp")
    np.testing.assert_allclose(vc.loc["replicate", "vcov"], (m.sigma * m.theta[0]) ** 2, rtol=1e-12)


# --- response forms and argument forms give identical fits ---------------------------------
def test_cbind_equals_proportion_with_weights(cbpp):
    a = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    b = mmfast.glmer("incidence / size ~ period + (1 | herd)", cbpp, weights="size")
    c = mmfast.glmer("incidence / size ~ period + (1 | herd)", cbpp, weights=cbpp["size"].to_numpy())
    for m in (b, c):
        assert abs(m.loglik - a.loglik) < 1e-8
        np.testing.assert_allclose(m.beta, a.beta, rtol=1e-6)


def test_family_strings_classes_and_objects(waterlick):
    f = "lick ~ dff + (1 | mouseID)"
    ms = [
        mmfast.glmer(f, waterlick),
        mmfast.glmer(f, waterlick, family=Binomial),
        mmfast.glmer(f, waterlick, family=Binomial(link="logit")),
        mmfast.glmer(f, waterlick, family="Binomial"),
    ]
    for m in ms[1:]:
        assert m.loglik == pytest.approx(ms[0].loglik, abs=1e-9)
    assert ms[0].family == "binomial" and ms[0].link == "logit"
    assert repr(get_family("poisson")) == "Poisson(link='log')"
    assert get_family("gamma").link == "inverse" and get_family("Gamma").name == "Gamma"


def test_offset_in_formula_equals_offset_argument(spikes):
    f = "count ~ condition + stim + (1 | mouse/neuron)"
    a = mmfast.glmer(f.replace("~", "~ offset(log(duration)) +"), spikes, family="poisson")
    b = mmfast.glmer(f, spikes, family="poisson", offset="logdur")
    c = mmfast.glmer(f, spikes, family=Poisson(), offset=np.log(spikes["duration"].to_numpy()))
    for m in (b, c):
        assert abs(m.loglik - a.loglik) < 1e-7
        np.testing.assert_allclose(m.beta, a.beta, rtol=1e-6)
    np.testing.assert_allclose(b.predict(spikes), a.predict(spikes), rtol=1e-6)


def test_string_response_two_levels():
    d = mmfast.datasets.load("VerbAgg").iloc[::4].reset_index(drop=True)
    a = mmfast.glmer("r2 ~ Anger + (1 | item)", d)
    d["y"] = (d["r2"] == "Y").astype(int)
    b = mmfast.glmer("y ~ Anger + (1 | item)", d)
    assert abs(a.loglik - b.loglik) < 1e-9


# --- predictions and odds ratios ----------------------------------------------------------
def test_predict_link_and_response(waterlick):
    m = mmfast.glmer("lick ~ dff + (1 | mouseID)", waterlick)
    eta = m.predict()
    mu = m.predict(type="response")
    np.testing.assert_allclose(mu, 1 / (1 + np.exp(-eta)), rtol=1e-12)
    np.testing.assert_allclose(mu, m.fitted, rtol=1e-12)
    np.testing.assert_allclose(m.predict(waterlick, type="response"), mu, rtol=1e-10)
    pop = m.predict(re_form=None)
    np.testing.assert_allclose(pop, m.beta[0] + m.beta[1] * waterlick["dff"], rtol=1e-12)
    new = pd.DataFrame({"dff": [0.0, 5.0], "mouseID": ["99", "99"]})
    with pytest.raises(mmfast.DataError):
        m.predict(new)
    np.testing.assert_allclose(
        m.predict(new, allow_new_levels=True, type="response"),
        1 / (1 + np.exp(-(m.beta[0] + m.beta[1] * new["dff"]))),
        rtol=1e-12,
    )
    with pytest.raises(ValueError):
        m.predict(type="probability")
    res = {t: m.resid(t) for t in ("deviance", "pearson", "response", "working")}
    np.testing.assert_allclose(res["response"], waterlick["lick"] - mu, atol=1e-12)


def test_odds_ratios_waterlick(waterlick):
    """The lecture's Example 4 computation exp(b ± 1.96 SE) - 1 on the bundled (simulated) data."""
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from reference_cases import load_reference

    ref = load_reference("waterlick_laplace")["results"]["tight_refit"]
    m = mmfast.glmer("lick ~ dff + (1 | mouseID)", waterlick)
    orr = m.odds_ratios()
    b, se = ref["fixef"][1], ref["se"][1]
    np.testing.assert_allclose(
        orr.loc["dff", ["odds_ratio", "lower", "upper"]].to_numpy(float),
        np.exp([b, b - 1.959964 * se, b + 1.959964 * se]),
        rtol=2e-4,
    )
    # 6.0% (2.0% to 10.1%) per unit dF/F on this simulated version of the data
    np.testing.assert_allclose(
        orr.loc["dff", ["pct_change", "pct_lower", "pct_upper"]].to_numpy(float), [5.96, 1.96, 10.11], atol=0.01
    )
    assert orr.attrs["level"] == 0.95
    assert (m.odds_ratios(level=0.9)["lower"] > orr["lower"]).all()


def test_odds_ratio_formula_reproduces_the_lecture():
    """With the lecture's printed estimate (0.06235, SE 0.01986): 6.4% (2.4% to 10.7%)."""
    from mmfast.model.glmm import wald_odds_ratios

    t = wald_odds_ratios([0.06235], [0.01986])
    np.testing.assert_allclose(
        t[["odds_ratio", "lower", "upper"]].to_numpy()[0] - 1, [0.06433480, 0.02370091, 0.10658157], atol=2e-6
    )


# --- bad input ------------------------------------------------------------------------------
def test_family_and_link_errors(waterlick):
    f = "lick ~ dff + (1 | mouseID)"
    with pytest.raises(mmfast.ModelSpecError, match="unknown family"):
        mmfast.glmer(f, waterlick, family="bernoulli")
    with pytest.raises(mmfast.ModelSpecError, match="lmer"):
        mmfast.glmer(f, waterlick, family="gaussian")
    with pytest.raises(mmfast.ModelSpecError, match="unknown link"):
        Binomial(link="logistic")
    with pytest.raises(mmfast.ModelSpecError, match="not available for the poisson"):
        Poisson(link="logit")
    with pytest.raises(mmfast.ModelSpecError):
        mmfast.glmer(f, waterlick, family=42)


def test_response_outside_support(waterlick, spikes, cbpp):
    w = waterlick.assign(lick2=waterlick["lick"] + 1)
    with pytest.raises(mmfast.DataError, match="'lick2'"):
        mmfast.glmer("lick2 ~ dff + (1 | mouseID)", w)
    s = spikes.assign(neg=spikes["count"] - 3, frac=spikes["count"] + 0.5)
    with pytest.raises(mmfast.DataError, match="'neg'.*negative"):
        mmfast.glmer("neg ~ stim + (1 | mouse)", s, family="poisson")
    with pytest.raises(mmfast.DataError, match="'frac'.*integer"):
        mmfast.glmer("frac ~ stim + (1 | mouse)", s, family="poisson")
    with pytest.raises(mmfast.DataError, match="'count'.*positive"):
        mmfast.glmer("count ~ stim + (1 | mouse)", s, family="gamma")
    with pytest.raises(mmfast.DataError, match="non-negative"):
        mmfast.glmer("cbind(incidence, incidence - size) ~ period + (1 | herd)", cbpp)
    with pytest.raises(mmfast.DataError, match="binomial"):
        mmfast.glmer("cbind(incidence, size) ~ period + (1 | herd)", cbpp, family="poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mmfast.SingularFitWarning)
        with pytest.warns(UserWarning, match="non-integer"):  # a proportion without its trials
            mmfast.glmer("incidence / size ~ period + (1 | herd)", cbpp)


def test_n_agq_rules(spikes, waterlick):
    with pytest.raises(mmfast.ModelSpecError, match="single, scalar"):
        mmfast.glmer("count ~ stim + (1 | mouse) + (1 | neuron)", spikes, family="poisson", n_agq=5)
    with pytest.raises(mmfast.ModelSpecError, match="single, scalar"):
        mmfast.glmer("count ~ stim + (stim | mouse)", spikes, family="poisson", n_agq=5)
    for bad in (26, -1, 2.5, "a"):
        with pytest.raises(mmfast.ModelSpecError):
            mmfast.glmer("lick ~ dff + (1 | mouseID)", waterlick, n_agq=bad)
    cake = load("cake", ["recipe", "replicate"])
    with pytest.raises(mmfast.ModelSpecError, match="Gamma"):
        mmfast.glmer("angle ~ temperature + (1 | replicate)", cake, family="gamma", n_agq=3)
    with pytest.raises(mmfast.ModelSpecError, match="logit"):
        mmfast.glmer("count ~ stim + (1 | mouse)", spikes, family="poisson").odds_ratios()


def test_no_random_effects(waterlick):
    with pytest.raises(mmfast.MmfastError):
        mmfast.glmer("lick ~ dff", waterlick)


def test_convergence_fallback_is_noted_not_warned(waterlick):
    """A stage-2 optimiser stopped far too early fails the gradient check and is restarted."""
    good = mmfast.glmer("lick ~ dff + (1 | mouseID)", waterlick)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        m = mmfast.glmer("lick ~ dff + (1 | mouseID)", waterlick, control=mmfast.GlmmControl(stage2_tol=(10.0, 10.0)))
    assert m.converged and any("restarted" in n for n in m.optinfo["notes"])
    assert abs(m.loglik - good.loglik) < 1e-7
    np.testing.assert_allclose(m.beta, good.beta, rtol=1e-4)

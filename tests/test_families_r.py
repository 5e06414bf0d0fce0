"""Every family x link of ``mmfast.families`` against R's ``family()`` objects (stats, R 4.2):
linkfun, linkinv, mu.eta, variance, dev.resids on a grid with extremes (|eta| up to 1e200, mu
within eps of 0 and 1) and aic on small data sets.  Oracle: tests/oracle/families.R ->
tests/reference/families.json.gz (numbers stored as "%.17g" strings, "Inf"/"NaN" included).

Where mmfast deliberately departs from R, the departure is listed in ``DEPARTURES`` with the
value mmfast gives instead (from its derivation), so a new drift anywhere else fails.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from mmfast.errors import MmfastError
from mmfast.families import FAMILIES, GAUSSIAN, Binomial, Gamma, Gaussian, Poisson, get_family, get_link

REF = json.load(gzip.open(Path(__file__).resolve().parent / "reference" / "families.json.gz", "rt"))
EPS = np.finfo(float).eps
CLASSES = {**FAMILIES, "gaussian": Gaussian}


def num(x):
    return np.array([float(v) for v in x]) if isinstance(x, list) else float(x)


def family(name, link):
    return CLASSES[name.lower()](link=link)


def logistic(eta):  # the exact logistic function, for the tail where R floors at eps
    return np.exp(-np.logaddexp(0.0, -eta))


# (family, link, function) -> (mask over the grid where mmfast departs, mmfast's value there).
# * logit: R's C code replaces exp(eta) by eps (1/eps) beyond |eta| > 30, so its inverse link is
#   eps / (1 + eps) below -30 and mu.eta is eps beyond 30; mmfast keeps the exact logistic tail
#   (capped at 1 - eps above, mu.eta floored at eps), as its PIRLS kernel always has.
# * binomial variance: floored at eps (a working weight mu'^2 / V never divides by 0); R's is
#   mu (1 - mu).
# * cloglog linkfun: R's log(-log(1 - mu)) loses the digits of mu below ~1e-8; mmfast uses
#   log(-log1p(-mu)), exact to rounding.
def _departure(fam, link, fn, x):
    if link == "logit" and fn == "linkinv":
        m = x < -30
        return m, logistic(x)
    if link == "logit" and fn == "mu_eta":
        m = np.abs(x) > 30
        e = np.exp(-np.abs(x))
        return m, np.maximum(EPS, e / (1 + e) ** 2)
    if fam == "binomial" and fn == "variance":
        m = x * (1 - x) < EPS
        return m, np.full(x.shape, EPS)
    if link == "cloglog" and fn == "linkfun":
        m = x < 1e-6
        return m, np.log(-np.log1p(-x))
    return np.zeros(x.shape, bool), None


CASES = [(g["family"], g["link"]) for g in REF["grid"]]


def test_grid_covers_every_family_and_link():
    # the dispersion families (negative binomial, nbinom1, beta) are not R's stats families:
    # tests/test_nb_formulas.py checks them against dnbinom/dbeta
    offered = {(cls.name, ln) for cls in CLASSES.values() if not cls.dispersion_name for ln in cls.links}
    assert offered == set(CASES)


@pytest.mark.parametrize("case", range(len(REF["grid"])), ids=[f"{f}-{ln}" for f, ln in CASES])
def test_family_matches_r(case):
    g = REF["grid"][case]
    fam = family(g["family"], g["link"])
    eta, mu = num(g["eta"]), num(g["mu"])
    checks = [
        ("linkinv", fam.linkinv, eta, 1e-300),
        ("mu_eta", fam.mu_eta, eta, 1e-300),
        ("variance", fam.variance, mu, 1e-300),
        ("linkfun", fam.linkfun, mu, 1e-15),
    ]
    for fn, f, x, atol in checks:
        ref = num(g[fn])
        with np.errstate(all="ignore"):
            got = np.asarray(f(x))
        assert got.shape == x.shape
        dep, alt = _departure(g["family"], g["link"], fn, x)
        ref = np.where(dep, alt, ref) if alt is not None else ref
        np.testing.assert_allclose(
            got, ref, rtol=1e-13, atol=atol, equal_nan=False, err_msg=f"{g['family']}/{g['link']} {fn}"
        )
    d = g["dev"]
    y, m, w = num(d["y"]), num(d["mu"]), num(d["wt"])
    with np.errstate(all="ignore"):
        got = fam.dev_resids(y, m, w)
    # 1 - mu rounds to a multiple of eps/2: absolute error up to ~wt * eps in both programs
    np.testing.assert_allclose(
        got, num(d["dev_resids"]), rtol=1e-12, atol=4 * EPS * w.max(), err_msg=f"{g['family']}/{g['link']} dev_resids"
    )


def test_departures_are_where_stated():
    """The departures above really occur (R's values differ there): the list is not stale."""
    g = next(g for g in REF["grid"] if (g["family"], g["link"]) == ("binomial", "logit"))
    eta = num(g["eta"])
    r = num(g["linkinv"])
    assert np.all(r[eta < -30] == pytest.approx(EPS / (1 + EPS), rel=1e-14))
    assert Binomial().linkinv(-40.0) == pytest.approx(4.248354255291589e-18, rel=1e-13)
    assert Binomial().variance(1e-20) == EPS and num(g["variance"])[0] < EPS


@pytest.mark.parametrize("k", range(len(REF["aic"])), ids=[a["name"] for a in REF["aic"]])
def test_aic_matches_r(k):
    a = REF["aic"][k]
    fam = CLASSES[a["family"].lower()]()
    y, n, mu, wt = num(a["y"]), num(a["n"]), num(a["mu"]), num(a["wt"])
    assert float(np.sum(fam.dev_resids(y, mu, wt))) == pytest.approx(num(a["dev"]), rel=1e-12)
    assert fam.aic(y, n, mu, wt, num(a["dev"])) == pytest.approx(num(a["aic"]), rel=1e-12)
    assert fam.aic(y, n, mu, wt) == pytest.approx(num(a["aic"]), rel=1e-12)  # dev computed


def test_scalars_and_shapes():
    b = Binomial("probit")
    assert isinstance(b.linkinv(0.0), float) and b.linkinv(0.0) == 0.5
    x = np.linspace(-2, 2, 6).reshape(2, 3)
    assert b.mu_eta(x).shape == (2, 3)
    assert Poisson().dev_resids(np.array([0.0, 2.0]), 1.0, 1.0).shape == (2,)


def test_families_hash_like_their_names():
    """A family equals its R name, so it must hash like it (dict/set lookups by either)."""
    fams = [Binomial(), Binomial("probit"), Poisson(), Gamma("log"), GAUSSIAN]
    for f in fams:
        assert f == f.name and hash(f) == hash(f.name)
        assert {f.name: 1}[f] == 1 and {f: 1}[f.name] == 1
    assert Binomial() == Binomial("logit") and Binomial() != Binomial("probit")
    assert len({Binomial(), Binomial("logit"), Binomial("probit")}) == 2
    assert hash(get_link("logit")) == hash("logit")


def test_lmm_family_is_a_gaussian_object():
    import mmfast
    from mmfast.datasets import load

    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", load("sleepstudy"))
    assert isinstance(m.family, Gaussian) and m.family == "gaussian"
    assert m.family.link == "identity" and str(m.family) == "gaussian"
    assert m.family.variance(np.array([3.0, -1.0])).tolist() == [1.0, 1.0]


def test_glmer_still_refuses_gaussian():
    with pytest.raises(MmfastError, match="lmer"):
        get_family(Gaussian())
    with pytest.raises(MmfastError, match="lmer"):
        get_family("gaussian")


def test_kernel_codes_reject_unknown():
    from mmfast._ext._glm import family_variance, link_apply

    with pytest.raises(ValueError):
        link_apply(8, 1, 0.0)
    with pytest.raises(ValueError):
        family_variance(99, 1.0)  # 4.. are the dispersion families

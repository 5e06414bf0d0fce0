"""GLM families for ``mmfast.glmer``: R's ``binomial``, ``poisson`` and ``Gamma``.

A family object says how the response is read (R's ``family$initialize``), its variance,
deviance residuals and ``-2 log p(y | mu)`` (R's ``family$aic``, which is what lme4 puts in its
Laplace deviance).  ``code`` and ``link.code`` select the same formulas in the Cython PIRLS
kernel.  A family compares equal to its R name, so ``m.family == "binomial"`` works.

lme4 conventions reproduced here:

* binomial: a 0/1 (or two-level) response, a proportion with ``weights`` = trials, or
  ``cbind(successes, failures)`` (then y = s / (s + f) and the prior weights are the trials).
  ``-2 log p`` uses ``round(m * y)`` successes of ``m`` trials, m = the trials when any exceeds
  one, else the prior weights (R's ``binomial()$aic``).
* Gamma: lme4's log-likelihood plugs in the dispersion estimate ``deviance / sum(weights)``
  (R's ``Gamma()$aic``, which also adds 2); an exact Laplace approximation would scale the
  conditional log-density by the dispersion instead.  We follow lme4.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import special

from ..errors import DataError, ModelSpecError
from .links import EPS, Link, get_link

__all__ = ["Family", "Binomial", "Poisson", "Gamma", "get_family", "FAMILIES"]


class Family:
    """Base class: a distribution for y given the linear predictor, with a link."""

    name = ""
    code = -1
    links: tuple = ()
    canonical = ""
    has_scale = False  # lme4's useSc: Gamma has a residual scale, binomial/Poisson do not

    def __init__(self, link: str | Link | None = None):
        link = self.canonical if link is None else link
        self.link = get_link(link)
        if self.link.name not in self.links:
            raise ModelSpecError(f"link '{self.link.name}' is not available for the {self.name} "
                                 f"family; use one of: {', '.join(self.links)}")

    # --- identity -------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"{type(self).__name__}(link={self.link.name!r})"

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            return other == self.name
        return isinstance(other, Family) and other.name == self.name and other.link == self.link

    def __hash__(self) -> int:  # equal objects hash equally: a family also equals its name
        return hash(self.name)

    # --- the distribution -----------------------------------------------------------------
    def variance(self, mu):
        raise NotImplementedError

    def dev_resids(self, y, mu, wt):
        raise NotImplementedError

    def aic(self, y, n, mu, wt, dev=None) -> float:
        """R's ``family$aic``: -2 log-likelihood (Gamma: plus 2)."""
        raise NotImplementedError

    def initialize(self, y, weights, trials, response: str):
        """(y, prior weights, n, mustart) as R's ``family$initialize`` makes them."""
        raise NotImplementedError

    # --- helpers used by the model --------------------------------------------------------
    def linkfun(self, mu):
        return self.link.linkfun(mu)

    def linkinv(self, eta):
        return self.link.linkinv(eta)

    def mu_eta(self, eta):
        return self.link.mu_eta(eta)

    def loglik_terms(self, y, n, wt):
        """Per-row constants (a, b, c) for the Cython kernel's -2 log p(y | mu)."""
        raise NotImplementedError


def _ylogy(y, mu):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)


class Binomial(Family):
    name, code = "binomial", 0
    links = ("logit", "probit", "cloglog", "cauchit", "log")
    canonical = "logit"

    def variance(self, mu):
        return np.maximum(EPS, mu * (1.0 - mu))

    def dev_resids(self, y, mu, wt):
        return 2.0 * wt * (_ylogy(y, mu) + _ylogy(1.0 - y, 1.0 - mu))

    def _m(self, n, wt):
        return n if np.any(n > 1) else wt

    def loglik_terms(self, y, n, wt):
        m = self._m(n, wt)
        if np.all(m == 1.0):  # 0/1 data, unit weights: log choose(1, k) = 0
            return wt * y, wt * (1.0 - y), np.zeros(len(y))
        k = np.rint(m * y)
        mr = np.rint(m)
        coef = np.where(m > 0, wt / np.where(m > 0, m, 1.0), 0.0)
        lchoose = special.gammaln(mr + 1) - special.gammaln(k + 1) - special.gammaln(mr - k + 1)
        return coef * k, coef * (mr - k), -2.0 * coef * lchoose

    def aic(self, y, n, mu, wt, dev=None) -> float:
        a, b, c = self.loglik_terms(y, n, wt)
        with np.errstate(divide="ignore", invalid="ignore"):
            la = np.where(a > 0, a * np.log(np.where(a > 0, mu, 1.0)), 0.0)
            lb = np.where(b > 0, b * np.log1p(-np.where(b > 0, mu, 0.0)), 0.0)
        return float(np.sum(c - 2.0 * (la + lb)))

    def initialize(self, y, weights, trials, response: str):
        nobs = len(y)
        w = np.ones(nobs) if weights is None else np.asarray(weights, dtype=float)
        if trials is not None:  # cbind(successes, failures)
            s = y
            f = trials - s
            if np.any(s < 0) or np.any(f < 0):
                raise DataError(f"binomial response '{response}': counts must be non-negative "
                                f"(successes and failures of cbind())")
            n = s + f
            with np.errstate(invalid="ignore", divide="ignore"):
                yy = np.where(n == 0, 0.0, s / np.where(n == 0, 1.0, n))
            pw = w * n
            if np.any(np.abs(s - np.rint(s)) > 1e-3) or np.any(np.abs(f - np.rint(f)) > 1e-3):
                warnings.warn(f"non-integer counts in a binomial glmer (response '{response}')",
                              stacklevel=4)
            mustart = (n * yy + 0.5) / (n + 1.0)
            return yy, pw, n, mustart
        if np.any(y < 0) or np.any(y > 1):
            bad = y[(y < 0) | (y > 1)][0]
            raise DataError(f"binomial response '{response}' must be 0/1, a proportion in [0, 1] "
                            f"(with weights = trials) or cbind(successes, failures); found {bad:g}")
        m = w * y
        if np.any(np.abs(m - np.rint(m)) > 1e-3):
            warnings.warn(f"non-integer #successes in a binomial glmer (response '{response}': "
                          f"give the number of trials as weights)", stacklevel=4)
        return y.astype(float), w, np.ones(nobs), (w * y + 0.5) / (w + 1.0)


class Poisson(Family):
    name, code = "poisson", 1
    links = ("log", "identity", "sqrt")
    canonical = "log"

    def variance(self, mu):
        return np.asarray(mu, dtype=float)

    def dev_resids(self, y, mu, wt):
        return 2.0 * wt * (_ylogy(y, mu) - (y - mu))

    def loglik_terms(self, y, n, wt):
        return wt * y, wt, 2.0 * wt * special.gammaln(y + 1.0)

    def aic(self, y, n, mu, wt, dev=None) -> float:
        a, b, c = self.loglik_terms(y, n, wt)
        with np.errstate(divide="ignore", invalid="ignore"):
            la = np.where(a > 0, a * np.log(np.where(a > 0, mu, 1.0)), 0.0)
        return float(np.sum(c - 2.0 * (la - b * mu)))

    def initialize(self, y, weights, trials, response: str):
        if trials is not None:
            raise DataError(f"cbind() response '{response}' is only meaningful for the binomial family")
        if np.any(y < 0):
            raise DataError(f"poisson response '{response}' has negative values "
                            f"(min {np.min(y):g}): counts must be >= 0")
        if np.any(np.abs(y - np.rint(y)) > 1e-8):
            bad = y[np.abs(y - np.rint(y)) > 1e-8][0]
            raise DataError(f"poisson response '{response}' must be integer counts (found {bad:g});"
                            " model rates with an offset(log(exposure)) term")
        nobs = len(y)
        w = np.ones(nobs) if weights is None else np.asarray(weights, dtype=float)
        return y.astype(float), w, np.ones(nobs), y + 0.1


class Gamma(Family):
    name, code = "Gamma", 2
    links = ("inverse", "identity", "log")
    canonical = "inverse"
    has_scale = True

    def variance(self, mu):
        return np.asarray(mu, dtype=float) ** 2

    def dev_resids(self, y, mu, wt):
        return -2.0 * wt * (np.log(y / mu) - (y - mu) / mu)

    def loglik_terms(self, y, n, wt):
        return wt * np.log(y), wt, np.zeros_like(y)

    def aic(self, y, n, mu, wt, dev=None) -> float:
        if dev is None:
            dev = float(np.sum(self.dev_resids(y, mu, wt)))
        disp = dev / np.sum(wt)
        shape = 1.0 / disp
        logd = (-special.gammaln(shape) - shape * np.log(mu * disp) + (shape - 1.0) * np.log(y)
                - y / (mu * disp))
        return float(-2.0 * np.sum(wt * logd) + 2.0)

    def initialize(self, y, weights, trials, response: str):
        if trials is not None:
            raise DataError(f"cbind() response '{response}' is only meaningful for the binomial family")
        if np.any(y <= 0):
            raise DataError(f"Gamma response '{response}' must be positive "
                            f"(min {np.min(y):g}); non-positive values are outside its support")
        nobs = len(y)
        w = np.ones(nobs) if weights is None else np.asarray(weights, dtype=float)
        return y.astype(float), w, np.ones(nobs), y.astype(float).copy()


FAMILIES = {"binomial": Binomial, "poisson": Poisson, "gamma": Gamma}


def get_family(family) -> Family:
    """A Family from a string (``"binomial"``, ``"poisson"``, ``"gamma"``), a class or an object."""
    if isinstance(family, Family):
        return family
    if isinstance(family, type) and issubclass(family, Family):
        return family()
    if isinstance(family, str):
        key = family.strip().lower()
        if key in FAMILIES:
            return FAMILIES[key]()
        if key == "gaussian":
            raise ModelSpecError("family 'gaussian' (identity link) is a linear mixed model: "
                                 "use mmfast.lmer")
        raise ModelSpecError(f"unknown family {family!r}; use one of 'binomial', 'poisson', "
                             f"'gamma' or an object such as mmfast.families.Binomial(link='probit')")
    raise ModelSpecError(f"family must be a string or a mmfast.families object, "
                         f"not {type(family).__name__}")

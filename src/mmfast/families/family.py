"""GLM families for ``mmfast.glmer``: R's ``binomial``, ``poisson`` and ``Gamma`` (the families
with a dispersion parameter, negative binomial, nbinom1 and beta, are in ``dispersion``).

A family object says how the response is read (R's ``family$initialize``), its variance,
deviance residuals and ``-2 log p(y | mu)`` (R's ``family$aic``, which is what lme4 puts in its
Laplace deviance).  The formulas exist once, in Cython (``mmfast._ext._glm``): ``code`` and
``link.code`` select them, both in the PIRLS kernels and in the thin methods here.  A family
compares equal to its R name (``m.family == "binomial"``) and hashes like it.  ``Gaussian`` is
the family of ``lmer``/``lm`` fits (``m.family``); ``glmer`` refuses it.

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

from .._ext._glm import GlmResponse, binomial_start, binomial_terms, family_dev_resids, family_variance
from ..errors import DataError, ModelSpecError
from .links import Link, get_link

__all__ = ["Family", "Binomial", "Poisson", "Gamma", "Gaussian", "GAUSSIAN", "get_family", "FAMILIES"]


class Family:
    """Base class: a distribution for y given the linear predictor, with a link."""

    name = ""
    code = -1
    links: tuple = ()
    canonical = ""
    has_scale = False  # lme4's useSc: Gamma has a residual scale, binomial/Poisson do not
    dispersion_name = ""  # a family with a dispersion parameter (negative binomial: "theta")
    newton = True  # PIRLS's weights are the observed information at the canonical link

    def __init__(self, link: str | Link | None = None):
        link = self.canonical if link is None else link
        self.link = get_link(link)
        if self.link.name not in self.links:
            raise ModelSpecError(
                f"link '{self.link.name}' is not available for the {self.name} "
                f"family; use one of: {', '.join(self.links)}"
            )

    # --- identity -------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"{type(self).__name__}(link={self.link.name!r})"

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            return other == self.name
        return isinstance(other, Family) and other.name == self.name and other.link == self.link

    def __hash__(self) -> int:  # equal to its name, so hashed like it (links share the hash)
        return hash(self.name)

    # --- the distribution (Cython: mmfast._ext._glm) --------------------------------------
    def variance(self, mu):
        """V(mu), elementwise."""
        return family_variance(self.code, mu, self.disp_value)

    def dev_resids(self, y, mu, wt):
        """R's ``dev.resids``: the deviance's terms, elementwise (broadcast)."""
        return family_dev_resids(self.code, y, mu, wt, self.disp_value)

    def aic(self, y, n, mu, wt, dev=None) -> float:
        """R's ``family$aic``: -2 log-likelihood (Gamma: plus 2), by the PIRLS kernel's formula."""
        y = np.asarray(y, dtype=float)
        mu = np.broadcast_to(np.asarray(mu, dtype=float), y.shape)
        wt = np.broadcast_to(np.asarray(wt, dtype=float), y.shape)
        if dev is None:
            dev = float(np.sum(self.dev_resids(y, mu, wt)))
        a, b, c = self.loglik_terms(y, np.broadcast_to(np.asarray(n, dtype=float), y.shape), wt)
        resp = GlmResponse(self.code, self.link.code, y, wt, a, b, c, disp=self.disp_value)
        resp.py_set_mu(mu)
        return float(resp.py_m2loglik(dev))

    def initialize(self, y, weights, trials, response: str):
        """(y, prior weights, n, mustart) as R's ``family$initialize`` makes them."""
        raise NotImplementedError

    @property
    def disp_value(self) -> float:
        """The dispersion parameter the formulas use (0: the family has none)."""
        return 0.0

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


class Binomial(Family):
    """R's ``binomial(link)``: 0/1 responses, proportions with trials as weights, or
    ``cbind(successes, failures)``.  Links: logit (default), probit, cloglog, cauchit, log."""

    name, code = "binomial", 0
    links = ("logit", "probit", "cloglog", "cauchit", "log")
    canonical = "logit"

    def _m(self, n, wt):
        return n if np.any(n > 1) else wt

    def loglik_terms(self, y, n, wt):
        return self.exact_terms(y, n, wt)[:3]

    def exact_terms(self, y, n, wt):
        """``loglik_terms`` and, from the same pass (Cython: ``binomial_terms``), whether the
        counts are integral (-2 log p = deviance + a constant) and whether some 0 < y < 1."""
        return binomial_terms(y, self._m(n, wt), wt)

    def initialize(self, y, weights, trials, response: str):
        nobs = len(y)
        w = np.ones(nobs) if weights is None else np.asarray(weights, dtype=float)
        if trials is not None:  # cbind(successes, failures)
            s = y
            f = trials - s
            if np.any(s < 0) or np.any(f < 0):
                raise DataError(
                    f"binomial response '{response}': counts must be non-negative (successes and failures of cbind())"
                )
            n = s + f
            with np.errstate(invalid="ignore", divide="ignore"):
                yy = np.where(n == 0, 0.0, s / np.where(n == 0, 1.0, n))
            pw = w * n
            if np.any(np.abs(s - np.rint(s)) > 1e-3) or np.any(np.abs(f - np.rint(f)) > 1e-3):
                warnings.warn(f"non-integer counts in a binomial glmer (response '{response}')", stacklevel=4)
            mustart = (n * yy + 0.5) / (n + 1.0)
            return yy, pw, n, mustart
        bad, nonint, mustart = binomial_start(y, w)  # one pass (Cython)
        if bad >= 0:
            raise DataError(
                f"binomial response '{response}' must be 0/1, a proportion in [0, 1] "
                f"(with weights = trials) or cbind(successes, failures); found {y[bad]:g}"
            )
        if nonint:
            warnings.warn(
                f"non-integer #successes in a binomial glmer (response '{response}': "
                f"give the number of trials as weights)",
                stacklevel=4,
            )
        return y.astype(float), w, np.ones(nobs), mustart


class Poisson(Family):
    """R's ``poisson(link)``: counts.  Links: log (default), identity, sqrt."""

    name, code = "poisson", 1
    links = ("log", "identity", "sqrt")
    canonical = "log"

    def loglik_terms(self, y, n, wt):
        return wt * y, wt, 2.0 * wt * special.gammaln(y + 1.0)

    def initialize(self, y, weights, trials, response: str):
        if trials is not None:
            raise DataError(f"cbind() response '{response}' is only meaningful for the binomial family")
        if np.any(y < 0):
            raise DataError(
                f"poisson response '{response}' has negative values (min {np.min(y):g}): counts must be >= 0"
            )
        if np.any(np.abs(y - np.rint(y)) > 1e-8):
            bad = y[np.abs(y - np.rint(y)) > 1e-8][0]
            raise DataError(
                f"poisson response '{response}' must be integer counts (found {bad:g});"
                " model rates with an offset(log(exposure)) term"
            )
        nobs = len(y)
        w = np.ones(nobs) if weights is None else np.asarray(weights, dtype=float)
        return y.astype(float), w, np.ones(nobs), y + 0.1


class Gamma(Family):
    """R's ``Gamma(link)``: positive continuous responses with a dispersion parameter.  Links:
    inverse (default), identity, log."""

    name, code = "Gamma", 2
    links = ("inverse", "identity", "log")
    canonical = "inverse"
    has_scale = True

    def loglik_terms(self, y, n, wt):
        return wt * np.log(y), wt, np.zeros_like(y)

    def initialize(self, y, weights, trials, response: str):
        if trials is not None:
            raise DataError(f"cbind() response '{response}' is only meaningful for the binomial family")
        if np.any(y <= 0):
            raise DataError(
                f"Gamma response '{response}' must be positive "
                f"(min {np.min(y):g}); non-positive values are outside its support"
            )
        nobs = len(y)
        w = np.ones(nobs) if weights is None else np.asarray(weights, dtype=float)
        return y.astype(float), w, np.ones(nobs), y.astype(float).copy()


class Gaussian(Family):
    """The normal family of ``lmer``/``lm`` fits (their ``family``); not a ``glmer`` family."""

    name, code = "gaussian", 3
    links = ("identity", "log", "inverse")
    canonical = "identity"
    has_scale = True

    def aic(self, y, n, mu, wt, dev=None) -> float:
        """R's ``gaussian()$aic``: -2 log-likelihood at sigma^2 = dev / nobs, plus 2."""
        y = np.asarray(y, dtype=float)
        wt = np.broadcast_to(np.asarray(wt, dtype=float), y.shape)
        if dev is None:
            dev = float(np.sum(self.dev_resids(y, mu, wt)))
        nobs = y.size
        return float(nobs * (np.log(2.0 * np.pi * dev / nobs) + 1.0) + 2.0 - np.sum(np.log(wt)))


GAUSSIAN = Gaussian()  # shared by the linear models (immutable in use)

FAMILIES = {"binomial": Binomial, "poisson": Poisson, "gamma": Gamma}  # + families.dispersion's


def get_family(family) -> Family:
    """A Family from a string (``"binomial"``, ``"poisson"``, ``"gamma"``), a class or an object."""
    if isinstance(family, type) and issubclass(family, Family):
        family = family()
    if isinstance(family, Gaussian):
        family = "gaussian"
    if isinstance(family, Family):
        return family
    if isinstance(family, str):
        key = family.strip().lower()
        if key in FAMILIES:
            return FAMILIES[key]()
        if key == "gaussian":
            raise ModelSpecError("family 'gaussian' (identity link) is a linear mixed model: use mmfast.lmer")
        raise ModelSpecError(
            f"unknown family {family!r}; use one of 'binomial', 'poisson', "
            f"'gamma', 'negative_binomial', 'nbinom1', 'beta' or an object such as "
            f"mmfast.families.Binomial(link='probit')"
        )
    raise ModelSpecError(f"family must be a string or a mmfast.families object, not {type(family).__name__}")

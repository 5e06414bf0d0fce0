"""Link functions of R's ``make.link``, with lme4's numerical guards.

Every link has a small integer ``code`` that the Cython PIRLS kernel (``mmfast._ext._pirls``)
switches on, so the per-row work never calls back into Python.  The numpy versions here are
used for starting values, predictions and tests; they apply the same clamping as lme4's C++
(``glmFamily.cpp``): the inverse logit/probit are capped at 1 - eps, the cloglog inverse is kept
in [eps, 1 - eps], ``exp`` and the logit/cloglog ``mu.eta`` are floored at eps.
"""
from __future__ import annotations

import numpy as np
from scipy import special, stats

__all__ = ["Link", "LINKS", "get_link"]

EPS = np.finfo(float).eps


class Link:
    """A link g: mu -> eta with inverse and derivative d mu / d eta."""

    name = ""
    code = -1

    def linkfun(self, mu):
        raise NotImplementedError

    def linkinv(self, eta):
        raise NotImplementedError

    def mu_eta(self, eta):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"Link({self.name!r})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            return other == self.name
        return isinstance(other, Link) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class Logit(Link):
    name, code = "logit", 0

    def linkfun(self, mu):
        return special.logit(mu)

    def linkinv(self, eta):
        return np.minimum(1.0 - EPS, special.expit(eta))

    def mu_eta(self, eta):
        e = np.exp(-np.abs(eta))
        return np.maximum(EPS, e / (1.0 + e) ** 2)


class Probit(Link):
    name, code = "probit", 1

    def linkfun(self, mu):
        return special.ndtri(mu)

    def linkinv(self, eta):  # R's probit: mu in [eps, 1 - eps], mu.eta at least eps
        return np.clip(special.ndtr(eta), EPS, 1.0 - EPS)

    def mu_eta(self, eta):
        return np.maximum(EPS, stats.norm.pdf(eta))


class Cloglog(Link):
    name, code = "cloglog", 2

    def linkfun(self, mu):
        return np.log(-np.log1p(-mu))

    def linkinv(self, eta):
        return np.clip(-np.expm1(-np.exp(eta)), EPS, 1.0 - EPS)

    def mu_eta(self, eta):
        eta = np.minimum(eta, 700.0)
        return np.maximum(EPS, np.exp(eta - np.exp(eta)))


class Log(Link):
    name, code = "log", 3

    def linkfun(self, mu):
        return np.log(mu)

    def linkinv(self, eta):
        return np.maximum(EPS, np.exp(eta))

    def mu_eta(self, eta):
        return np.maximum(EPS, np.exp(eta))


class Inverse(Link):
    name, code = "inverse", 4

    def linkfun(self, mu):
        return 1.0 / mu

    def linkinv(self, eta):
        return 1.0 / eta

    def mu_eta(self, eta):
        return -1.0 / (eta * eta)


class Identity(Link):
    name, code = "identity", 5

    def linkfun(self, mu):
        return np.asarray(mu, dtype=float)

    def linkinv(self, eta):
        return np.asarray(eta, dtype=float)

    def mu_eta(self, eta):
        return np.ones_like(np.asarray(eta, dtype=float))


class Sqrt(Link):
    name, code = "sqrt", 6

    def linkfun(self, mu):
        return np.sqrt(mu)

    def linkinv(self, eta):
        return eta * eta

    def mu_eta(self, eta):
        return 2.0 * eta


class Cauchit(Link):
    name, code = "cauchit", 7

    def linkfun(self, mu):
        return np.tan(np.pi * (mu - 0.5))

    def linkinv(self, eta):
        return np.minimum(1.0 - EPS, 0.5 + np.arctan(eta) / np.pi)

    def mu_eta(self, eta):
        return 1.0 / (np.pi * (1.0 + eta * eta))


LINKS = {cls.name: cls for cls in (Logit, Probit, Cloglog, Log, Inverse, Identity, Sqrt, Cauchit)}


def get_link(link) -> Link:
    """A Link from its R name (``"logit"``) or a Link instance."""
    if isinstance(link, Link):
        return link
    if isinstance(link, type) and issubclass(link, Link):
        return link()
    if isinstance(link, str) and link in LINKS:
        return LINKS[link]()
    from ..errors import ModelSpecError
    raise ModelSpecError(f"unknown link {link!r}; known links: {', '.join(LINKS)}")

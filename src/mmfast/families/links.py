"""Link functions of R's ``make.link``, with lme4's numerical guards.

Every link has a small integer ``code``; the formulas live once, in Cython
(``mmfast._ext._glm``: ``_linkfun``, ``_linkinv``, ``_mu_eta``), which the PIRLS kernels call
per row and these classes call through ``link_apply``, so the two cannot drift.  The guards:
the inverse logit is capped at 1 - eps, probit, cloglog and cauchit inverses are kept in
[eps, 1 - eps], ``exp`` and the logit/probit/cloglog/cauchit ``mu.eta`` are floored at eps.
Where this differs from R's ``family()`` objects is listed in ``tests/test_families_r.py``.
"""

from __future__ import annotations

import numpy as np

from .._ext._glm import link_apply

__all__ = ["Link", "LINKS", "get_link"]

EPS = np.finfo(float).eps


class Link:
    """A link g: mu -> eta with inverse and derivative d mu / d eta (elementwise, any shape)."""

    name = ""
    code = -1

    def linkfun(self, mu):
        return link_apply(self.code, 0, mu)

    def linkinv(self, eta):
        return link_apply(self.code, 1, eta)

    def mu_eta(self, eta):
        return link_apply(self.code, 2, eta)

    def __repr__(self) -> str:
        return f"Link({self.name!r})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            return other == self.name
        return isinstance(other, Link) and other.name == self.name

    def __hash__(self) -> int:  # equal to its name, so hashed like it
        return hash(self.name)


class Logit(Link):
    name, code = "logit", 0


class Probit(Link):
    name, code = "probit", 1


class Cloglog(Link):
    name, code = "cloglog", 2


class Log(Link):
    name, code = "log", 3


class Inverse(Link):
    name, code = "inverse", 4


class Identity(Link):
    name, code = "identity", 5


class Sqrt(Link):
    name, code = "sqrt", 6


class Cauchit(Link):
    name, code = "cauchit", 7


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

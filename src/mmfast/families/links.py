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


# R's link names and the codes of their formulas in ``mmfast._ext._glm`` (one table, no class per link)
LINKS = {"logit": 0, "probit": 1, "cloglog": 2, "log": 3, "inverse": 4, "identity": 5, "sqrt": 6, "cauchit": 7}


class Link:
    """A link g: mu -> eta with inverse and derivative d mu / d eta (elementwise, any shape),
    named as R names it (``Link("probit")``)."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or name not in LINKS:
            from ..errors import ModelSpecError

            raise ModelSpecError(f"unknown link {name!r}; known links: {', '.join(LINKS)}")
        self.name = name
        self.code = LINKS[name]

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


def get_link(link) -> Link:
    """A Link from its R name (``"logit"``) or a Link instance."""
    return link if isinstance(link, Link) else Link(link)

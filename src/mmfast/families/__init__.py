"""GLM families and links for ``mmfast.glmer`` (R's ``binomial(link = "probit")`` is
``Binomial(link="probit")``)."""
from .family import FAMILIES, Binomial, Family, Gamma, Poisson, get_family
from .gaussian import Gaussian
from .links import LINKS, Link, get_link

__all__ = ["Family", "Binomial", "Poisson", "Gamma", "Gaussian", "get_family", "FAMILIES",
           "Link", "LINKS", "get_link"]

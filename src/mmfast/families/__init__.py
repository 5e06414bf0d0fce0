"""GLM families and links for ``mmfast.glmer`` (R's ``binomial(link = "probit")`` is
``Binomial(link="probit")``)."""

from .family import FAMILIES, GAUSSIAN, Binomial, Family, Gamma, Gaussian, Poisson, get_family
from .dispersion import Beta, DispersionFamily, NegativeBinomial, NegativeBinomial1  # registers their names
from .links import LINKS, Link, get_link

__all__ = [
    "Family",
    "Binomial",
    "Poisson",
    "Gamma",
    "Gaussian",
    "NegativeBinomial",
    "NegativeBinomial1",
    "Beta",
    "DispersionFamily",
    "GAUSSIAN",
    "get_family",
    "FAMILIES",
    "Link",
    "LINKS",
    "get_link",
]

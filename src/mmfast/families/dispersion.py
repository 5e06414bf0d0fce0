"""GLM families with a dispersion parameter: the negative binomial (glmmTMB's ``nbinom2``,
lme4's ``glmer.nb``), glmmTMB's ``nbinom1`` and ``beta_family``.

The dispersion (θ or φ) is a parameter of the likelihood, estimated by maximum likelihood with
the rest (``model.dispersion``, see ``mmfast.model.dispersion``) or fixed when given.  nbinom1
and beta are not GLMs at fixed φ: PIRLS uses their score and observed information
(``_glm._score_info``), and their "deviance residuals" are -2 log p itself.  The formulas are
``mmfast._ext._glm``'s, as for the other families.  Importing this module registers the
families' names in ``family.FAMILIES`` (``get_family("negative_binomial")``).
"""

from __future__ import annotations

import numpy as np

from .._ext._glm import family_dev_resids, nb2_m2logp
from ..errors import DataError, ModelSpecError
from .family import FAMILIES, Family
from .links import Link

__all__ = ["DispersionFamily", "NegativeBinomial", "NegativeBinomial1", "Beta"]


class DispersionFamily(Family):
    """A family with a dispersion parameter (``value``): estimated by maximum likelihood beside
    the variance components when ``None`` is given (``model.dispersion``), else held fixed.
    PIRLS weights are the observed information (``hessian="observed"``: the exact Laplace
    approximation, glmmTMB's) or its expectation (``"expected"``: lme4's choice for glmer.nb)."""

    dispersion_name = "phi"
    r_name = ""

    def __init__(self, value: float | None = None, link: str | Link | None = None, hessian: str = "observed"):
        super().__init__(link)
        if value is not None:
            value = float(value)
            if not (np.isfinite(value) and value > 0):
                raise ModelSpecError(
                    f"the {self.name} family's {self.dispersion_name} must be positive and finite, not {value!r}"
                )
        if hessian not in ("observed", "expected"):
            raise ModelSpecError(f"hessian must be 'observed' or 'expected', not {hessian!r}")
        self.fixed = value  # given by the user, or None: estimated
        self.value = value  # the value the formulas use now (a fit sets it)
        self.hessian = hessian

    @property
    def estimated(self) -> bool:
        """Is the dispersion estimated (not fixed by the user)?"""
        return self.fixed is None

    @property
    def observed(self) -> bool:
        return self.hessian == "observed"

    @property
    def newton(self) -> bool:  # exact Hessian: PIRLS is Newton's method
        return self.observed

    @property
    def disp_value(self) -> float:
        if self.value is None:
            raise ModelSpecError(f"the {self.name} family's {self.dispersion_name} is not set (fit the model first)")
        return self.value

    def with_value(self, value: float | None):
        """A copy at dispersion ``value`` (a fit's own family; the user's object is unchanged)."""
        new = type(self)(self.fixed, link=self.link, hessian=self.hessian)
        new.value = self.fixed if value is None else float(value)
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dispersion_name}={self.fixed!r})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            return other in (self.name, self.r_name)
        return type(other) is type(self) and other.fixed == self.fixed and other.hessian == self.hessian

    __hash__ = Family.__hash__

    def loglik_terms(self, y, n, wt):
        """Unused (-2 log p = deviance + its saturated value, kept by the response); zeros."""
        z = np.zeros(len(y))
        return z, z, z

    def aic(self, y, n, mu, wt, dev=None) -> float:
        """-2 log-likelihood at the dispersion (the deviance plus its saturated value)."""
        return float(np.sum(self.m2logp(y, mu, wt)))

    def m2logp(self, y, mu, wt):
        """-2 log p(y | mu) per row at the current dispersion."""
        y = np.asarray(y, dtype=float)
        return family_dev_resids(self.code, y, mu, wt, self.disp_value)

    def start_dispersion(self, y, pw) -> float:
        """A starting value from the marginal moments (the fit's search starts there)."""
        raise NotImplementedError

    # the Poisson-like limit of the dispersion (+1: to infinity, -1: to zero, 0: none)
    limit_direction, limit_name = 0, ""

    def _no_cbind(self, trials, response):
        if trials is not None:
            raise DataError(f"cbind() response '{response}' is only meaningful for the binomial family")


class _Counts(DispersionFamily):
    """Negative binomial counts: non-negative integers, log link."""

    links = ("log",)
    canonical = "log"

    def initialize(self, y, weights, trials, response: str):
        self._no_cbind(trials, response)
        if np.any(y < 0):
            raise DataError(
                f"{self.name} response '{response}' has negative values (min {np.min(y):g}): counts must be >= 0"
            )
        if np.any(np.abs(y - np.rint(y)) > 1e-8):
            bad = y[np.abs(y - np.rint(y)) > 1e-8][0]
            raise DataError(f"{self.name} response '{response}' must be integer counts (found {bad:g})")
        nobs = len(y)
        w = np.ones(nobs) if weights is None else np.asarray(weights, dtype=float)
        return y.astype(float), w, np.ones(nobs), y + (y == 0) / 6.0  # MASS's mustart


def _moments(y, pw) -> tuple[float, float]:
    w = np.asarray(pw, dtype=float)
    m = float(np.average(y, weights=w))
    return m, float(np.average((y - m) ** 2, weights=w))


class NegativeBinomial(_Counts):
    """The negative binomial with size θ (glmmTMB's ``nbinom2``, MASS's ``negative.binomial``):
    var = mu + mu²/θ, log link.  ``theta=None`` (the default): θ estimated by maximum likelihood
    (``mmfast.glmer_nb``); a number: θ held fixed.  θ -> ∞ is the Poisson limit."""

    name, code, r_name = "negative_binomial", 4, "nbinom2"
    dispersion_name = "theta"

    def __init__(self, theta: float | None = None, link: str | Link | None = None, hessian: str = "observed"):
        super().__init__(theta, link, hessian)

    @property
    def theta(self) -> float | None:
        """θ as given (None: estimated)."""
        return self.fixed

    def __str__(self) -> str:  # MASS's family name, as glmer.nb prints it
        return "Negative Binomial(?)" if self.value is None else f"Negative Binomial({round(self.value, 4):g})"

    limit_direction, limit_name = 1, "the Poisson limit"

    def m2logp(self, y, mu, wt):
        return nb2_m2logp(y, mu, wt, self.disp_value)

    def start_dispersion(self, y, pw) -> float:
        """var = m + m²/θ from the marginal moments; 1e4 where there is no overdispersion."""
        m, v = _moments(y, pw)
        if not (v > m * (1.0 + 1e-6)) or m <= 0:
            return 1e4
        return float(np.clip(m * m / (v - m), 1e-2, 1e4))


class NegativeBinomial1(_Counts):
    """glmmTMB's ``nbinom1``: negative binomial with var = mu (1 + φ) (size mu/φ), log link.
    ``phi=None``: φ estimated; a number: held fixed."""

    name, code, r_name = "nbinom1", 5, "nbinom1"

    def __init__(self, phi: float | None = None, link: str | Link | None = None, hessian: str = "observed"):
        if hessian != "observed":
            raise ModelSpecError("nbinom1's expected information has no closed form: use hessian='observed'")
        super().__init__(phi, link, hessian)

    limit_direction, limit_name = -1, "the Poisson limit"

    def __str__(self) -> str:
        return "nbinom1" if self.value is None else f"nbinom1 (phi = {self.value:.4g})"

    def start_dispersion(self, y, pw) -> float:
        """var = m (1 + φ) from the marginal moments."""
        m, v = _moments(y, pw)
        return float(np.clip(v / m - 1.0, 1e-2, 1e3)) if m > 0 else 1.0


class Beta(DispersionFamily):
    """glmmTMB's ``beta_family``: y in (0, 1) with mean mu and precision φ, var = mu (1 - mu) /
    (1 + φ), logit link.  ``phi=None``: φ estimated; a number: held fixed."""

    name, code, r_name = "beta", 6, "beta_family"
    links = ("logit",)
    canonical = "logit"

    def __init__(self, phi: float | None = None, link: str | Link | None = None, hessian: str = "observed"):
        super().__init__(phi, link, hessian)

    def __str__(self) -> str:
        return "beta" if self.value is None else f"beta (phi = {self.value:.4g})"

    def start_dispersion(self, y, pw) -> float:
        """var = m (1 - m) / (1 + φ) from the marginal moments."""
        m, v = _moments(y, pw)
        return float(np.clip(m * (1.0 - m) / v - 1.0, 0.5, 1e4)) if v > 0 else 10.0

    def initialize(self, y, weights, trials, response: str):
        self._no_cbind(trials, response)
        if np.any(y <= 0) or np.any(y >= 1):
            bad = y[(y <= 0) | (y >= 1)][0]
            raise DataError(
                f"beta response '{response}' must lie strictly between 0 and 1 (found {bad:g}); "
                "squeeze 0s and 1s first, e.g. (y (n - 1) + 0.5) / n"
            )
        nobs = len(y)
        w = np.ones(nobs) if weights is None else np.asarray(weights, dtype=float)
        return y.astype(float), w, np.ones(nobs), y.astype(float).copy()


FAMILIES.update(
    {
        "negative_binomial": NegativeBinomial,
        "nbinom2": NegativeBinomial,
        "nbinom1": NegativeBinomial1,
        "beta": Beta,
        "beta_family": Beta,
    }
)

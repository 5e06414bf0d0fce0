"""Responses simulated from a fitted mixed model: lme4's ``simulate(m, nsim, seed)``.

As lme4 (``use.u = FALSE``, ``re.form = NA``), every simulation draws new spherical random
effects u ~ N(0, I_q), b = Λθ u, and new conditional responses around
η = Xβ̂ + offset + Zb:

* LMM: y = η + σ̂ (Z Λ u + ε), ε ~ N(0, I) (divided by √w for a weighted fit; lme4 ignores
  the weights here, which only matters for weighted fits); with a residual structure
  (``lmer(residual=)``) ε ~ N(0, R(φ̂)), drawn as L z with R = L L';
* binomial GLMM: successes ~ Binomial(size, μ) with μ = g⁻¹(η); returned as the model holds
  its response: 0/1, proportions (``weights`` = trials) or, for ``cbind(s, f)``, the numbers
  of successes (the trials are kept by ``refit``);
* Poisson: y ~ Poisson(μ);
* Gamma: shape w/σ̂², mean μ (the Gamma with dispersion σ̂²; lme4 1.1-31 passes σ̂ itself as
  the shape, a known slip).

``conditional=True`` keeps the random effects at their conditional modes b̂ (lme4's
``re.form = NULL``) and draws only the responses around Xβ̂ + offset + Zb̂.

Column j of ``simulate(m, nsim, seed)`` uses the j-th child of ``SeedSequence(seed)``, the
same stream as bootstrap replicate / parametric-bootstrap sample j (see ``parallel``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ArgumentError, DataError
from .parallel import as_seed_sequence, task_generators
from .refit import model_kind

__all__ = ["ResponseSimulator", "simulate", "lambda_times"]


def lambda_times(terms, templates, u: np.ndarray) -> np.ndarray:
    """b = Λθ u for a q-vector or a q x m matrix u, term by term and level by level, from the
    terms' templates (``ThetaLayout.templates(θ)``)."""
    out = np.empty_like(u, dtype=float)
    for t, T in zip(terms, templates):
        blk = u[t.offset : t.offset + t.q].reshape((t.nlevels, t.p) + u.shape[1:])
        out[t.offset : t.offset + t.q] = np.einsum("ij,lj...->li...", T, blk).reshape((t.q,) + u.shape[1:])
    return out


class ResponseSimulator:
    """What drawing responses from a fitted model needs (picklable, no reference to the model)."""

    def __init__(self, model, conditional: bool = False):
        self.kind = model_kind(model)
        self.conditional = bool(conditional)
        frame = model.frame
        self.n = frame.nobs
        self.terms = frame.terms
        self.theta = np.array(model.theta, dtype=float)
        self.templates = model.layout.templates(self.theta)
        self.q = int(sum(t.q for t in frame.terms))
        eta = frame.X @ np.asarray(model.beta, dtype=float)
        if frame.offset is not None:
            eta = eta + frame.offset
        self.eta_fixed = eta
        self.eta_conditional = np.asarray(model.linear_predictor(), dtype=float) if conditional else None
        self.Z = model.Z.tocsr()
        self.sigma = float(model.sigma)
        self.family = None
        if self.kind == "lmm":
            w = frame.weights
            self.noise_sd = self.sigma if w is None else self.sigma / np.sqrt(w)
            colouring = getattr(model, "residual_colouring", None)  # lmer(residual=): ε ~ N(0, σ²R)
            self.colour = None if colouring is None else colouring()
            return
        fam = model.family
        self.family = fam
        self.name = fam.name
        if self.name == "binomial":
            if frame.y_extra is not None:  # cbind(s, f): successes out of the trials
                size, self.counts = np.asarray(frame.y_extra, dtype=float), True
            else:
                size, self.counts = np.asarray(model.prior_weights, dtype=float), False
            if np.any(np.abs(size - np.rint(size)) > 1e-8) or np.any(size < 0):
                raise DataError(
                    "cannot simulate a binomial response from non-integer numbers of trials (prior weights)"
                )
            self.size = np.rint(size).astype(np.int64)
        elif self.name == "poisson":
            pass
        elif self.name == "Gamma":
            self.shape = np.asarray(model.prior_weights, dtype=float) / self.sigma**2
        elif getattr(fam, "dispersion_name", ""):  # negative binomial, nbinom1, beta: at the estimate
            self.disp = float(fam.disp_value)
        else:
            raise NotImplementedError(f"simulation is not implemented for the {self.name} family")

    def linear_predictor(self, rng: np.random.Generator) -> np.ndarray:
        """η with newly drawn random effects (σ-scaled for an LMM), or Xβ̂ + Zb̂ if conditional."""
        if self.conditional:
            return self.eta_conditional
        u = rng.standard_normal(self.q)
        zb = self.Z @ lambda_times(self.terms, self.templates, u)
        return self.eta_fixed + (self.sigma * zb if self.kind == "lmm" else zb)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One simulated response vector (u first, then the conditional draws)."""
        eta = self.linear_predictor(rng)
        if self.kind == "lmm":
            z = rng.standard_normal(self.n)
            return eta + (self.noise_sd * z if self.colour is None else self.sigma * self.colour(z))
        mu = self.family.linkinv(eta)
        if self.name == "binomial":
            k = rng.binomial(self.size, np.clip(mu, 0.0, 1.0)).astype(float)
            if self.counts:
                return k
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(self.size > 0, k / np.maximum(self.size, 1), 0.0)
        if self.name == "poisson":
            return rng.poisson(mu).astype(float)
        if self.name == "negative_binomial":  # a gamma mixture of Poissons: size θ, mean mu
            return rng.poisson(rng.gamma(self.disp, mu / self.disp)).astype(float)
        if self.name == "nbinom1":  # size mu/φ, var = mu (1 + φ)
            return rng.negative_binomial(mu / self.disp, 1.0 / (1.0 + self.disp)).astype(float)
        if self.name == "beta":  # kept inside (0, 1): a draw rounded to 0 or 1 could not be refitted
            return np.clip(rng.beta(mu * self.disp, (1.0 - mu) * self.disp), 1e-12, 1.0 - 1e-12)
        return rng.gamma(self.shape, mu / self.shape)


def simulate(model, nsim: int = 1, seed=None, as_frame: bool = True, conditional: bool = False):
    """``nsim`` responses simulated from the fitted model (lme4's ``simulate``).

    Returns an (n, nsim) DataFrame with columns ``sim_1``... (``as_frame=False``: an array);
    ``attrs["seed"]`` holds the entropy that reproduces it.  Each column can be passed to
    ``refit_response(model, y)`` (or ``model.refit(y)`` for an LMM).  ``conditional``: keep
    the random effects at their conditional modes (lme4's ``re.form = NULL``).
    """
    nsim = int(nsim)
    if nsim < 1:
        raise ArgumentError(f"nsim must be >= 1 (got {nsim})")
    ss = as_seed_sequence(seed)
    sim = ResponseSimulator(model, conditional=conditional)
    Y = np.column_stack([sim.draw(rng) for rng in task_generators(ss, nsim)])
    if not as_frame:
        return Y
    out = pd.DataFrame(Y, columns=[f"sim_{j + 1}" for j in range(nsim)])
    out.attrs["seed"] = ss.entropy
    return out

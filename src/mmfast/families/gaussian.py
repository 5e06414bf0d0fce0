"""The Gaussian family (identity link) that LMMs and linear models carry as ``model.family``,
so every model's family is a ``Family`` object (it still compares equal to "gaussian").
It is not a GLMM family: ``glmer`` sends it to ``lmer``."""
from __future__ import annotations

import numpy as np

from ..errors import ModelSpecError
from .family import Family

__all__ = ["Gaussian", "GAUSSIAN"]


class Gaussian(Family):
    name = "gaussian"
    links = ("identity",)
    canonical = "identity"
    has_scale = True

    def variance(self, mu):
        return np.ones_like(np.asarray(mu, dtype=float))

    def dev_resids(self, y, mu, wt):
        return np.asarray(wt, dtype=float) * (np.asarray(y, dtype=float) - mu) ** 2

    def initialize(self, y, weights, trials, response: str):
        raise ModelSpecError("family 'gaussian' (identity link) is a linear mixed model: "
                             "use mmfast.lmer")


GAUSSIAN = Gaussian()  # what LinearMixedModel and LinearModel carry

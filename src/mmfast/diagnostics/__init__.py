"""Model diagnostics beyond lme4's: Nakagawa-Schielzeth R² (``r2``) and DHARMa-style
simulation-based scaled residuals with their tests (``simulated``)."""
from .r2 import R2Nakagawa, r2_nakagawa

__all__ = ["R2Nakagawa", "r2_nakagawa"]

"""Model diagnostics beyond lme4's: Nakagawa-Schielzeth R² (``r2``) and DHARMa-style
simulation-based scaled residuals with their tests (``simulated``)."""

from .r2 import R2Nakagawa, r2_nakagawa
from .simulated import SimulatedResiduals, SimulationTest, simulate_residuals

__all__ = ["R2Nakagawa", "r2_nakagawa", "SimulatedResiduals", "SimulationTest", "simulate_residuals"]

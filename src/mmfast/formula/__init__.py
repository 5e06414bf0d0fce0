"""Formula layer: lme4 syntax -> response, fixed part (formulaic) and random-effects bars."""
from .fixed import ModelFrameSpec, build_matrix, r_to_formulaic
from .parse import Bar, ParsedFormula, parse_formula

__all__ = ["Bar", "ParsedFormula", "parse_formula", "ModelFrameSpec", "build_matrix",
           "r_to_formulaic"]

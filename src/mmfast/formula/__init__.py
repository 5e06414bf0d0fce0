"""Formula layer: lme4 syntax -> response, fixed part and random-effects bars; R expressions
parsed (``expr``) and evaluated over the data (``evaluate``), never executed."""

from .evaluate import evaluate_expr
from .expr import deparse, parse_expr
from .fixed import ModelFrameSpec, build_matrix
from .parse import Bar, ParsedFormula, parse_formula

__all__ = [
    "Bar",
    "ParsedFormula",
    "parse_formula",
    "ModelFrameSpec",
    "build_matrix",
    "parse_expr",
    "deparse",
    "evaluate_expr",
]

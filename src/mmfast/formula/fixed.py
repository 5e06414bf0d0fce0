"""Model matrices for R formula right-hand sides, with R's column names.

Three routes, cheapest first: ``1`` (a column of ones), main effects of plain columns and
``factor()`` (``formula.simple``: numpy only), and everything else through ``TermSpec``
(variables evaluated by the safe evaluator, terms expanded by formulaic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .simple import simple_matrix
from .terms import TermSpec

__all__ = ["ModelFrameSpec", "build_matrix", "InterceptSpec"]


@dataclass
class ModelFrameSpec:
    """What is needed to rebuild a model matrix on new data (for ``predict``)."""

    spec: Any  # InterceptSpec, SimpleSpec or TermSpec
    names: list[str]  # R names of all columns built
    keep: np.ndarray  # indices of the columns kept (after dropping aliased ones)

    def matrix(self, data: pd.DataFrame) -> np.ndarray:
        mm = self.spec.get_model_matrix(data)
        return np.asarray(mm, dtype=float)[:, self.keep]


class InterceptSpec:
    """The model spec of ``~ 1`` (a column of ones), without a trip through formulaic."""

    r_names: dict = {}

    def get_model_matrix(self, data: pd.DataFrame) -> np.ndarray:
        return np.ones((len(data), 1))


def build_matrix(rhs: str, data) -> tuple[np.ndarray, list[str], Any]:
    """Dense model matrix, R column names and the spec that rebuilds it on new data."""
    if rhs.strip() == "1":  # the commonest random-effects term, (1 | g)
        return np.ones((len(data), 1)), ["(Intercept)"], InterceptSpec()
    fast = simple_matrix(rhs, data)  # main effects only: numpy, no formula library
    if fast is not None:
        return fast
    spec = TermSpec(rhs)
    X, names = spec.fit(data)
    return X, names, spec

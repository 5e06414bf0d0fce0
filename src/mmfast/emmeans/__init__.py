"""Estimated marginal means and their contrasts, as R's emmeans computes them.

``emmeans(model, specs, ddf)`` -> ``EmmGrid`` with ``.table``, ``.pairs()`` and
``.contrast("trt.vs.ctrl", ref=0)``; see ``grid`` (reference grid, SEs and df) and
``contrasts`` (contrast families and p-value adjustments: tukey, dunnettx, ...).
"""

from .contrasts import adjust_pvalues, contrast_family
from .grid import EmmGrid, EmmTable, emmeans, reference_grid

__all__ = ["emmeans", "EmmGrid", "EmmTable", "reference_grid", "contrast_family", "adjust_pvalues"]

"""Many models: ``fit_many`` fits one mixed model per group of the data (per gene, per neuron).

Modules: ``api`` (``fit_many``, design sharing, tidy output), ``grouping`` (groups and the
designs they share), ``scalar`` (all fits of one scalar random-effects design at once, in
arrays), ``tasks`` (chunks of work and their rows; ``mmfast.runner`` runs them serially, on loky or on
Dask), ``output`` (resumable Parquet results), ``nb`` (negative binomial GLMMs for many genes at
once, the kernel ``mmfast._ext._nbgenes``) and ``counts`` (genes given as a count matrix).
"""

from .api import fit_many

__all__ = ["fit_many"]

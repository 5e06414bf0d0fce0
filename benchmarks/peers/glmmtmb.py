"""glmmTMB (R): ``glmmTMB(REML = FALSE)`` with default controls, in ``fit_r.R``."""

from __future__ import annotations

from . import rscript

NAME = "glmmTMB"
EXTERNAL = True


def command(workload, csv, out, n_fits, options):
    return rscript.command("glmmTMB", workload, csv, out, n_fits)


def unavailable():
    return rscript.missing("glmmTMB")

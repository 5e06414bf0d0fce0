"""lme4 (R): ``lmer(REML = FALSE)`` / ``glmer`` with default controls, in ``fit_r.R``; it
also makes the tight refit whose logLik is every engine's correctness reference."""

from __future__ import annotations

from . import rscript

NAME = "lme4"
EXTERNAL = True


def command(workload, csv, out, n_fits, options):
    return rscript.command("lme4", workload, csv, out, n_fits, tight=options.get("tight", True))


def unavailable():
    return rscript.missing("lme4")

"""The command line of ``fit_r.R`` for one R engine (lme4, glmmTMB) and one workload."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "fit_r.R"
_CHECKED: dict = {}


def missing(package: str) -> str | None:
    """None when Rscript and ``package`` (with jsonlite) load, else the reason."""
    if package not in _CHECKED:
        rscript = shutil.which("Rscript")
        if not rscript:
            _CHECKED[package] = "not installed (no Rscript on PATH)"
        else:
            code = (
                f"quit(status = as.integer(!(requireNamespace('{package}', quietly = TRUE)"
                " && requireNamespace('jsonlite', quietly = TRUE))))"
            )
            done = subprocess.run([rscript, "-e", code], capture_output=True, timeout=300)
            _CHECKED[package] = (
                None if done.returncode == 0 else f"not installed (R package {package} or jsonlite missing)"
            )
    return _CHECKED[package]


def command(engine, workload, csv, out, n_fits, tight=False) -> list[str]:
    """Writes the spec next to ``out`` and returns the Rscript call."""
    spec = {
        "engine": engine,
        "formula": workload.formula,
        "kind": workload.kind,
        "family": workload.family,
        "factors": workload.factors,
        "csv": str(csv),
        "n_fits": n_fits,
        "tight": tight,
        "stages": workload.stages,
    }
    spec_path = Path(str(out) + ".spec.json")
    spec_path.write_text(json.dumps(spec))
    return [shutil.which("Rscript") or "Rscript", str(SCRIPT), str(spec_path), str(out)]

"""Units of work for ``fit_many`` and the tidy rows they produce.

A task is a chunk of groups sharing one design: the template model (the design built once,
unfitted), the responses (one row per group) and the groups' indices.  ``run_task`` runs
in whatever process the backend chose and returns a *column chunk*: a dict of equally long
numpy arrays, ``_gidx`` (group index) and ``_row`` (row within the group) first, then the
tidy columns of ``TIDY_COLUMNS``.

* ``ScalarTask``: one scalar random-effects term: every group at once (``scalar.fit_scalar``),
  the few responses it cannot settle go through ``LinearMixedModel.refit``.
* ``GeneralTask``: ``refit(y)`` per group (only the response changes; no re-parsing).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .scalar import ScalarDesign, fit_scalar, t_pvalues
from ..threads import one_blas_thread

__all__ = [
    "TIDY_COLUMNS",
    "ScalarTask",
    "GeneralTask",
    "run_task",
    "error_chunk",
    "concat_chunks",
    "satterthwaite_available",
]

TIDY_COLUMNS = [
    "effect",
    "group",
    "term",
    "estimate",
    "std_error",
    "df",
    "statistic",
    "p_value",
    "converged",
    "singular",
    "loglik",
    "error",
]
_FLOAT = ("estimate", "std_error", "df", "statistic", "p_value", "converged", "singular", "loglik")
SINGULAR_TOL = 1e-4  # lme4's isSingular()


def satterthwaite_available() -> bool:
    """Does ``mmfast.inference`` provide Satterthwaite's df (lmerTest's coefficient table)?"""
    try:
        from ..inference import ftests
    except ImportError:
        return False
    return hasattr(ftests, "coefficient_table")


def _fmt(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def error_chunk(gidx, messages) -> dict:
    """One row per failed group: its error, everything else missing."""
    gidx = np.asarray(gidx, dtype=np.int64)
    n = len(gidx)
    out = {"_gidx": gidx, "_row": np.zeros(n, dtype=np.int64)}
    for c in ("effect", "group", "term"):
        out[c] = np.full(n, None, dtype=object)
    for c in _FLOAT:
        out[c] = np.full(n, np.nan)
    out["error"] = np.broadcast_to(np.asarray(messages, dtype=object), (n,)).copy()
    return out


def concat_chunks(chunks: list[dict]) -> dict:
    chunks = [c for c in chunks if len(c["_gidx"])]
    if not chunks:
        return error_chunk(np.zeros(0, dtype=np.int64), [])
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


# --- rows of one fitted model (the general path) ------------------------------------------
def ran_pars_rows(model) -> list[tuple[str, str, float]]:
    """(group, term, estimate) in broom.mixed's order: per term sd, then its correlations."""
    rows = []
    for t, S in zip(model.frame.terms, model.term_covariances()):
        sd = np.sqrt(np.diag(S))
        for j in range(t.p):
            rows.append((t.group, f"sd__{t.names[j]}", float(sd[j])))
            for i in range(j + 1, t.p):
                cor = S[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
                rows.append((t.group, f"cor__{t.names[j]}.{t.names[i]}", float(cor)))
    if getattr(model, "use_scale", True):
        rows.append(("Residual", "sd__Observation", float(model.sigma)))
    return rows


def model_chunk(gidx: int, model, ddf) -> dict:
    """The tidy rows of one fitted model."""
    names = list(model.frame.fixef_names)
    beta = np.asarray(model.beta, dtype=float)
    se = np.sqrt(np.diag(model.vcov_array)) if len(beta) else np.zeros(0)
    df = np.full(len(beta), np.nan)
    if ddf is not None and len(beta) and satterthwaite_available():
        from ..inference.ftests import coefficient_table

        tab = coefficient_table(model, ddf)
        df = tab["df"].to_numpy(dtype=float)
        se = tab["Std. Error"].to_numpy(dtype=float)  # Kenward-Roger adjusts it
    rp = ran_pars_rows(model)
    nf, nr = len(beta), len(rp)
    n = nf + nr
    stat = np.concatenate([beta / se, np.full(nr, np.nan)])
    dfs = np.concatenate([df, np.full(nr, np.nan)])
    return {
        "_gidx": np.full(n, gidx, dtype=np.int64),
        "_row": np.arange(n, dtype=np.int64),
        "effect": np.array(["fixed"] * nf + ["ran_pars"] * nr, dtype=object),
        "group": np.array([None] * nf + [r[0] for r in rp], dtype=object),
        "term": np.array(names + [r[1] for r in rp], dtype=object),
        "estimate": np.concatenate([beta, [r[2] for r in rp]]),
        "std_error": np.concatenate([se, np.full(nr, np.nan)]),
        "df": dfs,
        "statistic": stat,
        "p_value": t_pvalues(stat, dfs),
        "converged": np.full(n, float(bool(model.converged))),
        "singular": np.full(n, float(bool(model.singular))),
        "loglik": np.full(n, float(model.loglik)),
        "error": np.full(n, None, dtype=object),
    }


def fit_one(template, y: np.ndarray, start, optctrl: dict):
    """``template`` (same design) fitted to the response y, from ``start`` (None: as lmer)."""
    from ..errors import DataError

    if not np.all(np.isfinite(y)):
        raise DataError(f"response '{template.frame.parsed.response}' has non-finite values")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return template.with_response(y).fit(start=start, **optctrl)  # the template is unfitted


@dataclass
class GeneralTask:
    """Groups sharing a design, fitted one by one with ``refit``."""

    template: object  # unfitted LinearMixedModel with the shared design
    Y: np.ndarray  # (G, n) responses, rows in the template's order
    gidx: np.ndarray  # (G,) group indices
    start: np.ndarray | None = None
    optctrl: dict = field(default_factory=dict)
    ddf: str | None = "satterthwaite"

    def run(self) -> dict:
        chunks = []
        for g, y in zip(self.gidx, self.Y):
            try:
                chunks.append(model_chunk(int(g), fit_one(self.template, y, self.start, self.optctrl), self.ddf))
            except Exception as exc:  # noqa: BLE001 - a failed fit is a row, never lost
                chunks.append(error_chunk([g], _fmt(exc)))
        return concat_chunks(chunks)


@dataclass
class ScalarTask:
    """Groups sharing a design with one scalar random-effects term: fitted all at once."""

    design: ScalarDesign
    template: object
    Y: np.ndarray
    gidx: np.ndarray
    fixef_names: list
    term: str  # the term's column name, e.g. "(Intercept)"
    group: str  # its VarCorr group name
    ddf: bool = True

    def run(self) -> dict:
        fa = fit_scalar(self.design, self.Y, ddf=self.ddf)
        chunks = [self._rows(fa)]
        err = np.flatnonzero(fa.error != None)  # noqa: E711
        if err.size:
            chunks.append(error_chunk(self.gidx[err], ["DataError: " + m for m in fa.error[err]]))
        gen = np.flatnonzero(fa.general)
        if gen.size:
            sub = GeneralTask(self.template, self.Y[gen], self.gidx[gen], ddf="satterthwaite" if self.ddf else None)
            chunks.append(sub.run())
        return concat_chunks(chunks)

    def _rows(self, fa) -> dict:
        ok = np.flatnonzero(fa.ok)
        G, p = len(ok), len(self.fixef_names)
        R = p + 2
        beta, se, df = fa.beta[ok], fa.se[ok], fa.df[ok]
        sigma, theta = fa.sigma[ok], fa.theta[ok]
        nan = np.full((G, 1), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = np.hstack([beta / se, nan, nan])
        dfs = np.hstack([df, nan, nan])
        col = lambda v: np.repeat(v, R)  # noqa: E731
        return {
            "_gidx": col(self.gidx[ok]),
            "_row": np.tile(np.arange(R, dtype=np.int64), G),
            "effect": np.tile(np.array(["fixed"] * p + ["ran_pars"] * 2, dtype=object), G),
            "group": np.tile(np.array([None] * p + [self.group, "Residual"], dtype=object), G),
            "term": np.tile(
                np.array(list(self.fixef_names) + [f"sd__{self.term}", "sd__Observation"], dtype=object), G
            ),
            "estimate": np.hstack([beta, (sigma * theta)[:, None], sigma[:, None]]).ravel(),
            "std_error": np.hstack([se, nan, nan]).ravel(),
            "df": dfs.ravel(),
            "statistic": stat.ravel(),
            "p_value": t_pvalues(stat, dfs).ravel(),
            "converged": col(fa.converged[ok].astype(float)),
            "singular": col((theta < SINGULAR_TOL).astype(float)),
            "loglik": col(-0.5 * fa.crit[ok]),
            "error": np.full(G * R, None, dtype=object),
        }


def run_task(task) -> dict:
    """Entry point for every backend (a module-level function, so workers can import it)."""
    with one_blas_thread():  # a task is one core's work, whatever the backend
        return task.run()

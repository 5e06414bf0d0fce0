"""Negative binomial GLMMs for many genes at once: ``fit_many(..., family="negative_binomial")``.

For ``count ~ condition + offset(log(size_factor)) + (1 | donor)`` every gene shares the design
(X, offset, donor codes); only its counts differ.  ``NBTask`` hands a chunk of genes to the
Cython kernel (``mmfast._ext._nbgenes``), which fits each by maximising glmmTMB's Laplace
log-likelihood (nbinom2: var = mu + mu²/θ, log link) over β, σ_donor and θ_NB jointly; with
one scalar random intercept the conditional modes separate by donor, so the inner problem is
one-dimensional per donor.  Standard errors come from the Hessian of the deviance in
(β, σ, log θ), as glmmTMB's ``sdreport``; Wald z statistics and normal p-values.

Counts are given either long (one row per gene and cell, ``by="gene"``: genes that share the
design after ``grouping``'s canonical row order share one task) or wide (``counts=``: a
genes x cells matrix, ``data`` one row per cell): then no per-row grouping work is done.

Other NB models (random slopes, several random-effects terms, a ``NegativeBinomial`` family
with fixed θ, another link) are fitted gene by gene as ``mmfast.glmer(formula, gene_rows,
family)`` (``NBGeneralTask``: an unfitted GLMM template with glmer's frame, built once per
design, fitted to each gene's counts) and reported in the same rows.

A gene that cannot be fitted is a row with its reason in ``error`` (all counts zero, counts
that are not non-negative integers, a non-finite deviance); one the optimiser did not settle
has its estimates with ``converged`` False.  θ_NB at the upper bound (θ > 1e8, the Poisson
limit) is reported as ``inf`` with the Poisson-limit fit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from .._ext._nbgenes import fit_nb_genes
from ..errors import DataError, ModelSpecError

__all__ = [
    "NB_FAMILIES",
    "NBDesign",
    "NBTask",
    "NBGeneralTask",
    "is_negative_binomial",
    "kernel_fits",
    "nb_design",
    "nb_tasks",
    "nb_model_tasks",
    "STATUS",
]

NB_FAMILIES = ("negative_binomial", "nbinom2")
NB_CHUNK = 250  # genes per task (fixed: results never depend on n_jobs)
GENERAL_NB_CHUNK = 16  # genes per task fitted one by one (other designs, fixed θ)
KAPPA_LO, KAPPA_HI = np.log(1e-4), np.log(1e8)  # log θ_NB is kept in this range
SINGULAR_TOL = 1e-4
STATUS = {
    0: None,
    1: "iteration limit reached",
    2: "DataError: all counts are zero: nothing to fit",
    3: None,  # Poisson limit: θ = inf
    4: None,  # θ at its lower bound (1e-4)
    5: "FitError: the Laplace deviance is not finite at the start or cannot be decreased",
    6: "line search failed",
}
FAILED = (2, 5)  # one error row, no estimates
CONVERGED = (0, 3, 4)


def is_negative_binomial(family) -> bool:
    """Is ``family`` nbinom2 (by name, or a family object whose name is one of NB_FAMILIES)?"""
    if family is None:
        return False
    name = family if isinstance(family, str) else getattr(family, "name", "")
    name = str(name).lower().replace(" ", "_").replace("-", "_")
    return name in NB_FAMILIES or name.startswith("negative_binomial")


def kernel_fits(family, model) -> bool:
    """Does the batched kernel fit this family and design: θ_NB estimated, log link, observed
    Hessian, one scalar random intercept ``(1 | g)``, no weights?  (Else: ``NBGeneralTask``.)"""
    if not isinstance(family, str):
        link = getattr(getattr(family, "link", None), "name", "log")
        exact = getattr(family, "hessian", "observed") == "observed"
        if getattr(family, "fixed", None) is not None or link != "log" or not exact:
            return False
    f = model.frame
    return len(f.terms) == 1 and f.terms[0].p == 1 and bool(np.all(f.terms[0].X[:, 0] == 1.0)) and f.weights is None


def nb_family_signature(family) -> str:
    """The family as stored with resumable output ("negative_binomial" for the kernel's)."""
    if isinstance(family, str):
        return "negative_binomial"
    theta, link = getattr(family, "fixed", None), getattr(getattr(family, "link", None), "name", "log")
    hess = getattr(family, "hessian", "observed")
    if theta is None and link == "log" and hess == "observed":
        return "negative_binomial"
    return f"negative_binomial(theta={theta!r}, link={link!r}, hessian={hess!r})"


@dataclass
class NBDesign:
    """What every gene shares: X, the offset, the donor codes and the names for the rows."""

    X: np.ndarray  # (n, p)
    offset: np.ndarray  # (n,)
    codes: np.ndarray  # (n,) int64
    nlevels: int
    fixef_names: list
    group: str  # the grouping factor's name, e.g. "donor"


def nb_design(model) -> NBDesign:
    """The shared design from a template model's frame; only ``(1 | g)`` is batched."""
    f = model.frame
    if len(f.terms) != 1 or f.terms[0].p != 1 or not np.all(f.terms[0].X[:, 0] == 1.0):
        raise ModelSpecError(
            "fit_many with family='negative_binomial' fits one random intercept, e.g. "
            "count ~ condition + offset(log(size_factor)) + (1 | donor); this formula has "
            f"{len(f.terms)} random-effects term(s) {[t.group for t in f.terms]}: use mmfast.glmer per gene"
        )
    if f.weights is not None:
        raise ModelSpecError("fit_many with family='negative_binomial' does not take weights")
    t = f.terms[0]
    n = f.X.shape[0]
    off = np.zeros(n) if f.offset is None else np.asarray(f.offset, dtype=float)
    return NBDesign(
        X=np.ascontiguousarray(f.X, dtype=float),
        offset=np.ascontiguousarray(off),
        codes=np.ascontiguousarray(t.factor.codes, dtype=np.int64),
        nlevels=int(t.nlevels),
        fixef_names=list(f.fixef_names),
        group=t.group,
    )


def nb_tasks(design: NBDesign, Y: np.ndarray, groups: np.ndarray) -> list:
    """Chunks of NB_CHUNK genes of one design as tasks."""
    return [NBTask(design, Y[s : s + NB_CHUNK], groups[s : s + NB_CHUNK]) for s in range(0, len(groups), NB_CHUNK)]


def nb_model_tasks(model, family, Y: np.ndarray, groups: np.ndarray) -> list:
    """Tasks for the genes of one design (``model``: an unfitted GLMM template of ``family``): the
    batched kernel where it fits the model, else ``mmfast.glmer`` per gene (``NBGeneralTask``)."""
    if kernel_fits(family, model):
        return nb_tasks(nb_design(model), Y, groups)
    return [
        NBGeneralTask(model, Y[s : s + GENERAL_NB_CHUNK], groups[s : s + GENERAL_NB_CHUNK], family)
        for s in range(0, len(groups), GENERAL_NB_CHUNK)
    ]


def _count_errors(Y: np.ndarray) -> np.ndarray:
    """The reason a gene's counts cannot be fitted (None where they can)."""
    err = np.full(len(Y), None, dtype=object)
    finite = np.isfinite(Y).all(axis=1)
    err[~finite] = "DataError: missing or non-finite counts"
    with np.errstate(invalid="ignore"):
        bad = finite & ((Y < 0).any(axis=1) | (Y != np.round(Y)).any(axis=1))
    err[bad] = "DataError: negative binomial counts must be non-negative integers"
    return err


@dataclass
class NBTask:
    """Genes sharing one design, fitted together by the kernel."""

    design: NBDesign
    Y: np.ndarray  # (G, n) counts, rows in the design's order
    gidx: np.ndarray  # (G,) group indices

    def run(self) -> dict:
        from .tasks import concat_chunks, error_chunk

        d = self.design
        Y = np.ascontiguousarray(self.Y, dtype=float)
        p = d.X.shape[1]
        err = _count_errors(Y)
        ok = np.flatnonzero(err == None)  # noqa: E711 - elementwise on an object array
        par = np.zeros((len(ok), p + 2))
        dev = np.full(len(ok), np.nan)
        hess = np.zeros((len(ok), p + 2, p + 2))
        status = np.zeros(len(ok), dtype=np.int64)
        its = np.zeros(len(ok), dtype=np.int64)
        fit_nb_genes(
            np.ascontiguousarray(Y[ok]), d.X, d.offset, d.codes, d.nlevels, par, dev, hess, status, its,
            kappa_lo=KAPPA_LO, kappa_hi=KAPPA_HI,
        )  # fmt: skip
        for s in FAILED:
            err[ok[status == s]] = STATUS[s]
        fitted = np.isin(status, FAILED, invert=True)
        chunks = [self._rows(ok[fitted], par[fitted], dev[fitted], hess[fitted], status[fitted])]
        bad = np.flatnonzero(err != None)  # noqa: E711
        if bad.size:
            chunks.append(error_chunk(self.gidx[bad], err[bad]))
        return concat_chunks(chunks)

    def _rows(self, idx, par, dev, hess, status) -> dict:
        """Tidy rows: the fixed effects, sd of the donor intercept, θ_NB (per gene)."""
        from .tasks import TIDY_COLUMNS

        d = self.design
        G, p = len(idx), d.X.shape[1]
        se = _standard_errors(hess, p)
        beta, sigma = par[:, :p], par[:, p]
        theta = np.where(status == 3, np.inf, np.exp(par[:, p + 1]))
        R = p + 2
        nan = np.full((G, 1), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = np.hstack([beta / se, nan, nan])
        col = lambda v: np.repeat(v, R)  # noqa: E731
        out = {
            "_gidx": col(self.gidx[idx]),
            "_row": np.tile(np.arange(R, dtype=np.int64), G),
            "effect": np.tile(np.array(["fixed"] * p + ["ran_pars", "dispersion"], dtype=object), G),
            "group": np.tile(np.array([None] * p + [d.group, None], dtype=object), G),
            "term": np.tile(np.array(list(d.fixef_names) + ["sd__(Intercept)", "theta"], dtype=object), G),
            "estimate": np.hstack([beta, sigma[:, None], theta[:, None]]).ravel(),
            "std_error": np.hstack([se, nan, nan]).ravel(),
            "df": np.full(G * R, np.inf),
            "statistic": stat.ravel(),
            "p_value": np.where(np.isnan(stat), np.nan, 2.0 * ndtr(-np.abs(stat))).ravel(),
            "converged": col(np.isin(status, CONVERGED).astype(float)),
            "singular": col((sigma < SINGULAR_TOL).astype(float)),
            "loglik": col(-0.5 * dev),
            "error": np.full(G * R, None, dtype=object),
        }
        out["df"][np.isnan(out["statistic"])] = np.nan
        assert list(out)[2:] == TIDY_COLUMNS
        return out


@dataclass
class NBGeneralTask:
    """Genes sharing one design the kernel does not fit (random slopes, several terms, a fixed
    θ, another link): each is ``mmfast.glmer(formula, gene_rows, family)``, the template (an
    unfitted GLMM with glmer's frame) fitted to its counts."""

    template: object  # unfitted GeneralizedLinearMixedModel
    Y: np.ndarray  # (G, n) counts, rows in the template's order
    gidx: np.ndarray  # (G,) group indices
    family: object = "negative_binomial"  # as given (the template's copy holds a start θ)

    def run(self) -> dict:
        from .tasks import concat_chunks, error_chunk

        err = _count_errors(np.asarray(self.Y, dtype=float))
        chunks = []
        for g, y, e in zip(self.gidx, self.Y, err):
            if e is None and not np.any(y):
                e = STATUS[2]
            if e is not None:
                chunks.append(error_chunk([g], e))
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = self._model(np.asarray(y, dtype=float)).fit()
                chunks.append(glmm_chunk(int(g), model))
            except Exception as exc:  # noqa: BLE001 - a failed fit is a row, never lost
                chunks.append(error_chunk([g], f"{type(exc).__name__}: {exc}"))
        return concat_chunks(chunks)

    def _model(self, y):
        """glmer's unfitted model on this gene's counts (its own start θ_NB, as glmer's)."""
        from ..families import get_family
        from ..model.frame import with_response
        from ..model.separation import check_response_not_constant

        t = self.template
        frame = with_response(t.frame, y)
        fam = get_family(self.family)
        check_response_not_constant(frame, fam)
        return type(t)(frame, fam, n_agq=t.n_agq, options=t.options, control=t.control)


def glmm_chunk(gidx: int, model) -> dict:
    """The rows of one fitted NB GLMM, as ``NBTask``'s: fixed effects (Wald z, normal p), the
    random effects' sd/cor, θ_NB; ``converged``, ``singular``, ``loglik``."""
    from .tasks import TIDY_COLUMNS, ran_pars_rows

    names = list(model.frame.fixef_names)
    beta = np.asarray(model.beta, dtype=float)
    se = np.sqrt(np.diag(np.asarray(model.vcov_array, dtype=float))) if len(beta) else np.zeros(0)
    rp = ran_pars_rows(model)
    nf, nr = len(beta), len(rp)
    n = nf + nr + 1
    nan = np.full(nr + 1, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.concatenate([beta / se, nan])
    out = {
        "_gidx": np.full(n, gidx, dtype=np.int64),
        "_row": np.arange(n, dtype=np.int64),
        "effect": np.array(["fixed"] * nf + ["ran_pars"] * nr + ["dispersion"], dtype=object),
        "group": np.array([None] * nf + [r[0] for r in rp] + [None], dtype=object),
        "term": np.array(names + [r[1] for r in rp] + ["theta"], dtype=object),
        "estimate": np.concatenate([beta, [r[2] for r in rp], [float(model.dispersion)]]),
        "std_error": np.concatenate([se, nan]),
        "df": np.where(np.isnan(stat), np.nan, np.inf),
        "statistic": stat,
        "p_value": np.where(np.isnan(stat), np.nan, 2.0 * ndtr(-np.abs(stat))),
        "converged": np.full(n, float(bool(model.converged))),
        "singular": np.full(n, float(bool(model.singular))),
        "loglik": np.full(n, float(model.loglik)),
        "error": np.full(n, None, dtype=object),
    }
    assert list(out)[2:] == TIDY_COLUMNS
    return out


def _standard_errors(hess: np.ndarray, p: int) -> np.ndarray:
    """sqrt(diag) of the β block of 2 H⁻¹ (H: the deviance's Hessian), NaN where H is not PD."""
    se = np.full((len(hess), p), np.nan)
    for g, H in enumerate(hess):
        try:
            np.linalg.cholesky(H)
            V = 2.0 * np.linalg.inv(H)
        except np.linalg.LinAlgError:
            continue
        v = np.diag(V)[:p]
        se[g] = np.where(v > 0, np.sqrt(np.abs(v)), np.nan)
    return se


def poisson_limit_warning(result) -> None:
    """One warning naming how many genes reached the Poisson limit (θ_NB = inf)."""
    theta = result.loc[result["term"] == "theta", "estimate"].to_numpy(dtype=float)
    k = int(np.isinf(theta).sum())
    if k:
        warnings.warn(
            f"{k} gene(s) reached the Poisson limit (theta_nb > 1e8, no overdispersion): theta is "
            "reported as inf and the estimates are the Poisson GLMM's",
            stacklevel=3,
        )


def check_counts_matrix(counts, ncells: int):
    """A genes x cells count matrix (array, DataFrame with genes as index, scipy sparse) as
    (float array, gene names)."""
    import pandas as pd

    names = None
    if isinstance(counts, pd.DataFrame):
        names = counts.index.to_numpy()
        counts = counts.to_numpy()
    elif hasattr(counts, "toarray"):  # scipy sparse
        counts = counts.toarray()
    try:
        Y = np.asarray(counts, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"counts must be a numeric genes x cells matrix ({exc})") from exc
    if Y.ndim != 2:
        raise DataError(f"counts must be a genes x cells matrix, not {Y.ndim}-dimensional")
    if Y.shape[1] != ncells:
        raise DataError(f"counts has {Y.shape[1]} columns (cells) for {ncells} rows of data")
    if names is None:
        names = np.arange(len(Y))
    return Y, names

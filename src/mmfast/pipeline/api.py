"""``fit_many``: one mixed model per group of the data (per gene, per neuron), tidy results.

The formula is parsed once.  Groups whose design is the same after sorting their rows
(``grouping``) share one template model: its model matrices, random-effects structure and
cross-products are built once, and each group only brings its response.  With a single
scalar random-effects term (``(1 | g)``) all responses of a design are fitted at once by
the array code of ``scalar`` (same criterion, to 1e-11 in θ²); otherwise each is
``LinearMixedModel.refit(y)`` from lme4's starting values.

The result is broom.mixed's ``tidy()`` layout, one row per parameter and group.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..arguments import NOBS_CHECKS, OPTIMIZER_KEYWORDS, boolean, integer, number, one_of, validated
from ..errors import ArgumentError, DataError
from ..formula.parse import identifiers, parse_formula
from ..model.data_input import as_frame, check_numeric_time, numeric_names
from ..progress import check_progress
from ..runner import BACKENDS, run_calls
from .grouping import group_keys, plan_groups
from .nb import is_negative_binomial, nb_family_signature, nb_model_tasks, poisson_limit_warning
from .output import ResultStore, group_hashes
from .scalar import scalar_design
from .templates import build_glmm_template, build_template, subset_template
from .tasks import TIDY_COLUMNS, GeneralTask, ScalarTask, concat_chunks, error_chunk, run_task, satterthwaite_available

__all__ = ["fit_many"]

SCALAR_CHUNK = 500  # groups per task on the array path (fixed: results never depend on n_jobs)
GENERAL_CHUNK = 16  # groups per task on the refit path
SCALAR_MAX_P = 16  # fixed effects up to which the array path is used
_LMER_DESIGN_KWARGS = ("check_nobs_vs_nre",)


@validated(
    extra=("weights", "offset", "check_nobs_vs_nre", "start", *OPTIMIZER_KEYWORDS),
    reml=boolean,
    check_nobs_vs_nre=one_of(*NOBS_CHECKS),
    backend=one_of(*BACKENDS),
    n_jobs=integer(-1, none=True),
    maxeval=integer(1),
    ftol_abs=number,
    xtol_abs=number,
)
def fit_many(
    data: pd.DataFrame,
    formula: str,
    by,
    n_jobs: int | None = 1,
    backend: str = "loky",
    output=None,
    reml: bool = True,
    ddf: str | None = "satterthwaite",
    progress: bool | None = None,
    family=None,
    counts=None,
    **lmer_kwargs,
) -> pd.DataFrame:
    """Fit ``formula`` (lme4 syntax, as ``lmer``) to every group of ``by`` and return tidy rows.

    The formula is parsed once, groups with the same design share it, and single
    random-intercept models are fitted for all groups at once.

    Parameters
    ----------
    data : DataFrame or dict
        pandas or polars DataFrame, pyarrow Table or a dict of columns.
    formula : str
        lme4's syntax, as ``mmfast.lmer``.
    by : str or list of str
        The column(s) defining the groups (rows with a missing key belong to no group).
    n_jobs : int or None, default 1
        Worker processes (-1: all cores).  Results do not depend on it.
    backend : {"loky", "dask"}, default "loky"
        ``"loky"`` runs n_jobs worker processes (joblib); ``"dask"`` runs on the current
        ``dask.distributed`` client, or on a LocalCluster of n_jobs processes started for the
        call.  Results do not depend on it.
    output : str or path, optional
        A path (e.g. ``"results.parquet"``): results are written there as they finish and a
        run that was interrupted resumes, fitting only the groups not yet written; if the data
        of a group already written changed (any column the model uses), it is refused
        (``DataError``: use a new path) rather than returning stale rows.
    reml : bool, default True
        REML or (False) maximum-likelihood fits.
    ddf : str or None, default "satterthwaite"
        lmerTest's df, another ``ddf`` of ``mmfast.inference`` (e.g. ``"kenward-roger"``), or
        None (no df, no p-values).
    progress : bool, optional
        A tqdm bar over the groups (None: on a terminal for runs over ~2 s).
    family : str or Family, optional
        None: linear mixed models.  ``"negative_binomial"`` (``"nbinom2"``, or a
        ``NegativeBinomial`` family object): NB GLMMs.  With one random intercept, e.g.
        ``count ~ condition + offset(log(size_factor)) + (1 | donor)``, and θ_NB estimated, many
        genes are fitted at once by glmmTMB's Laplace maximum likelihood (β, σ and θ_NB jointly;
        ``mmfast.pipeline.nb``); other random effects (slopes, several terms) and fixed-θ families
        are ``mmfast.glmer(formula, gene_rows, family)`` per gene, in the same rows.  ``reml`` and
        ``ddf`` do not apply (Wald z tests).
    counts : array, DataFrame or sparse matrix, optional
        With the negative binomial family: a genes x cells count matrix (a DataFrame's index
        names the genes) and ``data`` one row per cell; ``by`` names the gene column of the
        result.  Nothing is split per row: the design is built once.
    **lmer_kwargs
        ``lmer``'s other arguments: ``weights``/``offset`` as column names,
        ``check_nobs_vs_nre``, ``start``, optimizer controls.

    Returns
    -------
    DataFrame
        broom.mixed's tidy layout, per group: one row per fixed effect (``effect="fixed"``)
        and per random-effects sd/correlation and residual sd (``effect="ran_pars"``, named
        ``sd__(Intercept)``, ``cor__(Intercept).x``, ``sd__Observation``).  Columns: the
        ``by`` columns, ``effect``, ``group``, ``term``, ``estimate``, ``std_error``, ``df``,
        ``statistic``, ``p_value``, and per fit ``converged``, ``singular``, ``loglik`` and
        ``error`` (a failed group is one row with its error message).

    Examples
    --------
    >>> import mmfast
    >>> res = mmfast.fit_many(mmfast.datasets.load("many_small"), "y ~ group + (1 | animal)",
    ...                       by="gene")
    >>> res["gene"].nunique(), len(res)
    (2000, 8000)
    """
    if not (isinstance(by, str) or isinstance(by, (list, tuple)) and by and all(isinstance(b, str) for b in by)):
        raise ArgumentError(f"by must be a column name or a list of them, not {by!r}")
    by = [by] if isinstance(by, str) else list(by)
    progress = check_progress(progress)
    data = as_frame(data)
    missing = [c for c in by if c not in data.columns] if counts is None else []
    if missing:
        raise DataError(f"by column(s) {missing} not in the data")
    if ddf is not None:
        from ..inference.ftests import resolve_ddf

        resolve_ddf(ddf)  # an unknown ddf fails before any fit
    parsed = parse_formula(formula)
    check_numeric_time(data, numeric_names(formula))  # a date may group, not be a covariate
    data, lmer_kwargs = _array_arguments(data, lmer_kwargs)
    nb = _check_family(family, counts)
    if counts is not None:
        from .counts import fit_counts

        return fit_counts(data, formula, parsed, by, counts, n_jobs, backend, output, progress, lmer_kwargs, nb)
    spec = _Spec(parsed, data, by, reml, ddf, lmer_kwargs, nb)
    # rows missing a design value belong to no design; rows missing only the response are
    # dropped per group (a subset of the class's design, see templates.subset_template)
    complete = data[spec.design_cols].notna().all(axis=1).to_numpy()
    y_missing = data[spec.response_only].isna().any(axis=1).to_numpy()
    plan = plan_groups(data, by, spec.design_cols, spec.grouping_cols, complete)
    keys = plan.keys
    store, hashes = None, None
    if output is not None:
        options = {
            k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
            for k, v in sorted(lmer_kwargs.items())
        }
        # a Categorical's level order sets the reference level: part of the call
        levels = {
            c: [str(v) for v in data[c].cat.categories] + [str(data[c].cat.ordered)]
            for c in spec.needed
            if isinstance(data[c].dtype, pd.CategoricalDtype)
        }
        store = ResultStore(
            output,
            by,
            {
                "formula": formula,
                "by": by,
                "reml": bool(reml),
                "ddf": ddf,
                "options": options,
                "data": "group-hash-1",
                "levels": levels,
                **({"family": nb_family_signature(nb)} if nb is not None else {}),
            },
        )
        gid, _ = group_keys(data, by)  # only when resuming: O(n) hashing, vectorised
        hashes = group_hashes(data, spec.needed, gid, len(keys))
    pending = ~store.done(keys, hashes) if store is not None else np.ones(len(keys), dtype=bool)

    chunks = []
    if plan.empty.size:
        e = plan.empty[pending[plan.empty]]
        chunks.append(error_chunk(e, "DataError: no rows left after dropping missing values"))
    tasks = []
    if pending.any():
        y_all = spec.response(data, complete & ~y_missing)
        for cls in plan.classes:
            sel = pending[cls.groups]
            if sel.any():
                new_tasks, errors = spec.tasks(data, cls.groups[sel], cls.rows[sel], y_all, y_missing)
                tasks += new_tasks
                chunks += errors
    return _collect(chunks, tasks, n_jobs, backend, progress, keys, by, store, hashes, pending, nb is not None)


def _collect(chunks, tasks, n_jobs, backend, progress, keys, by, store, hashes, pending, nb) -> pd.DataFrame:
    """Run the tasks, write each finished chunk to ``store``, and return the tidy frame of all
    groups (those an earlier run stored included)."""
    collected = []
    for chunk in _finished(chunks, tasks, n_jobs, backend, progress):
        if store is not None:
            store.write(_frame(chunk, keys, by), hashes[pd.unique(chunk["_gidx"])])
        collected.append(chunk)
    result = _frame(concat_chunks(collected), keys, by, sort=True)
    if store is not None:
        result = _with_stored(result, store, keys, by, pending)
    if nb:
        poisson_limit_warning(result)
    return result


def _check_family(family, counts):
    """The negative binomial family (name or object) of this pipeline, or None (LMMs).  (Other
    GLMM families are not fitted by fit_many.)"""
    if family is None:
        if counts is not None:
            raise ArgumentError("counts= is for family='negative_binomial'")
        return None
    if not is_negative_binomial(family):
        raise ArgumentError(
            f"fit_many fits linear mixed models (family=None) or negative binomial GLMMs "
            f"(family='negative_binomial'), not family={family!r}: use mmfast.glmer per group"
        )
    return family


def _finished(chunks, tasks, n_jobs, backend, progress):
    """Error chunks made here first, then the tasks' results as they complete."""
    yield from (c for c in chunks if len(c["_gidx"]))
    yield from run_calls(
        run_task,
        [(t,) for t in tasks],
        n_jobs=n_jobs,
        backend=backend,
        ordered=False,
        progress=progress,
        desc="fit_many",
        unit="group",
        size=_n_groups,
        total=sum(len(t.gidx) for t in tasks),
    )


def _n_groups(chunk: dict) -> int:
    return len(pd.unique(chunk["_gidx"]))


# --- the formula's columns and the tasks of one design class --------------------------------
class _Spec:
    """What fit_many needs from the formula: design columns, response, the template models."""

    def __init__(self, parsed, data, by, reml, ddf, kwargs, family=None):
        self.parsed, self.reml, self.ddf = parsed, bool(reml), ddf
        self.family, self.nb = family, family is not None  # a negative binomial family: GLMMs
        self.response_error: str | None = None  # set when the response cannot be evaluated
        self.kwargs = dict(kwargs)
        cols = set(data.columns)
        used = parsed.variables(data.columns)
        rhs = " ".join([parsed.fixed, *parsed.offsets] + [b.lhs for b in parsed.bars])
        rhs_vars = {v for v in identifiers(rhs) if v in cols}
        group_vars = {f.strip("`") for b in parsed.bars for f in b.factors}
        extra = [v for k in ("weights", "offset") if isinstance(v := kwargs.get(k), str)]
        for v in extra:
            if v not in cols:
                raise DataError(
                    f"{v!r} ({'weights' if v == kwargs.get('weights') else 'offset'}) is not a column of the data"
                )
        self.design_cols = [c for c in used if c in rhs_vars or c in group_vars] + extra
        self.grouping_cols = [c for c in group_vars if c not in rhs_vars and c not in extra]
        self.response_only = [c for c in used if c not in self.design_cols]
        self.needed = list(dict.fromkeys(used + extra))
        self.start = kwargs.get("start")
        self.optctrl = {
            k: v for k, v in kwargs.items() if k not in ("weights", "offset", "start", *_LMER_DESIGN_KWARGS)
        }
        if ddf is None:
            self.ddf_name = None
        else:
            from ..inference.ftests import resolve_ddf

            self.ddf_name = resolve_ddf(ddf) if satterthwaite_available() else None

    def response(self, data, complete) -> np.ndarray:
        """The response for every row (NaN for incomplete rows); its errors are every group's."""
        from ..model.frame import _check_names_exist, evaluate

        _check_names_exist(self.parsed, data.columns)  # raised, not per group: nothing runs
        y = np.full(len(data), np.nan)
        expr = self.parsed.response.strip().strip("`")
        try:
            if expr in data.columns:
                vals = data[expr].to_numpy()[complete]
            else:  # parsed and interpreted (allow-listed names and functions), never executed
                from ..formula.expr import names_in, parse_expr

                node = parse_expr(self.parsed.response)
                cols = [c for c in names_in(node) if c in data.columns]
                vals = evaluate(self.parsed.response, data.loc[complete, cols])
            if np.asarray(vals).dtype.kind not in "biuf":
                from ..errors import DataError

                raise DataError(
                    f"response '{self.parsed.response}' must be numeric (got {np.asarray(vals).dtype} values)"
                )
            y[complete] = np.asarray(vals, dtype=float)
        except Exception as exc:  # noqa: BLE001 - e.g. a text response: every group fails alike
            self.response_error = f"{type(exc).__name__}: {exc}"
        return y

    def template(self, data, rows, parent=None, keep=None):
        """The design of ``rows`` as an unfitted model: from ``parent``'s rows ``keep`` when
        that is lmer's design, else from the formula (errors: the design's, for all groups).
        Negative binomial: an unfitted GLMM with glmer's frame, always from the rows."""
        if self.nb:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*rank deficient.*")
                return build_glmm_template(
                    self.parsed, data, rows, self.needed, self.response_only, self.family, self.kwargs
                )
        if parent is not None:
            model = subset_template(parent, keep, self.kwargs.get("check_nobs_vs_nre", "stop"))
            if model is not None:
                return model
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*rank deficient.*")
            return build_template(
                self.parsed, data, rows, self.needed, self.response_only, self.reml, self.kwargs, self.optctrl
            )

    def scalar_ok(self, model) -> bool:
        f = model.frame
        return (
            len(f.terms) == 1
            and f.terms[0].p == 1
            and f.weights is None
            and f.offset is None
            and not self.optctrl
            and self.start is None
            and f.X.shape[1] <= SCALAR_MAX_P
            and self.ddf_name in (None, "satterthwaite")
        )

    def tasks(self, data, groups, rows, y_all, y_missing):
        """Tasks (and error chunks) for the pending groups of one design class.

        Groups missing some responses get the class's design without those rows: one
        template per pattern of missing responses.
        """
        if self.response_error:
            return [], [error_chunk(groups, self.response_error)]
        miss = y_missing[rows]
        if miss.any():
            packed = np.packbits(miss, axis=1)  # np.unique on rows of bytes is much faster
            _, first, inv = np.unique(packed, axis=0, return_index=True, return_inverse=True)
            patterns, inv = miss[first], inv.ravel()
        else:
            patterns, inv = miss[:1], np.zeros(len(groups), dtype=np.int64)
        parent = None
        if patterns[0].any() or len(patterns) > 1:  # a full template to take subsets of
            try:
                parent = self.template(data, rows[0])
            except Exception:  # noqa: BLE001 - each pattern is then built from its rows
                parent = None
        out, errors = [], []
        for k, pattern in enumerate(patterns):
            sel = inv == k
            keep = ~pattern
            if not keep.any():
                errors.append(error_chunk(groups[sel], "DataError: no rows left after dropping missing values"))
                continue
            try:
                model = (
                    parent
                    if parent is not None and keep.all()
                    else self.template(data, rows[sel][0][keep], parent, keep)
                )
            except Exception as exc:  # noqa: BLE001 - the design fails: all its groups do
                errors.append(error_chunk(groups[sel], f"{type(exc).__name__}: {exc}"))
                continue
            Y = np.ascontiguousarray(y_all[rows[sel]][:, keep])  # C order in every process
            out += self._design_tasks(model, groups[sel], Y)
        return out, errors

    def _design_tasks(self, model, groups, Y):
        out: list[ScalarTask | GeneralTask] = []
        if self.nb:
            return nb_model_tasks(model, self.family, Y, groups)
        if self.scalar_ok(model):
            t = model.frame.terms[0]
            des = scalar_design(model.frame.X, t.X[:, 0], t.factor.codes, t.nlevels, self.reml, self.parsed.response)
            for s in range(0, len(groups), SCALAR_CHUNK):
                sl = slice(s, s + SCALAR_CHUNK)
                out.append(
                    ScalarTask(
                        des,
                        model,
                        Y[sl],
                        groups[sl],
                        list(model.frame.fixef_names),
                        t.names[0],
                        t.group,
                        ddf=self.ddf_name is not None,
                    )
                )
        else:
            start = None if self.start is None else np.asarray(self.start, dtype=float)
            for s in range(0, len(groups), GENERAL_CHUNK):
                sl = slice(s, s + GENERAL_CHUNK)
                out.append(GeneralTask(model, Y[sl], groups[sl], start, self.optctrl, self.ddf_name))
        return out


def _array_arguments(data, kwargs):
    """weights/offset given as arrays become hidden columns (so they split with the data)."""
    kwargs = dict(kwargs)
    for k in ("weights", "offset"):
        v = kwargs.get(k)
        if v is not None and not isinstance(v, str):
            try:
                arr = np.asarray(v, dtype=float).ravel()
            except (TypeError, ValueError) as exc:
                raise DataError(f"{k} must be numbers or a column name ({exc})") from exc
            if len(arr) != len(data):
                raise DataError(f"{k} has {len(arr)} values for {len(data)} rows")
            data = data.assign(**{f"({k})": arr})
            kwargs[k] = f"({k})"
    return data, kwargs


# --- assembling the tidy frame ------------------------------------------------------------
_STR = ("effect", "group", "term", "error")
_STR_DTYPE = "str" if int(pd.__version__.split(".")[0]) >= 3 else "string"  # missing: NaN / NA


def _frame(chunk: dict, keys: pd.DataFrame, by: list[str], sort: bool = False) -> pd.DataFrame:
    """A column chunk as the tidy DataFrame (the by columns first)."""
    if sort:
        order = np.lexsort((chunk["_row"], chunk["_gidx"]))
        chunk = {k: v[order] for k, v in chunk.items()}
    out = keys.take(chunk["_gidx"]).reset_index(drop=True)
    for c in TIDY_COLUMNS:
        v = chunk[c]
        if c in _STR:
            out[c] = pd.Series(v, dtype=_STR_DTYPE)
        elif c in ("converged", "singular"):
            out[c] = pd.arrays.BooleanArray(v == 1.0, np.isnan(v))
        else:
            out[c] = v
    return out


def _with_stored(result, store, keys, by, pending):
    """Add the rows of groups fitted by an earlier (interrupted) run, in group order."""
    from .output import _key_index

    if pending.all():
        return result
    stored = store.read()
    idx = _key_index(keys, by)
    pos = idx.get_indexer(_key_index(stored, by))
    keep = (pos >= 0) & ~pending[np.maximum(pos, 0)]
    stored = stored[keep].reset_index(drop=True)
    for c in by:
        stored[c] = stored[c].astype(keys[c].dtype)
    rpos = idx.get_indexer(_key_index(result, by)) if len(result) else np.zeros(0, dtype=np.int64)
    both = pd.concat([stored, result], ignore_index=True)
    order = np.argsort(np.concatenate([pos[keep], rpos]), kind="stable")
    return both.iloc[order].reset_index(drop=True)

"""The lecture's check of a test under the null: permute a cluster-level label across clusters.

``cluster_permutation_test(formula, data, permute, cluster)`` shuffles the values of
``permute`` (e.g. the treatment of each mouse) across the clusters (mice): every cluster
keeps its rows and its response, and gets the label of another cluster.  The treatment then
has no effect by construction, so a valid test rejects at rate alpha.  For each permutation
the mixed model (lmerTest's Type III F test, Satterthwaite df by default) and the naive
linear model (the same hypothesis tested by ordinary least squares, every row independent:
R's ``anova(lm(...))`` for a one-term model) are refitted and the p-values of the permuted
term kept.  The LM's false-positive rate is inflated when the rows of a cluster are
correlated; the LMM's stays near alpha.

Speed: a permutation changes X only.  The model matrix is evaluated once per label value
(on the data with every row given that label) and each permutation's X is gathered from
those rows; the first permutation is checked against a full rebuild from the formula
(otherwise, e.g. for ``scale()`` of the label, every permutation is rebuilt from the
formula).  The LMM is refitted by ``DesignRefitter`` (everything not involving X is reused).
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..arguments import boolean, integer, validated
from ..inference.fixed_terms import FixedTerms
from ..inference.ftests import anova_table
from .design_refit import satterthwaite_f
from .parallel import TaskFailure, as_seed_sequence, run_tasks
from ..errors import ArgumentError, DataError

__all__ = ["cluster_permutation_test", "PermutationTest"]


class PermutationTest:
    """Result of ``cluster_permutation_test``: ``pvalues`` (columns lmm, lm) and helpers."""

    def __init__(self, pvalues, statistics, observed, term, failures, seconds, seed, info):
        self.pvalues = pvalues
        self.statistics = statistics
        self.observed = observed
        self.term = term
        self.failures = list(failures)
        self.n_failed = len(self.failures)
        self.n_perm = len(pvalues)
        self.seconds = float(seconds)
        self.seed = seed
        self.info = info
        self.assignments = None  # DataFrame: the label each cluster got, per permutation

    def rejection_rate(self, alpha: float = 0.05) -> dict:
        """Share of permutations with p < alpha, per model (failed permutations left out)."""
        out = {}
        for col in ("lmm", "lm"):
            p = self.pvalues[col].to_numpy(dtype=float)
            p = p[np.isfinite(p)]
            out[col] = float(np.mean(p < alpha)) if len(p) else float("nan")
        return out

    def binomial_band(self, alpha: float = 0.05, level: float = 0.95) -> tuple[float, float]:
        """Central ``level`` range of the rejection rate of a valid test over these permutations."""
        n = int(np.sum(np.isfinite(self.pvalues["lmm"].to_numpy(dtype=float))))
        if n == 0:
            return float("nan"), float("nan")
        lo, hi = stats.binom.interval(level, n, alpha)
        return float(lo / n), float(hi / n)

    def permutation_pvalue(self) -> dict:
        """(1 + #{permuted p <= observed p}) / (1 + #permutations), per model."""
        out = {}
        for col in ("lmm", "lm"):
            p = self.pvalues[col].to_numpy(dtype=float)
            p = p[np.isfinite(p)]
            out[col] = float((1 + np.sum(p <= self.observed[col])) / (1 + len(p)))
        return out

    def plot(self, bins: int = 20, alpha: float = 0.05, figsize=None):
        """The lecture's histograms of the permutation p-values (one panel per model)."""
        from ..present.plots import plot_pvalues

        return plot_pvalues(self.pvalues, bins=bins, alpha=alpha, figsize=figsize)

    def __repr__(self) -> str:
        r = self.rejection_rate(0.05)
        lo, hi = self.binomial_band(0.05) if self.n_perm > self.n_failed else (np.nan, np.nan)
        return (
            f"Cluster permutation test of '{self.term}' ({self.info['permute']} shuffled across "
            f"{self.info['n_clusters']} {self.info['cluster']} clusters; {self.n_perm} "
            f"permutations, {self.n_failed} failed, {self.seconds:.2f} s)\n"
            f"observed p: lmm {self.observed['lmm']:.4g}, lm {self.observed['lm']:.4g}\n"
            f"rejection rate at 0.05: lmm {r['lmm']:.3f}, lm {r['lm']:.3f} "
            f"(95% band for a valid test: {lo:.3f}-{hi:.3f})"
        )


# --- the per-permutation work ----------------------------------------------------------------
class _PermTask:
    """Everything a permutation needs (picklable): template fit, X per label, cluster codes."""

    def __init__(
        self, model, ft, term, ddf, Xstack, rdstack, row_cluster, cluster_label, labels, permute, formula, reml, fast
    ):
        from .design_refit import DesignRefitter
        from .intercept import RandomInterceptLMM, applies

        self.refitter = DesignRefitter(model)
        self.engine = RandomInterceptLMM(model) if applies(model) and ddf == "satterthwaite" else None
        if self.engine is not None:  # start θ at the fit without the tested term (the null)
            keep = np.setdiff1d(np.arange(model.frame.X.shape[1]), ft[term].columns)
            if len(keep):
                try:
                    self.engine.theta0 = self.engine.fit(model.frame.X[:, keep])["theta"]
                except (np.linalg.LinAlgError, FloatingPointError):
                    pass
        self.ft, self.term, self.ddf = ft, term, ddf
        self.Xstack, self.rdstack = Xstack, rdstack
        self.row_cluster, self.cluster_label = row_cluster, cluster_label
        self.labels, self.permute = labels, permute
        self.formula, self.reml, self.fast = formula, reml, fast
        self.rows = np.arange(len(row_cluster))

    def shuffle(self, rng) -> tuple[np.ndarray, np.ndarray]:
        """(label index per row, label index per cluster) after shuffling the clusters' labels."""
        per_cluster = self.cluster_label[rng.permutation(len(self.cluster_label))]
        return per_cluster[self.row_cluster], per_cluster

    def data_for(self, row_lab) -> pd.DataFrame:
        data = self.refitter.model.frame.data.copy()
        data[self.permute] = _like(data[self.permute], self.labels[row_lab])
        return data

    def contrast(self, X, row_lab) -> np.ndarray:
        from ..inference.contrasts import term_contrasts

        ft = dataclasses.replace(self.ft, X=X)
        if self.rdstack is not None:
            ft = _GatheredTerms(**{f.name: getattr(ft, f.name) for f in dataclasses.fields(ft)})
            ft.rdX = self.rdstack[0][row_lab, self.rows]
            ft.owner = self.rdstack[1]
        return term_contrasts(ft, 3)[self.term]

    def test(self, X, row_lab):
        """(p_lmm, p_lm, F_lmm, DenDF_lmm, F_lm) for the design X (labels row_lab)."""
        if not self.fast:
            return _slow_test(self.formula, self.data_for(row_lab), self.term, self.ddf, self.reml)
        L = self.contrast(X, row_lab)
        if self.engine is not None:
            try:
                res = self.engine.fit(X)
                F, _, ddf, p = satterthwaite_f(self.engine.satterthwaite(res), L)
                F_lm, _, _, p_lm = self.engine.ols_f(res, L)
                return p, p_lm, F, ddf, F_lm
            except (np.linalg.LinAlgError, FloatingPointError):
                pass  # the general refit below
        if self.ddf == "satterthwaite":
            fit = self.refitter.refit(X)
            F, _, ddf, p = satterthwaite_f(self.refitter.satterthwaite(fit), L)
            res = {"Pr(>F)": p, "F value": F, "DenDF": ddf}
        else:
            fit = self.refitter.refit(X, data=self.data_for(row_lab))
            res = anova_table(fit, type=3, ddf=self.ddf).loc[self.term]
        F_lm, _, _, p_lm = self.refitter.ols_f(X, L)
        return float(res["Pr(>F)"]), p_lm, float(res["F value"]), float(res["DenDF"]), F_lm

    def __call__(self, rng):
        row_lab, per_cluster = self.shuffle(rng)
        X = self.Xstack[row_lab, self.rows] if self.fast else None
        return self.test(X, row_lab), per_cluster


def _run_perm(task, rng):
    return task(rng)


class _GatheredTerms(FixedTerms):
    """FixedTerms whose over-parameterised design was gathered per row (no formula rebuild)."""

    rdX = None
    owner = None

    def overparameterised(self):
        return self.rdX, self.owner


def _slow_test(formula, data, term, ddf, reml):
    """The reference path: every model rebuilt from the formula (lmer, anova, lm)."""
    from ..model.lm import LinearModel, fit_lm
    from ..model.lmm import LinearMixedModel, fit_lmm
    from ..formula import parse_formula

    fit = fit_lmm(LinearMixedModel, formula, data, reml=reml)  # lmer's fit
    a = anova_table(fit, type=3, ddf=ddf).loc[term]
    parsed = parse_formula(formula)
    lmfit = fit_lm(
        LinearModel, f"{parsed.response} ~ {parsed.fixed}", data, offset=fit.frame.offset, weights=fit.frame.weights
    )
    from .design_refit import DesignRefitter
    from ..inference.contrasts import term_contrasts
    from ..inference.fixed_terms import fixed_terms

    L = term_contrasts(fixed_terms(fit.frame), 3)[term]
    F_lm, _, _, p_lm = DesignRefitter(fit).ols_f(lmfit.frame.X, L)
    return float(a["Pr(>F)"]), p_lm, float(a["F value"]), float(a["DenDF"]), F_lm


# --- set-up -----------------------------------------------------------------------------------
def _choose_term(ft, permute: str, term: str | None) -> str:
    from ..formula.parse import identifiers

    if term is not None:
        if term not in ft.labels:
            raise ArgumentError(f"term {term!r} is not a fixed-effects term ({ft.labels})")
        return term
    cands = [t for t in ft.terms if any(permute in identifiers(v) for v in t.variables)]
    if not cands:
        raise ArgumentError(f"'{permute}' is not in the fixed part of the formula: nothing to test")
    if len(cands) > 1:
        mains = [t for t in cands if len(t.variables) == 1]
        if len(mains) != 1:
            raise ArgumentError(
                f"several terms involve '{permute}' ({[t.label for t in cands]}): choose one with term="
            )
        return mains[0].label
    return cands[0].label


def _like(column: pd.Series, values: np.ndarray):
    """New values for a column, keeping its dtype (a factor stays a factor with its levels)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return pd.Categorical(values, dtype=column.dtype)
    return values


def _stack(model, ft, permute, labels, need_rd):
    """X (and the over-parameterised design) with every row given each label in turn."""
    data = model.frame.data
    K, n = len(labels), len(data)
    big = pd.concat([data] * K, ignore_index=True)
    big[permute] = _like(data[permute], np.repeat(labels, n))
    X = model.frame.fixed_spec.matrix(big).reshape(K, n, -1)
    rd = None
    if need_rd:
        ftb = dataclasses.replace(ft, X=np.zeros((K * n, ft.X.shape[1])), data=big)
        rdX, owner = ftb.overparameterised()
        rd = (rdX.reshape(K, n, -1), owner)
    return X, rd


@validated(reml=boolean, n_perm=integer(1))
def cluster_permutation_test(
    formula: str,
    data: pd.DataFrame,
    permute: str,
    cluster: str,
    n_perm: int = 1000,
    seed=None,
    n_jobs: int | None = 1,
    ddf: str = "satterthwaite",
    reml: bool = True,
    term: str | None = None,
    progress=None,
) -> PermutationTest:
    """Shuffle ``permute`` across the clusters of ``cluster``, refit LMM and LM, keep p-values.

    The lecture's check: under shuffled (null) labels the mixed model rejects at about the
    nominal rate, the naive LM far more often.

    Parameters
    ----------
    formula : str
        The mixed model (lme4 syntax); the naive LM is its fixed part.
    data : DataFrame or dict
        pandas or polars DataFrame, pyarrow Table or a dict of columns.
    permute : str
        The cluster-level column to shuffle; constant within each cluster.
    cluster : str
        The column of clusters (the mouse).
    n_perm : int, default 1000
        Number of permutations.
    seed : int, optional
        The same seed gives the same permutations and p-values for any ``n_jobs``.
    n_jobs : int or None, default 1
        Worker processes (-1: all cores).
    ddf : str, default "satterthwaite"
        The LMM's denominator df (lmerTest's Type III F test).
    reml : bool, default True
        REML or ML fits of the LMM.
    term : str, optional
        The fixed term to test; default the one made of ``permute``.
    progress : bool, optional
        tqdm bar; default on a terminal for long runs.

    Returns
    -------
    PermutationTest
        ``pvalues`` (columns ``lmm``, ``lm``), ``rejection_rate(alpha)``,
        ``permutation_pvalue()``, ``plot()``.

    Examples
    --------
    >>> import mmfast
    >>> ex1 = mmfast.datasets.load("ex1")
    >>> perm = mmfast.cluster_permutation_test("res ~ factor(treatment_idx) + (1 | midx)", ex1,
    ...                                        permute="treatment_idx", cluster="midx",
    ...                                        n_perm=100, seed=1)
    >>> perm.rejection_rate(0.05)
    {'lmm': 0.04, 'lm': 0.97}
    """
    from ..formula import parse_formula
    from ..inference.contrasts import term_contrasts
    from ..inference.fixed_terms import fixed_terms
    from ..inference.ftests import resolve_ddf
    from ..model.frame import model_frame
    from ..model.lmm import LinearMixedModel, fit_lmm
    from ..model.data_input import as_frame

    ddf = resolve_ddf(ddf)
    data = as_frame(data)
    for col, what in ((permute, "permute"), (cluster, "cluster")):
        if col not in data.columns:
            raise DataError(f"{what} column '{col}' is not a column of the data")
    parsed = parse_formula(formula)
    used = list(dict.fromkeys(parsed.variables(data.columns) + [permute, cluster]))
    d = data.loc[data[used].notna().all(axis=1)].reset_index(drop=True)
    per_cluster = d.groupby(cluster, sort=True)[permute].nunique()
    bad = per_cluster[per_cluster > 1]
    if len(bad):
        raise DataError(
            f"'{permute}' is not constant within clusters of '{cluster}' "
            f"({len(bad)} clusters vary, e.g. {', '.join(map(str, bad.index[:5]))}): "
            "only a cluster-level variable can be permuted across clusters"
        )
    cl_codes, cl_levels = pd.factorize(d[cluster], sort=True)
    first = d.groupby(cl_codes, sort=True)[permute].first().to_numpy()
    labels = np.array(sorted(pd.unique(first)), dtype=first.dtype)
    if len(labels) < 2:
        raise DataError(f"'{permute}' takes a single value: there is nothing to permute")
    cluster_label = np.searchsorted(labels, first)
    if not np.array_equal(labels[cluster_label], first):
        raise DataError(f"cannot index the values of '{permute}'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit_lmm(LinearMixedModel, formula, d, reml=reml)  # lmer's fit
    ft = fixed_terms(model.frame)
    term = _choose_term(ft, permute, term)
    trivial = model.frame.X.shape[1] <= 1 or len(ft.terms) <= 1
    K, n, p = len(labels), model.frame.nobs, model.frame.X.shape[1]
    fast = K * n * max(p, 1) <= 20_000_000
    Xstack = rdstack = None
    if fast:
        try:
            Xstack, rdstack = _stack(model, ft, permute, labels, need_rd=not trivial)
        except Exception:  # noqa: BLE001 - anything odd: the formula path is always right
            fast = False
    task = _PermTask(
        model, ft, term, ddf, Xstack, rdstack, cl_codes, cluster_label, labels, permute, formula, reml, fast
    )
    ss = as_seed_sequence(seed)
    if fast:  # check the gathered design against the formula on one permutation
        row_lab = task.shuffle(np.random.default_rng(0))[0]  # any permutation will do
        dperm = task.data_for(row_lab)
        ref = model_frame(formula, dperm)
        ok = ref.X.shape == (n, p) and np.allclose(ref.X, task.Xstack[row_lab, task.rows], rtol=1e-12, atol=1e-12)
        if ok and not trivial:
            L_ref = term_contrasts(fixed_terms(ref), 3)[term]
            ok = np.allclose(L_ref, task.contrast(ref.X, row_lab), atol=1e-10)
        task.fast = fast = bool(ok)
    t0 = time.perf_counter()
    obs = task.test(model.frame.X, cluster_label[cl_codes]) if fast else _slow_test(formula, d, term, ddf, reml)
    results = run_tasks(_run_perm, task, n_perm, ss, n_jobs=n_jobs, progress=progress, desc="permutations")
    rows = np.full((int(n_perm), 5), np.nan)
    assigned = np.full((int(n_perm), len(cl_levels)), -1, dtype=np.int64)
    failures = []
    for i, r in enumerate(results):
        if isinstance(r, TaskFailure):
            failures.append(str(r))
        else:
            rows[i], assigned[i] = r
    idx = pd.RangeIndex(int(n_perm), name="permutation")
    pvalues = pd.DataFrame({"lmm": rows[:, 0], "lm": rows[:, 1]}, index=idx)
    statistics = pd.DataFrame({"F_lmm": rows[:, 2], "DenDF_lmm": rows[:, 3], "F_lm": rows[:, 4]}, index=idx)
    observed = {"lmm": obs[0], "lm": obs[1], "F_lmm": obs[2], "DenDF_lmm": obs[3], "F_lm": obs[4]}
    if failures:
        warnings.warn(
            f"{len(failures)} of {n_perm} permutations failed (NaN rows; see .failures)", RuntimeWarning, stacklevel=2
        )
    info = {
        "permute": permute,
        "cluster": cluster,
        "n_clusters": len(cl_levels),
        "ddf": ddf,
        "reml": reml,
        "fast_path": fast,
        "formula": formula,
    }
    out = PermutationTest(pvalues, statistics, observed, term, failures, time.perf_counter() - t0, ss.entropy, info)
    # which label each cluster got in each permutation (failed ones: the labels are unknown)
    out.assignments = pd.DataFrame(
        np.where(assigned >= 0, labels[np.maximum(assigned, 0)], None) if len(failures) else labels[assigned],
        index=idx,
        columns=pd.Index(cl_levels, name=cluster),
    )
    return out

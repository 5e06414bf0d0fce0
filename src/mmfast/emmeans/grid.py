"""Estimated marginal means (R's ``emmeans``) for mmfast's linear (mixed) models.

The reference grid crosses every level of each factor in the fixed part with each covariate
at its mean (``at`` overrides either).  The model matrix of the grid is built by the model's
own fixed-effects spec, so the grid's predictions are Xg β̂.  An EMM of the ``specs`` factors
averages the grid rows of each of their level combinations with equal weights (emmeans'
default ``weights = "equal"``): its coefficient row is l = mean of those rows of Xg.

Standard errors and df come from the model's test machinery (``model.contest``), one row at
a time, exactly as emmeans asks pbkrtest / lmerTest:

* ``ddf="kenward-roger"`` (emmeans' default for lmer fits): SE from pbkrtest's adjusted
  covariance (``vcovAdj``; an ML fit is refitted by REML for it), df from ``Lb_ddf``;
* ``ddf="satterthwaite"``: lmerTest's df and the model's covariance;
* ``"between-within"`` (the default for ``mmfast.lme`` fits), ``"residual"``, ``"asymptotic"``.

Unlike emmeans, KR is not switched off above 3000 observations (emmeans' ``pbkrtest.limit``).
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
from scipy import stats

from ..arguments import probability, validated
from .contrasts import DEFAULT_ADJUST, adjust_pvalues, contrast_family
from .engine import make_engine
from ..rformat.tables import PrintedFrame
from ..errors import ArgumentError

__all__ = ["EmmGrid", "EmmTable", "emmeans", "reference_grid"]

_IDENT = re.compile(r"`[^`]+`|[A-Za-z_.][A-Za-z0-9_.]*")
_COERCED = re.compile(r"\b(?:as\.factor|factor|C)\(\s*(`[^`]+`|[A-Za-z_.][A-Za-z0-9_.]*)")
_DDF_TITLE = {"between-within": "between-within (nlme)", "residual": "df.error"}


def _label(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    return str(v)


def _numeric_like(labels: list[str]) -> bool:
    try:
        [float(s) for s in labels]
    except ValueError:
        return False
    return True


class EmmTable(PrintedFrame):
    """A results table (means or contrasts) that prints as emmeans prints it."""

    def _r_text(self) -> str:
        from .printing import format_emm

        return format_emm(self)


# --- the reference grid --------------------------------------------------------------------------
def _predictors(frame) -> tuple[list[str], set[str]]:
    """Data columns of the fixed part, and those wrapped in factor() (treated as factors)."""
    rhs = frame.parsed.fixed
    cols = set(frame.data.columns)
    names = []
    for tok in _IDENT.findall(rhs):
        tok = tok.strip("`")
        if tok in cols and tok not in names:
            names.append(tok)
    coerced = {m.strip("`") for m in _COERCED.findall(rhs)}
    return names, coerced


def reference_grid(model, at: dict | None = None) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """(grid, {factor: level labels}): every factor level crossed with covariate means.

    The first variable varies fastest, as in emmeans.  ``at`` fixes the values of any variable.
    """
    frame = model.frame
    data = frame.data
    names, coerced = _predictors(frame)
    at = dict(at or {})
    unknown = [k for k in at if k not in names]
    if unknown:
        raise ArgumentError(f"at= names {unknown} are not variables of the fixed part ({names})")
    values, factors = {}, {}
    for v in names:
        s = data[v]
        if isinstance(s.dtype, pd.CategoricalDtype):
            used = set(s.dropna().unique())
            lev = [c for c in s.cat.categories if c in used]
        elif s.dtype.kind == "b":
            lev = sorted(s.dropna().unique())
        elif s.dtype.kind in "iuf" and v not in coerced:
            lev = None  # a covariate
        else:
            lev = sorted(s.dropna().unique(), key=lambda x: (str(type(x)), x))
        if v in at:
            vals = list(np.atleast_1d(at[v]))
        elif lev is None:
            vals = [float(s.mean())]
        else:
            vals = lev
        values[v] = vals
        if lev is not None:
            factors[v] = [_label(x) for x in vals]
    combos = list(itertools.product(*[values[v] for v in reversed(names)]))
    grid = pd.DataFrame([tuple(reversed(c)) for c in combos], columns=names) if names else pd.DataFrame(index=[0])
    for v in names:
        s = data[v]
        if isinstance(s.dtype, pd.CategoricalDtype):
            grid[v] = pd.Categorical(grid[v], categories=s.cat.categories, ordered=s.cat.ordered)
        elif s.dtype.kind in "iuf" and v not in factors:
            grid[v] = grid[v].astype(float)
    return grid, factors


def _parse_specs(specs, by) -> tuple[list[str], list[str]]:
    if isinstance(specs, str):
        text = specs.strip()
        if "~" in text:
            lhs, _, text = text.partition("~")
            if lhs.strip():
                raise ArgumentError("write contrasts with .pairs()/.contrast(), not 'pairwise ~ x' specs")
        main, bar, cond = text.partition("|")
        spec_vars = [t for t in re.split(r"[+*:\s]+", main.strip()) if t]
        by_vars = [t for t in re.split(r"[+*:\s]+", cond.strip()) if t] if bar else []
    else:
        spec_vars, by_vars = [str(s) for s in specs], []
    if by is not None:
        by_vars = [by] if isinstance(by, str) else list(by)
    if not spec_vars:
        raise ArgumentError(f"specs={specs!r} names no variable")
    return spec_vars, by_vars


def _asymptotic(df: np.ndarray) -> bool:
    """All (estimable) df infinite: z tests."""
    d = df[~np.isnan(df)]
    return bool(d.size) and bool(np.all(np.isinf(d)))


def _nonestimable_basis(X: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Columns spanning the null space of X (estimability's ``nonest.basis``)."""
    if X.size == 0:
        return np.zeros((X.shape[1], 0))
    M = np.linalg.qr(X, mode="r") if X.shape[0] > X.shape[1] else X  # null(X) = null(R): p x p
    _, sv, Vt = np.linalg.svd(M, full_matrices=True)
    rank = int(np.sum(sv > tol * sv[0])) if sv.size and sv[0] > 0 else 0
    return Vt[rank:].T


def _estimable(L: np.ndarray, N: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Is each row l of L estimable (l N = 0, relative to |l|)?"""
    if N.shape[1] == 0:
        return np.ones(len(L), dtype=bool)
    scale = np.maximum(np.max(np.abs(L), axis=1), 1.0)
    return np.max(np.abs(L @ N), axis=1) <= tol * scale


# --- the EMMs ----------------------------------------------------------------------------------
_RESPONSE_NAME = {"binomial": "prob", "poisson": "rate", "negative_binomial": "response"}  # emmeans' labels


class EmmGrid:
    """Estimated marginal means of ``specs`` (optionally within ``by`` groups) and their contrasts."""

    def __init__(
        self, model, specs, by=None, ddf=None, level: float = 0.95, at: dict | None = None, type: str = "link"
    ):
        if type not in ("link", "response"):
            raise ArgumentError(f"type must be 'link' or 'response', not {type!r}")
        family = getattr(model, "family", None)
        if type == "response" and (family is None or family == "gaussian"):
            raise ArgumentError("type='response' needs a GLMM (a link to back-transform through)")
        self.type = type
        self.fit = model
        self.engine = make_engine(model, ddf)
        self.model = self.engine.model
        self.ddf = self.engine.name
        self.level = float(level)
        self.specs, self.by = _parse_specs(specs, by)
        grid, factors = reference_grid(self.model, at)
        missing = [v for v in self.specs + self.by if v not in grid.columns]
        if missing:
            raise ArgumentError(f"{missing} are not variables of the fixed part ({list(grid.columns)})")
        self.grid = grid
        fs = self.model.frame.fixed_spec
        Xfull = np.asarray(fs.spec.get_model_matrix(grid), dtype=float)  # aliased columns too
        self._null = _nonestimable_basis(np.asarray(fs.spec.get_model_matrix(self.model.frame.data), dtype=float))
        keep = np.asarray(fs.keep, dtype=int)
        keys = self.specs + self.by
        labels = {v: [_label(x) for x in grid[v]] for v in keys}
        order = {v: list(dict.fromkeys(factors.get(v, labels[v]))) for v in keys}
        # emmeans' row order: the first spec varies fastest, by variables slowest
        combos = list(itertools.product(*[order[v] for v in reversed(keys)]))
        combos = [tuple(reversed(c)) for c in combos]
        rows, self.cells = [], []
        for c in combos:
            mask = np.ones(len(grid), dtype=bool)
            for v, lv in zip(keys, c):
                mask &= np.array([s == lv for s in labels[v]])
            if mask.any():
                rows.append(Xfull[mask].mean(axis=0))  # equal weights over the other variables
                self.cells.append(c)
        self.Lfull = np.array(rows)
        self.L = self.Lfull[:, keep]
        self.levels = {v: order[v] for v in keys}
        self.averaged = [v for v in factors if v not in keys]
        est, se, df = self._estimate(self.L, self.Lfull)
        crit = np.where(
            np.isfinite(df),
            stats.t.ppf(0.5 + self.level / 2, np.where(np.isfinite(df), df, 1.0)),
            stats.norm.ppf(0.5 + self.level / 2),
        )
        cols = {v: pd.Categorical([c[i] for c in self.cells], categories=order[v]) for i, v in enumerate(keys)}
        tab = {v: cols[v] for v in self.specs}
        asym = _asymptotic(df)  # emmeans: asymp.LCL / asymp.UCL, z.ratio
        lcl, ucl, name = est - crit * se, est + crit * se, "emmean"
        if type == "response":  # emmeans' type = "response": delta-method SE, intervals back-transformed
            link = family.link
            name = _RESPONSE_NAME.get(family.name, "response")
            lcl, ucl = np.sort(np.vstack([link.linkinv(lcl), link.linkinv(ucl)]), axis=0)
            se = se * np.abs(link.mu_eta(est))
            est = link.linkinv(est)
        tab.update(
            {
                name: est,
                "SE": se,
                "df": df,
                ("asymp.LCL" if asym else "lower.CL"): lcl,
                ("asymp.UCL" if asym else "upper.CL"): ucl,
            }
        )
        tab.update({v: cols[v] for v in self.by})
        self.table = EmmTable(tab)
        self.table.attrs["notes"] = self._notes() + [f"Confidence level used: {self.level:g}"]
        self.table.attrs["by"] = list(self.by)
        self.table.attrs["right"] = self._numeric_vars()

    def _estimate(self, L: np.ndarray, Lfull: np.ndarray):
        """(estimate, SE, df) of each row; NaN where not estimable (emmeans' ``nonEst``)."""
        ok = _estimable(Lfull, self._null)
        est = np.full(len(L), np.nan)
        se, df = est.copy(), est.copy()
        if ok.any():
            est[ok] = L[ok] @ self.engine.beta
            se[ok], df[ok] = self.engine.se_df(L[ok])
        if not ok.all():
            self._nonest = True
        return est, se, df

    def _numeric_vars(self) -> list[str]:
        """Grid variables that are numbers in the data (emmeans right-justifies them)."""
        data = self.model.frame.data
        return [
            v
            for v in self.specs + self.by
            if not isinstance(data[v].dtype, pd.CategoricalDtype) and data[v].dtype.kind in "iuf"
        ]

    def _notes(self) -> list[str]:
        notes = []
        if getattr(self, "_nonest", False):
            notes.append("Some means or contrasts are not estimable (NaN: emmeans' nonEst)")
        if self.averaged:
            notes.append("Results are averaged over the levels of: " + ", ".join(self.averaged))
        if self.engine.df_note:
            notes.append(f"Degrees-of-freedom method: {_DDF_TITLE.get(self.ddf, self.ddf)}")
        if getattr(self, "type", "link") == "response":
            notes.append(f"Intervals are back-transformed from the {self.fit.family.link.name} scale")
        return notes + self.engine.notes

    # --- contrasts ----------------------------------------------------------------------------
    def _level_labels(self) -> list[str]:
        """Labels of the spec combinations; numeric-looking levels get the factor name (emmeans)."""
        parts = []
        for i, v in enumerate(self.specs):
            enhance = _numeric_like(self.levels[v])
            parts.append([(v + c[i]) if enhance else c[i] for c in self.cells])
        return [" ".join(p[r] for p in parts) for r in range(len(self.cells))]

    def contrast(self, method="pairwise", ref=None, adjust: str | None = None) -> EmmTable:
        """emmeans' ``contrast(em, method, ref, adjust)`` within each ``by`` group.

        Parameters
        ----------
        method : str, default "pairwise"
            The contrast family: ``"pairwise"``, ``"revpairwise"``, ``"trt.vs.ctrl"``, ...
            (see ``mmfast.emmeans.contrasts``).
        ref : int or str, optional
            The control level for ``trt.vs.ctrl``: its 0-based index or its label
            (emmeans' ``ref = 1`` is ``ref=0`` here).
        adjust : str, optional
            Multiplicity adjustment; default the family's own (tukey for pairwise, dunnettx
            for trt.vs.ctrl), ``"none"`` for none.

        Returns
        -------
        EmmTable
            A DataFrame (``contrast``, ``estimate``, ``SE``, ``df``, ``t.ratio``, ``p.value``)
            that prints as emmeans does.
        """
        labels = self._level_labels()
        nspec = len(self.specs)
        groups: dict[tuple, list[int]] = {}
        for r, c in enumerate(self.cells):
            groups.setdefault(tuple(c[nspec:]), []).append(r)
        if adjust is None:
            adjust = DEFAULT_ADJUST.get(method, "none") if isinstance(method, str) else "none"
        frames, notes, coefs = [], [], []
        for key, idx in groups.items():
            C, names, kind = contrast_family(method, [labels[i] for i in idx], self._ref(ref, idx, labels))
            coefs.append(C)
            est, se, df = self._estimate(C @ self.L[idx], C @ self.Lfull[idx])
            with np.errstate(invalid="ignore", divide="ignore"):
                t = est / se
            p, used, note = adjust_pvalues(t, df, adjust, kind, len(idx), np.linalg.matrix_rank(C))
            if note and note not in notes:
                notes.append(note)
            out = {
                "contrast": names,
                "estimate": est,
                "SE": se,
                "df": df,
                ("z.ratio" if _asymptotic(df) else "t.ratio"): t,
                "p.value": p,
            }
            for v, lv in zip(self.by, key):
                out[v] = [lv] * len(names)
            frames.append(pd.DataFrame(out))
        res = EmmTable(pd.concat(frames, ignore_index=True))
        res.attrs["notes"] = self._notes() + notes
        res.attrs["by"] = list(self.by)
        res.attrs["right"] = self._numeric_vars()
        res.attrs["adjust"] = used
        res.attrs["coefficients"] = coefs[0] if len(coefs) == 1 else coefs
        return res

    def _ref(self, ref, idx: list[int], labels: list[str]):
        """A level label (``"1"``, or emmeans' enhanced ``"treatment_idx1"``) -> its 0-based index."""
        if not isinstance(ref, str):
            return ref
        nspec = len(self.specs)
        raw = [" ".join(self.cells[i][:nspec]) for i in idx]
        for cand in (raw, [labels[i] for i in idx]):
            if ref in cand:
                return cand.index(ref)
        raise ArgumentError(f"ref={ref!r} is not one of the levels {raw}")

    def pairs(self, adjust: str | None = "tukey", reverse: bool = False) -> EmmTable:
        """All pairwise differences (emmeans' ``pairs()``), Tukey-adjusted by default.

        Parameters
        ----------
        adjust : str or None, default "tukey"
            Multiplicity adjustment (``"none"``, ``"bonferroni"``, ...).
        reverse : bool, default False
            emmeans' ``revpairwise``: later level minus earlier.

        Returns
        -------
        EmmTable
            As ``contrast``.
        """
        return self.contrast("revpairwise" if reverse else "pairwise", adjust=adjust)

    def __repr__(self) -> str:
        return repr(self.table)

    __str__ = __repr__


@validated(level=probability)
def emmeans(
    model, specs, ddf: str | None = None, by=None, level: float = 0.95, at: dict | None = None, type: str = "link"
) -> EmmGrid:
    """Estimated marginal means as R's ``emmeans(model, specs)``.

    Parameters
    ----------
    model : fitted model
        An ``lmer``, ``lme``, ``lm`` or ``glmer`` fit.
    specs : str or list of str
        A factor name, a list of names, or ``"~ A | B"``.
    ddf : str, optional
        For lmer fits ``"kenward-roger"`` (the default, as emmeans' ``lmer.df``),
        ``"satterthwaite"``, ``"asymptotic"`` (also ``"between-within"``, ``"residual"``);
        for ``mmfast.lme`` fits ``"containment"`` (default); ``mmfast.lm``: residual df;
        GLMMs: asymptotic, link scale.
    by : str or list of str, optional
        Grouping factors: means and contrasts within each of their levels.
    level : float, default 0.95
        Confidence level of ``lower.CL``/``upper.CL``.
    at : dict, optional
        Values of covariates in the reference grid (default: their means).
    type : {"link", "response"}, default "link"
        GLMMs: ``"response"`` back-transforms the means through the inverse link (emmeans'
        ``type = "response"``: SE by the delta method, intervals back-transformed; the column
        is ``prob``, ``rate`` or ``response``).  Contrasts stay on the link scale.

    Returns
    -------
    EmmGrid
        ``.table`` (level columns, ``emmean``, ``SE``, ``df``, ``lower.CL``, ``upper.CL``),
        ``.pairs()`` and ``.contrast()``; prints as emmeans does.

    Examples
    --------
    >>> import mmfast
    >>> ex1 = mmfast.datasets.load("ex1")
    >>> ex1["treatment_idx"] = ex1["treatment_idx"].astype(str)
    >>> m = mmfast.lmer("res ~ treatment_idx + (1 | midx)", ex1, reml=False)
    >>> em = mmfast.emmeans(m, "treatment_idx")
    >>> em.table["emmean"].round(3).tolist()
    [0.728, 1.811, 1.486, 0.931, 0.649]
    >>> print(round(em.contrast("trt.vs.ctrl", ref=0)["estimate"].iloc[0], 3))
    1.083
    """
    return EmmGrid(model, specs, by=by, ddf=ddf, level=level, at=at, type=type)

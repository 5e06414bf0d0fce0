"""Random-effects terms: grouping factors as integer codes, the term's model matrix, Λ's template.

A term ``(x | g)`` has p columns (``(Intercept)``, ``x``) and ℓ levels; its slice of Z has
q = p·ℓ columns, level-major (lme4's order).  Its relative covariance factor is a p x p lower
triangular template T filled from θ (``design.theta``), repeated on every level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, ModelSpecError
from .._ext._pairs import as_codes, code_counts, dense_codes, pair_codes
from ..formula import Bar, build_matrix
from .structures import make_structure
from .theta import LowerCholesky

__all__ = ["RandomTerm", "GroupingFactor", "grouping_factor", "build_terms", "level_label", "level_labels"]


def level_label(value) -> str:
    """A level's label as R prints it: integral floats without '.0'."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclass
class GroupingFactor:
    """A factor as integer codes into sorted levels (interactions: lexicographic, as R's ``:``)."""

    name: str
    codes: np.ndarray  # int32, one per row
    levels: list[str]

    @property
    def nlevels(self) -> int:
        return len(self.levels)


SMALL_SORT = 4096  # text levels of at most this many rows: coded by a sort, not a hash table


def _single_factor(data: pd.DataFrame, col: str) -> tuple[np.ndarray, list[str]]:
    if col not in data.columns:
        raise FormulaError(f"grouping factor '{col}' is not a column of the data")
    s = data[col]
    if isinstance(s.dtype, pd.CategoricalDtype):  # unused categories dropped, as R's factor
        raw = s.array.codes.astype(np.int32, copy=False)  # int8/int16 codes too: the design's type
        cats = s.dtype.categories
        seen = code_counts(raw, len(cats)) > 0  # -1 (missing) not counted
        if seen.all():
            return raw, level_labels(cats)
        used = np.flatnonzero(seen)
        remap = np.full(len(cats), -1, dtype=np.int32)
        remap[used] = np.arange(len(used))
        return remap[raw], level_labels(cats[used])
    values = s.to_numpy()
    if values.dtype.kind == "i" or (values.dtype.kind == "u" and values.dtype.itemsize < 8):  # fit int64
        coded = _integer_codes(values)
        if coded is not None:
            return coded
    if values.dtype.kind not in "biuf":
        values = values.astype(str)
        if len(values) <= SMALL_SORT:  # a small model: sorting beats hashing (10 µs vs 30)
            uniq, codes = np.unique(values, return_inverse=True)
            return codes.astype(np.int32), level_labels(uniq)
    codes, uniq = pd.factorize(values, sort=True)  # sorted levels, as R's factor()
    return codes.astype(np.int32), level_labels(uniq)


def _integer_codes(values: np.ndarray) -> tuple[np.ndarray, list[str]] | None:
    """Sorted-level codes of integer ids spanning a range not much wider than their number
    (subject numbers, 0..k-1), in one C call instead of pd.factorize's hashing and sorting;
    None for sparse ids."""
    coded = dense_codes(as_codes(values), 4 * len(values) + 1024)
    return None if coded is None else (coded[0], level_labels(coded[1]))


def level_labels(values) -> list[str]:
    """``level_label`` of every level; text and integer levels (all but floats) are their
    ``str``, without a Python call per level (a million-level factor's labels in ~0.1 s)."""
    kind = getattr(getattr(values, "dtype", None), "kind", "O")
    plain = kind in "biuUS" or getattr(values, "inferred_type", None) in ("string", "integer", "boolean")
    if not plain:
        return [level_label(v) for v in values]
    return list(map(str, values.tolist() if hasattr(values, "tolist") else values))


def grouping_factor(data: pd.DataFrame, expr: str) -> GroupingFactor:
    """Codes and levels of a grouping expression ``g`` or ``a:b`` (observed combinations only)."""
    parts = [p.strip().strip("`") for p in expr.split(":")]
    codes, levels = _single_factor(data, parts[0])
    for part in parts[1:]:
        c2, l2 = _single_factor(data, part)
        codes, uniq = pair_codes(codes, c2, len(levels), len(l2))
        levels = [f"{levels[k // len(l2)]}:{l2[k % len(l2)]}" for k in uniq]
    return GroupingFactor(expr, codes.astype(np.int32, copy=False), levels)


@dataclass
class RandomTerm:
    """One random-effects term after lme4's expansion, with its data."""

    bar: Bar
    factor: GroupingFactor
    names: list[str]  # columns of the term's model matrix, R names
    X: np.ndarray  # (n, p) term model matrix
    spec: Any = None  # formulaic spec of the term's left-hand side (for predict)
    group: str = ""  # lme4's VarCorr name, made unique ('Subject', 'Subject.1')
    offset: int = 0  # first column of this term in u (set by the design)
    extra: dict = field(default_factory=dict)

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def nlevels(self) -> int:
        return self.factor.nlevels

    @property
    def q(self) -> int:
        return self.p * self.nlevels

    @property
    def ntheta(self) -> int:
        return self.param.ntheta

    @cached_property
    def param(self):
        """This term's covariance parametrisation (θ_i <-> template T): ``design.theta``'s
        ``LowerCholesky`` for ``us``, else a ``design.structures`` structure."""
        kind = getattr(self.bar, "structure", "us")
        if kind == "us":
            return LowerCholesky(self.p, self.names, self.factor.name)
        return make_structure(kind, self.bar.hom, self.p, self.names, self.factor.name, self.extra.get("times"))


def _make_unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            out.append(f"{n}.{seen[n] - 1}")
        else:
            seen[n] = 1
            out.append(n)
    return out


CHECK_LEVELS = ("ignore", "warning", "stop")


def build_terms(
    bars: list[Bar],
    data: pd.DataFrame,
    check_nobs_vs_nre: str = "stop",
    check_nobs_vs_nlev: str = "stop",
    check_nlev_gtr_1: str = "stop",
    allow_n: bool = False,
) -> list[RandomTerm]:
    """Random-effects terms in lme4's order (decreasing number of levels, ties in formula order).

    The checks are lme4's ``check.nobs.vs.nRE``, ``check.nobs.vs.nlev`` and
    ``check.nlev.gtr.1`` ("ignore", "warning" or "stop"); ``allow_n`` is glmer's relaxation
    (as many levels or random effects as observations is allowed: observation-level effects).
    """
    n = len(data)
    checks = {
        "check_nobs_vs_nre": check_nobs_vs_nre,
        "check_nobs_vs_nlev": check_nobs_vs_nlev,
        "check_nlev_gtr_1": check_nlev_gtr_1,
    }
    for name, val in checks.items():
        if val not in CHECK_LEVELS:
            raise ModelSpecError(f"{name} must be 'ignore', 'warning' or 'stop' (got {val!r})")
    terms = []
    matrices: dict = {}  # terms with the same left-hand side share one matrix ((1 | a) + (1 | b))
    for bar in bars:
        extra = {}
        if bar.structure == "ou":
            X, names, times = _time_indicators(bar, data)
            spec, extra["times"] = _TimeSpec(bar, times), times
        else:
            if bar.lhs not in matrices:
                X, names, spec = build_matrix(bar.lhs, data)
                matrices[bar.lhs] = (np.ascontiguousarray(X), names, spec)
            X, names, spec = matrices[bar.lhs]
            names = list(names)
        if X.shape[1] == 0:
            raise FormulaError(f"random-effects term ({bar}) has no columns")
        if bar.structure in ("ar1", "toep", "ou") and "(Intercept)" in names:
            raise ModelSpecError(
                f"{bar.structure}({bar}): an intercept makes no sense in a serial structure; write "
                f"{bar.structure}(0 + ... | {bar.group})"
            )
        terms.append(
            RandomTerm(
                bar=bar,
                factor=grouping_factor(data, bar.group),
                names=names,
                X=np.ascontiguousarray(X),
                spec=spec,
                extra=extra,
            )
        )
    order = sorted(range(len(terms)), key=lambda i: -terms[i].nlevels)  # stable
    terms = [terms[i] for i in order]
    for t, g in zip(terms, _make_unique([t.factor.name for t in terms])):
        t.group = g
    _check_terms(terms, n, checks, allow_n)
    off = 0
    for t in terms:
        t.offset = off
        off += t.q
    return terms


def _check_terms(terms: list[RandomTerm], n: int, checks: dict, allow_n: bool) -> None:
    """lme4's checks on grouping factors and on observations vs random effects."""
    for t in terms:
        if not np.all(np.isfinite(t.X)):
            raise DataError(f"random-effects term ({t.bar}) has non-finite values in its model matrix")
    few = [t for t in terms if t.nlevels < 2]
    if few:
        _act(
            checks["check_nlev_gtr_1"],
            "check_nlev_gtr_1" if allow_n else None,
            f"grouping factor '{few[0].factor.name}' has {few[0].nlevels} level: grouping "
            "factors must have > 1 sampled level",
        )
    many = [t for t in terms if (t.nlevels > n if allow_n else t.nlevels >= n)]
    if many:
        _act(
            checks["check_nobs_vs_nlev"],
            "check_nobs_vs_nlev" if allow_n else None,
            f"number of levels of each grouping factor must be {'<=' if allow_n else '<'} number "
            f"of observations (problems: "
            + ", ".join(f"{t.factor.name}, {t.nlevels} levels for {n} observations" for t in many)
            + ")",
        )
    for t in terms:
        if t.bar.structure not in ("us", "diag"):
            continue  # correlations tie the variances to the off-diagonal: identifiable (glmmTMB)
        if t.q > n if allow_n else t.q >= n:
            _act(
                checks["check_nobs_vs_nre"],
                "check_nobs_vs_nre",
                f"number of observations (={n}) {'<' if allow_n else '<='} number of random "
                f"effects (={t.q}) for term ({t.bar}); the random-effects parameters "
                + ("are" if allow_n else "and the residual variance (or scale parameter) are")
                + " probably unidentifiable",
            )


class _TimeSpec:
    """An ``ou`` term's model matrix on new data: indicators of the training times."""

    def __init__(self, bar: Bar, times: np.ndarray):
        self.bar, self.times = bar, times

    def get_model_matrix(self, data: pd.DataFrame) -> np.ndarray:
        X, _, times = _time_indicators(self.bar, data)
        pos = np.searchsorted(self.times, times)
        pos = np.minimum(pos, len(self.times) - 1)
        unseen = self.times[pos] != times
        if unseen.any():
            raise DataError(
                f"ou({self.bar}): new data have times the fit did not see ({times[unseen][:3].tolist()}...)"
            )
        out = np.zeros((X.shape[0], len(self.times)))
        out[:, pos] = X
        return out


def _time_indicators(bar: Bar, data: pd.DataFrame):
    """``ou(times + 0 | g)``: one indicator column per distinct time (sorted), named as glmmTMB
    names ``numFactor`` levels (``times(1.5)``), and the times (numbers or numeric labels)."""
    from ..formula.parse import split_top

    terms = [t for s, t in split_top(bar.lhs) if t != "0" and not (s == "-" and t == "1")]
    if len(terms) != 1 or not terms[0].replace("_", "a").replace(".", "a").isalnum():
        raise ModelSpecError(f"ou({bar}): write ou(times + 0 | group) with one column of numeric times")
    name = terms[0]
    if name not in data.columns:
        raise DataError(f"'{name}' in ou({bar}) is not a column of the data")
    raw = data[name].to_numpy()
    try:
        t = np.asarray([float(str(v).strip("()")) for v in raw]) if raw.dtype.kind not in "iuf" else raw.astype(float)
    except ValueError as exc:
        raise DataError(f"ou({bar}): '{name}' must hold numeric times") from exc
    if not np.all(np.isfinite(t)):
        raise DataError(f"ou({bar}): '{name}' has missing or infinite times")
    levels, codes = np.unique(t, return_inverse=True)
    X = np.zeros((len(t), len(levels)))
    X[np.arange(len(t)), codes] = 1.0
    return X, [f"{name}({level_label(v)})" for v in levels], levels


def _act(level: str, name: str | None, msg: str) -> None:
    """Carry out one check at its level: nothing, a warning, or a ModelSpecError (naming the
    keyword that turns it off, where the entry point has one: glmer all three, lmer nRE)."""
    if level == "warning":
        import warnings

        warnings.warn(msg, UserWarning, stacklevel=5)
    elif level == "stop":
        raise ModelSpecError(msg + (f" (pass {name}='ignore' to fit it anyway)" if name else ""))

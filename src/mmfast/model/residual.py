"""Residual (R-side) covariance: per-group whitening of the rows of [y X Z] and its log-determinant.

The residuals have covariance σ² R with R block diagonal over groups, R_g = S_g C_g S_g: S the
standard-deviation multipliers of a variance function (nlme's varFunc, 1/weights), C_g a
correlation matrix (nlme's corStruct).  With R_g = L_g L_g', the model in L⁻¹y, L⁻¹X, L⁻¹Z has
independent residuals, so the sparse PLS machinery applies unchanged, and

    -2 log L(θ, φ) = -2 log L_whitened(θ) + log|R|,   log|R| = 2 Σ log diag(L).

Whitening a group's rows mixes only those rows: when every random-effects factor is constant
within each correlation group, L⁻¹Z has Z's pattern (same factor codes, new values), so the
symbolic analysis is done once per fit.  Cost per evaluation is linear in n: exponential decay in
one time covariate (AR(1), CAR(1), exponential) is Markov, one multiply-add per row; a general
correlation matrix (compound symmetry, unstructured) is one batched Cholesky per group size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import DataError, ModelSpecError

__all__ = [
    "Whitening",
    "Colouring",
    "MarkovCorrelation",
    "DenseCorrelation",
    "ResidualCovariance",
    "group_codes",
    "check_nested",
]


@dataclass
class Whitening:
    """L⁻¹ at one φ: ``apply`` maps rows (n or n x k, in ``ResidualCovariance.order``) to
    whitened rows; ``logdet`` = log|R|."""

    apply: Callable[[np.ndarray], np.ndarray]
    logdet: float


def group_codes(columns: list[np.ndarray]) -> np.ndarray:
    """Integer codes of the combinations of the given columns (nlme's ``g1/g2``: the innermost)."""
    if not columns:
        raise ModelSpecError("a correlation structure needs a grouping factor ('~ time | g')")
    n = len(columns[0])
    codes = np.zeros(n, dtype=np.int64)
    for col in columns:
        _, c = np.unique(np.asarray(col), return_inverse=True)
        codes = codes * (int(c.max()) + 1) + c.ravel()
    _, codes = np.unique(codes, return_inverse=True)
    return codes.ravel().astype(np.int64)


def check_nested(groups: np.ndarray, terms) -> None:
    """Every random-effects factor must be constant within each correlation group (nlme's rule,
    checked by R on lme(y ~ time, random = ~1 | subject, correlation = corCAR1(form = ~time |
    cluster)), and what keeps the whitened Z on Z's pattern)."""
    ng = int(groups.max()) + 1
    for t in terms:
        codes = t.factor.codes.astype(np.int64)
        lo = np.full(ng, np.iinfo(np.int64).max)
        hi = np.full(ng, -1)
        np.minimum.at(lo, groups, codes)
        np.maximum.at(hi, groups, codes)
        if np.any(lo != hi):
            raise ModelSpecError(
                f"correlation groups are not nested in the random-effects factor '{t.factor.name}': "
                "each correlation group must lie within one level of every grouping factor. This is "
                "nlme's rule: nlme 3.1-162's lme() stops with \"incompatible formulas for groups in "
                "'random' and 'correlation'\" (it also asks the correlation's groups to be written as "
                "the random part's, e.g. '~ t | cluster/subject'; mmfast checks the nesting on the data)"
            )


def _sorted_groups(groups: np.ndarray, key: np.ndarray):
    order = np.lexsort((key, groups))
    g = groups[order]
    first = np.ones(len(g), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    return order, first


class MarkovCorrelation:
    """Correlation ρ(Δt) = exp(-κ Δt) in one time covariate within groups (corAR1, corCAR1,
    corExp): with rows sorted by time, e_i = ρ_i e_{i-1} + (1 - ρ_i²)^½ ε_i, so L⁻¹ is bidiagonal
    and log|C| = Σ log(1 - ρ_i²).  ``decay(u, dt)`` gives ρ for unconstrained parameters u."""

    def __init__(self, groups: np.ndarray, times: np.ndarray, decay: Callable):
        times = np.asarray(times, dtype=float)
        if not np.all(np.isfinite(times)):
            raise DataError("the correlation's time covariate has non-finite values")
        self.order, first = _sorted_groups(groups, times)
        t = times[self.order]
        dt = np.zeros(len(t))
        dt[1:] = np.diff(t)
        dt[first] = 0.0
        if np.any(dt[~first] <= 0):
            raise DataError("the correlation's time covariate must have distinct values within each group")
        self.inner = ~first
        self.dt = dt[self.inner]
        self.decay = decay

    def factor(self, u) -> Whitening | None:
        n = len(self.order)
        rho = np.zeros(n)
        rho[self.inner] = self.decay(u, self.dt)
        c2 = 1.0 - rho * rho
        if not np.all(c2 > 0) or not np.all(np.isfinite(c2)):
            return None
        c = np.sqrt(c2)

        def apply(M: np.ndarray) -> np.ndarray:  # rows in ``order``
            r, cc = (rho[1:], c) if M.ndim == 1 else (rho[1:, None], c[:, None])
            out = M / cc
            out[1:] -= (r / cc[1:]) * M[:-1]
            return out

        return Whitening(apply, float(np.sum(np.log(c2))))

    def colour(self, u) -> "Callable[[np.ndarray], np.ndarray] | None":
        """M -> L M (rows in ``order``): the inverse of the whitening, e_i = ρ_i e_{i-1} + c_i z_i,
        run position by position within the groups (one vector step per position)."""
        n = len(self.order)
        rho = np.zeros(n)
        rho[self.inner] = self.decay(u, self.dt)
        c2 = 1.0 - rho * rho
        if not np.all(c2 > 0):
            return None
        return _MarkovColour(rho, np.sqrt(c2), self._steps())

    def _steps(self) -> list[np.ndarray]:
        """Rows (in ``order``) at position 1, 2, ... of their group."""
        pos = np.arange(len(self.order))
        starts = np.flatnonzero(~self.inner)
        pos = pos - np.repeat(starts, np.diff(np.append(starts, len(pos))))
        rows = np.argsort(pos, kind="stable")
        counts = np.bincount(pos)
        return np.split(rows, np.cumsum(counts)[:-1])[1:]


@dataclass
class _MarkovColour:
    rho: np.ndarray
    c: np.ndarray
    steps: list

    def __call__(self, M: np.ndarray) -> np.ndarray:  # n or n x k
        rho, c = (self.rho, self.c) if M.ndim == 1 else (self.rho[:, None], self.c[:, None])
        e = M * c
        for rows in self.steps:
            e[rows] += rho[rows] * e[rows - 1]
        return e


@dataclass
class _DenseColour:
    parts: list  # (row indices (G, m), L (G, m, m))

    def __call__(self, M: np.ndarray) -> np.ndarray:
        out = np.empty_like(M)
        for idx, L in self.parts:
            out[idx] = np.einsum("gij,gj...->gi...", L, M[idx])
        return out


@dataclass
class Colouring:
    """z ~ N(0, I) -> ε ~ N(0, R(φ)) for the fitted φ, rows in the data's order (what simulate
    draws residuals with; arrays only, picklable)."""

    order: np.ndarray | None
    sd: np.ndarray | None  # in ``order``
    colour: Callable | None

    def __call__(self, z: np.ndarray) -> np.ndarray:
        w = np.asarray(z, dtype=float) if self.order is None else np.asarray(z, dtype=float)[self.order]
        e = w if self.colour is None else self.colour(w)
        if self.sd is not None:
            e = e * (self.sd if e.ndim == 1 else self.sd[:, None])
        if self.order is None:
            return e
        out = np.empty_like(e)
        out[self.order] = e
        return out


class DenseCorrelation:
    """A correlation matrix per group from the rows' positions 0..P-1 (corCompSymm, corSymm):
    ``matrix(u)`` gives the P x P correlation among positions; each group takes its rows' sub-
    matrix, factored in one batched Cholesky per group size (small groups: cost linear in n)."""

    def __init__(self, groups: np.ndarray, positions: np.ndarray, matrix: Callable):
        positions = np.asarray(positions, dtype=np.int64)
        self.order, first = _sorted_groups(groups, positions)
        pos = positions[self.order]
        starts = np.flatnonzero(first)
        sizes = np.diff(np.append(starts, len(pos)))
        dup = (~first[1:]) & (pos[1:] == pos[:-1])
        if np.any(dup):
            raise DataError("the correlation's position covariate must have distinct values within each group")
        self.classes = []  # (row indices (G, m) into sorted rows, positions (G, m))
        for m in np.unique(sizes):
            st = starts[sizes == m]
            idx = st[:, None] + np.arange(m)[None, :]
            self.classes.append((idx, pos[idx]))
        self.matrix = matrix

    def factor(self, u) -> Whitening | None:
        R = self.matrix(u)
        if R is None:
            return None
        parts, logdet = [], 0.0
        for idx, pos in self.classes:
            C = R[pos[:, :, None], pos[:, None, :]]
            try:
                L = np.linalg.cholesky(C)
            except np.linalg.LinAlgError:
                return None
            d = np.diagonal(L, axis1=1, axis2=2)
            if not np.all(d > 0):
                return None
            logdet += 2.0 * float(np.sum(np.log(d)))
            parts.append((idx, np.linalg.inv(L), L))

        def apply(M: np.ndarray) -> np.ndarray:  # rows in ``order``
            out = np.empty_like(M)
            for idx, Linv, _ in parts:
                out[idx] = np.einsum("gij,gj...->gi...", Linv, M[idx])  # (G, m) or (G, m, k)
            return out

        w = Whitening(apply, logdet)
        w.L = [(idx, L) for idx, _, L in parts]  # the factors themselves, for ``colour``
        return w

    def colour(self, u) -> "_DenseColour | None":
        """M -> L M (rows in ``order``), L the groups' Cholesky factors."""
        w = self.factor(u)
        return None if w is None else _DenseColour(w.L)


class ResidualCovariance:
    """R = S C S over (at most) one correlation and one variance structure, each a user-facing
    nlme object (``mmfast.nlme.corstruct``/``varfunc``) bound to the model's rows.  φ is the
    concatenation of their unconstrained parameters (correlation first, as nlme's modelStruct)."""

    def __init__(self, correlation=None, variance=None):
        self.correlation, self.variance = correlation, variance
        self.ncor = 0 if correlation is None else correlation.npar
        self.nvar = 0 if variance is None else variance.npar

    @property
    def npar(self) -> int:
        return self.ncor + self.nvar

    @property
    def needs_fitted(self) -> bool:
        """Does the variance function's covariate follow the fitted values (nlme's fitted(.))?"""
        return self.variance is not None and getattr(self.variance, "needs_fitted", False)

    def set_fitted(self, fitted: np.ndarray) -> None:
        """The fitted values (data row order) as the variance covariate (nlme's update())."""
        self.variance.set_covariate(np.asarray(fitted, dtype=float))

    def fresh(self) -> "ResidualCovariance":
        """This structure for another fit: a fitted(.) covariate is per fit (a copy), the rest
        is shared (bound to the same rows, read-only)."""
        if not self.needs_fitted:
            return self
        return ResidualCovariance(self.correlation, self.variance._copy())

    @property
    def order(self) -> np.ndarray | None:
        """The row order ``Whitening.apply`` works in (groups contiguous, sorted by time);
        None: the data's own order.  Cross-products do not depend on it."""
        return None if self.correlation is None else self.correlation.engine.order

    @property
    def start(self) -> np.ndarray:
        parts = [s.start() for s in (self.correlation, self.variance) if s is not None]
        return np.concatenate(parts) if parts else np.zeros(0)

    def split(self, phi) -> tuple[np.ndarray, np.ndarray]:
        phi = np.asarray(phi, dtype=float)
        return phi[: self.ncor], phi[self.ncor :]

    def colouring(self, phi) -> Colouring:
        """z -> L z with R(φ) = L L' (rows in the data's order): residuals for simulate."""
        ucor, uvar = self.split(phi)
        sd = None
        if self.variance is not None:
            sd = self.variance.sd(uvar)
            sd = sd if self.order is None else sd[self.order]
        colour = None if self.correlation is None else self.correlation.engine.colour(ucor)
        if self.correlation is not None and colour is None:
            raise ModelSpecError("the residual correlation is not positive definite at these parameters")
        return Colouring(self.order, sd, colour)

    def factor(self, phi) -> Whitening | None:
        """L⁻¹ and log|R| at φ; None where R is not positive definite."""
        ucor, uvar = self.split(phi)
        sd, logdet = None, 0.0
        if self.variance is not None:
            sd = self.variance.sd(uvar)
            sd = sd if self.order is None else sd[self.order]
            if not np.all(np.isfinite(sd)) or not np.all(sd > 0):
                return None
            logdet = 2.0 * float(np.sum(np.log(sd)))
        cor = None if self.correlation is None else self.correlation.engine.factor(ucor)
        if self.correlation is not None and cor is None:
            return None
        if cor is None:
            if sd is None:
                return Whitening(lambda M: M, 0.0)
            return Whitening(lambda M: M / (sd if M.ndim == 1 else sd[:, None]), logdet)
        if sd is None:
            return cor
        return Whitening(lambda M: cor.apply(M / (sd if M.ndim == 1 else sd[:, None])), logdet + cor.logdet)

"""θ's layout: which entries of θ belong to which term, and how they fill Λ's templates.

Each random-effects term has a parametrisation (today lme4's only one, ``LowerCholesky``: the
column-wise lower triangle of a p x p relative covariance factor T); ``ThetaLayout`` strings the
terms' pieces together for a model (as MixedModels.jl's ``parmap``): offsets, lower bounds,
lme4's start and names, and the one scatter of θ into the templates.  Index arrays are built
once, so nothing here costs more than a fancy-indexed assignment on the fitting path.
Structured terms (``design.structures``: diag, cs, ar1, toep, ou) map θ_i non-linearly to T;
a layout with one of them fills all of T's lower triangle from θ (``expand``), and the
compiled kernels work on those entries (``unstructured``) as if every term were ``us``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LowerCholesky", "ThetaLayout"]


_TRIL: dict = {}  # p -> the index arrays of a p x p lower triangle (read-only, shared)


def _tril_arrays(p: int) -> tuple:
    """(rows, cols, flat_pos, diagonal, lower, start, scaled) of T's column-wise lower triangle:
    T[rows[k], cols[k]] = θ_i[k], ``flat_pos`` the same in T flattened column-major, lme4's
    bounds (0 on the diagonal) and start (T = I); every entry carries its row's units (scaled).
    Built once per p: a fit builds a layout per model, and these arrays never change."""
    arrays = _TRIL.get(p)
    if arrays is None:
        rows = np.array([i for j in range(p) for i in range(j, p)], dtype=np.int64)
        cols = np.array([j for j in range(p) for i in range(j, p)], dtype=np.int64)
        diagonal = rows == cols
        arrays = (
            rows,
            cols,
            rows + cols * p,
            diagonal,
            np.where(diagonal, 0.0, -np.inf),
            diagonal.astype(float),
            np.ones(len(rows), dtype=bool),
        )
        for x in arrays:
            x.flags.writeable = False
        arrays = _TRIL.setdefault(p, arrays)
    return arrays


class LowerCholesky:
    """A term's unstructured covariance, lme4's way: θ_i is T's lower triangle, column by column.

    ``p`` columns named ``columns`` (R names) of grouping factor ``group``; the diagonal entries
    are bounded below by 0 (lme4's rule), the others free; lme4 starts at T = I.  ``rows``/``cols``
    say where each entry of θ_i sits in T, ``flat_pos`` the same in T flattened column-major.
    """

    linear = True
    kind, hom = "us", False

    def __init__(self, p: int, columns: list[str], group: str):
        self.p, self.columns, self.group = int(p), list(columns), group
        (self.rows, self.cols, self.flat_pos, self.diagonal, self.lower, self.start, self.scaled) = _tril_arrays(self.p)
        self.ntheta = len(self.rows)

    @property
    def names(self) -> list[str]:
        """lme4's ``names(getME(m, "theta"))`` for this term: ``g.x`` on the diagonal, ``g.x.y`` below."""
        g, c = self.group, self.columns
        return [
            f"{g}.{c[i]}" if i == j else f"{g}.{c[i]}.{c[j]}" for i, j in zip(self.rows.tolist(), self.cols.tolist())
        ]

    def to_template(self, theta_i: np.ndarray) -> np.ndarray:
        """The p x p lower-triangular template T from this term's θ_i."""
        T = np.zeros((self.p, self.p))
        T[self.rows, self.cols] = theta_i
        return T

    def from_template(self, T: np.ndarray) -> np.ndarray:
        """θ_i from a lower-triangular template T (its upper triangle is ignored)."""
        return np.asarray(T, dtype=float)[self.rows, self.cols].copy()

    def entries(self, theta_i: np.ndarray) -> np.ndarray:
        """T's entries in ``flat_pos`` order: θ_i itself."""
        return theta_i

    def jacobian(self, theta_i: np.ndarray) -> np.ndarray:
        """dT/dθ_i, (nθ, p, p): the elementary matrices."""
        out = np.zeros((self.ntheta, self.p, self.p))
        out[np.arange(self.ntheta), self.rows, self.cols] = 1.0
        return out

    def chain(self, G: np.ndarray, theta_i: np.ndarray) -> np.ndarray:
        """∂f/∂θ_i from ∂f/∂T: T's entries themselves."""
        return G[self.rows, self.cols]

    def sigma_derivatives(self, theta_i: np.ndarray):
        """(dΣ/dθ_i, d²Σ/dθ_i dθ_j) of Σ = T T': E_i T' + T E_i' and E_i E_j' + E_j E_i'."""
        T, E = self.to_template(theta_i), self.jacobian(theta_i)
        d1 = np.einsum("iab,cb->iac", E, T)
        d1 = d1 + d1.transpose(0, 2, 1)
        d2 = np.einsum("iab,jcb->ijac", E, E)
        return d1, d2 + d2.transpose(1, 0, 2, 3)

    def singular(self, theta_i: np.ndarray, tol: float = 1e-4) -> bool:
        """lme4's rule: a diagonal entry of T below ``tol``."""
        return bool(np.any(np.asarray(theta_i)[self.diagonal] < tol))

    def diagonal_position(self, j: int) -> int:
        """Position in θ_i of T[j, j]."""
        return int(np.flatnonzero(self.diagonal & (self.cols == j))[0])

    def below_positions(self, j: int) -> np.ndarray:
        """Positions in θ_i of T[i, j] for i > j (column j below its diagonal)."""
        return np.flatnonzero((self.cols == j) & (self.rows > j))


class ThetaLayout:
    """The whole θ of a model: each term's slice, bounds, start, names and templates.

    Built from the random-effects terms in lme4's order (``t.param`` is each term's
    parametrisation); ``pos``/``size`` place θ in all templates flattened column-major and
    concatenated (what the compiled kernels take).
    """

    def __init__(self, terms):
        self.params = params = [t.param for t in terms]
        # lme4's parametrisation throughout: the arrays depend on the terms' sizes alone (cached)
        key = tuple(pm.p for pm in params) if all(type(pm) is LowerCholesky for pm in params) else None
        arrays = _LAYOUTS.get(key) if key is not None else None
        if arrays is None:
            arrays = _layout_arrays(params)
            if key is not None:
                arrays = _LAYOUTS.setdefault(key, arrays)
        (
            self.offsets,
            self.ntheta,
            self.size,
            slices,
            self.lower,
            self.start,
            self.diagonal,
            self.pos,
            self.linear,
            self.nentries,
        ) = arrays
        self.slices = list(slices)

    def __len__(self) -> int:
        return self.ntheta

    @property
    def names(self) -> list[str]:
        """lme4's ``names(getME(m, "theta"))``."""
        return [n for pm in self.params for n in pm.names]

    def term_theta(self, theta: np.ndarray, k: int) -> np.ndarray:
        """Term k's slice θ_k of θ."""
        return theta[self.slices[k]]

    def template(self, theta: np.ndarray, k: int) -> np.ndarray:
        """Term k's p x p lower-triangular template T_k."""
        return self.params[k].to_template(theta[self.slices[k]])

    def templates(self, theta: np.ndarray) -> list[np.ndarray]:
        """Every term's template, in term order."""
        return [pm.to_template(theta[s]) for pm, s in zip(self.params, self.slices)]

    def from_templates(self, templates) -> np.ndarray:
        """θ from the terms' templates (inverse of ``templates``)."""
        parts = [pm.from_template(T) for pm, T in zip(self.params, templates)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def flat(self, theta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """All templates flattened column-major and concatenated (into ``out`` if given, whose
        entries off θ's positions must be zero)."""
        if out is None:
            out = np.zeros(self.size)
        out[self.pos] = theta if self.linear else self.expand(theta)
        return out

    def expand(self, theta: np.ndarray) -> np.ndarray:
        """Every template's scattered entries (``pos`` order) from θ: θ itself if all terms are
        ``us``; for a structured term its T's lower triangle (NaN where θ is infeasible)."""
        if self.linear:
            return np.asarray(theta, dtype=float)
        return np.concatenate([pm.entries(theta[s]) for pm, s in zip(self.params, self.slices)])

    def expand_jacobian(self, theta: np.ndarray) -> np.ndarray:
        """d expand(θ)/dθ, (nentries, ntheta), block diagonal over terms."""
        J = np.zeros((self.nentries, self.ntheta))
        r = 0
        for pm, s in zip(self.params, self.slices):
            dT = pm.jacobian(theta[s])  # (nθ_k, p, p)
            rows, cols = _entry_positions(pm)
            J[r : r + len(rows), s] = dT[:, rows, cols].T
            r += len(rows)
        return J

    def unstructured(self) -> "ThetaLayout":
        """The layout that treats every term as ``us`` over the same templates: what the compiled
        kernels scatter (``expand`` maps this layout's θ from ours)."""
        if self.linear:
            return self
        shells = [_Shell(LowerCholesky(pm.p, pm.columns, pm.group)) for pm in self.params]
        return ThetaLayout(shells)

    def singular(self, theta: np.ndarray, tol: float = 1e-4) -> bool:
        """lme4's ``isSingular`` per term (a structure: also a correlation matrix near singular)."""
        return any(pm.singular(theta[s], tol) for pm, s in zip(self.params, self.slices))


_LAYOUTS: dict = {}  # the terms' sizes -> ``_layout_arrays`` of lme4-parametrised terms


def _layout_arrays(params) -> tuple:
    """(offsets, ntheta, size, slices, lower, start, diagonal, pos, linear, nentries) of a
    layout over ``params`` (the arrays read-only: layouts may share them)."""
    offsets, pos, ofs, sq = [0], [], 0, 0
    for pm in params:
        ofs += pm.ntheta
        offsets.append(ofs)
        pos.append(sq + pm.flat_pos)
        sq += pm.p * pm.p
    slices = tuple(slice(a, b) for a, b in zip(offsets[:-1], offsets[1:]))
    if params:
        lower = np.concatenate([pm.lower for pm in params])
        start = np.concatenate([pm.start for pm in params])
        diagonal = np.concatenate([pm.diagonal for pm in params])  # bounded below by 0
        flat = np.concatenate(pos)
    else:
        lower, start = np.zeros(0), np.zeros(0)
        diagonal, flat = np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    offsets = np.array(offsets, dtype=np.int64)
    for x in (offsets, lower, start, diagonal, flat):
        x.flags.writeable = False
    linear = all(pm.linear for pm in params)
    nentries = int(sum(len(pm.flat_pos) for pm in params))  # T's scattered entries
    return offsets, ofs, sq, slices, lower, start, diagonal, flat, linear, nentries


class _Shell:
    """A term stand-in carrying only a parametrisation (for ``ThetaLayout.unstructured``)."""

    def __init__(self, param):
        self.param = param


def _entry_positions(pm) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) in T of a parametrisation's scattered entries, in ``flat_pos`` order."""
    return pm.flat_pos % pm.p, pm.flat_pos // pm.p

"""θ's layout: which entries of θ belong to which term, and how they fill Λ's templates.

Each random-effects term has a parametrisation (today lme4's only one, ``LowerCholesky``: the
column-wise lower triangle of a p x p relative covariance factor T); ``ThetaLayout`` strings the
terms' pieces together for a model (as MixedModels.jl's ``parmap``): offsets, lower bounds,
lme4's start and names, and the one scatter of θ into the templates.  Index arrays are built
once, so nothing here costs more than a fancy-indexed assignment on the fitting path.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LowerCholesky", "ThetaLayout"]


class LowerCholesky:
    """A term's unstructured covariance, lme4's way: θ_i is T's lower triangle, column by column.

    ``p`` columns named ``columns`` (R names) of grouping factor ``group``; the diagonal entries
    are bounded below by 0 (lme4's rule), the others free; lme4 starts at T = I.  ``rows``/``cols``
    say where each entry of θ_i sits in T, ``flat_pos`` the same in T flattened column-major.
    """

    def __init__(self, p: int, columns: list[str], group: str):
        self.p, self.columns, self.group = int(p), list(columns), group
        rows = [i for j in range(self.p) for i in range(j, self.p)]
        cols = [j for j in range(self.p) for i in range(j, self.p)]
        self.rows = np.array(rows, dtype=np.int64)  # T[rows[k], cols[k]] = θ_i[k]
        self.cols = np.array(cols, dtype=np.int64)
        self.flat_pos = self.rows + self.cols * self.p  # in T flattened column-major
        self.ntheta = len(rows)
        self.diagonal = self.rows == self.cols
        self.lower = np.where(self.diagonal, 0.0, -np.inf)
        self.start = self.diagonal.astype(float)

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
        offsets, pos, ofs, sq = [0], [], 0, 0
        for pm in params:
            ofs += pm.ntheta
            offsets.append(ofs)
            pos.append(sq + pm.flat_pos)
            sq += pm.p * pm.p
        self.offsets = np.array(offsets, dtype=np.int64)
        self.ntheta, self.size = ofs, sq
        self.slices = [slice(a, b) for a, b in zip(offsets[:-1], offsets[1:])]
        if params:
            self.lower = np.concatenate([pm.lower for pm in params])
            self.start = np.concatenate([pm.start for pm in params])
            self.diagonal = np.concatenate([pm.diagonal for pm in params])  # bounded below by 0
            self.pos = np.concatenate(pos)
        else:
            self.lower, self.start = np.zeros(0), np.zeros(0)
            self.diagonal, self.pos = np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
        for x in (self.lower, self.start, self.diagonal, self.pos):
            x.flags.writeable = False

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
        out[self.pos] = theta
        return out

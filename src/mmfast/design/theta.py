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
    are bounded below by 0 (lme4's rule), the others free; lme4 starts at T = I.
    """

    def __init__(self, p: int, columns: list[str], group: str):
        self.p, self.columns, self.group = int(p), list(columns), group
        rows, cols = [], []
        for j in range(self.p):
            for i in range(j, self.p):
                rows.append(i)
                cols.append(j)
        self.rows = np.array(rows, dtype=np.int64)  # T[rows[k], cols[k]] = θ_i[k]
        self.cols = np.array(cols, dtype=np.int64)
        self.ntheta = len(rows)
        self.diagonal = self.rows == self.cols
        self.lower = np.where(self.diagonal, 0.0, -np.inf)
        self.start = self.diagonal.astype(float)

    @property
    def names(self) -> list[str]:
        """lme4's ``names(getME(m, "theta"))`` for this term: ``g.x`` on the diagonal, ``g.x.y`` below."""
        g, c = self.group, self.columns
        return [f"{g}.{c[i]}" if i == j else f"{g}.{c[i]}.{c[j]}"
                for i, j in zip(self.rows.tolist(), self.cols.tolist())]

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
        self.params = [t.param for t in terms]
        sizes = [pm.ntheta for pm in self.params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.ntheta = int(self.offsets[-1])
        self.slices = [slice(int(a), int(b)) for a, b in zip(self.offsets[:-1], self.offsets[1:])]
        cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
        self.lower = cat([pm.lower for pm in self.params], float)
        self.start = cat([pm.start for pm in self.params], float)
        self.diagonal = cat([pm.diagonal for pm in self.params], bool)  # bounded below by 0
        pos, ofs = [], 0
        for pm in self.params:
            pos.append(ofs + pm.rows + pm.cols * pm.p)
            ofs += pm.p * pm.p
        self.pos, self.size = cat(pos, np.int64), ofs
        for a in (self.lower, self.start, self.diagonal, self.pos):
            a.setflags(write=False)

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

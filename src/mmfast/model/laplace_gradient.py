"""Analytic gradient of the Laplace deviance for several random-effects terms (canonical link).

At the conditional mode u of L(θ, β) = dev(η) + |u|² + log|A|, A = I + Λ'Z'WZΛ, η = Xβ + ZΛu,
with r = pw (y - μ), w = pw μ' and w' = dw/dη (binomial-logit, Poisson-log):

* dev + |u|² by the envelope theorem: ∂/∂θ_k = -2 r'ZΛ_k u, ∂/∂β = -2 X'r  (Λ_k = ∂Λ/∂θ_k);
* log|A| at fixed W: 2 tr(A⁻¹ Λ'Z'WZΛ_k) = 2 Σ_i w_i (ZΛ A⁻¹ Λ_k'Z')_ii;
* log|A| through W(η): Σ_i w'_i h_i dη_i, h_i = (ZΛ A⁻¹ Λ'Z')_ii, where u moves with the
  parameters, A du = Λ_k'Z'r - Λ'Z'WZΛ_k u (θ_k) or -Λ'Z'W X_m (β_m).

Only the entries of A⁻¹ on A's own block pattern are needed (a row touches one block of each
term): they come from the PIRLS kernel's blocked factor (``_selinv.pattern_inverse``, in the
layout of the cross-products V), and the one solve with A from the same factor, so nothing of
order q₁ x q₂ is formed and a 10⁶-row crossed model's gradient costs about three PIRLS
iterations.  The single-term case lives in ``SingleTerm.laplace_grad`` (Cython).

The row passes are ``Crossprods``'s (Cython), over each row's nonzero model-matrix entries: a
vector-valued term (p columns) costs O(p) per nonzero and term pair, never p² per row.  A⁻¹'s
sub-blocks are multiplied by the templates once per block pair first (p³ per pair), and the
derivatives in all of a template's entries (p² of them, structured or not) gather into one
p x p matrix per term, not a pass over the rows per entry.
"""

from __future__ import annotations

import numpy as np

from .._ext._blocked import BlockedKernel
from .._ext._crossprods import Crossprods
from .._ext._selinv import pattern_inverse

__all__ = ["LaplaceGradient", "supports"]


def supports(frame, family, kernel) -> bool:
    """Several terms, a canonical binomial-logit or Poisson-log model, and a blocked kernel
    (the dense part within ``LmmControl.dense_schur_max``: its selected inverse)."""
    if len(frame.terms) < 2 or family.link.name != family.canonical:
        return False
    return family.name in ("binomial", "poisson") and isinstance(kernel, BlockedKernel)


class LaplaceGradient:
    """Gradient of the Laplace deviance at ``GeneralKernel``'s converged state (after an
    evaluation of ``KernelLoop.laplace``, whose u-kernel still holds A's factor).  ``cp``: the
    kernel's ``Crossprods`` (built here if not given)."""

    def __init__(self, frame, family, blocks, cp: Crossprods | None = None):
        terms = frame.terms
        self.terms, self.binomial = terms, family.name == "binomial"
        self.linkinv = family.linkinv
        self.X = np.asarray(frame.X, dtype=float)
        self.n, self.px = self.X.shape
        self.q = sum(t.q for t in terms)
        self.cp = Crossprods(blocks, terms) if cp is None else cp
        self.tofs = np.cumsum([0] + [t.p * t.p for t in terms])[:-1]
        # per term pair (k >= m): the V offsets of its block pairs, once each
        vofs = np.asarray(blocks.pair_vofs)[np.asarray(blocks.row_pair)]
        self.pieces = [(int(k), int(m), np.unique(v)) for (k, m), v in zip(blocks.pieces, vofs)]
        self.nv = len(blocks.V)

    def _templates(self, T) -> list[np.ndarray]:
        return [T[o : o + t.p * t.p].reshape(t.p, t.p, order="F") for t, o in zip(self.terms, self.tofs)]

    def _pair_products(self, ainv, Ts):
        """For every block pair's sub-block G of A⁻¹ (at offset o in V): G T_m' then T_k G at
        2o in one array (what ``Crossprods.hat_rows`` reads)."""
        PP = np.empty(2 * self.nv)
        for k, m, uniq in self.pieces:
            pk, pm = self.terms[k].p, self.terms[m].p
            G = ainv[uniq[:, None] + np.arange(pk * pm)].reshape(-1, pk, pm)
            at = 2 * uniq[:, None] + np.arange(pk * pm)
            PP[at] = (G @ Ts[m].T).reshape(len(uniq), -1)
            PP[at + pk * pm] = (Ts[k] @ G).reshape(len(uniq), -1)
        return PP

    def __call__(self, kernel, T, u, eta, y, pw, Binv, theta_pos) -> np.ndarray:
        """d/dx of the Laplace deviance, x = [θ, δ] (β = β₀ + Binv δ), with ``kernel`` holding
        A's factor at the converged mode (weights equal to PIRLS's tolerance).

        ``theta_pos``: for each θ entry, (term index, row r, column c) in its template.
        """
        mu = self.linkinv(eta)
        w = pw * (mu * (1.0 - mu) if self.binomial else mu)
        wd = w * (1.0 - 2.0 * mu) if self.binomial else w
        r = pw * (y - mu)
        T = np.ascontiguousarray(T, dtype=float)
        Ts = self._templates(T)
        PP = self._pair_products(pattern_inverse(kernel), Ts)
        h, D = np.empty(self.n), np.zeros(len(T))
        self.cp.hat_rows(T, PP, w, h, D)  # h_i = (ZΛA⁻¹Λ'Z')_ii; D: 2 tr(A⁻¹Λ'Z'WZΛ_k)
        # the u part enters only through c'du with c = Λ'Z'(w' ⊙ h), so one solve z = A⁻¹c
        # replaces one per parameter (A symmetric)
        wh = wd * h
        Y = np.empty(self.q)
        self.cp.zt_rows(wh, Y)
        c = np.empty(self.q)
        for t, Tt in zip(self.terms, Ts):  # Λ'Y, level by level
            c[t.offset : t.offset + t.q] = (Y[t.offset : t.offset + t.q].reshape(-1, t.p) @ Tt).ravel()
        z = np.ascontiguousarray(kernel.solve(c), dtype=float)
        zeta = np.empty(self.n)
        self.cp.linpred(np.zeros(self.n), z, T, zeta)  # ZΛz
        # per parameter, with S its column of ∂η at fixed u ((ZΛ_k u)_i = x_i[rr] u[slot cc];
        # X_m for β_m): dη = S + ZΛ du, A du = Λ_k'Z'r - Λ'Z'W S  =>
        # g = -2 r'S + (wh - ζ w)'S + z'Λ_k'Z'r [+ 2 tr(A⁻¹Λ'Z'WZΛ_k) for θ]
        a = wh - zeta * w - 2.0 * r
        self.cp.score_rows(a, r, np.ascontiguousarray(u, dtype=float), z, D)
        g = np.array([D[self.tofs[ti] + rr * self.terms[ti].p + cc] for ti, rr, cc in theta_pos])
        return np.concatenate([g, Binv.T @ (a @ self.X)])

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
"""

from __future__ import annotations

import numpy as np

from .._ext._blocked import BlockedKernel
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
    evaluation of ``KernelLoop.laplace``, whose u-kernel still holds A's factor)."""

    def __init__(self, frame, family, blocks):
        terms = frame.terms
        self.terms, self.binomial = terms, family.name == "binomial"
        self.linkinv = family.linkinv
        self.X = np.asarray(frame.X, dtype=float)
        self.n, self.px = self.X.shape
        self.q = sum(t.q for t in terms)
        # per row, the global u column of each (term, column) slot: C (n x m), m = Σ p_t
        cols, self.slot0 = [], []
        for t in terms:
            self.slot0.append(sum(c.shape[1] for c in cols) if cols else 0)
            base = t.offset + t.factor.codes.astype(np.int64) * t.p
            cols.append(base[:, None] + np.arange(t.p)[None, :])
        self.C = np.concatenate(cols, axis=1)
        self.m = self.C.shape[1]
        # per term pair (k >= m), the offset in V of the sub-block each row adds to
        self.pieces = [(int(k), int(m)) for k, m in blocks.pieces]
        self.vofs = np.asarray(blocks.pair_vofs)[np.asarray(blocks.row_pair)]

    def _rows_zl(self, T):
        """V (n x m): row i of ZΛ on its slots, x_i' T_t per term."""
        parts, ofs = [], 0
        for t in self.terms:
            Tt = T[ofs : ofs + t.p * t.p].reshape(t.p, t.p, order="F")
            ofs += t.p * t.p
            parts.append(t.X @ Tt)
        return np.concatenate(parts, axis=1)

    def _ainv_rows(self, ainv, V):
        """GV (n x m): row i of ZΛ A⁻¹ on its own slots, (A⁻¹ Λ'Z')_{slot, i}, from A⁻¹'s
        sub-blocks ``ainv`` (V's layout) of the pairs each row touches."""
        GV = np.zeros_like(V)
        for piece, (k, m) in enumerate(self.pieces):
            pk, pm = self.terms[k].p, self.terms[m].p
            sk, sm = slice(self.slot0[k], self.slot0[k] + pk), slice(self.slot0[m], self.slot0[m] + pm)
            if pk == 1 and pm == 1:
                G = ainv[self.vofs[piece]]
                GV[:, sk] += (G * V[:, sm][:, 0])[:, None]
                if k != m:
                    GV[:, sm] += (G * V[:, sk][:, 0])[:, None]
                continue
            G = ainv[self.vofs[piece][:, None] + np.arange(pk * pm)].reshape(-1, pk, pm)
            GV[:, sk] += np.einsum("iab,ib->ia", G, V[:, sm])
            if k != m:
                GV[:, sm] += np.einsum("iab,ia->ib", G, V[:, sk])
        return GV

    def __call__(self, kernel, T, u, eta, y, pw, Binv, theta_pos) -> np.ndarray:
        """d/dx of the Laplace deviance, x = [θ, δ] (β = β₀ + Binv δ), with ``kernel`` holding
        A's factor at the converged mode (weights equal to PIRLS's tolerance).

        ``theta_pos``: for each θ entry, (term index, row r, column c) in its template.
        """
        mu = self.linkinv(eta)
        w = pw * (mu * (1.0 - mu) if self.binomial else mu)
        wd = w * (1.0 - 2.0 * mu) if self.binomial else w
        r = pw * (y - mu)
        V = self._rows_zl(T)
        GV = self._ainv_rows(pattern_inverse(kernel), V)
        h = np.einsum("ia,ia->i", V, GV)
        m, C, q = self.m, self.C, self.q
        ntheta = len(theta_pos)
        # ∂η/∂(θ_k, β_m) at fixed u: S; the u part enters only through c'du with
        # c = Λ'Z'(w' ⊙ h), so one solve z = A⁻¹c replaces one per parameter (A symmetric)
        wh = wd * h
        c = sum(np.bincount(C[:, a], wh * V[:, a], minlength=q) for a in range(m))
        z = kernel.solve(c)
        zeta = np.einsum("ia,ia->i", V, z[C])  # ZΛz
        S = np.empty((self.n, ntheta + self.px))
        zr = np.zeros(ntheta + self.px)  # z'Λ_k'Z'r
        direct = np.zeros(ntheta)
        for k, (ti, rr, cc) in enumerate(theta_pos):
            t = self.terms[ti]
            slot = self.slot0[ti] + cc
            xr = t.X[:, rr]
            S[:, k] = xr * u[C[:, slot]]  # (ZΛ_k u)_i
            zr[k] = np.sum(xr * z[C[:, slot]] * r)
            direct[k] = 2.0 * np.sum(w * xr * GV[:, slot])
        S[:, ntheta:] = self.X
        # dη = S + ZΛ du, A du = Λ_k'Z'r - Λ'Z'W S  =>  Σ w'h dη = wh'S + z'(Λ_k'Z'r) - (ζ w)'S
        g = -2.0 * (r @ S) + (wh - zeta * w) @ S + zr
        g[:ntheta] += direct
        self.du = self._mode_tangent(kernel, V, w, r, S, theta_pos, Binv)
        return np.concatenate([g[:ntheta], Binv.T @ g[ntheta:]])

    def _mode_tangent(self, kernel, V, w, r, S, theta_pos, Binv) -> np.ndarray:
        """du/dx (q x (nθ + p)) at the mode, from the factor held: A du = Λ_k'Z'r - Λ'Z'W S_k
        (θ_k), -Λ'Z'W X Binv (δ).  A warm start u + du·Δx for a nearby x is then off by
        O(Δx²), not O(Δx): PIRLS (Newton) needs one iteration fewer per evaluation."""
        C, q, ntheta = self.C, self.q, len(theta_pos)
        WS = w[:, None] * S
        rhs = np.zeros((q, S.shape[1]), order="F")
        for k in range(S.shape[1]):
            for a in range(self.m):
                rhs[:, k] -= np.bincount(C[:, a], V[:, a] * WS[:, k], minlength=q)
        for k, (ti, rr, cc) in enumerate(theta_pos):
            t = self.terms[ti]
            rhs[:, k] += np.bincount(C[:, self.slot0[ti] + cc], t.X[:, rr] * r, minlength=q)
        du = kernel.solve(rhs)
        return np.concatenate([du[:, :ntheta], du[:, ntheta:] @ Binv], axis=1)

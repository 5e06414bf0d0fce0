"""Analytic gradient of the Laplace deviance for several random-effects terms (canonical link).

At the conditional mode u of L(θ, β) = dev(η) + |u|² + log|A|, A = I + Λ'Z'WZΛ, η = Xβ + ZΛu,
with r = pw (y - μ), w = pw μ' and w' = dw/dη (binomial-logit, Poisson-log):

* dev + |u|² by the envelope theorem: ∂/∂θ_k = -2 r'ZΛ_k u, ∂/∂β = -2 X'r  (Λ_k = ∂Λ/∂θ_k);
* log|A| at fixed W: 2 tr(A⁻¹ Λ'Z'WZΛ_k) = 2 Σ_i w_i (ZΛ A⁻¹ Λ_k'Z')_ii;
* log|A| through W(η): Σ_i w'_i h_i dη_i, h_i = (ZΛ A⁻¹ Λ'Z')_ii, where u moves with the
  parameters, A du = Λ_k'Z'r - Λ'Z'WZΛ_k u (θ_k) or -Λ'Z'W X_m (β_m).

Only the entries of A⁻¹ that a row touches are needed: the first term's blocks are block
diagonal in A (a row has one level of it), the other terms form a small dense part (order
q₂), so A⁻¹ comes from the Schur complement S = A₂₂ - A₂₁A₁₁⁻¹A₁₂ (as the blocked kernel).
The single-term case lives in ``SingleTerm.laplace_grad`` (Cython).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LaplaceGradient", "supports"]

MAX_DENSE = 400  # order of the dense part (terms after the first) it will handle
MAX_CROSS = 2_000_000  # q₁ x q₂ entries of the dense cross block A₁₂


def supports(frame, family) -> bool:
    """Several terms, a canonical binomial-logit or Poisson-log model, a small dense part."""
    if len(frame.terms) < 2 or family.link.name != family.canonical:
        return False
    if family.name not in ("binomial", "poisson"):
        return False
    q1 = frame.terms[0].q
    q2 = sum(t.q for t in frame.terms[1:])
    return q2 <= MAX_DENSE and q1 * q2 <= MAX_CROSS


class LaplaceGradient:
    """Gradient of the Laplace deviance at ``GeneralKernel``'s converged state (after an
    evaluation of ``KernelLoop.laplace``)."""

    def __init__(self, frame, family):
        terms = frame.terms
        self.terms, self.binomial = terms, family.name == "binomial"
        self.linkinv = family.linkinv
        self.X = np.asarray(frame.X, dtype=float)
        self.n, self.px = self.X.shape
        self.p1, self.q1 = terms[0].p, terms[0].q
        self.q = sum(t.q for t in terms)
        self.q2 = self.q - self.q1
        # per row, the global u column of each (term, column) slot: C (n x m), m = Σ p_t
        cols, self.slot0 = [], []
        for t in terms:
            self.slot0.append(sum(c.shape[1] for c in cols) if cols else 0)
            base = t.offset + t.factor.codes.astype(np.int64) * t.p
            cols.append(base[:, None] + np.arange(t.p)[None, :])
        self.C = np.concatenate(cols, axis=1)
        self.m = self.C.shape[1]
        self.codes1 = terms[0].factor.codes.astype(np.int64)
        p1, q1, q2, C = self.p1, self.q1, self.q2, self.C  # scatter positions in A₁₂ and A₂₂
        C2 = C[:, p1:] - q1
        self.idx12 = (C[:, :p1, None] * q2 + C2[:, None, :]).ravel()
        self.idx22 = (C2[:, :, None] * q2 + C2[:, None, :]).ravel()

    # --- A and the entries of A⁻¹ a row touches ----------------------------------------------
    def _rows_zl(self, T):
        """V (n x m): row i of ZΛ on its slots, x_i' T_t per term."""
        parts, ofs = [], 0
        for t in self.terms:
            Tt = T[ofs : ofs + t.p * t.p].reshape(t.p, t.p, order="F")
            ofs += t.p * t.p
            parts.append(t.X @ Tt)
        return np.concatenate(parts, axis=1)

    def _blocks(self, V, w):
        """A₁₁⁻¹ per level (l, p₁, p₁), A₁₂ (q₁ x q₂), P = A₁₁⁻¹A₁₂, S⁻¹ (q₂ x q₂), P S⁻¹ and
        the diagonal blocks of (A⁻¹)₁₁."""
        p1, q1, q2 = self.p1, self.q1, self.q2
        nl1 = q1 // p1
        V1, Vw = V[:, :p1], V * w[:, None]
        A11 = np.empty((nl1, p1, p1))
        for a in range(p1):
            for b in range(p1):
                A11[:, a, b] = np.bincount(self.codes1, Vw[:, a] * V1[:, b], minlength=nl1)
        A11 += np.eye(p1)
        A11inv = 1.0 / A11 if p1 == 1 else np.linalg.inv(A11)
        A12 = np.bincount(self.idx12, (Vw[:, :p1, None] * V[:, None, p1:]).ravel(), minlength=q1 * q2).reshape(q1, q2)
        A22 = np.bincount(self.idx22, (Vw[:, p1:, None] * V[:, None, p1:]).ravel(), minlength=q2 * q2).reshape(
            q2, q2
        ) + np.eye(q2)
        Pl = np.einsum("lab,lbc->lac", A11inv, A12.reshape(nl1, p1, q2))
        P = Pl.reshape(q1, q2)
        Sinv = np.linalg.inv(A22 - A12.T @ P)
        PS = P @ Sinv
        D = A11inv + np.einsum("lak,lbk->lab", PS.reshape(nl1, p1, q2), Pl)  # (A⁻¹)₁₁ blocks
        return A11inv, A12, P, Sinv, PS, D

    def _solve(self, blocks, rhs):
        """A⁻¹ rhs for a (q, k) right-hand side, by the block formula."""
        A11inv, A12, P, Sinv = blocks[:4]
        q1, p1 = self.q1, self.p1
        r1, r2 = rhs[:q1], rhs[q1:]
        x2 = Sinv @ (r2 - P.T @ r1)
        y1 = (r1 - A12 @ x2).reshape(q1 // p1, p1, -1)
        x1 = np.einsum("lab,lbk->lak", A11inv, y1).reshape(q1, -1)
        return np.vstack([x1, x2])

    def _pair(self, blocks, a, b):
        """(A⁻¹)[C[:, a], C[:, b]] for every row (slots a, b)."""
        Sinv, PS, D = blocks[3:]
        p1, q1, C = self.p1, self.q1, self.C
        if a < p1 and b < p1:  # same level of the first term: (A⁻¹)₁₁ = A₁₁⁻¹ + P S⁻¹ P'
            return D[self.codes1, a, b]
        if a < p1:  # (A⁻¹)₁₂ = -A₁₁⁻¹A₁₂S⁻¹ = -P S⁻¹
            return -PS[C[:, a], C[:, b] - q1]
        if b < p1:
            return self._pair(blocks, b, a)
        return Sinv[C[:, a] - q1, C[:, b] - q1]

    # --- the gradient ------------------------------------------------------------------------
    def __call__(self, T, u, eta, y, pw, Binv, theta_pos) -> np.ndarray:
        """d/dx of the Laplace deviance, x = [θ, δ] (β = β₀ + Binv δ).

        ``theta_pos``: for each θ entry, (term index, row r, column c) in its template.
        """
        mu = self.linkinv(eta)
        w = pw * (mu * (1.0 - mu) if self.binomial else mu)
        wd = w * (1.0 - 2.0 * mu) if self.binomial else w
        r = pw * (y - mu)
        V = self._rows_zl(T)
        blocks = self._blocks(V, w)
        m, C, q = self.m, self.C, self.q
        G = [[self._pair(blocks, a, b) for b in range(m)] for a in range(m)]
        h = sum(V[:, a] * V[:, b] * G[a][b] for a in range(m) for b in range(m))
        ntheta = len(theta_pos)
        # ∂η/∂(θ_k, β_m) at fixed u: S; the u part enters only through c'du with
        # c = Λ'Z'(w' ⊙ h), so one solve z = A⁻¹c replaces one per parameter (A symmetric)
        wh = wd * h
        c = sum(np.bincount(C[:, a], wh * V[:, a], minlength=q) for a in range(m))
        z = self._solve(blocks, c[:, None])[:, 0]
        zeta = sum(V[:, a] * z[C[:, a]] for a in range(m))  # ZΛz
        S = np.empty((self.n, ntheta + self.px))
        zr = np.zeros(ntheta + self.px)  # z'Λ_k'Z'r
        direct = np.zeros(ntheta)
        for k, (ti, rr, cc) in enumerate(theta_pos):
            t = self.terms[ti]
            slot = self.slot0[ti] + cc
            xr = t.X[:, rr]
            S[:, k] = xr * u[C[:, slot]]  # (ZΛ_k u)_i
            zr[k] = np.sum(xr * z[C[:, slot]] * r)
            direct[k] = 2.0 * np.sum(w * xr * sum(V[:, a] * G[a][slot] for a in range(m)))
        S[:, ntheta:] = self.X
        # dη = S + ZΛ du, A du = Λ_k'Z'r - Λ'Z'W S  =>  Σ w'h dη = wh'S + z'(Λ_k'Z'r) - (ζ w)'S
        g = -2.0 * (r @ S) + (wh - zeta * w) @ S + zr
        g[:ntheta] += direct
        return np.concatenate([g[:ntheta], Binv.T @ g[ntheta:]])

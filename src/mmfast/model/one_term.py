"""The kernel interface (``model.kernel.Kernel``) for one random-effects term, in numpy.

With one term, A = Λ'Z'WZΛ + I is block diagonal, one p x p block A_l = T'G_lT + I per level
(G_l the level's block of Z'WZ), so every operation of the interface is a batched small
Cholesky: log|A| = Σ log|A_l|, A⁻¹ per level, M = W'W - Σ_l B_l'A_l⁻¹B_l with B_l = T'(Z'W)_l.
The compiled one-term engines specialise this algebra: the GLMM's ``SingleTerm`` (its
converged per-level factors are read through ``from_factors``) and the batched scalar closed
forms of ``pipeline.scalar`` and ``resample.intercept`` (p = 1: A_l = 1 + θ² m_l), whose
designs give this kernel for one response (``ScalarDesign.kernel``) and are tested against it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OneTermKernel"]


class OneTermKernel:
    """``Kernel`` for one term: G (levels, p, p) blocks of Z'WZ, Z'W (q x ncol), W'W."""

    def __init__(self, G: np.ndarray, ZtW: np.ndarray | None = None, WtW: np.ndarray | None = None):
        G = np.asarray(G, dtype=float)
        if G.ndim != 3 or G.shape[1] != G.shape[2]:
            raise ValueError(f"G must be (levels, p, p), not {G.shape}")
        self.nlev, self.p = G.shape[0], G.shape[1]
        self.q, self.tsize = self.nlev * self.p, self.p * self.p
        self.reweight(G, ZtW, WtW)

    @classmethod
    def of_blocks(cls, blocks) -> OneTermKernel:
        """From a one-term ``design.blocks.BlockStructure`` (its V holds one block per level)."""
        p = int(blocks.term_p[0])
        if len(blocks.term_p) != 1 or not np.array_equal(blocks.pair_row, blocks.pair_col):
            raise ValueError("not a one-term block structure")
        G = np.zeros((blocks.q // p, p, p))
        G[np.asarray(blocks.pair_row)] = np.asarray(blocks.V).reshape(-1, p, p)
        return cls(G, blocks.ZtW, blocks.WtW)

    @classmethod
    def from_factors(cls, L: np.ndarray, T: np.ndarray) -> OneTermKernel:
        """A kernel holding converged per-level factors L_l (L_l L_l' = A_l) at the flat
        templates T, without cross-products (a GLMM engine's state): solve, logdet and
        ``selinv_blocks`` work, ``update`` needs the cross-products."""
        L = np.tril(np.asarray(L, dtype=float))  # compiled engines leave scratch above
        kern = cls(np.zeros_like(L))
        kern._L, kern._T = L, np.array(T, dtype=float)
        return kern

    # --- the interface --------------------------------------------------------------------
    @property
    def ncol(self) -> int:
        return 0 if self._ZtW is None else self._ZtW.shape[1]

    @property
    def logdet(self) -> float:
        """log|A| of the factor held now."""
        d = np.einsum("lii->li", self._L)
        return 2.0 * float(np.sum(np.log(d)))

    def update(self, T: np.ndarray):
        """Factor A at T: (log|A|, M = W'W - B'A⁻¹B), (inf, None) where A is not PD."""
        if self._ZtW is None:
            raise ValueError("this one-term kernel holds a factor only (no cross-products)")
        T = np.asarray(T, dtype=float)
        if T.shape != (self.tsize,):
            raise ValueError(f"T has {T.size} values, the term's template {self.tsize}")
        Tm = T.reshape(self.p, self.p, order="F")
        A = np.einsum("ji,ljk,km->lim", Tm, self._G, Tm) + np.eye(self.p)
        try:
            L = np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            self._T = None
            return np.inf, None
        self._L, self._T = L, T.copy()
        B = np.einsum("ji,ljc->lic", Tm, self._ZtW.reshape(self.nlev, self.p, -1))  # T'(Z'W)_l
        self._C = np.linalg.solve(L, B)  # L_l⁻¹ B_l
        M = self._WtW - np.einsum("lic,lid->cd", self._C, self._C)
        return self.logdet, M

    def profiled(self, T: np.ndarray):
        """``update`` and the Cholesky of M: (log|A|, log|R_X|², r²), or None."""
        ld, M = self.update(T)
        if M is None:
            return None
        try:
            R = np.linalg.cholesky(M)
        except np.linalg.LinAlgError:
            return None
        d = np.diag(R)
        return ld, 2.0 * float(np.sum(np.log(d[:-1]))), float(d[-1] ** 2)

    def solve(self, B: np.ndarray) -> np.ndarray:
        """A⁻¹B (u's order, level-major) for a q-vector or q x m matrix."""
        B = np.asarray(B, dtype=float)
        Bl = B.reshape(self.nlev, self.p, -1)
        Y = np.linalg.solve(self._L, Bl)
        X = np.linalg.solve(self._L.transpose(0, 2, 1), Y)
        return X.reshape(B.shape)

    def selinv_blocks(self, terms=None) -> list[np.ndarray]:
        """A⁻¹'s diagonal blocks, here all of A⁻¹: A_l⁻¹ = L_l⁻ᵀL_l⁻¹ (levels, p, p)."""
        Linv = np.linalg.inv(self._L)
        return [np.einsum("lji,ljk->lik", Linv, Linv)]

    def reweight(self, V, ZtW, WtW) -> None:
        """New cross-products (G blocks (levels, p, p), Z'W, W'W); the held factor is released."""
        self._G = np.asarray(V, dtype=float).reshape(self.nlev, self.p, self.p)
        self._ZtW = None if ZtW is None else np.asarray(ZtW, dtype=float).reshape(self.q, -1)
        self._WtW = None if WtW is None else np.asarray(WtW, dtype=float)
        self._L = np.broadcast_to(np.eye(self.p), (self.nlev, self.p, self.p)).copy()
        self._T = None

    def conditional_modes(self, beta: np.ndarray) -> np.ndarray:
        """Spherical modes u at β from the last update: A⁻¹(B_y - B_X β) per level."""
        c = self._C[:, :, -1] - self._C[:, :, :-1] @ np.asarray(beta, dtype=float)
        return np.linalg.solve(self._L.transpose(0, 2, 1), c[..., None])[..., 0].ravel()

    def at(self, T: np.ndarray) -> bool:
        """Whether the factor held now is A at T."""
        return self._T is not None and np.array_equal(self._T, np.asarray(T, dtype=float))

    def factor_at(self, T: np.ndarray) -> OneTermKernel:
        """This kernel with its factor at T (refactored unless it is there)."""
        if not self.at(T):
            ld, M = self.update(T)
            if M is None:
                raise FloatingPointError("A = Λ'Z'ZΛ + I is not positive definite at θ")
        return self

"""The marginal covariance of an LMM in q dimensions: V = I + ZΛΛ'Z' (relative to σ²).

Inference needs products with V⁻¹ and traces of V⁻¹ (dV) V⁻¹ (dV), never V itself.
With A = Λ'Z'ZΛ + I (a sparse Cholesky factor) and K = Λ'Z'Z, Woodbury gives

    V⁻¹ = I - ZΛA⁻¹Λ'Z',        M := Z'V⁻¹Z = Z'Z - K'A⁻¹K        (q x q),
    W := Z'V⁻¹X = Z'X - K'A⁻¹Λ'Z'X,   F := X'V⁻¹X = R_X'R_X,   g := Z'V⁻¹(y - Xβ̂),

and, from I = V - ZBZ' with B = ΛΛ', the powers of V⁻¹ reduce to M, W and B:
Z'V⁻²X = W - MBW, X'V⁻²X = F - W'BW, tr V⁻² = n - 2 tr(MB) + tr(MBMB).

Every covariance derivative in an LMM has the form Z (I_ℓ ⊗ s) Z' with s a p_k x p_k
matrix on the levels of one term k.  All traces tr(M (I⊗s) M (I⊗s')) are contractions
of the term-pair tensors N_km[a,b,c,d] = Σ_{l,l'} M[(l,a),(l',c)] M[(l,b),(l',d)] and
tr(M (I⊗s)) of the diagonal-block sums dg_k[a,b] = Σ_l M[(l,a),(l,b)], computed from the
fitted kernel by ``model.traces`` (components of Z'Z by layout, or column chunks of M),
so memory stays O(q x chunk) and no n x n matrix is ever formed.
Rows are sqrt-weighted for weighted fits (the weighted scale where V has that form).
Products with A⁻¹ and log|A| come from the fit's own kernel (``model.kernel``), whose factor
the fit left at θ: no second symbolic analysis or factorisation of A.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..model.kernel import fitted_kernel
from ..model.traces import trace_tensors

__all__ = ["VarianceStructure", "variance_structure"]


def variance_structure(model) -> VarianceStructure:
    """The fitted model's structure, built once per fit and shared by Satterthwaite and
    Kenward-Roger (its trace tensors are the dear part; the per-fit inference cache holds it)."""
    from .ftests import _cache

    store = _cache(model)
    vs = store.get("variance_structure")
    if vs is None:
        vs = store["variance_structure"] = VarianceStructure(model)
    return vs


class VarianceStructure:
    """q-dimensional algebra of V(θ) for a fitted LinearMixedModel (at its θ unless given)."""

    def __init__(self, model, theta: np.ndarray | None = None, trace_method: str = "auto"):
        self.model = model
        self.trace_method = trace_method  # "auto", or force "dense", "schur", "chunked" (tests)
        frame = model.frame
        self.terms = frame.terms
        self.theta = np.asarray(model.theta if theta is None else theta, dtype=float).copy()
        sqrtw = getattr(model, "_sqrtw", None)
        Z = model.Z.tocsc()
        X = np.asarray(frame.X, dtype=float)
        y = np.asarray(frame.y, dtype=float)
        if frame.offset is not None:
            y = y - frame.offset
        if sqrtw is not None:
            Z = (sp.diags(sqrtw) @ Z).tocsc()
            X = X * sqrtw[:, None]
            y = y * sqrtw
        self.n, self.p = int(model.nobs), X.shape[1]  # rows of weight 0 do not count
        self.q = Z.shape[1]
        self.ZtZ = (Z.T @ Z).tocsc()
        self.ZtX = np.asarray(Z.T @ X).reshape(self.q, self.p)
        self.Zty = np.asarray(Z.T @ y).ravel()
        self.XtX, self.Xty, self.yty = X.T @ X, X.T @ y, float(y @ y)
        self.templates = model.layout.templates(self.theta)
        self.Lam = self._blockdiag(self.templates)
        self.K = (self.Lam.T @ self.ZtZ).tocsc()  # Λ'Z'Z
        self._use_kernel(model)
        self._setup_fixed()

    def _use_kernel(self, model) -> None:
        """The fit's kernel, its factor at θ (refactored only if something moved it); read
        through the model each time (a copied or unpickled model brings its own kernel)."""
        self._T = model.templates(self.theta)
        self.logdetA = float(fitted_kernel(model, self.theta).logdet)

    @property
    def kernel(self):
        """The model's kernel with its factor at this structure's θ."""
        return self.model.kernel.factor_at(self._T)

    # --- Λ and its pieces ------------------------------------------------------------------
    def _blockdiag(self, mats: list[np.ndarray]) -> sp.csc_matrix:
        """I_ℓ ⊗ mats[k] on every term's block of u (q x q, sparse)."""
        blocks = [
            sp.kron(sp.identity(t.nlevels, format="csc"), sp.csc_matrix(m), format="csc")
            for t, m in zip(self.terms, mats)
        ]
        return sp.block_diag(blocks, format="csc") if blocks else sp.csc_matrix((0, 0))

    def term_apply(self, k: int, s: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(I_ℓ ⊗ s) v on term k's rows (zero elsewhere) for a q-vector or q x m matrix."""
        t = self.terms[k]
        out = np.zeros_like(v, dtype=float)
        blk = v[t.offset : t.offset + t.q].reshape((t.nlevels, t.p) + v.shape[1:])
        out[t.offset : t.offset + t.q] = np.einsum("ab,lb...->la...", s, blk).reshape((t.q,) + v.shape[1:])
        return out

    def term_quad(self, k: int, s: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a' (I_ℓ ⊗ s) b for q-vectors or q x m matrices (restricted to term k)."""
        t = self.terms[k]
        ak = a[t.offset : t.offset + t.q].reshape((t.nlevels, t.p) + a.shape[1:])
        bk = b[t.offset : t.offset + t.q].reshape((t.nlevels, t.p) + b.shape[1:])
        if a.ndim == 1:
            return np.einsum("la,ab,lb->", ak, s, bk)
        return np.einsum("lai,ab,lbj->ij", ak, s, bk)

    # --- A and its factor (the fit's kernel) ---------------------------------------------
    @property
    def _A(self) -> sp.csc_matrix:
        """A = Λ'Z'ZΛ + I assembled (values only: the dense per-component and Schur traces)."""
        if getattr(self, "_A_csc", None) is None:
            self._A_csc = (self.K @ self.Lam + sp.identity(self.q, format="csc")).tocsc()
        return self._A_csc

    def solve(self, B: np.ndarray) -> np.ndarray:
        """A⁻¹B, from the fitted kernel's factor."""
        B = np.asarray(B, dtype=float)
        if B.size == 0:
            return np.zeros_like(B)
        return self.kernel.solve(B)

    def M_times(self, B: np.ndarray) -> np.ndarray:
        """M B = Z'V⁻¹Z B for a q-vector or q x m matrix."""
        B = np.asarray(B, dtype=float)
        if B.size == 0:
            return np.zeros_like(B)
        out = self.ZtZ @ B - self.K.T @ self.solve(self.K @ B)
        return np.asarray(out)

    def B_times(self, v: np.ndarray) -> np.ndarray:
        """B v = ΛΛ' v."""
        return np.asarray(self.Lam @ (self.Lam.T @ v))

    # --- fixed-effects quantities ----------------------------------------------------------
    def _setup_fixed(self) -> None:
        LZX = np.asarray(self.Lam.T @ self.ZtX)
        LZy = np.asarray(self.Lam.T @ self.Zty)
        S = self.solve(np.column_stack([LZX, LZy])) if self.q else np.zeros((0, self.p + 1))
        SX, Sy = S[:, : self.p], S[:, self.p]
        self.F = self.XtX - LZX.T @ SX
        self.C = np.linalg.inv(self.F) if self.p else np.zeros((0, 0))
        self.beta = self.C @ (self.Xty - LZX.T @ Sy) if self.p else np.zeros(0)
        self.W = self.ZtX - np.asarray(self.K.T @ SX)
        Zr = self.Zty - self.ZtX @ self.beta
        LZr = Sy - SX @ self.beta  # A⁻¹Λ'Z'r
        self.g = Zr - np.asarray(self.K.T @ LZr)
        rr = self.yty - 2 * self.beta @ self.Xty + self.beta @ self.XtX @ self.beta
        self.r2 = float(rr - (LZy - LZX @ self.beta) @ LZr)

    # --- traces ----------------------------------------------------------------------------
    def trace_tensors(self):
        """(N, dg): N[k][m] (p_k,p_k,p_m,p_m) and dg[k] (p_k,p_k), see the module docstring:
        a function of the fitted kernel (``model.traces``), large components of crossed
        designs through the Schur complement of their largest term (``schur``)."""
        if getattr(self, "_tensors", None) is None:
            from .schur import schur_component

            self._tensors = trace_tensors(
                self.kernel, self, self.trace_method, schur=lambda idx, N, dg: schur_component(self, idx, N, dg)
            )
        return self._tensors

    def tr_M(self, k: int, s: np.ndarray) -> float:
        """tr(M (I⊗s)) with s on term k."""
        _, dg = self.trace_tensors()
        return float(np.sum(dg[k] * s.T))

    def tr_MSMS(self, k: int, s: np.ndarray, m: int, s2: np.ndarray) -> float:
        """tr(M (I⊗s) M (I⊗s2)) with s on term k and s2 on term m."""
        N, _ = self.trace_tensors()
        return float(np.einsum("ba,cd,abcd->", s, s2, N[k][m]))

    def term_B(self) -> list[np.ndarray]:
        """B_k = T_k T_k' per term (ΛΛ' = ⊕ I⊗B_k)."""
        return [T @ T.T for T in self.templates]

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
tr(M (I⊗s)) of the diagonal-block sums dg_k[a,b] = Σ_l M[(l,a),(l,b)].  Those are
accumulated over column chunks of M, so memory stays O(q x chunk) and the cost is one
solve with A per column of Z'Z (q·nnz(L) flops), no n x n matrix is ever formed.
Rows are sqrt-weighted for weighted fits (the weighted scale where V has that form).
Products with A⁻¹ and log|A| come from the fit's own kernel (``model.kernel``), whose factor
the fit left at θ: no second symbolic analysis or factorisation of A.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..model.kernel import fitted_kernel

__all__ = ["VarianceStructure", "variance_structure"]

CHUNK_ENTRIES = 4_000_000  # entries of one dense column chunk of M
DENSE_COMPONENT_MAX = 150  # components up to this size: batched dense algebra (larger: Schur)


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
        """(N, dg): N[k][m] (p_k,p_k,p_m,p_m) and dg[k] (p_k,p_k), see the module docstring.

        V is block diagonal over the connected components of Z'Z (e.g. one block per site in
        a nested design), and so is M.  Small components are processed as dense batched
        stacks, grouped by their number of levels per term (identical local layout); large
        ones (crossed designs) through the Schur complement of their largest term (``schur``)
        or, where that does not apply, by column chunks solved with the sparse factor of A.
        """
        if getattr(self, "_tensors", None) is not None:
            return self._tensors
        terms = self.terms
        N = [[np.zeros((tk.p, tk.p, tm.p, tm.p)) for tm in terms] for tk in terms]
        dg = [np.zeros((t.p, t.p)) for t in terms]
        from .schur import schur_component

        how = self.trace_method
        for counts, members in self._component_groups():
            if how == "dense" or (how == "auto" and int(np.sum(counts)) <= DENSE_COMPONENT_MAX):
                self._dense_components(counts, members, N, dg)
                continue
            for idx in members:
                if how in ("auto", "schur") and schur_component(self, idx, N, dg):
                    continue
                if how == "schur":
                    raise ValueError("the Schur route does not apply to this component")
                self._chunked_component(idx, N, dg)
        self._tensors = (N, dg)
        return self._tensors

    def _component_groups(self):
        """[(counts per term, (ncomp, size) array of sorted global indices)] by layout."""
        from scipy.sparse.csgraph import connected_components

        # a level's p_k columns belong together even where one of them is all zero
        same_level = self._blockdiag([np.ones((t.p, t.p)) for t in self.terms])
        ncomp, labels = connected_components(abs(self.ZtZ) + same_level, directed=False)
        term_of = np.concatenate([np.full(t.q, k) for k, t in enumerate(self.terms)])
        counts = np.zeros((ncomp, len(self.terms)), dtype=np.int64)
        np.add.at(counts, (labels, term_of), 1)
        order = np.argsort(labels, kind="stable")  # by component, then by global index
        sizes = counts.sum(axis=1)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        keys = {}
        for c in range(ncomp):
            keys.setdefault(tuple(counts[c]), []).append(c)
        out = []
        for key, comps in keys.items():
            comps = np.array(comps)
            size = int(sum(key))
            idx = order[starts[comps][:, None] + np.arange(size)[None, :]]
            out.append((np.array(key), idx))
        return out

    def _dense_components(self, counts, members, N, dg):
        """Batched dense M = Z'Z - K'A⁻¹K on components with the same layout."""
        nc, size = members.shape
        q = self.q
        per = max(1, 2_000_000 // (size * size))
        pos = np.full(q, -1, dtype=np.int64)
        slot = np.full(q, -1, dtype=np.int64)
        for b0 in range(0, nc, per):
            idx = members[b0 : b0 + per]
            nb = len(idx)
            pos[idx.ravel()] = np.tile(np.arange(size), nb)
            slot[idx.ravel()] = np.repeat(np.arange(nb), size)
            mats = []
            for S in (self.ZtZ, self.K, self._A):
                coo = S.tocoo()
                keep = slot[coo.row] >= 0
                D = np.zeros((nb, size, size))
                D[slot[coo.row[keep]], pos[coo.row[keep]], pos[coo.col[keep]]] = coo.data[keep]
                mats.append(D)
            G0, Kd, Ad = mats
            Mb = G0 - np.matmul(Kd.transpose(0, 2, 1), np.linalg.solve(Ad, Kd))
            pos[idx.ravel()] = -1
            slot[idx.ravel()] = -1
            off = np.concatenate([[0], np.cumsum(counts)])
            for k, tk in enumerate(self.terms):
                lk = counts[k] // tk.p
                if lk == 0:
                    continue
                rows = slice(off[k], off[k + 1])
                own = Mb[:, rows, rows].reshape(nb, lk, tk.p, lk, tk.p)
                ii = np.arange(lk)
                dg[k] += own[:, ii, :, ii, :].sum(axis=(0, 1))
                for m, tm in enumerate(self.terms):
                    lm = counts[m] // tm.p
                    if lm == 0:
                        continue
                    sub = Mb[:, rows, off[m] : off[m + 1]].reshape(nb, lk, tk.p, lm, tm.p)
                    N[k][m] += np.einsum("zlayc,zlbyd->abcd", sub, sub, optimize=True)

    def _chunked_component(self, idx, N, dg):
        """Columns of M for one (large) component, in chunks, through the sparse factor."""
        ZtZ, K = self.ZtZ, self.K
        for m, tm in enumerate(self.terms):
            cols_m = idx[(idx >= tm.offset) & (idx < tm.offset + tm.q)]
            if len(cols_m) == 0:
                continue
            per = max(1, CHUNK_ENTRIES // max(self.q * tm.p, 1)) * tm.p
            for c0 in range(0, len(cols_m), per):
                cols = cols_m[c0 : c0 + per]
                nl = len(cols) // tm.p
                rhs = K[:, cols].toarray(order="F")
                MJ = ZtZ[:, cols].toarray() - np.asarray(K.T @ self.solve(rhs))
                for k, tk in enumerate(self.terms):
                    Mk = MJ[tk.offset : tk.offset + tk.q]
                    if tk.p == 1 and tm.p == 1:
                        N[k][m][0, 0, 0, 0] += float(np.einsum("ij,ij->", Mk, Mk))
                    else:
                        Mk = Mk.reshape(tk.nlevels, tk.p, nl, tm.p)
                        N[k][m] += np.einsum("lanc,lbnd->abcd", Mk, Mk, optimize=True)
                own = MJ[cols].reshape(nl, tm.p, nl, tm.p)
                ii = np.arange(nl)
                dg[m] += own[ii, :, ii, :].sum(axis=0)

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

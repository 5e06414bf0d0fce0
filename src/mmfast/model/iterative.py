"""The opt-in iterative PLS kernel for large crossed models of scalar terms
(``LmmControl(solver="iterative")``): no Cholesky factor of A = Λ'Z'ZΛ + I is ever formed.

The term with most levels (e) is eliminated exactly: its block A_ee is diagonal (a row has
one level of it).  What is left is the Schur complement S = A_rr - A_re A_ee⁻¹ A_er on the
other terms' levels, applied in one pass over the cross-product block Z_e'Z_r
(``crossblock``, threaded).  The levels of S are split into the largest remaining term and
any further small terms (s: at most ``IterativeControl.exact_max`` levels together), and
S = [[S_bb, S_bs], [S_sb, S_ss]] is eliminated blockwise: the small block's Schur complement
Ŝ = S_ss - S_sb S_bb⁻¹ S_bs is formed densely (its columns S_bb⁻¹ S_bs are solved in the
same PCG run) and factored exactly, so the estimate's noise never reaches a term with few
levels (a 28-level third term was off by 4e-2 in θ when it shared the estimated block).
One batched PCG run (Jacobi preconditioner P = diag S_bb, ``krylov``) solves S_bb for the
columns of Λ'Z'[X y] and S_bs and, on fixed Rademacher probes, estimates log|S_bb| by
stochastic Lanczos quadrature, so that

    log|A| = Σ log diag(A_ee) + log|Ŝ| + log|P| + log|P^{-1/2} S_bb P^{-1/2}|   (the last estimated),

and M = W'W - B'A⁻¹B as the exact kernels give it: ``LinearMixedModel`` turns these into
the profiled criterion (``criterion.py``) exactly as for the exact kernels.  The probes are
drawn once (``IterativeControl.seed``): every evaluation uses the same ones, so the estimate
is a smooth function of θ and BOBYQA can minimise it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_solve, cholesky

from ..errors import FitError, FormulaError
from .control import IterativeControl
from .criterion import profile_of_m
from .crossblock import CrossBlock
from .krylov import pcg_lanczos, rademacher, slq_logdet

__all__ = ["IterativeKernel"]


class IterativeKernel:
    """The kernel contract (``kernel.Kernel``) by PCG and SLQ for scalar random-effects terms.

    ``update`` returns (log|A| estimated, M); ``solve`` and ``conditional_modes`` are PCG
    solves; the blocks of A⁻¹ (``selinv_blocks``) are not available on this path."""

    def __init__(self, blocks, terms, options: IterativeControl | None = None):
        if any(t.p != 1 for t in terms):
            raise FormulaError(
                "the iterative solver takes scalar random-effects terms only, e.g. (1 | g) or (0 + x | g)"
            )
        self.options = IterativeControl() if options is None else options
        self.q, self.ncol, self.tsize = int(blocks.q), int(blocks.ZtW.shape[1]), len(terms)
        sizes = np.array([t.q for t in terms])
        self.elim = int(np.argmax(sizes))
        uterm = np.repeat(np.arange(len(terms)), sizes)  # term of each u (scalar: u = level)
        self._uterm = uterm
        self._ie = np.flatnonzero(uterm == self.elim)
        self._ir = np.flatnonzero(uterm != self.elim)
        pos = np.empty(self.q, dtype=np.int64)
        pos[self._ie] = np.arange(len(self._ie))
        pos[self._ir] = np.arange(len(self._ir))
        row = blocks.blk_start[blocks.pair_row].astype(np.int64)
        col = blocks.blk_start[blocks.pair_col].astype(np.int64)
        V = blocks.V
        diag = row == col
        self._de = np.zeros(len(self._ie))  # Z_e'Z_e: diagonal
        e_diag = diag & (uterm[row] == self.elim)
        self._de[pos[row[e_diag]]] = V[e_diag]
        ne, nr = len(self._ie), len(self._ir)
        # r x e cross-products (one of the pair's levels in e, the other in the rest)
        re = ~diag & ((uterm[row] == self.elim) != (uterm[col] == self.elim))
        rr_, cc_ = row[re], col[re]
        e_first = uterm[rr_] == self.elim
        rsel, esel = np.where(e_first, cc_, rr_), np.where(e_first, rr_, cc_)
        self.cross = CrossBlock(sp.csr_matrix((V[re], (pos[esel], pos[rsel])), shape=(ne, nr)))
        # r x r cross-products: diagonal and pairs of different rest terms (symmetric, full)
        rr = (uterm[row] != self.elim) & (uterm[col] != self.elim)
        r0, c0, v0 = pos[row[rr]], pos[col[rr]], V[rr]
        off = r0 != c0
        self._Vrr = sp.csr_matrix(
            (np.concatenate([v0, v0[off]]), (np.concatenate([r0, c0[off]]), np.concatenate([c0, r0[off]]))),
            shape=(nr, nr),
        )
        self._Vrr_diag = self._Vrr.diagonal()
        self.ZtW = np.asarray(blocks.ZtW)
        self.WtW = np.asarray(blocks.WtW)
        small = _small_terms(sizes, self.elim, self.options.exact_max)
        in_s = np.isin(uterm[self._ir], small)
        self._rb, self._rs = np.flatnonzero(~in_s), np.flatnonzero(in_s)  # positions within the rest
        nb = len(self._rb)
        self._probes = rademacher(nb, self.options.probes, self.options.seed) if nb else np.zeros((0, 0))
        self._T = None
        self._logdet = np.inf
        self.X = None  # A⁻¹B at the last update, u's global order
        self.steps = 0  # PCG steps of the last update (what an evaluation cost)

    # --- the operator at θ ---------------------------------------------------------------
    def _at_theta(self, T: np.ndarray):
        """θ per u (rest), θ_e, and the diagonals of A_ee and of S at T."""
        T = np.asarray(T, dtype=float)
        if len(T) != self.tsize:
            raise FitError(f"templates of length {len(T)} given, the model has {self.tsize}")
        th_e = float(T[self.elim])
        th_r = T[self._uterm[self._ir]]
        aee = 1.0 + th_e * th_e * self._de
        w = th_e * th_e / aee
        sdiag = 1.0 + th_r * th_r * (self._Vrr_diag - self.cross.scatter(w[:, None], squared=True)[:, 0])
        return th_e, th_r, aee, w, sdiag

    def _schur(self, th_r: np.ndarray, w: np.ndarray):
        """S·V for an nr x k block V: A_rr V - A_re A_ee⁻¹ A_er V."""
        Vrr, cross = self._Vrr, self.cross

        def matvec(Y: np.ndarray) -> np.ndarray:
            tY = th_r[:, None] * Y
            out = Vrr @ tY - cross.sandwich(w, tY)
            return Y + th_r[:, None] * out

        return matvec

    def _solve(self, T: np.ndarray, Bm: np.ndarray, probes: bool):
        """A⁻¹Bm (q x k, u's order) and, with ``probes``, the SLQ estimate of log|A|."""
        th_e, th_r, aee, w, sdiag = self._at_theta(T)
        if not np.all(sdiag > 0):
            raise FitError("the Schur complement of the iterative solver has a non-positive diagonal")
        Be, Br = Bm[self._ie], Bm[self._ir]
        # A_er = θ_e Θ_r V_re, so A_re A_ee⁻¹ B_e = Θ_r V_re (θ_e B_e / a_ee)
        Bt = Br - th_r[:, None] * self.cross.scatter((th_e / aee)[:, None] * Be)
        k = Bm.shape[1]
        Xr, res, ld_s = self._rest_solve(self._schur(th_r, w), sdiag, Bt, probes)
        Xe = (Be - th_e * self.cross.gather(th_r[:, None] * Xr)) / aee[:, None]
        X = np.empty_like(Bm, dtype=float)
        X[self._ie], X[self._ir] = Xe, Xr
        self.steps = res.steps
        if not probes:
            return X, None
        nb, ns = len(self._rb), len(self._rs)
        ld = float(np.sum(np.log(aee)) + np.sum(np.log(sdiag[self._rb]))) + ld_s
        if nb:
            ld += slq_logdet(res, slice(k + ns, k + ns + self._probes.shape[1]), nb)
        return X, ld

    def _rest_solve(self, schur, sdiag: np.ndarray, Bt: np.ndarray, probes: bool):
        """S⁻¹Bt by blocks (see the module docstring): one PCG run on S_bb for [Bt_b, S_bs,
        probes], then the small block exactly.  (S⁻¹Bt, the PCG result, log|Ŝ|)."""
        rb, rs, k = self._rb, self._rs, Bt.shape[1]
        nr, ns = len(sdiag), len(rs)
        opt = self.options
        if ns == 0:
            rhs = np.hstack([Bt, np.sqrt(sdiag)[:, None] * self._probes]) if probes else Bt
            res = pcg_lanczos(schur, 1.0 / sdiag, rhs, k, opt.cg_tol, opt.probe_tol, opt.max_steps)
            return res.X, res, 0.0
        E = np.zeros((nr, ns))
        E[rs, np.arange(ns)] = 1.0
        SE = schur(E)  # S's columns at the small levels: S_bs (rows b), S_ss (rows s)
        Sbs, Sss = SE[rb], SE[rs]

        def schur_bb(Y):
            full = np.zeros((nr, Y.shape[1]))
            full[rb] = Y
            return schur(full)[rb]

        cols = [Bt[rb], Sbs] + ([np.sqrt(sdiag[rb])[:, None] * self._probes] if probes else [])
        res = pcg_lanczos(schur_bb, 1.0 / sdiag[rb], np.hstack(cols), k + ns, opt.cg_tol, opt.probe_tol, opt.max_steps)
        Yb, Wb = res.X[:, :k], res.X[:, k:]  # S_bb⁻¹ Bt_b, S_bb⁻¹ S_bs
        Shat = Sss - Sbs.T @ Wb
        try:
            L = cholesky(0.5 * (Shat + Shat.T), lower=True)
        except np.linalg.LinAlgError:
            raise FitError(
                "the small terms' Schur complement of the iterative solver is not positive definite"
            ) from None
        xs = cho_solve((L, True), Bt[rs] - Sbs.T @ Yb)
        Xr = np.empty((nr, k))
        Xr[rb], Xr[rs] = Yb - Wb @ xs, xs
        return Xr, res, 2.0 * float(np.sum(np.log(np.diag(L))))

    # --- the kernel contract -------------------------------------------------------------
    @property
    def logdet(self) -> float:
        """log|A| (estimated) at the last update."""
        return self._logdet

    def update(self, T):
        """(log|A|, M = W'W - B'A⁻¹B) at T, B = Λ'Z'W; (inf, None) if PCG breaks down."""
        T = np.array(T, dtype=float)
        lam = T[self._uterm]
        B = lam[:, None] * self.ZtW
        try:
            X, ld = self._solve(T, B, probes=True)
        except FitError:
            self._T, self._logdet, self.X = None, np.inf, None
            return np.inf, None
        M = self.WtW - B.T @ X
        M = 0.5 * (M + M.T)
        self._T, self._logdet, self.X = T, ld, X
        return ld, M

    def profiled(self, T):
        """(log|A|, log|R_X|², r²) at T, or None (as the exact kernels)."""
        ld, M = self.update(T)
        prof = None if M is None else profile_of_m(M)
        return None if prof is None else (ld, prof[0], prof[1])

    def solve(self, B):
        """A⁻¹B (q-vector or q x m) at the last update's θ, by PCG."""
        if self._T is None:
            raise FitError("the iterative kernel holds no θ: call update first")
        B = np.asarray(B, dtype=float)
        X, _ = self._solve(self._T, B.reshape(self.q, -1), probes=False)
        return X.reshape(B.shape)

    def conditional_modes(self, beta):
        """Spherical modes u = A⁻¹(Λ'Z'y - Λ'Z'X β) from the last update."""
        p = self.ncol - 1
        beta = np.asarray(beta, dtype=float)
        if len(beta) != p:
            raise FitError(f"beta has length {len(beta)}, the model has {p} fixed effects")
        return self.X[:, p] - self.X[:, :p] @ beta

    def at(self, T) -> bool:
        """Whether the last update was at T."""
        return self._T is not None and np.array_equal(self._T, np.asarray(T, dtype=float))

    def factor_at(self, T):
        """This kernel, updated at T unless it is there."""
        if not self.at(T):
            self.update(T)
        return self

    def selinv_blocks(self, terms):
        raise FitError(
            "the iterative solver has no factor of A, so no blocks of its inverse (conditional variances, "
            "Satterthwaite/Kenward-Roger): refit with the exact solver for those"
        )

    def reweight(self, V, ZtW, WtW):
        raise FitError("the iterative solver is for linear mixed models only")


def _small_terms(sizes: np.ndarray, elim: int, exact_max: int) -> list[int]:
    """The terms besides ``elim`` and the largest other one whose levels, smallest first, add
    up to at most ``exact_max``: the block of S solved exactly (see the module docstring)."""
    rest = [k for k in np.argsort(sizes, kind="stable").tolist() if k != elim][:-1]
    out, total = [], 0
    for k in rest:
        total += int(sizes[k])
        if total > exact_max:
            break
        out.append(k)
    return out

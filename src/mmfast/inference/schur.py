"""Trace tensors of one large component of V through the Schur complement of A (crossed designs).

In a component, the levels of the largest term F never meet each other in Z'Z, so
A = [[A_FF, A_RF'], [A_RF, A_RR]] has a block-diagonal A_FF (blocks p_F x p_F) and
the Schur complement S = A_RR - A_RF A_FF⁻¹ A_RF' is only as large as the other terms
(InstEval: 1156 against 4128).  With D = A_FF⁻¹, U = A_RF D (sparse) and H = S⁻¹U:

    A⁻¹ = [[D + U'S⁻¹U, -H'], [-H, S⁻¹]],      R := I - A⁻¹.

When every template T_k is invertible, Λ'MΛ = I - A⁻¹ gives M = Λ⁻ᵀRΛ⁻¹, so the tensors
of M (see ``structure``) are those of R transformed by T_k⁻¹ on each index.  R's blocks:
R_RR = I - S⁻¹ and R_RF = H are dense and small; R_FF = E - G with E = I - D block diagonal
and G = U'S⁻¹U never formed: its contraction Σ_{l,l'} G[(l,a),(l',c)] G[(l,b),(l',d)] is
tr(H_c U_d' H_b U_a') (U_a: the columns of U for component a of F's levels).  The cost is
O(q_R³) instead of the O(q · nnz(L)) of solving for every column of M.  Where the component
is all of u and F the first term, S is the blocked kernel's dense part and S⁻¹ comes from the
factor the fit left (no second factorisation); otherwise S is formed and factored here.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve

__all__ = ["schur_component", "SCHUR_MAX", "MIN_TEMPLATE_DIAG"]

SCHUR_MAX = 4000  # largest Schur complement handled densely
MIN_TEMPLATE_DIAG = 1e-3  # smaller template diagonals: Λ⁻¹ too ill-conditioned, use M directly


def _nt(R: np.ndarray, pk: int, pm: int) -> np.ndarray:
    """Σ_{l,l'} R[(l,a),(l',c)] R[(l,b),(l',d)] for a dense block R (Lk*pk x Lm*pm)."""
    if pk == 1 and pm == 1:
        return np.full((1, 1, 1, 1), float(np.einsum("ij,ij->", R, R)))
    Rk = R.reshape(R.shape[0] // pk, pk, R.shape[1] // pm, pm)
    return np.einsum("lanc,lbnd->abcd", Rk, Rk, optimize=True)


def _fitted_schur_inverse(vs, k0: int, Ri: np.ndarray):
    """S⁻¹ on the indices Ri from the fit's blocked kernel, whose dense part is this Schur
    complement when the component is all of u and F the first term; else None."""
    kern = vs.model.kernel
    if k0 != 0 or not hasattr(kern, "schur_inverse") or kern.dense_size != len(Ri) or vs.terms[0].q + len(Ri) != vs.q:
        return None
    kern = vs.kernel
    pos = np.asarray(kern.perm_rows)[Ri] - (vs.q - len(Ri))  # internal rows of the dense part
    return kern.schur_inverse()[np.ix_(pos, pos)]


def schur_component(vs, idx: np.ndarray, N, dg) -> bool:
    """Add the component's contributions to N and dg; False if the method does not apply."""
    terms = vs.terms
    term_of = np.concatenate([np.full(t.q, k) for k, t in enumerate(terms)])[idx]
    present = sorted(set(term_of.tolist()))
    if any(np.min(np.abs(np.diag(vs.templates[k]))) < MIN_TEMPLATE_DIAG for k in present):
        return False
    k0 = max(present, key=lambda k: int(np.sum(term_of == k)))
    p0 = terms[k0].p
    Fi, Ri = idx[term_of == k0], idx[term_of != k0]
    q2 = len(Ri)
    if q2 > SCHUR_MAX or q2 == 0:
        return False
    A = vs._A.tocsr()
    nl0 = len(Fi) // p0
    # block-diagonal A_FF and its inverse D
    AFF = A[Fi][:, Fi].tocoo()
    if np.any(AFF.row // p0 != AFF.col // p0):
        return False
    blocks = np.zeros((nl0, p0, p0))
    blocks[AFF.row // p0, AFF.row % p0, AFF.col % p0] = AFF.data
    Dblk = np.linalg.inv(blocks)
    D = sp.block_diag(list(Dblk), format="csr") if p0 > 1 else sp.diags(Dblk[:, 0, 0], format="csr")
    ARF = A[Ri][:, Fi]
    U = (ARF @ D).tocsc()
    Sinv = _fitted_schur_inverse(vs, k0, Ri)
    if Sinv is None:  # several components, or a kernel without this dense part: factor S here
        S = A[Ri][:, Ri].toarray() - (U @ ARF.T).toarray()
        Sinv = cho_solve(cho_factor(S, lower=True), np.eye(q2))
    H = np.asarray((U.T @ Sinv).T)  # S⁻¹U, q2 x q1
    # local layout of R's indices: term-major, level-major
    rterms = [k for k in present if k != k0]
    pos = {k: np.flatnonzero(term_of[term_of != k0] == k) for k in rterms}
    Rrr = np.eye(q2) - Sinv
    Nt = {}
    dgt = {}
    for k in rterms:
        pk = terms[k].p
        own = Rrr[np.ix_(pos[k], pos[k])]
        lk = len(pos[k]) // pk
        o = own.reshape(lk, pk, lk, pk)
        ii = np.arange(lk)
        dgt[k] = o[ii, :, ii, :].sum(axis=0)
        for m in rterms:
            Nt[(k, m)] = _nt(Rrr[np.ix_(pos[k], pos[m])], pk, terms[m].p)
        Nt[(k, k0)] = _nt(H[pos[k]], pk, p0)
        Nt[(k0, k)] = Nt[(k, k0)].transpose(2, 3, 0, 1)
    # the F-F block: R_FF = E - G
    E = np.eye(p0)[None] - Dblk
    Gd = np.empty((nl0, p0, p0))
    HU = [[None] * p0 for _ in range(p0)]
    for a in range(p0):
        Ua = U[:, a::p0]
        for c in range(p0):
            Hc = H[:, c::p0]
            Gd[:, a, c] = np.asarray(Ua.multiply(Hc).sum(axis=0)).ravel()
            HU[c][a] = np.asarray((Ua @ Hc.T).T)  # H_c U_a', q2 x q2
    t1 = np.einsum("lac,lbd->abcd", E, E)
    t2 = np.einsum("lac,lbd->abcd", E, Gd) + np.einsum("lac,lbd->abcd", Gd, E)
    t3 = np.empty((p0, p0, p0, p0))
    for a in range(p0):
        for b in range(p0):
            for c in range(p0):
                for d in range(p0):
                    t3[a, b, c, d] = np.sum(HU[c][d] * HU[b][a].T)
    Nt[(k0, k0)] = t1 - t2 + t3
    dgt[k0] = (E - Gd).sum(axis=0)
    # back from R to M = Λ⁻ᵀ R Λ⁻¹
    Tinv = {k: np.linalg.inv(vs.templates[k]) for k in present}
    for (k, m), val in Nt.items():
        N[k][m] += np.einsum("ia,jb,kc,ld,ijkl->abcd", Tinv[k], Tinv[k], Tinv[m], Tinv[m], val, optimize=True)
    for k, val in dgt.items():
        dg[k] += Tinv[k].T @ val @ Tinv[k]
    return True

"""Kenward-Roger (1997) adjusted covariance of β̂ and denominator df, as pbkrtest computes them.

The covariance Σ = Σ_r γ_r G_r is linear in γ = (the entries of every term's covariance
matrix, σ²): G_r = Z (I_ℓ ⊗ E_r) Z' for a term entry (E_r the symmetric elementary matrix)
and G = I for σ².  With Φ = Var(β̂) (REML), pbkrtest's ingredients are

    P_r = -X'Σ⁻¹G_rΣ⁻¹X,   Q_rs = X'Σ⁻¹G_rΣ⁻¹G_sΣ⁻¹X,   K_rs = tr(Σ⁻¹G_rΣ⁻¹G_s),
    I_rs = K_rs - 2 tr(ΦQ_rs) + tr(ΦP_rΦP_s)   (twice the REML information),
    W = 2 I⁻¹,   U = Σ_rs W_rs (Q_rs - P_rΦP_s),   Φ_A = Φ + 2ΦUΦ.

pbkrtest forms the n x n Σ⁻¹.  Here Σ = σ²V and every piece is q-dimensional
(``structure``): X'V⁻¹G_rV⁻¹X = W'D_rW, X'V⁻¹G_rV⁻¹G_sV⁻¹X = W'D_rMD_sW, Z'V⁻²X = W - MBW,
X'V⁻²X = F - W'BW, X'V⁻³X = F - 2W'BW + W'BMBW, K_rs = tr(MD_rMD_s),
tr(D_rZ'V⁻²Z) = tr(D_rM) - tr(D_rMBM), tr V⁻² = n - 2tr(MB) + tr(MBMB) (D_r = I⊗E_r).

The F is the shared Wald F (``wald``) on Φ_A, then scaled.  The df for a contrast L (q rows,
pbkrtest's full-row-rank reduction) follows Kenward & Roger's moment matching: with
Θ = L'(LΦL')⁻¹L (``wald.Directions.metric``), A1 = Σ W_rs tr(ΘΦP_rΦ) tr(ΘΦP_sΦ),
A2 = Σ W_rs tr(ΘΦP_rΦΘΦP_sΦ), ...
KR is defined for REML fits: an ML fit is refitted by REML first (as pbkrtest does).

Structured terms (``diag``, ``cs``, ``ar1``, ``toep``, ``ou``; ``design.structures``) enter with
τ = (their variances, their correlation parameters φ) and G_r = Z (I_ℓ ⊗ ∂Σ_k/∂τ_r) Z'
(``covariance_directions``).  This is the first-order ("linear") KR: Kenward & Roger's (1997)
Φ_A also has -¼ R_rs, R_rs = X'Σ⁻¹(∂²Σ/∂τ_r∂τ_s)Σ⁻¹X, which vanishes for pbkrtest's linear τ
but not for a nonlinear one.  Without it every ingredient (P_r, Q_rs, the expected information)
transforms as a tensor, so Φ_A, the df and the F scaling are the same for any smooth one-to-one
reparametrisation of τ: an lme4-equivalent structure (``diag`` = ``(x || g)``, ``homcs`` =
``(1 | g) + (1 | g:f)``) gives pbkrtest's numbers.  With R_rs the answer would depend on the
chosen parametrisation (SDs or variances, ρ or φ), so it is left out (mmrm's "Kenward-Roger-Linear",
SAS's ``DDFM=KR(FIRSTORDER)``).  The variance scale (rather than SDs) keeps the Jacobian regular
at a zero variance, where pbkrtest's entry parametrisation is too.
"""

from __future__ import annotations

import numpy as np
from .structure import variance_structure
from .wald import WaldTest, directions, f_pvalue, wald_test

__all__ = ["KenwardRoger"]


class KenwardRoger:
    """Adjusted covariance Φ_A and KR df/F tests for one LMM (refitted by REML if it is ML)."""

    def __init__(self, model):
        self.original = model
        self.refitted = not model.reml
        m = model.refit_formula(model.frame.parsed.formula, reml=True) if self.refitted else model
        self.model = m
        vs = variance_structure(m)
        sigma = float(m.sigma)
        s2 = sigma**2
        C, W = vs.C, vs.W
        p = vs.p
        Bk = vs.term_B()
        re = covariance_directions(m, sigma)  # (term, ∂Σ_k/∂τ_r)
        nre = len(re)
        ng = nre + 1
        DW = [vs.term_apply(k, E, W) for k, E in re]  # D_r W
        MDW = np.split(vs.M_times(np.column_stack(DW)), nre, axis=1) if nre and p else [np.zeros_like(W)] * nre
        BW = vs.B_times(W)
        MBW = vs.M_times(BW)
        W2 = W - MBW  # Z'V⁻²X
        # relative (σ = 1) pieces, then scaled
        P = [-(DW[r].T @ W) for r in range(nre)] + [-(vs.F - W.T @ BW)]
        Q = [[None] * ng for _ in range(ng)]
        for r in range(nre):
            for s in range(nre):
                Q[r][s] = DW[r].T @ MDW[s]
            Q[r][nre] = DW[r].T @ W2
            Q[nre][r] = Q[r][nre].T
        Q[nre][nre] = vs.F - 2.0 * W.T @ BW + BW.T @ MBW
        K = np.empty((ng, ng))
        for r, (kr, Er) in enumerate(re):
            for s in range(r, nre):
                ks, Es = re[s]
                K[r, s] = K[s, r] = vs.tr_MSMS(kr, Er, ks, Es)
            K[r, nre] = K[nre, r] = vs.tr_M(kr, Er) - sum(vs.tr_MSMS(kr, Er, m2, Bk[m2]) for m2 in range(len(vs.terms)))
        K[nre, nre] = (
            vs.n
            - 2.0 * sum(vs.tr_M(k, Bk[k]) for k in range(len(vs.terms)))
            + sum(vs.tr_MSMS(k, Bk[k], m2, Bk[m2]) for k in range(len(vs.terms)) for m2 in range(len(vs.terms)))
        )
        Phi = s2 * C
        P = [Pr / s2**2 for Pr in P]
        Q = [[Q[r][s] / s2**3 for s in range(ng)] for r in range(ng)]
        K = K / s2**2
        IE2 = np.empty((ng, ng))
        for r in range(ng):
            for s in range(r, ng):
                IE2[r, s] = IE2[s, r] = K[r, s] - 2.0 * np.sum(Phi * Q[r][s].T) + np.sum((Phi @ P[r]) * (Phi @ P[s]).T)
        ev = np.linalg.eigvalsh((IE2 + IE2.T) / 2)
        self.condition = float(np.min(np.abs(ev)))
        # pbkrtest inverts unless min |eigenvalue| <= 1e-10 (absolute); an information matrix that
        # is singular to rounding (relative 1e-10: a non-identifiable model) is pseudo-inverted
        # here, else W would be rounding noise amplified 1e10-fold
        singular = self.condition <= 1e-10 or self.condition <= 1e-10 * float(np.max(np.abs(ev)))
        Wg = 2.0 * (np.linalg.pinv(IE2, rcond=1e-10, hermitian=True) if singular else np.linalg.inv(IE2))
        U = np.zeros((p, p))
        for r in range(ng):
            for s in range(ng):
                U += Wg[r, s] * (Q[r][s] - P[r] @ Phi @ P[s])
        self.Phi = Phi
        self.vcov_adjusted = Phi + 2.0 * Phi @ U @ Phi
        self.P, self.W, self.information = P, Wg, IE2
        self.beta = np.asarray(m.beta, dtype=float)
        self.sigma = sigma

    # --- Kenward & Roger's df ----------------------------------------------------------------
    def _moments(self, L: np.ndarray, q: int):
        """(df, F scaling) for the hypothesis L β = 0 with q = rank(L)."""
        Phi = self.Phi
        Theta = directions(L, Phi).metric()  # L'(LΦL')⁻¹L
        Us = [Theta @ Phi @ Pr @ Phi for Pr in self.P]
        tr = np.array([np.trace(u) for u in Us])
        A1 = float(tr @ self.W @ tr)
        A2 = float(sum(self.W[r, s] * np.sum(Us[r] * Us[s].T) for r in range(len(Us)) for s in range(len(Us))))
        B = (A1 + 6.0 * A2) / (2.0 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        V0, V1, V2 = 1 + c1 * B, 1 - c2 * B, 1 - c3 * B
        if abs(V0) < 1e-10:
            V0 = 0.0
        x = 1 - A2 / q
        ratio = 1.0 if (abs(x) < 1e-14 and abs(V1) < 1e-14) else x / V1
        rho = ratio**2 * V0 / (q * V2)
        df2 = 4 + (q + 2) / (q * rho - 1)
        scale = 1.0 if abs(df2 - 2) < 0.01 else df2 * (1 - A2 / q) / (df2 - 2)
        return df2, scale

    def t_test(self, L: np.ndarray) -> tuple[float, float, float]:
        """(estimate, adjusted SE, df) for one contrast."""
        L = np.asarray(L, dtype=float).reshape(1, -1)
        df, _ = self._moments(L, 1)
        est = float((L @ self.beta)[0])
        return est, float(np.sqrt((L @ self.vcov_adjusted @ L.T)[0, 0])), float(df)

    def f_test(self, L: np.ndarray, rhs=0.0) -> dict:
        """pbkrtest's F test of L β = rhs (lmerTest's table: MS from the unscaled F)."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        rhs = np.broadcast_to(np.asarray(rhs, dtype=float), (L.shape[0],))
        keep = _full_row_rank(L)
        L, rhs = L[keep], rhs[keep]
        q = L.shape[0]
        df2, scale = self._moments(L, q)
        unscaled = wald_test(self.beta, self.vcov_adjusted, L, df=df2, rhs=rhs)
        F = scale * unscaled.F  # KR's scaled F on (q, df2); Sum/Mean Sq from the unscaled one
        res = WaldTest(F, unscaled.numdf, df2, f_pvalue(F, unscaled.numdf, df2))
        return res.anova_row(self.sigma, F_ms=unscaled.F)


def covariance_directions(model, sigma: float) -> list[tuple[int, np.ndarray]]:
    """Per covariance parameter τ_r of the random-effect terms: (term k, ∂Σ_k/∂τ_r), Σ_k = σ²T_kT_k'
    the term's absolute covariance.  ``us`` terms: pbkrtest's τ, Σ_k's entries (E_r, symmetric
    elementary); structured terms: their variances and correlation parameters φ
    (``Structured.variance_directions``)."""
    out = []
    theta = np.asarray(model.theta, dtype=float)
    for k, (t, sl) in enumerate(zip(model.frame.terms, model.layout.slices)):
        if not t.param.linear:
            out += [(k, S) for S in t.param.variance_directions(theta[sl], sigma)]
            continue
        for a, b in zip(t.param.rows.tolist(), t.param.cols.tolist()):  # θ's order
            E = np.zeros((t.p, t.p))
            E[a, b] = E[b, a] = 1.0
            out.append((k, E))
    return out


def _full_row_rank(L: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Indices of rows spanning L's row space (pivoted QR of L'), as pbkrtest's force_full_rank."""
    from scipy.linalg import qr

    if L.shape[0] <= 1:
        return np.arange(L.shape[0])
    _, R, piv = qr(L.T, pivoting=True, mode="economic")
    d = np.abs(np.diag(R))
    rank = int(np.sum(d > tol * d[0])) if d.size and d[0] > 0 else 0
    return np.sort(piv[:rank])

"""Many responses, one design, one scalar random-effects term: every fit at once, in arrays.

For ``y ~ X + (z | g)`` with a single scalar term (``(1 | g)``, ``(0 + x | g)``) the
relative covariance factor is θ on every level and, with t = θ², A = Λ'Z'ZΛ + I is
diagonal: A_l = 1 + t m_l with m_l = Σ_{i in l} z_i².  In an orthonormal basis Q of X
(X = Q R_b) and on the OLS residual e = y - QQ'y (as the LMM kernel works; the criterion is
invariant to both) everything the profiled criterion needs comes from per-level sums
s_l = Σ z_i Q_i (shared by all responses) and e_l = Σ z_i e_i (one per response):

    c_l = t / (1 + t m_l),   F = I - Σ c_l s_l s_l',   b = -Σ c_l e_l s_l,
    e'V⁻¹e = e'e - Σ c_l e_l²,   r² = e'V⁻¹e - b'F⁻¹b,
    REML: dR(t) = Σ log(1 + t m_l) + log|F| + log|R_b|² + ν (1 + log(2π r²/ν)),  ν = n - p
    ML:   d(t)  = Σ log(1 + t m_l) + n (1 + log(2π r²/n))

which is exactly lme4's criterion (``LinearMixedModel.objective``) at θ = √t.  Its first
and second derivatives in t are closed forms in the same sums (c_l' = 1/(1 + t m_l)²,
c_l'' = -2 m_l/(1 + t m_l)³; r² is a Schur complement, so with a = F⁻¹b, w = b' - F'a:
r²' = e'V⁻¹e' - 2b''a + a'F'a and r²'' = e'V⁻¹e'' - 2b'''a + a'F''a - 2w'F⁻¹w).

The minimiser: the criterion and dR/dt on a log grid of t (plus t = 0) for all responses at
once (on a fixed t all but e is shared, so this is one matrix product), then, from where
dR/dt interpolates to 0 in the bracket around the grid minimum, a safeguarded Newton
iteration on dR/dt for each response (in log t; bisection when a step leaves the bracket)
to a relative tolerance of 1e-11 in t: about 5 iterations.  dR/dt(0) >= 0 with the grid
minimum at 0 is a boundary (singular) fit, θ = 0 exactly.  Responses this cannot settle
(the minimum beyond the grid, a bracket with several stationary points) are flagged for
the general path.

Satterthwaite's df (lmerTest's method, as ``mmfast.inference.derivatives`` computes it
exactly) follow from the same derivatives: the deviance Hessian in φ = (θ, σ) and the
Jacobian of Var(β̂) = σ² F⁻¹ (mapped back through R_b).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import stdtr

from ..model.criterion import profiled_deviance
from ..model.one_term import OneTermKernel

__all__ = ["ScalarDesign", "scalar_design", "fit_scalar", "FitArrays"]

GRID = np.concatenate([[0.0], np.logspace(-5, 5, 26)])  # t = θ², factor ~2.5 between points
RTOL_T = 1e-11  # Newton stops when a step changes t by less than this, relatively
MAXIT = 200
EIG_TOL = 1e-8  # lmerTest's tolerance for the eigenvalues of the deviance Hessian


@dataclass
class ScalarDesign:
    """What the per-level sums need from one design: Q, R_b, the z-weighted level indicator."""

    Q: np.ndarray  # (n, p) orthonormal basis of X
    Rb_inv: np.ndarray  # (p, p) with X = Q R_b
    logdetRb2: float
    Zind: np.ndarray  # (n, L): z_i at (i, level of row i)
    m: np.ndarray  # (L,) Σ z_i² per level
    S: np.ndarray  # (L, p) Σ z_i Q_i per level
    SSt: np.ndarray  # (p*p, L) outer products s_l s_l', flattened
    reml: bool
    response: str = "y"

    @property
    def n(self) -> int:
        return self.Q.shape[0]

    @property
    def p(self) -> int:
        return self.Q.shape[1]

    @property
    def nu(self) -> int:
        return self.n - self.p if self.reml else self.n

    def kernel(self, y: np.ndarray) -> OneTermKernel:
        """The kernel interface for one response y (``model.one_term``; p = 1, G_l = m_l): the
        algebra ``evaluate`` batches over responses, in the same basis (Q, OLS residual)."""
        e = y - self.Q @ (self.Q.T @ y)
        WtW = np.zeros((self.p + 1, self.p + 1))
        WtW[: self.p, : self.p] = np.eye(self.p)
        WtW[self.p, self.p] = e @ e
        return OneTermKernel(self.m[:, None, None], np.column_stack([self.S, self.Zind.T @ e]), WtW)


def scalar_design(
    X: np.ndarray, z: np.ndarray, codes: np.ndarray, nlevels: int, reml: bool, response: str = "y"
) -> ScalarDesign:
    """The shared part of the fits from the fixed-effects matrix and the term's column/codes."""
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    if p:
        Q, Rb = np.linalg.qr(X)
        Rb_inv = np.linalg.inv(Rb)
        logdetRb2 = 2.0 * float(np.sum(np.log(np.abs(np.diag(Rb)))))
    else:
        Q, Rb_inv, logdetRb2 = np.zeros((n, 0)), np.zeros((0, 0)), 0.0
    z = np.asarray(z, dtype=float)
    Zind = np.zeros((n, nlevels))
    Zind[np.arange(n), codes] = z
    S = Zind.T @ Q
    SSt = np.ascontiguousarray((S[:, :, None] * S[:, None, :]).reshape(nlevels, p * p).T)
    return ScalarDesign(
        Q=np.ascontiguousarray(Q),
        Rb_inv=Rb_inv,
        logdetRb2=logdetRb2,
        Zind=Zind,
        m=np.bincount(codes, weights=z * z, minlength=nlevels),
        S=S,
        SSt=SSt,
        reml=bool(reml),
        response=response,
    )


# --- small symmetric matrices stored (p, p, G): one matrix per response, loops over p only ---
def _spd_inverse(F: np.ndarray):
    """F⁻¹ and log|F| by Cholesky, for a stack (p, p, G) of SPD matrices (NaN if not PD)."""
    p, G = F.shape[0], F.shape[2]
    if p == 0:
        return F.copy(), np.zeros(G)
    Lc = np.zeros_like(F)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(p):
            s = F[j, j] - np.sum(Lc[j, :j] ** 2, axis=0)
            Lc[j, j] = np.sqrt(s)
            for i in range(j + 1, p):
                Lc[i, j] = (F[i, j] - np.sum(Lc[i, :j] * Lc[j, :j], axis=0)) / Lc[j, j]
        Li = np.zeros_like(F)  # L⁻¹, lower triangular
        for j in range(p):
            Li[j, j] = 1.0 / Lc[j, j]
            for i in range(j + 1, p):
                Li[i, j] = -np.sum(Lc[i, j:i] * Li[j:i, j], axis=0) / Lc[i, i]
        logdet = 2.0 * np.sum(np.log(np.stack([Lc[j, j] for j in range(p)])), axis=0)
    return np.einsum("kig,kjg->ijg", Li, Li), logdet  # F⁻¹ = L⁻ᵀL⁻¹


def _mv(M, v):
    return np.einsum("ijg,jg->ig", M, v)


def _quad(a, M, b):
    return np.einsum("ig,ijg,jg->g", a, M, b)


def _prepare(des: "ScalarDesign", E: np.ndarray):
    """Per-response level sums, layout (., L, G): [S_lj e_l for j < p] and e_l²."""
    ysT = des.Zind.T @ E.T  # (L, G)
    return np.concatenate([des.S.T[:, :, None] * ysT[None], (ysT * ysT)[None]], axis=0)


def evaluate(des: "ScalarDesign", Yst: np.ndarray, rss: np.ndarray, t: np.ndarray, order: int = 0, with_f: bool = True):
    """Criterion pieces at t (one per response); ``order`` 1/2 adds the t-derivatives.

    ``Yst`` is ``_prepare``'s (p+1, L, G) array for the G responses, ``rss`` their e'e;
    every array returned has the responses on its last axis.
    """
    p, G, nu = des.p, len(t), des.nu
    inv_d = 1.0 / (1.0 + des.m[:, None] * t)  # (L, G)
    W = np.empty((order + 1,) + inv_d.shape)
    np.multiply(inv_d, t, out=W[0])  # c
    if order >= 1:
        np.multiply(inv_d, inv_d, out=W[1])  # c'
    if order >= 2:
        np.multiply(W[1], inv_d, out=W[2])
        W[2] *= (-2.0 * des.m)[:, None]  # c''
    P = np.einsum("wlg,jlg->wjg", W, Yst)  # Σ_l w_l S_lj e_l and Σ_l w_l e_l²
    Fm = (des.SSt @ W).reshape(order + 1, p, p, G)
    F = np.eye(p)[:, :, None] - Fm[0]
    b = -P[0, :p]
    Finv, ldF = _spd_inverse(F)
    a = _mv(Finv, b)
    r2 = rss - P[0, p] - np.sum(b * a, axis=0)
    out = {"t": t, "Finv": Finv, "a": a, "r2": r2, "ldF": ldF}
    if with_f:  # the criterion itself (Newton's iterations only need the derivatives)
        out["ldL2"] = -np.sum(np.log(inv_d), axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["f"] = profiled_deviance(out["ldL2"], ldF + des.logdetRb2, np.log(r2), des.n, p, des.reml)
    if order == 0:
        return out
    F1, b1 = -Fm[1], -P[1, :p]
    r2_1 = -P[1, p] - 2.0 * np.sum(b1 * a, axis=0) + _quad(a, F1, a)
    X1 = np.einsum("ikg,kjg->ijg", Finv, F1)
    out.update(F1=F1, r2_1=r2_1, ldL2_1=des.m @ inv_d, ldF_1=np.einsum("iig->g", X1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ft"] = out["ldL2_1"] + nu * r2_1 / r2 + (out["ldF_1"] if des.reml else 0.0)
    if order < 2:
        return out
    F2, b2 = -Fm[2], -P[2, :p]
    w = b1 - _mv(F1, a)
    r2_2 = -P[2, p] - 2.0 * np.sum(b2 * a, axis=0) + _quad(a, F2, a) - 2.0 * _quad(w, Finv, w)
    out.update(
        r2_2=r2_2,
        ldL2_2=-((des.m * des.m) @ W[1]),
        ldF_2=np.einsum("ijg,jig->g", Finv, F2) - np.einsum("ijg,jig->g", X1, X1),
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ftt"] = out["ldL2_2"] + nu * (r2_2 / r2 - (r2_1 / r2) ** 2) + (out["ldF_2"] if des.reml else 0.0)
    return out


def _grid(des: "ScalarDesign", E: np.ndarray, rss: np.ndarray):
    """Criterion f and df/dt on GRID for every response, (G, K) each.

    On a fixed t everything but e is shared: r² = e'e - e_·'M e_· and dr²/dt = -e_·'M' e_·
    with the L x L matrices M = D + DPD, M' = D' + D'PD + DPD' + DPD'PD (D = diag(c),
    D' = diag(c'), P = S F⁻¹ S'), so the grid is one matrix product.
    """
    K, L, p, nu = len(GRID), len(des.m), des.p, des.nu
    d = 1.0 + GRID[:, None] * des.m  # (K, L)
    c, c1 = GRID[:, None] / d, 1.0 / (d * d)
    F = np.eye(p)[None] - np.einsum("kl,li,lj->kij", c, des.S, des.S)
    F1 = -np.einsum("kl,li,lj->kij", c1, des.S, des.S)
    Finv = np.linalg.inv(F) if p else F
    ldF = np.linalg.slogdet(F)[1] if p else np.zeros(K)
    P = des.S @ Finv @ des.S.T  # (K, L, L)
    DPD = c[:, :, None] * P * c[:, None, :]
    M = DPD + c[:, :, None] * np.eye(L)
    D1P = c1[:, :, None] * P
    M1 = D1P * c[:, None, :]
    M1 = M1 + M1.transpose(0, 2, 1) + c1[:, :, None] * np.eye(L) + DPD @ D1P * c[:, None, :]
    ys = E @ des.Zind  # (G, L)
    Mcat = np.concatenate([M, M1], axis=0).transpose(1, 0, 2).reshape(L, 2 * K * L)
    Q = np.einsum("gkl,gl->gk", (ys @ Mcat).reshape(len(ys), 2 * K, L), ys)
    r2, r2_1 = rss[:, None] - Q[:, :K], -Q[:, K:]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = profiled_deviance(np.sum(np.log(d), axis=1), ldF + des.logdetRb2, np.log(r2), des.n, p, des.reml)
        ft = np.sum(des.m / d, axis=1) + nu * r2_1 / r2
    if des.reml:
        ft = ft + np.einsum("kij,kji->k", Finv, F1)
    return f, ft


def _newton(des, Yst, rss, t, lo, hi):
    """Safeguarded Newton on df/dt in [lo, hi] (df/dt(lo) < 0 < df/dt(hi)), all responses at once.

    Steps are taken in log t (where the criterion is closer to quadratic) unless lo = 0;
    a step that leaves the bracket is replaced by bisection (geometric when lo > 0).
    """
    t, lo, hi = t.copy(), lo.copy(), hi.copy()
    conv = np.zeros(len(t), dtype=bool)
    active = np.arange(len(t))
    for _ in range(MAXIT):
        if active.size == 0:
            break
        ta, la, ha = t[active], lo[active], hi[active]
        ev = evaluate(des, Yst[:, :, active], rss[active], ta, order=2, with_f=False)
        ft, ftt = ev["ft"], ev["ftt"]
        neg = ft < 0
        la = np.where(neg, ta, la)
        ha = np.where(neg, ha, ta)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            logspace = la > 0
            curv = np.where(logspace, ft + ta * ftt, ftt)
            step = np.where(logspace, ft / curv, ft / ftt)
            tn = np.where(logspace, ta * np.exp(-step), ta - step)
        tiny = np.abs(tn - ta) <= RTOL_T * ta
        bad = ~(curv > 0) | ~(tn > la) | ~(tn < ha)
        tn = np.where(bad & ~tiny, np.where(logspace, np.sqrt(la * ha), 0.5 * (la + ha)), tn)
        done = (tiny & (curv > 0)) | (ha - la <= RTOL_T * ha) | (ft == 0)
        tn = np.where(ft == 0, ta, tn)
        t[active], lo[active], hi[active] = tn, la, ha
        conv[active[done]] = True
        active = active[~done]
    return t, conv


@dataclass
class FitArrays:
    """Per-response results of ``fit_scalar`` (arrays over the G responses)."""

    ok: np.ndarray  # bool: fitted here (False: error or needs the general path)
    general: np.ndarray  # bool: hand this response to the general path
    error: np.ndarray  # object: error message or None
    theta: np.ndarray
    beta: np.ndarray  # (G, p)
    se: np.ndarray  # (G, p)
    df: np.ndarray  # (G, p), NaN unless ddf
    sigma: np.ndarray
    crit: np.ndarray  # REML criterion (REML) or deviance (ML)
    converged: np.ndarray


def _response_checks(Y, rss, response):
    """lme4/mmfast's errors for degenerate responses (constant, fully explained, non-finite)."""
    err = np.full(len(Y), None, dtype=object)
    finite = np.all(np.isfinite(Y), axis=1)
    err[~finite] = f"response '{response}' has non-finite values"
    const = finite & (np.ptp(np.where(np.isfinite(Y), Y, 0.0), axis=1) == 0)
    err[const] = f"response '{response}' is constant: there is no variance to model"
    # relative to the centred variation, and above the rounding of a large mean (y + 1e12):
    # what is left after removing Xγ from such y is ~ eps |y| per value, not a residual
    Yc = np.where(finite[:, None], Y - np.mean(np.where(np.isfinite(Y), Y, 0.0), axis=1)[:, None], 0.0)
    tol = np.maximum(
        1e-20 * np.einsum("gn,gn->g", Yc, Yc), (64 * np.finfo(float).eps) ** 2 * np.einsum("gn,gn->g", Y, Y)
    )
    explained = finite & ~const & (rss <= tol)
    err[explained] = (
        f"response '{response}' is an exact linear function of the fixed effects: "
        "no residual variation is left for the random effects"
    )
    return err


def fit_scalar(des: ScalarDesign, Y: np.ndarray, ddf: bool = True) -> FitArrays:
    """Fit every row of Y (G, n) to the shared design; see the module docstring."""
    Y = np.ascontiguousarray(Y, dtype=float)  # one memory layout: one BLAS path, same digits
    G, p = Y.shape[0], des.p
    Yf = np.where(np.isfinite(Y), Y, 0.0)
    gamma = Yf @ des.Q
    E = Yf - gamma @ des.Q.T
    rss = np.einsum("gn,gn->g", E, E)
    error = _response_checks(Y, rss, des.response)
    if des.nu <= 0:
        error[:] = f"{des.n} observations for {p} fixed effects: nothing left to estimate the variance"
    good = np.flatnonzero(error == None)  # noqa: E711 - elementwise on an object array
    general = np.zeros(G, dtype=bool)
    conv = np.zeros(G, dtype=bool)
    Yst = _prepare(des, E)
    if good.size:
        Yg, rg = Yst[:, :, good], rss[good]
        f, ft = _grid(des, E[good], rg)
        f = np.where(np.isfinite(f), f, np.inf)
        k = np.argmin(f, axis=1)
        rows = np.arange(len(good))
        K = len(GRID)
        fk, ftk = f[rows, k], ft[rows, k]
        boundary = (k == 0) & (ftk >= 0)
        up = ~boundary & (ftk < 0)  # the minimum is right of the grid point
        kl, kh = np.where(up, k, np.maximum(k - 1, 0)), np.where(up, np.minimum(k + 1, K - 1), k)
        bracketed = ~boundary & (ft[rows, kl] < 0) & (ft[rows, kh] > 0) & (kh > kl) & np.isfinite(fk)
        tg = np.zeros(len(good))
        cg = boundary.copy()
        idx = np.flatnonzero(bracketed)
        if idx.size:  # start where df/dt interpolates to 0 (in log t unless lo = 0)
            lo, hi = GRID[kl[idx]], GRID[kh[idx]]
            fl, fh = ft[rows[idx], kl[idx]], ft[rows[idx], kh[idx]]
            w = fl / (fl - fh)
            with np.errstate(divide="ignore"):
                t0 = np.where(lo > 0, np.exp(np.log(lo) + w * (np.log(hi) - np.log(lo))), lo + w * (hi - lo))
            tg[idx], cg[idx] = _newton(des, Yg[:, :, idx], rg[idx], t0, lo, hi)
        ev = evaluate(des, Yg, rg, tg, order=2 if ddf else 0)
        # never worse than the grid: a response that got there otherwise goes the general way
        gen = ~(boundary | bracketed) | ~cg | ~(ev["f"] <= fk + 1e-10 * np.maximum(1.0, np.abs(fk)))
        conv[good], general[good] = cg & ~gen, gen
        fa = _results(des, ev, gamma[good], ~gen, ddf)
        return FitArrays(
            ok=_scatter(~gen, good, G, False),
            general=general,
            error=error,
            converged=conv,
            **{k: _scatter(v, good, G, np.nan) for k, v in fa.items()},
        )
    nan = np.full(G, np.nan)
    return FitArrays(
        ok=np.zeros(G, dtype=bool),
        general=general,
        error=error,
        converged=conv,
        theta=nan,
        beta=np.full((G, p), np.nan),
        se=np.full((G, p), np.nan),
        df=np.full((G, p), np.nan),
        sigma=nan,
        crit=nan,
    )


def _scatter(v, idx, G, fill):
    out = np.full((G,) + v.shape[1:], fill, dtype=v.dtype)
    out[idx] = v
    return out


def _results(des, ev, gamma, ok, ddf) -> dict:
    """β, SEs, σ, θ, criterion and (optionally) Satterthwaite df from the final evaluation."""
    p = des.p
    ev = {k: v[..., ok] for k, v in ev.items()}
    G = int(ok.sum())
    beta = np.full((len(ok), p), np.nan)
    se = np.full((len(ok), p), np.nan)
    df = np.full((len(ok), p), np.nan)
    sigma, crit, theta = (np.full(len(ok), np.nan) for _ in range(3))
    if G:
        idx = np.flatnonzero(ok)
        s2 = ev["r2"] / des.nu
        Ri = des.Rb_inv
        beta[idx] = (ev["a"].T + gamma[idx]) @ Ri.T
        C = np.einsum("ik,klg,jl->ijg", Ri, ev["Finv"], Ri)  # F⁻¹ in the original basis
        vcov = s2 * C
        se[idx] = np.sqrt(np.einsum("iig->gi", vcov))
        sigma[idx] = np.sqrt(s2)
        crit[idx] = ev["f"]
        theta[idx] = np.sqrt(ev["t"])
        if ddf and p:
            df[idx] = _satterthwaite(des, ev, s2, vcov, C).T
    return {"theta": theta, "beta": beta, "se": se, "df": df, "sigma": sigma, "crit": crit}


def _satterthwaite(des, ev, s2, vcov, C):
    """lmerTest's df per coefficient, (p, G): 2 v² / (∇' Var(φ̂) ∇), φ = (θ, σ), Var(φ̂) = 2 H⁺."""
    t, r2, r2_1, r2_2 = ev["t"], ev["r2"], ev["r2_1"], ev["r2_2"]
    theta, sigma = np.sqrt(t), np.sqrt(s2)
    g_t = ev["ldL2_1"] + r2_1 / s2 + (ev["ldF_1"] if des.reml else 0.0)
    g_tt = ev["ldL2_2"] + r2_2 / s2 + (ev["ldF_2"] if des.reml else 0.0)
    h11 = 2.0 * g_t + 4.0 * t * g_tt  # d²/dθ² of g(θ²)
    h12 = -4.0 * theta * r2_1 / sigma**3
    h22 = 6.0 * r2 / s2**2 - 2.0 * des.nu / s2
    v11, v12, v22 = _pinv2(h11, h12, h22)
    Ri = des.Rb_inv
    # ∂Var(β̂)/∂θ = σ² C_Q (-∂F/∂θ) C_Q mapped by R_b⁻¹, ∂F/∂θ = 2θ F'(t); ∂Var(β̂)/∂σ = 2σ C
    FF = np.einsum("ikg,klg,ljg->ijg", ev["Finv"], ev["F1"], ev["Finv"])
    gth = -(2.0 * theta * s2) * np.einsum("ik,klg,il->ig", Ri, FF, Ri)
    gsg = (2.0 * sigma) * np.einsum("iig->ig", C)
    v = np.einsum("iig->ig", vcov)
    denom = 2.0 * (v11 * gth * gth + 2.0 * v12 * gth * gsg + v22 * gsg * gsg)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 2.0 * v * v / denom, np.inf)


def _pinv2(a, b, d):
    """Pseudo-inverse over eigenvalues > EIG_TOL of symmetric 2 x 2 matrices [[a, b], [b, d]]."""
    mean, half = 0.5 * (a + d), 0.5 * (a - d)
    rad = np.hypot(half, b)
    lam1, lam2 = mean + rad, mean - rad  # lam1 >= lam2
    # unit eigenvector of lam1: (cos, sin) of the angle φ with tan 2φ = 2b / (a - d)
    phi = 0.5 * np.arctan2(b, half)
    cs, sn = np.cos(phi), np.sin(phi)
    with np.errstate(divide="ignore"):
        i1 = np.where(lam1 > EIG_TOL, 1.0 / lam1, 0.0)
        i2 = np.where(lam2 > EIG_TOL, 1.0 / lam2, 0.0)
    return (i1 * cs * cs + i2 * sn * sn, (i1 - i2) * cs * sn, i1 * sn * sn + i2 * cs * cs)


def t_pvalues(stat: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Two-sided p-values of t statistics (normal where df is infinite, NaN where df is NaN)."""
    from scipy.special import ndtr

    stat = np.asarray(stat, dtype=float)
    df = np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore"):
        p = 2.0 * stdtr(np.where(np.isfinite(df), df, 1.0), -np.abs(stat))
        p = np.where(np.isinf(df), 2.0 * ndtr(-np.abs(stat)), p)
    return np.where(np.isnan(df) | np.isnan(stat), np.nan, p)

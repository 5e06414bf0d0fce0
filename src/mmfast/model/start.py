"""Starting values for θ near the optimum, by the method of moments on the OLS residuals.

lme4 starts every standard-deviation ratio at 1 and every correlation at 0.  Here each term
regresses the OLS residuals r on its own columns within each level of its grouping factor
(one pass over the rows and a p x p Cholesky per level, in ``_ext/_moments.pyx``): the
spread of those per-level coefficients b_g, less their average sampling variance
σ_w² (X_g'X_g)⁻¹, estimates the term's covariance Σ; σ² is what is left of r's variance.
θ is the Cholesky factor of Σ/σ².  The terms are estimated one at a time, so crossed terms
only get a rough start that way; models made of random intercepts alone use Henderson's
method 1 instead (the ANOVA estimators: all variances from one linear system).  A start only
changes how many evaluations reach the optimum (InstEval: 4 Newton evaluations; sleepstudy:
about half of BOBYQA's from lme4's start; Penicillin 19 instead of 53).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dpotrf

from .._ext._moments import level_regressions
from .._ext._pairs import pair_codes

__all__ = ["moment_start"]

FLOOR = 0.01  # smallest variance share a start gives a term (θ = 0 would pin it in log scale)


def _level_covariance(X: np.ndarray, codes: np.ndarray, G: int, r: np.ndarray):
    """(Σ, its mean contribution to the row variance, the pooled residual variance within the
    levels) of the columns X within G levels, from per-level regressions of r, or None when
    fewer than two levels allow one."""
    p = X.shape[1]
    b, inv_mean, ssr, df, XtX = level_regressions(
        np.ascontiguousarray(X, dtype=float),
        np.ascontiguousarray(codes, dtype=np.int32),
        G,
        np.ascontiguousarray(r, dtype=float),
    )
    nok = b.shape[0]
    if nok < 2:
        return None
    s2w = ssr / df if df > 0 else 0.0
    bc = b - b.sum(axis=0) / nok  # b.mean(axis=0)'s arithmetic without its Python layers
    spread = bc.T @ bc / (nok - 1)
    sigma = spread - max(s2w, 0.0) * inv_mean
    floor = FLOOR * max(spread.trace() / p, 1e-300)
    spare = sigma.copy()  # positive definite with room to spare: as it is (the common case,
    spare.flat[:: p + 1] -= floor  # no eigh); LAPACK's Cholesky directly, numpy's costs ~5 µs
    if dpotrf(spare, lower=1)[1] != 0:
        sigma = _psd(sigma, floor)
    return sigma, float(np.sum(sigma * XtX)) / len(r), s2w


def _parent(t, terms):
    """The term whose grouping factor t's is nested in (each level of t's factor occurs with
    one of its levels only), the finest such; None when t's factor is not nested."""
    best = None
    for j, o in enumerate(terms):
        if (
            o.factor.name != t.factor.name
            and o.nlevels < t.nlevels
            and (best is None or o.nlevels > terms[best].nlevels)
        ):
            npairs = len(pair_codes(t.factor.codes, o.factor.codes, t.nlevels, o.nlevels)[1])
            if npairs == t.nlevels:
                best = j
    return best


def _independent_columns(X: np.ndarray):
    """For terms on one factor whose columns together are collinear (``(1 | g) + (0 + f | g)``
    with f a factor: the intercept is the sum of f's indicators), (a largest set of independent
    columns B, the P x r map P⁺) with X = X_B P: Σ_B, their covariance, is all the moments
    identify, and Σ = P⁺ Σ_B P⁺' is the smallest joint covariance giving it (the intercept
    and f's columns share the level variance).  None when the columns are independent."""
    # clearly independent (the common case, ``(x || g)``): no pivoted QR (~25 µs).  Its |R_kk|
    # are at least σ_min(X) and |R_11| at most σ_max(X), so λ_min(X'X) > 1e-12 λ_max(X'X)
    # implies every |R_kk| > 1e-9 |R_11|: the rank test below would find full rank too
    w = np.linalg.eigvalsh(X.T @ X)
    if w[0] > 1e-12 * w[-1]:
        return None
    from scipy.linalg import qr

    R, piv = qr(X, mode="r", pivoting=True)
    diag = np.abs(np.diag(R))
    rank = int(np.sum(diag > 1e-9 * max(diag[0], 1e-300))) if len(diag) else 0
    if rank == X.shape[1] or rank == 0:
        return None
    keep = np.sort(piv[:rank])
    XB = X[:, keep]
    coef = np.linalg.solve(XB.T @ XB, XB.T @ X)  # X = X_B coef (exactly: X's columns lie in X_B's span)
    return keep, np.linalg.pinv(coef)


def _cholesky(S: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of S by LAPACK directly (numpy's wrapper costs ~5 µs a call)."""
    L, info = dpotrf(S, lower=1, clean=1)
    if info != 0:
        raise np.linalg.LinAlgError("the moment covariance is not positive definite")
    return L


def _psd(S: np.ndarray, floor: float) -> np.ndarray:
    """S with its eigenvalues raised to at least ``floor``."""
    w, V = np.linalg.eigh(S)
    return (V * np.maximum(w, floor)) @ V.T


def moment_start(model) -> np.ndarray | None:
    """θ₀ by the method of moments, or None when no term allows it or the moments are not
    usable numerically (then lme4's start is used).

    Terms on the same grouping factor (``(x || g)``, ``(1 | g) + (0 + x | g)``) are estimated
    together, each taking its own block of the joint Σ.
    """
    try:
        with np.errstate(all="ignore"):
            theta = _moments(model)
    except (np.linalg.LinAlgError, ValueError, ZeroDivisionError):
        return None
    return theta if theta is not None and np.all(np.isfinite(theta)) else None


def _intercepts_anova(model, r: np.ndarray) -> np.ndarray | None:
    """Several random intercepts, unweighted: Henderson's method 1.  Each term's sum of
    squared level totals T_k = Σ_g (Σ r)²/n_g, and r'r, have expectations linear in the
    variances, with coefficients from the level counts of every pair of factors:

        E T_k = Σ_m var_m (Σ_gl n_gl²/n_g - Σ_l n_l²/n) + σ² (G_k - 1),
        E r'r = Σ_m var_m (n - Σ_l n_l²/n) + σ² (n - p);

    one linear solve gives them all (exactly the REML estimates for balanced crossed or nested
    designs, a close start otherwise).  None when it does not apply or is not usable."""
    terms = model.frame.terms
    if len(terms) < 2 or model._sqrtw is not None or any(t.p != 1 or t.names != ["(Intercept)"] for t in terms):
        return None
    n, K = len(r), len(terms)
    cnt = [np.bincount(t.factor.codes, minlength=t.nlevels).astype(float) for t in terms]
    c0 = np.array([float(c @ c) / n for c in cnt])
    A, rhs = np.zeros((K + 1, K + 1)), np.zeros(K + 1)
    for k, t in enumerate(terms):
        tot = np.bincount(t.factor.codes, r, minlength=t.nlevels)
        rhs[k] = float(np.sum(tot * tot / cnt[k]))
        A[k, k], A[k, K] = n - c0[k], t.nlevels - 1.0
        for m in range(k + 1, K):
            o = terms[m]
            codes, keys = pair_codes(t.factor.codes, o.factor.codes, t.nlevels, o.nlevels)
            nkl = np.bincount(codes).astype(float) ** 2
            A[k, m] = float(np.sum(nkl / cnt[k][keys // o.nlevels])) - c0[m]
            A[m, k] = float(np.sum(nkl / cnt[m][keys % o.nlevels])) - c0[k]
    A[K, :K], A[K, K] = n - c0, n - model.frame.X.shape[1]
    rhs[K] = float(r @ r)
    sol = np.linalg.solve(A, rhs)
    s2 = sol[K]
    if not s2 > 0:
        return None
    return np.sqrt(np.maximum(sol[:K], FLOOR * s2) / s2)


def _moments(model) -> np.ndarray | None:
    frame = model.frame
    r = model._yres  # the OLS residual of the (weighted) response, from the model's set-up
    s2 = float(r @ r) / len(r)
    if not s2 > 0:
        return None
    theta = _intercepts_anova(model, r)
    if theta is not None:
        return theta
    groups: dict = {}
    for i, t in enumerate(frame.terms):
        groups.setdefault(t.factor.name, []).append(i)
    parents = [_parent(t, frame.terms) for t in frame.terms]
    colscale = model._column_sizes[0] if hasattr(model, "_column_sizes") else [None] * len(frame.terms)
    est, share, inner = [None] * len(frame.terms), 0.0, []
    for idx in groups.values():
        terms = [frame.terms[i] for i in idx]
        # columns of extreme size (Days * 1e5) divided by powers of 2 (the model's choice),
        # Σ mapped back below: the per-level regressions are then well scaled
        X = terms[0].X if len(terms) == 1 and terms[0].X.ndim == 2 else np.column_stack([t.X for t in terms])
        d = None
        if any(colscale[i] is not None for i in idx):
            d = np.concatenate([np.ones(t.p) if colscale[i] is None else colscale[i] for i, t in zip(idx, terms)])
            X = X / d
        if model._sqrtw is not None:
            X = X * model._sqrtw[:, None]
        basis = _independent_columns(X) if len(terms) > 1 else None
        e = _level_covariance(X if basis is None else X[:, basis[0]], terms[0].factor.codes, terms[0].nlevels, r)
        if e is None:
            continue
        share += e[1]
        ofs = 0
        cov = e[0] if basis is None else basis[1] @ e[0] @ basis[1].T
        cov = cov if d is None else cov / np.outer(d, d)
        for i, t in zip(idx, terms):
            est[i] = cov[ofs : ofs + t.p, ofs : ofs + t.p]
            ofs += t.p
        if e[2] > 0 and parents[idx[0]] is not None:
            inner.append(e[2])
    if all(e is None for e in est):
        return None
    # nested factors: an inner level's mean carries its outer level's effect too, so the
    # inner covariance is what its spread adds to the outer one's (same columns only)
    raw = list(est)
    for i, (t, o) in enumerate(zip(frame.terms, parents)):
        if o is not None and raw[i] is not None and raw[o] is not None and frame.terms[o].names == t.names:
            est[i] = _psd(raw[i] - raw[o], FLOOR * np.trace(raw[i]) / t.p)
    # σ²: what the terms leave of r's variance; with nested factors the shares overlap, and
    # the variance within the levels of an inner factor estimates σ² directly
    resid = max(s2 - share, min(inner, default=0.0), FLOOR * s2)
    out = []
    for t, e in zip(frame.terms, est):
        if e is None:
            out.extend(t.param.start)
            continue
        out.extend(t.param.from_template(_cholesky(e / resid)))
    return np.array(out, dtype=float)

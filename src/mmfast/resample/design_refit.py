"""Refit an LMM with a new fixed-effects matrix X (same y, Z, weights) and test it fast.

A permutation of a cluster-level label changes X only.  ``DesignRefitter`` refits through
``LinearMixedModel.with_fixed``, which keeps everything that does not involve X: Z'Z (the
kernel's block structure), Z'y, y'y, Z itself, and for each new X forms only what does: the QR
of X, the OLS residual of y, Z'[Q r] and [Q r]'[Q r] (p + 1 columns), then fits θ from the original estimate.

Satterthwaite's F test needs the derivatives of Var(β̂) and of the deviance in (θ, σ)
(``inference.derivatives``).  Their q-dimensional algebra (``inference.structure``) is done
here with dense matrices when q is small (``DenseVarianceStructure``: no sparse assembly,
no connected-component search per fit; Z'Z is formed once; A⁻¹ from the refit's own kernel),
which is what makes one permutation cost about a millisecond.  The formulas are the lead's: ``analytic_derivatives``
and ``Satterthwaite.f_test`` are called unchanged.
"""

from __future__ import annotations


import numpy as np

from ..inference.structure import VarianceStructure
from ..model.traces import contract_columns

__all__ = ["DesignRefitter", "DenseVarianceStructure", "DENSE_Q_MAX", "satterthwaite_f"]

DENSE_Q_MAX = 1500  # largest q handled with dense q x q matrices


class _Shared:
    """The X-free cross-products of one model (weighted rows), formed once."""

    def __init__(self, model):
        frame = model.frame
        n = frame.nobs
        sqrtw = model._sqrtw
        from ..design.blocks import build_Z

        Zw = model.Z if sqrtw is None else build_Z(frame.terms, n, sqrtw)
        self.Zw = Zw.tocsc()
        self.ZwT = self.Zw.T.tocsr()
        y = np.asarray(frame.y, dtype=float)
        if frame.offset is not None:
            y = y - frame.offset
        self.yw = y if sqrtw is None else y * sqrtw
        self.sqrtw = sqrtw
        self.q = self.Zw.shape[1]
        self.dense = self.q <= DENSE_Q_MAX
        if self.dense:
            self.ZtZ = (self.ZwT @ self.Zw).toarray()
            self.Zty = np.asarray(self.ZwT @ self.yw).ravel()
            self.yty = float(self.yw @ self.yw)


class DenseVarianceStructure(VarianceStructure):
    """``VarianceStructure`` with dense q x q algebra and the X-free products shared."""

    def __init__(self, model, shared: _Shared):  # noqa: D107 - replaces the sparse set-up
        self.model = model
        self.trace_method = "dense"
        frame = model.frame
        self.terms = frame.terms
        self.theta = np.asarray(model.theta, dtype=float).copy()
        X = np.asarray(frame.X, dtype=float)
        Xw = X if shared.sqrtw is None else X * shared.sqrtw[:, None]
        self.n, self.p = Xw.shape
        self.q = shared.q
        self.ZtZ = shared.ZtZ
        self.ZtX = np.asarray(shared.ZwT @ Xw).reshape(self.q, self.p)
        self.Zty, self.yty = shared.Zty, shared.yty
        self.XtX, self.Xty = Xw.T @ Xw, Xw.T @ shared.yw
        self.templates = model.layout.templates(self.theta)
        Lam = np.zeros((self.q, self.q))
        for t, T in zip(self.terms, self.templates):
            blk = Lam[t.offset : t.offset + t.q, t.offset : t.offset + t.q]
            blk[...] = np.kron(np.eye(t.nlevels), T)
        self.Lam = Lam
        self.K = Lam.T @ self.ZtZ
        self._use_kernel(model)  # A⁻¹ from the refit's own kernel, as the sparse structure
        self._tensors = None
        self._setup_fixed()

    def M_times(self, B):
        B = np.asarray(B, dtype=float)
        if B.size == 0:
            return np.zeros_like(B)
        return self.ZtZ @ B - self.K.T @ self.solve(self.K @ B)

    def B_times(self, v):
        return self.Lam @ (self.Lam.T @ v)

    def trace_tensors(self):
        if self._tensors is not None:
            return self._tensors
        M = self.ZtZ - self.K.T @ self.solve(self.K)
        terms = self.terms
        N = [[np.zeros((tk.p, tk.p, tm.p, tm.p)) for tm in terms] for tk in terms]
        dg = [np.zeros((t.p, t.p)) for t in terms]
        for m, tm in enumerate(terms):  # M is dense here: every column at once
            cols = np.arange(tm.offset, tm.offset + tm.q)
            contract_columns(M[:, cols], cols, m, terms, N, dg)
        self._tensors = (N, dg)
        return self._tensors


def satterthwaite_f(sat, L) -> tuple[float, int, float, float]:
    """(F, q, DenDF, p) of ``Satterthwaite.f_test(L)`` (rhs 0) without the table row."""
    res = sat.wald(L)
    return res.F, res.numdf, res.dendf, res.p


class DesignRefitter:
    """``X -> LMM fitted with X`` for one fitted LMM (same y, Z, weights, offset, REML flag)."""

    def __init__(self, model):
        self.model = model
        self.shared = _Shared(model)

    def refit(self, X, data=None):
        """The model refitted with fixed-effects matrix X (n x p, same columns' meaning), from
        the original θ: ``with_fixed`` (Z'Z shared; X's factorisation and Z'[Q r] new) + fit."""
        return self.model.with_fixed(X, data=data).fit(start=self.model.theta)

    def satterthwaite(self, fit):
        """lmerTest's Satterthwaite engine (``t_test``, ``f_test``) for a fit of this design."""
        from ..inference.derivatives import analytic_derivatives
        from ..inference.satterthwaite import Satterthwaite

        if not self.shared.dense:
            return Satterthwaite(fit)
        d = analytic_derivatives(fit, DenseVarianceStructure(fit, self.shared))
        return Satterthwaite(fit, derivatives=d)

    def ols_f(self, X, L):
        """(F, numerator df, denominator df, p) of the naive (weighted) least-squares fit."""
        from ..inference.wald import wald_test

        sh = self.shared
        Xw = np.asarray(X, dtype=float)
        Xw = Xw if sh.sqrtw is None else Xw * sh.sqrtw[:, None]
        Q, R = np.linalg.qr(Xw)
        eff = Q.T @ sh.yw
        beta = np.linalg.solve(R, eff)
        n, p = Xw.shape
        r = sh.yw - Q @ eff
        rss = float(r @ r)
        s2 = rss / (n - p)
        Ri = np.linalg.inv(R)
        res = wald_test(beta, Ri @ Ri.T, L, df=n - p, scale=s2)
        F, q, pval = res.F, res.numdf, res.p
        return F, q, n - p, pval

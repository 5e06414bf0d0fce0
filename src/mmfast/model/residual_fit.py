"""An LMM with residual covariance σ² R(φ) (nlme's correlation= and weights=), fitted over (θ, φ).

For each φ the rows of y, X and the random-effects model matrices are whitened by R(φ)'s factor
(``model.residual``); the kernel keeps its pattern and symbolic analysis and only loads the new
cross-products (``reweight``), so an evaluation costs O(n) for the whitening plus the usual PLS
step.  The criterion is the whitened model's plus log|R|.  The fit first optimises θ at the
starting φ (the ordinary LMM fit, which is independent residuals for the default starts), then
BOBYQA moves φ on the criterion profiled over θ (``profiled_criterion``).
A variance function of nlme's ``fitted(.)`` is fitted as nlme's lme loop does it: fit with the
covariate fixed, set it to the fitted values at the innermost level (Xβ̂ + Zb̂), refit from
there, until no parameter moves by more than ``FITTED_TOL`` relative (nlme: lmeControl's
``tolerance``, 1e-6, on its coefficients); the result is a fixed point, not a maximum.
Parametrisation: nlme's (``mmfast.nlme.corstruct``/``varfunc``).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings

import numpy as np

import scipy.sparse as sp

from ..design.blocks import pair_index, pair_values
from ..errors import ConvergenceWarning, FitError, ModelSpecError
from .lmm import LinearMixedModel, _thin_qr
from .optimize import minimize_bounded
from .residual import ResidualCovariance

__all__ = ["ResidualFit", "PHI_BOUND"]

PHI_BOUND = 30.0  # |unconstrained φ| at most this: correlations within 1e-13 of ±1
FITTED_TOL, FITTED_MAXITER = 1e-8, 100  # the fitted(.) outer iteration (nlme: 1e-6, maxIter 50)


class ResidualFit(LinearMixedModel):
    """``y = Xβ + Zb + ε``, ``ε ~ N(0, σ² R(φ))``, R block diagonal over correlation groups."""

    def __init__(self, frame, reml=True, options=None, design=None, control=None, residual=None):
        """``design``: a fit on the same rows (``refit``, ``with_response``, ``with_fixed``):
        its residual structure, bound to these rows, is taken over (cross-products are new)."""
        if residual is None and design is not None:
            if design.frame.nobs != frame.nobs:  # pragma: no cover - with_* keep the rows
                raise ModelSpecError("the residual structure is bound to the rows of the fit")
            residual = design.residual
        if residual is None:
            raise ModelSpecError(
                "the residual structure is bound to the rows of its fit: fit the model on new rows "
                "with lmer(..., residual=) or lme()"
            )
        if frame.weights is not None:
            raise ModelSpecError("prior weights with a residual structure: give the weights as varFixed instead")
        super().__init__(frame, reml=reml, options=options, control=control)
        self.residual: ResidualCovariance = residual.fresh()  # a fitted(.) covariate is this fit's
        self._prepare()
        self.phi = None
        self._logdetR = 0.0
        if not self._load(residual.start):
            raise ModelSpecError(
                "the residual structure's starting values give a covariance that is not positive definite"
            )

    # --- φ: whitening and the kernel's cross-products -----------------------------------------
    def _prepare(self) -> None:
        """Once per model: [X y Z-values] with rows in the whitening's order, and that order's
        pattern of Z'Z (``pair_index``) and of Z (sparse, values refreshed per φ)."""
        frame, order = self.frame, self.residual.order
        n, p = frame.X.shape
        y0 = frame.y if frame.offset is None else frame.y - frame.offset
        raw = np.column_stack([frame.X, y0, *[t.X for t in frame.terms]])
        self._raw = np.ascontiguousarray(raw if order is None else raw[order])
        b = self.blocks
        rp = b.row_pair if order is None else b.row_pair[:, order]
        self._vindex = pair_index(b.pieces, rp, b.pair_vofs, b.term_p)
        cols = []
        for t in frame.terms:
            codes = t.factor.codes.astype(np.int64)
            codes = codes if order is None else codes[order]
            cols += [t.offset + codes * t.p + j for j in range(t.p)]
        m = len(cols)
        self._Zw = sp.csr_matrix(
            (np.ones(n * m), np.column_stack(cols).ravel(), np.arange(0, n * m + 1, m)), shape=(n, b.q)
        )

    def _load(self, phi) -> bool:
        """Whiten [y X Z] at φ and load the cross-products into the kernel (False: R not PD)."""
        phi = np.asarray(phi, dtype=float)
        if self.phi is not None and np.array_equal(phi, self.phi):
            return True
        w = self.residual.factor(phi)
        if w is None:
            return False
        n, p = self.frame.X.shape
        M = w.apply(self._raw)
        yt = M[:, p]
        TX, c = [], p + 1
        for t in self.frame.terms:
            TX.append(M[:, c : c + t.p])
            c += t.p
        if p:
            Q, Rb = _thin_qr(M[:, :p])
            gamma = Q.T @ yt
        else:
            Q, Rb, gamma = np.zeros((n, 0)), np.zeros((0, 0)), np.zeros(0)
        W = np.empty((n, p + 1), order="F")
        W[:, :p] = Q
        W[:, p] = (yt - Q @ gamma) / self._yscale
        b = self.blocks
        V = pair_values(TX, b.pieces, None, b.pair_vofs, index=self._vindex)
        self._Zw.data[:] = M[:, p + 1 :].ravel()
        ZtW = np.asfortranarray(self._Zw.T @ W)
        WtW = W.T @ W
        self.kernel.reweight(V, ZtW, WtW)
        self.blocks = dataclasses.replace(b, V=V, ZtW=ZtW, WtW=WtW)
        order = self.residual.order
        yres = W[:, p].copy()
        if order is not None:  # the data's row order, as the moment start reads it
            yres[order] = W[:, p]
        self._Q, self._Rb, self._gamma, self._yres = Q, Rb, gamma, yres
        self._logdetRb2 = 2.0 * float(np.sum(np.log(np.abs(np.diag(Rb))))) if p else 0.0
        self._logdetR = w.logdet
        self._criteria.clear()
        self.phi = phi.copy()
        self.__dict__.pop("_condvar", None)
        return True

    # --- fitting ---------------------------------------------------------------------------
    def profiled_criterion(self):
        """The criterion as a function of φ alone, minimised over θ at each φ (BOBYQA from the
        previous φ's θ̂): one whitening per φ, the θ steps on the kernel alone."""
        state = {"theta": self.theta.copy()}
        lower = self.theta_lower

        def f(phi) -> float:
            if not self._load(phi):
                return math.inf
            th = state["theta"]
            res = minimize_bounded(self.criterion(), th, lower, step=0.1 * np.maximum(np.abs(th), 0.05))
            if not math.isfinite(res.fun):
                return math.inf
            state["theta"], state["evals"] = res.x, state.get("evals", 0) + res.evaluations
            return res.fun + self._logdetR

        return f, state

    def fit(self, start=None, **optctrl) -> "ResidualFit":
        """θ at the starting φ (the ordinary fit), then BOBYQA over φ on the criterion
        profiled over θ (``profiled_criterion``): ~20 whitenings for one φ where BOBYQA over
        (θ, φ) together took ~140 (200k rows: 3-7x the time), at the same optimum on every
        oracle case."""
        if self.sealed:
            raise FitError("this model is fitted (read-only): fit a new one with lmer(..., residual=) or lme()")
        t0 = time.perf_counter()
        self._stage_only = True  # the ordinary fit is the first stage: not yet sealed
        try:
            with warnings.catch_warnings():  # the first stage is only a start
                warnings.simplefilter("ignore")
                super().fit(start=start, **optctrl)
        finally:
            self._stage_only = False
        first = self.optsummary
        nth, nphi = len(self.theta), self.residual.npar
        ctrl = {k: v for k, v in optctrl.items() if k in ("maxeval", "ftol_abs", "xtol_abs")}
        conv, msg, nev = True, "", 0
        x = np.r_[self.theta, self.phi]
        updating = self.residual.needs_fitted
        self.outer_iterations = 0
        for it in range(FITTED_MAXITER if updating else 1):
            if updating:  # nlme's update(lmeSt): the covariate from the current fitted values
                self._set_theta(x[:nth])
                self.residual.set_fitted(self.linear_predictor())
                self.phi = None  # the same φ whitens differently now
                self._load(x[nth:])
            if nphi:
                g, state = self.profiled_criterion()
                step = 0.5 if it == 0 else 0.1
                res = minimize_bounded(
                    g, self.phi, np.full(nphi, -PHI_BOUND), np.full(nphi, PHI_BOUND), step=np.full(nphi, step), **ctrl
                )
                g(res.x)  # θ̂ at the best φ
                x_new = np.r_[state["theta"], res.x]
                nev += res.evaluations + state.get("evals", 0)
                conv, msg = res.converged, res.message
                moved = np.max(np.abs(x_new - x) / np.where(x_new == 0, 1.0, np.abs(x_new)), initial=0.0)
                x = x_new
            self.outer_iterations = it + 1
            if updating and moved <= FITTED_TOL:
                break
        else:
            if updating:
                conv, msg = False, "the fitted(.) iteration reached its maximum without convergence"
        if not self._load(x[nth:]):  # pragma: no cover - BOBYQA returns evaluated points
            raise FitError("the residual structure is not positive definite at the optimum")
        self._set_theta(x[:nth])
        self.optsummary = dataclasses.replace(
            first,
            optimizer="bobyqa(phi | theta)",
            evaluations=first.evaluations + nev,
            theta_final=self.theta.copy(),
            objective=float(self.objective_value),
            converged=conv,
            message=msg,
            seconds=time.perf_counter() - t0,
        )
        self.converged = conv
        if not conv:
            warnings.warn(f"model failed to converge: {msg}", ConvergenceWarning, stacklevel=2)
        self._finish_fit()
        return self

    def _finish_fit(self) -> None:
        """Sealed at the end of the φ stage, not of the first (θ-only) stage."""
        if not getattr(self, "_stage_only", False):
            super()._finish_fit()

    # --- criteria: the whitened model's plus log|R| ------------------------------------------
    @property
    def ml_deviance(self) -> float:
        return super().ml_deviance + self._logdetR

    @property
    def reml_criterion(self) -> float | None:
        v = super().reml_criterion
        return None if v is None else v + self._logdetR

    @property
    def npar(self) -> int:
        return super().npar + self.residual.npar

    @property
    def residual_sd(self) -> np.ndarray:
        """σ times each row's standard-deviation multiplier (nlme's σ / weights)."""
        if self.residual.variance is None:
            return np.full(self.frame.nobs, self.sigma)
        return self.sigma * self.residual.variance.sd(self.residual.split(self.phi)[1])

    def residual_colouring(self):
        """z -> ε with Cov(ε) = R(φ̂) (``model.residual.Colouring``): simulate's residuals."""
        return self.residual.colouring(self.phi)

    def structure_lines(self) -> list[str]:
        """nlme's "Correlation Structure:" and "Variance function:" blocks at the estimates
        (``summary()`` prints them after the random effects)."""
        res = self.residual
        ucor, uvar = res.split(self.phi)
        lines = [] if res.correlation is None else res.correlation.print_lines(ucor)
        return lines + ([] if res.variance is None else res.variance.print_lines(uvar))

    def refit_formula(self, formula: str, reml: bool | None = None) -> "ResidualFit":
        """The same rows and residual structure with another formula (e.g. ML refits)."""
        from .frame import frame_for_formula

        frame = frame_for_formula(self.frame, formula, self.options)
        if frame.nobs != self.frame.nobs:
            raise ModelSpecError("the new formula uses other rows: the residual structure is bound to these")
        model = type(self)(
            frame,
            reml=self.reml if reml is None else reml,
            options=self.options,
            control=self.control,
            residual=self.residual,
        )
        return model.fit()


def _column_getter(data, complete):
    """``column(name)``: a data column's values on the model's rows (``complete``: used rows)."""
    from ..errors import DataError

    def column(name: str) -> np.ndarray:
        if name not in data.columns:
            raise DataError(f"column '{name}' of the residual structure is not a column of the data")
        v = data[name].to_numpy()
        return v if complete is None else v[complete]

    return column


def _default_groups(terms) -> list[str]:
    """lmer(residual=) without '| g' in a form: the one grouping factor of the model, if one."""
    names = {t.factor.name for t in terms}
    if len(names) == 1:
        return [n for n in next(iter(names)).split(":")][::-1]
    return []


def _group_row_order(terms) -> np.ndarray:
    """The rows sorted by the grouping factors' levels, outermost first (nlme's row order)."""
    keys = [t.factor.codes for t in sorted(terms, key=lambda t: t.factor.name.count(":"))]
    return np.lexsort(keys[::-1]) if keys else np.arange(0)


def fit_residual_lmm(
    model_class,
    formula,
    data,
    structures,
    reml=True,
    offset=None,
    check_nobs_vs_nre="stop",
    control=None,
    default_groups=None,
    call_labels=None,
):
    """``lmer(..., residual=)`` and ``lme(correlation=, weights=)``: rows with missing values in
    the structures' columns dropped, the frame, the structures bound to its rows, the fit."""
    import pandas as pd

    from .frame import model_frame
    from .residual import check_nested, group_codes

    if not isinstance(structures, (list, tuple)):
        structures = [structures]
    cor = [s for s in structures if getattr(s, "kind", None) == "correlation"]
    var = [s for s in structures if getattr(s, "kind", None) == "variance"]
    if len(cor) > 1 or len(var) > 1 or len(cor) + len(var) != len(structures):
        raise ModelSpecError(
            "residual= takes at most one correlation structure (corAR1, corCAR1, corExp, corCompSymm, "
            "corSymm) and one variance function (varIdent, varPower, varExp, varFixed)"
        )
    if not isinstance(data, pd.DataFrame):
        data = data.to_pandas() if hasattr(data, "to_pandas") else pd.DataFrame(data)
    cols = [c for s in structures for c in s.columns() if c in data.columns]
    if cols:
        keep = data[cols].notna().all(axis=1).to_numpy()
        if not keep.all():
            data = data.loc[keep]
    frame = model_frame(formula, data, offset=offset, check_nobs_vs_nre=check_nobs_vs_nre)
    column = _column_getter(data, frame.complete)
    groups = _default_groups(frame.terms) if default_groups is None else default_groups
    if cor:  # before binding: a time covariate need only be distinct within nested groups
        check_nested(group_codes([column(g) for g in (cor[0].groups or groups)]), frame.terms)
    c = cor[0].bind(column, groups) if cor else None
    v = var[0].bind(column, row_order=_group_row_order(frame.terms)) if var else None
    residual = ResidualCovariance(c, v)
    options = {"check_nobs_vs_nre": check_nobs_vs_nre}
    model = model_class(frame, reml=reml, options=options, control=control, residual=residual)
    if call_labels is not None:  # set before the fit seals the model
        model.call_labels = call_labels
    return model.fit()

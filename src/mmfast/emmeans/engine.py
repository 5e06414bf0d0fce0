"""Standard errors and df of linear functions l'β, as emmeans obtains them per model class.

* lmer fits (``emm_basis.merMod``): ``"kenward-roger"``: SE from pbkrtest's adjusted covariance
  (``vcovAdj``, computed on the REML refit of an ML fit), df from pbkrtest's ``Lb_ddf(l, V0,
  Vadj)`` with V0 the model's own covariance (for an ML fit V0 is the ML covariance while P and
  W come from the REML refit, as emmeans passes them); ``"satterthwaite"``: lmerTest's df and
  covariance; ``"between-within"``, ``"residual"``, ``"asymptotic"``: the model's ``contest``.
* ``mmfast.lme`` fits (``emm_basis.lme``, mode ``"containment"``): nlme's covariance with
  ``sigmaAdjust`` (ML: times N/(N-p)); df the smallest of nlme's per-coefficient df over the
  coefficients l uses (|l_j| > 1e-4), the intercept's df being the number of outermost groups - 1.
* ``mmfast.lm`` fits: the residual df; GLMMs: asymptotic (z), on the link scale.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArgumentError

__all__ = ["Engine", "make_engine"]


class Engine:
    """What an EMM table needs from a model: β̂, and (SE, df) for rows of L."""

    def __init__(self, model, name: str, beta, se_df, notes=(), df_note: bool = True):
        self.model = model
        self.name = name
        self.df_note = df_note  # does emmeans print "Degrees-of-freedom method: ..."?
        self.beta = np.asarray(beta, dtype=float)
        self._se_df = se_df
        self.notes = list(notes)

    def se_df(self, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        L = np.atleast_2d(np.asarray(L, dtype=float))
        return self._se_df(L)


def _lb_ddf(l: np.ndarray, V0: np.ndarray, P: list, W: np.ndarray) -> float:
    """pbkrtest's ``Lb_ddf`` for one contrast (q = 1): Kenward-Roger's df with V0 in Θ and U."""
    Theta = np.outer(l, l) / float(l @ V0 @ l)
    TV = Theta @ V0
    Us = [TV @ Pr @ V0 for Pr in P]
    tr = np.array([np.trace(u) for u in Us])
    A1 = float(tr @ W @ tr)
    A2 = float(sum(W[r, s] * np.sum(Us[r] * Us[s].T) for r in range(len(Us)) for s in range(len(Us))))
    q = 1.0
    B = (A1 + 6.0 * A2) / (2.0 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    v0, v1, v2 = 1 + c1 * B, 1 - c2 * B, 1 - c3 * B
    v0 = 0.0 if abs(v0) < 1e-10 else v0
    x = 1 - A2 / q
    ratio = 1.0 if (abs(x) < 1e-14 and abs(v1) < 1e-14) else x / v1
    rho = ratio**2 * v0 / (q * v2)
    return 4 + (q + 2) / (q * rho - 1)


def _quad(L: np.ndarray, V: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", L, V, L), 0.0))


def _lme_engine(fit, ddf):
    if ddf not in ("containment", "asymptotic"):
        raise ArgumentError(
            f"ddf={ddf!r}: for mmfast.lme fits emmeans uses 'containment' (nlme's df) or "
            "'asymptotic'; for lmerTest/pbkrtest df pass the lmer fit (fit.model)"
        )
    V = fit._vcov_adjusted(adjust_sigma=True)  # emmeans' sigmaAdjust = TRUE
    dfx = fit.fixDF()["X"].to_numpy(dtype=float).copy()
    names = list(fit.fixef.index)
    if names and names[0] == "(Intercept)":
        dfx[0] = fit.ngroups[fit.levels[0].label] - 1

    def se_df(L):
        if ddf == "asymptotic":
            return _quad(L, V), np.full(len(L), np.inf)
        df = [float(np.min(dfx[np.abs(row) > 1e-4])) if np.any(np.abs(row) > 1e-4) else np.nan for row in L]
        return _quad(L, V), np.array(df)

    return Engine(fit.model, ddf, fit.fixef.to_numpy(), se_df)


def _lmer_engine(model, ddf):
    from ..inference.ftests import ddf_method

    def se_df(L):
        res = model.contest(L, ddf=ddf, joint=False)
        se = res["Std. Error"].to_numpy(dtype=float)
        df = res["df"].to_numpy(dtype=float)
        if ddf == "kenward-roger" and not model.reml:
            kr = ddf_method(model, "kenward-roger")  # P, W of the REML refit, as pbkrtest's vcovAdj
            V0 = np.asarray(model.vcov_array, dtype=float)
            df = np.array([_lb_ddf(row, V0, kr.P, kr.W) for row in L])
        return se, df

    return Engine(model, ddf, model.beta, se_df)


def make_engine(fit, ddf) -> Engine:
    """The SE/df engine of a fitted model for ``ddf`` (None: emmeans' default for its class)."""
    from ..inference.ftests import resolve_ddf
    from ..model.lm import LinearModel
    from ..nlme.lme import LmeFit

    if isinstance(fit, LmeFit):
        key = "containment" if ddf is None else str(ddf).strip().lower()
        key = {"between-within": "containment", "nlme": "containment", "none": "asymptotic", "z": "asymptotic"}.get(
            key, key
        )
        return _lme_engine(fit, key)
    if hasattr(fit, "contest"):
        # lmer(residual=): Satterthwaite by default (Kenward-Roger is not implemented there)
        default = "satterthwaite" if getattr(fit, "residual", None) is not None else "kenward-roger"
        return _lmer_engine(fit, resolve_ddf(default if ddf is None else ddf))
    if isinstance(fit, LinearModel):
        if ddf not in (None, "residual"):
            raise ArgumentError(f"ddf={ddf!r}: an mmfast.lm fit has the residual df only")
        n, p = fit.frame.X.shape
        V = np.asarray(fit.vcov_array, dtype=float)
        return Engine(fit, "residual", fit.beta, lambda L: (_quad(L, V), np.full(len(L), float(n - p))), df_note=False)
    if hasattr(fit, "vcov_array") and hasattr(fit, "frame"):  # GLMMs: z tests on the link scale
        if ddf not in (None, "asymptotic"):
            raise ArgumentError(f"ddf={ddf!r}: this model supports 'asymptotic' (z tests) only")
        V = np.asarray(fit.vcov_array, dtype=float)
        fam = getattr(fit, "family", None)
        link = getattr(getattr(fam, "link", None), "name", None) or getattr(fam, "link", None)
        notes = (
            [f"Results are given on the {link} (not the response) scale."]
            if isinstance(link, str) and link != "identity"
            else []
        )
        return Engine(
            fit, "asymptotic", fit.beta, lambda L: (_quad(L, V), np.full(len(L), np.inf)), notes, df_note=False
        )
    raise ArgumentError(f"emmeans() needs an mmfast model (lmer, lme, lm, glmer), not {type(fit).__name__}")

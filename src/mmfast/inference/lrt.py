"""Likelihood-ratio tests between nested models (lme4's ``anova(m0, m1, ...)``) and ``drop1``.

Any model with ``loglik``, ``npar``, ``nobs``, ``aic``, ``bic`` and ``refit_ml()`` takes part:
LMMs (REML fits are refitted by ML first, as lme4 does), GLMMs and ``mmfast.lm`` fits.
Models are sorted by their number of parameters; each row tests against the row above:
χ² = 2 (ℓ_i - ℓ_{i-1}) on npar_i - npar_{i-1} df.  The χ² reference is naive for variance
parameters on the boundary (it is conservative there; a 50:50 mixture halves the p-value
for one variance).

``drop1`` refits the model (by ML) without each fixed term that is not contained in a
higher-order term (R's ``drop.scope``) and reports npar, AIC, LRT and Pr(Chi) as lme4 does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..callnames import caller_names
from ..errors import ArgumentError, DataError, ModelSpecError
from ..rformat import AnovaTable

__all__ = ["anova_lrt", "drop1"]


def _is_reml(m) -> bool:
    return bool(getattr(m, "reml", False))


def _formula(m) -> str:
    return str(getattr(getattr(getattr(m, "frame", None), "parsed", None), "formula", "?"))


def model_names(models) -> list[str]:
    """Row names of an anova: each model's variable name in the caller (R's deparsed argument),
    else its formula; ``MODEL1``, ``MODEL2``, ... if names clash (lme4's fallback)."""
    names = [v or _formula(m) for v, m in zip(caller_names(*models), models)]
    return names if len(set(names)) == len(names) else [f"MODEL{i + 1}" for i in range(len(models))]


def anova_lrt(*models, names: list[str] | None = None, refit: bool = True, **named) -> AnovaTable:
    """lme4's ``anova()`` for two or more models: likelihood-ratio tests, printed as R does.

    Parameters
    ----------
    *models : fitted models
        ``lmer``, ``glmer``, ``lm`` or ``lme`` fits of the same rows; the table is ordered by
        the number of parameters.
    names : list of str, optional
        Row names; default the caller's variable names (R's deparsed arguments), else the
        formulas, ``MODEL1``, ``MODEL2``, ... if they clash (keyword arguments: their keywords).
    refit : bool, default True
        Refit REML fits by maximum likelihood first (lme4's ``refit = TRUE``).
    **named : fitted models
        Models by keyword; the keyword names the row.

    Returns
    -------
    AnovaTable
        A DataFrame printed in R's layout: ``npar``, ``AIC``, ``BIC``, ``logLik``,
        ``deviance``, ``Chisq``, ``Df``, ``Pr(>Chisq)``; each χ² compares a row with the one above.

    Examples
    --------
    >>> import mmfast
    >>> sleep = mmfast.datasets.load("sleepstudy")
    >>> m0 = mmfast.lmer("Reaction ~ 1 + (Days | Subject)", sleep, reml=False)
    >>> m1 = mmfast.lmer("Reaction ~ Days + (Days | Subject)", sleep, reml=False)
    >>> print(round(mmfast.anova(m0, m1).loc["m1", "Chisq"], 3))
    23.537
    """
    from ..arguments import check_model_arguments, check_models

    check_models("anova", named, ("names", "refit"))
    check_model_arguments("anova", models)
    mods = list(models) + list(named.values())
    if names is None:
        names = model_names(models) + list(named)
    data_name = getattr(mods[0], "call_labels", {}).get("data") if mods else None
    if len(names) != len(mods):
        raise ArgumentError(f"{len(names)} names for {len(mods)} models")
    if len(mods) < 2:
        raise ArgumentError("anova() compares two or more models; for one LMM use model.anova()")
    nobs = {int(m.nobs) for m in mods}
    if len(nobs) > 1:
        raise ModelSpecError(f"models were not all fitted to the same size of dataset (nobs: {sorted(nobs)})")
    notes = []
    if refit and any(_is_reml(m) for m in mods):
        notes.append("refitting model(s) with ML (instead of REML)")
        mods = [m.refit_ml() if _is_reml(m) else m for m in mods]
    elif any(_is_reml(m) for m in mods) and not all(_is_reml(m) for m in mods):
        notes.append("some models fit with REML = TRUE, some not")
    npar = np.array([m.npar for m in mods], dtype=float)
    order = np.argsort(npar, kind="stable")
    mods = [mods[i] for i in order]
    names = [names[i] for i in order]
    ll = np.array([m.loglik for m in mods], dtype=float)
    npar = npar[order]
    chisq = np.concatenate([[np.nan], 2 * np.maximum(0.0, np.diff(ll))])
    df = np.concatenate([[np.nan], np.diff(npar)])
    with np.errstate(invalid="ignore"):
        p = np.where(df == 0, np.nan, stats.chi2.sf(chisq, np.where(df > 0, df, 1)))
    p[0] = np.nan
    out = pd.DataFrame(
        {
            "npar": npar.astype(int),
            "AIC": [m.aic for m in mods],
            "BIC": [m.bic for m in mods],
            "logLik": ll,
            "deviance": -2 * ll,
            "Chisq": chisq,
            "Df": df,
            "Pr(>Chisq)": p,
        },
        index=names,
    )
    forms = [f"{nm}: {_formula(m)}" for nm, m in zip(names, mods)]
    out.attrs["heading"] = "\n".join(([f"Data: {data_name}"] if data_name else []) + ["Models:"] + forms)
    out.attrs["notes"] = notes
    out.attrs["models"] = dict(zip(names, mods))
    return AnovaTable.wrap(out)


def _formula_without(model, drop: str, ft) -> str:
    """The model's formula with fixed term ``drop`` removed (random part and offsets kept)."""
    parsed = model.frame.parsed
    keep = [t.label for t in ft.terms if t.label != drop]
    fixed = " + ".join((["1"] if ft.intercept else ["0"]) + keep)
    extra = [f"({b})" for b in parsed.bars] + [f"offset({o})" for o in parsed.offsets]
    return f"{parsed.response} ~ " + " + ".join([fixed] + extra)


def drop1(model, test: str | None = "Chisq", scope: list[str] | None = None) -> AnovaTable:
    """lme4's ``drop1``: refit without each droppable fixed term; AIC from ML fits."""
    from .fixed_terms import fixed_terms

    ft = fixed_terms(model.frame)
    scope = ft.droppable() if scope is None else list(scope)
    unknown = [s for s in scope if s not in ft.labels]
    if unknown:
        raise ArgumentError(f"scope {unknown} is not a subset of the term labels {ft.labels}")
    base = model.refit_ml() if _is_reml(model) else model
    fits = [base]
    for term in scope:
        new = base.refit_formula(_formula_without(model, term, ft))
        if int(new.nobs) != int(base.nobs):
            raise DataError("number of rows in use has changed: remove missing values?")
        fits.append(new)
    edf = np.array([f.npar for f in fits], dtype=float)
    aic = np.array([f.aic for f in fits], dtype=float)
    npar = edf[0] - edf
    npar[0] = np.nan
    out = pd.DataFrame({"npar": npar, "AIC": aic}, index=["<none>"] + scope)
    if test is not None:
        if str(test).lower() not in ("chisq", "lrt", "chi"):
            raise ArgumentError(f"test must be 'Chisq' or None, not {test!r}")
        dev = -2.0 * np.array([f.loglik for f in fits])
        lrt = dev - dev[0]
        lrt[0] = np.nan
        with np.errstate(invalid="ignore"):
            p = stats.chi2.sf(lrt, np.where(npar > 0, npar, 1))
        p[0] = np.nan
        out["LRT"] = lrt
        out["Pr(Chi)"] = p
    out.attrs["heading"] = f"Single term deletions\n\nModel:\n{model.frame.parsed.formula}"
    return AnovaTable.wrap(out)

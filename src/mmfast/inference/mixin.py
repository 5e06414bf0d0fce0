"""Inference methods of fitted models (mixed into ``mmfast.api``'s classes); each delegates to
a module of this package, which takes the fitted model as its argument."""

from __future__ import annotations

import pandas as pd

from ..arguments import boolean, check_model_arguments, check_models, one_of, probability, validated
from ..errors import ArgumentError
from ..progress import check_progress

BOOT_KEYWORDS = ("nsim", "seed", "n_jobs", "progress")  # confint_boot's

__all__ = ["InferenceMixin", "LikelihoodRatioMixin", "ProfileMixin"]


class LikelihoodRatioMixin:
    """``anova(other)`` and ``drop1`` by likelihood-ratio tests (lme4's): GLMMs' methods, and
    LMMs' ``drop1`` (``InferenceMixin`` overrides ``anova`` with lmerTest's F tests)."""

    def anova(self, *others, **named) -> pd.DataFrame:
        """Likelihood-ratio tests against other models (lme4's ``anova(m0, m1)``).

        Parameters
        ----------
        *others : fitted models
            The models to compare with, fitted to the same rows.
        **named : fitted models, or names / refit
            Models by keyword (the keyword names the row), ``names=`` or ``refit=`` as in
            ``mmfast.anova``.

        Returns
        -------
        DataFrame
            lme4's table: ``npar``, ``AIC``, ``BIC``, ``logLik``, ``deviance``, ``Chisq``,
            ``Df``, ``Pr(>Chisq)``, one row per model in order of ``npar``.
        """
        check_models("anova", named, ("names", "refit"))
        check_model_arguments("anova", others)
        from .lrt import anova_lrt

        return anova_lrt(self, *others, **named)

    @validated(name="drop1")
    def drop1(self, test: str | None = "Chisq", scope=None) -> pd.DataFrame:
        """Refit without each droppable fixed term (lme4's ``drop1``).

        Parameters
        ----------
        test : {"Chisq", None}, default "Chisq"
            "Chisq" adds the likelihood-ratio test; None gives AIC only.
        scope : list of str, optional
            The terms to drop; by default every term that can be dropped (marginality).

        Returns
        -------
        DataFrame
            ``npar``, ``AIC``, ``LRT``, ``Pr(Chi)``; the first row (``<none>``) is this model
            (an LMM fitted by REML is refitted by ML first, as lme4 does).
        """
        from .lrt import drop1

        return drop1(self, test=test, scope=scope)


class InferenceMixin(LikelihoodRatioMixin):
    """``anova`` (F tests), ``contest``, ``confint``, ``profile``, ``icc`` for LMMs; ``drop1`` as GLMMs'."""

    def anova(self, *others, type=3, ddf="satterthwaite", refit: bool = True, **named) -> pd.DataFrame:
        """F tests of the fixed terms (lmerTest, Type 1/2/3) or, given other models, LR tests (lme4).

        Parameters
        ----------
        *others : fitted models
            With other models: lme4's likelihood-ratio table (as ``mmfast.anova``).
        type : {1, 2, 3}, default 3
            Type of the F tests (lmerTest's ``anova(m, type=)``).
        ddf : str or None, default "satterthwaite"
            Denominator df: ``"satterthwaite"``, ``"kenward-roger"``, ``"between-within"``,
            ``"residual"`` or None (χ² tests).
        refit : bool, default True
            Model comparison: refit REML fits by ML first, as lme4 does.
        **named : fitted models, or names
            Models by keyword (the keyword names the row) or ``names=``.

        Returns
        -------
        DataFrame
            F tests: ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``, ``F value``, ``Pr(>F)`` per
            term; or the likelihood-ratio table.

        Examples
        --------
        >>> import mmfast
        >>> m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", mmfast.datasets.load("sleepstudy"))
        >>> print(round(m.anova().loc["Days", "F value"], 3))
        45.853
        """
        check_models("anova", named, ("type", "ddf", "refit", "names"))
        check_model_arguments("anova", (self, *others))
        if others or named:
            from .lrt import anova_lrt

            return anova_lrt(self, *others, refit=refit, **named)
        from .ftests import anova_table

        return anova_table(self, type=type, ddf=ddf)

    @validated(name="contest", joint=boolean)
    def contest(self, L, ddf="satterthwaite", joint: bool = True, rhs=0.0) -> pd.DataFrame:
        """Test L β = rhs (lmerTest's ``contest``): a t test per row (one row or joint=False),
        else one F test.

        Parameters
        ----------
        L : array-like
            Contrast matrix, one column per fixed effect (one row: a vector).
        ddf : str, default "satterthwaite"
            ``"satterthwaite"``, ``"kenward-roger"``, ``"between-within"`` or ``"residual"``.
        joint : bool, default True
            One F test of all rows, or (False) a t test per row.
        rhs : float or array-like, default 0.0
            The hypothesised value(s) of L β.

        Returns
        -------
        DataFrame
            t tests (``Estimate``, ``Std. Error``, ``df``, ``t value``, ``Pr(>|t|)``) or the
            F test (``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``, ``F value``, ``Pr(>F)``).
        """
        from .ftests import contest

        return contest(self, L, ddf=ddf, joint=joint, rhs=rhs)

    @validated(
        extra=BOOT_KEYWORDS, name="confint", level=probability, method=one_of("profile", "wald", "boot", case=False)
    )
    def confint(self, parm=None, level: float = 0.95, method: str = "profile", **boot) -> pd.DataFrame:
        """Confidence intervals named as lme4's ``confint(oldNames = FALSE)``.

        Parameters
        ----------
        parm : str or list of str, optional
            Parameters to include (``"sd_(Intercept)|Subject"``, ``"sigma"``, ``"Days"``, ...);
            default all.
        level : float, default 0.95
            Confidence level.
        method : {"profile", "wald", "boot"}, default "profile"
            Profile likelihood (lme4's default), Wald (fixed effects only; NaN for the
            variance parameters, as lme4) or parametric-bootstrap percentiles.
        **boot
            For ``method="boot"``: ``nsim`` (default 500), ``seed``, ``n_jobs``; for boot and
            profile ``progress``, a tqdm bar (None: on a terminal, runs over ~2 s).

        Returns
        -------
        DataFrame
            Columns ``2.5 %`` and ``97.5 %`` (for level 0.95), one row per parameter.

        Examples
        --------
        >>> import mmfast
        >>> m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", mmfast.datasets.load("sleepstudy"))
        >>> m.confint(method="wald").loc["Days"].round(3).tolist()
        [7.438, 13.497]
        """
        progress = boot.pop("progress", None) if str(method).lower() == "profile" else None
        if boot and str(method).lower() != "boot":
            raise ArgumentError(f"{', '.join(boot)} applies to method='boot' only (method is {method!r})")
        if str(method).lower() == "profile" and getattr(self, "residual", None) is not None:
            from ..errors import ModelSpecError  # the profile would hold φ at φ̂

            raise ModelSpecError(
                "profile intervals are not implemented for models with a residual structure: use "
                "method='boot' (re-estimates φ) or 'wald'; lme() fits have nlme's intervals()"
            )
        try:
            if str(method).lower() == "boot":
                return self._confint_boot(parm=parm, level=level, **boot)  # resample's mixin
            from .profile import confint_table

            return confint_table(self, parm=parm, level=level, method=method, progress=check_progress(progress))
        except KeyError as exc:  # parm names no parameter
            if parm is None:
                raise
            raise ArgumentError(f"parm={parm!r} names no parameter of the model ({exc})") from exc

    @validated(name="profile")
    def profile(self, which=None, progress: bool | None = None) -> pd.DataFrame:
        """lme4's ``profile()``: the signed root deviance ζ along each parameter.

        Parameters
        ----------
        which : str or list of str, optional
            Parameters to return (names as in ``confint``); default all.
        progress : bool, optional
            A tqdm bar over the parameters (None: on a terminal, runs over ~2 s).

        Returns
        -------
        DataFrame
            Columns ``parameter``, ``value``, ``zeta``.
        """
        from .ftests import _cache
        from .locking import model_lock
        from .profile import profile_model

        with model_lock(self):  # the cached Profile and (ML fits) the kernel are shared
            store = _cache(self)
            if "profile" not in store:
                store["profile"] = profile_model(self)
            return store["profile"].data(which, check_progress(progress))

    def icc(self, by: str | None = None, reml: bool | None = None):
        """Intraclass correlation per grouping factor (random-intercept models).

        Parameters
        ----------
        by : str, optional
            A column: refit the model's random intercepts within each of its levels (the
            lecture's ICC per treatment group), as ``mmfast.icc_by_group``.
        reml : bool, optional
            With ``by``: REML or ML refits; default as this model.

        Returns
        -------
        Series or DataFrame
            The ICC per grouping factor, or (with ``by``) ``icc_by_group``'s table.
        """
        from .icc import icc, icc_by_group

        if by is None:
            return icc(self)
        terms = self.frame.terms
        from .icc import _intercept_terms

        _intercept_terms(self)
        bars = " + ".join(f"(1 | {t.factor.name})" for t in terms)
        formula = f"{self.frame.parsed.response} ~ 1 + {bars}"
        data = self.frame.data
        return icc_by_group(formula, data, by, reml=self.reml if reml is None else reml)


class ProfileMixin:
    """``confint`` (profile, Wald, bootstrap) and ``profile`` for GLMMs: the LMMs' methods, whose
    ``profile_model`` profiles a GLMM's own deviance (``profile_glmm``)."""

    confint = InferenceMixin.confint
    profile = InferenceMixin.profile

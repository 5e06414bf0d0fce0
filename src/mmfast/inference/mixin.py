"""Inference methods of fitted models (mixed into ``mmfast.api``'s classes); each delegates to
a module of this package, which takes the fitted model as its argument."""
from __future__ import annotations

import pandas as pd

from ..arguments import (boolean, check_model_arguments, check_models, one_of, probability,
                         validated)
from ..errors import ArgumentError
from ..progress import check_progress

BOOT_KEYWORDS = ("nsim", "seed", "n_jobs", "progress")  # confint_boot's

__all__ = ["InferenceMixin", "LikelihoodRatioMixin"]


class InferenceMixin:
    """``anova``, ``contest``, ``drop1``, ``confint``, ``profile``, ``icc`` for LMMs."""

    def anova(self, *others, type=3, ddf="satterthwaite", refit: bool = True, **named) -> pd.DataFrame:
        """F tests of the fixed terms (lmerTest, Type 1/2/3) or, given other models, LR tests (lme4)."""
        check_models("anova", named, ("type", "ddf", "refit", "names"))
        check_model_arguments("anova", (self, *others))
        if others or named:
            from .lrt import anova_lrt
            return anova_lrt(self, *others, refit=refit, **named)
        from .ftests import anova_table
        return anova_table(self, type=type, ddf=ddf)

    @validated(name="contest", joint=boolean)
    def contest(self, L, ddf="satterthwaite", joint: bool = True, rhs=0.0) -> pd.DataFrame:
        """Test L β = rhs: a t test per row (one row or joint=False), else one F test."""
        from .ftests import contest
        return contest(self, L, ddf=ddf, joint=joint, rhs=rhs)

    @validated(name="drop1")
    def drop1(self, test: str | None = "Chisq", scope=None) -> pd.DataFrame:
        """Likelihood-ratio test of dropping each fixed term (respecting marginality), as lme4."""
        from .lrt import drop1
        return drop1(self, test=test, scope=scope)

    @validated(extra=BOOT_KEYWORDS, name="confint", level=probability,
               method=one_of("profile", "wald", "boot", case=False))
    def confint(self, parm=None, level: float = 0.95, method: str = "profile", **boot) -> pd.DataFrame:
        """Confidence intervals named as lme4's ``confint(oldNames = FALSE)``: profile, Wald or
        boot (percentile; ``nsim``, ``seed``, ``n_jobs``: see ``mmfast.resample.confint_boot``).
        ``progress``: a tqdm bar for boot and profile (None: on a terminal, runs over ~2 s)."""
        progress = boot.pop("progress", None) if str(method).lower() == "profile" else None
        if boot and str(method).lower() != "boot":
            raise ArgumentError(f"{', '.join(boot)} applies to method='boot' only "
                                f"(method is {method!r})")
        try:
            if str(method).lower() == "boot":
                return self._confint_boot(parm=parm, level=level, **boot)  # resample's mixin
            from .profile import confint_table
            return confint_table(self, parm=parm, level=level, method=method,
                                 progress=check_progress(progress))
        except KeyError as exc:  # parm names no parameter
            if parm is None:
                raise
            raise ArgumentError(f"parm={parm!r} names no parameter of the model ({exc})") from exc

    @validated(name="profile")
    def profile(self, which=None, progress: bool | None = None) -> pd.DataFrame:
        """lme4's ``profile()``: ζ along each parameter (columns parameter, value, zeta);
        ``progress``: a tqdm bar over the parameters (None: on a terminal, runs over ~2 s)."""
        from .ftests import _cache
        from .locking import model_lock
        from .profile import Profile
        with model_lock(self):  # the cached Profile and (ML fits) the kernel are shared
            store = _cache(self)
            if "profile" not in store:
                store["profile"] = Profile(self)
            return store["profile"].data(which, check_progress(progress))

    def icc(self, by: str | None = None, reml: bool | None = None):
        """ICC per grouping factor (random-intercept models); ``by``: refit within each level."""
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


class LikelihoodRatioMixin:
    """GLMMs' ``anova(other)`` and ``drop1``: likelihood-ratio tests (lme4's)."""

    def anova(self, *others, **named) -> pd.DataFrame:
        """Likelihood-ratio tests against other models (lme4's ``anova(m0, m1)``)."""
        check_models("anova", named, ("names", "refit"))
        check_model_arguments("anova", others)
        from .lrt import anova_lrt
        return anova_lrt(self, *others, **named)

    @validated(name="drop1")
    def drop1(self, test: str | None = "Chisq", scope=None) -> pd.DataFrame:
        """Refit without each droppable fixed term: npar, AIC, LRT, Pr(Chi) (lme4's ``drop1``)."""
        from .lrt import drop1
        return drop1(self, test=test, scope=scope)

"""Static types of the public API, checked by mypy (tests/test_lint.py); never executed.

``assert_type`` fails the mypy run when an accessor's declared type drifts (for example back
to ``Any``, which is what a decorator without a typed signature made of ``lmer``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typing_extensions import assert_type

import mmfast
from mmfast.present.results_api import PredictionResults
from mmfast.present.summary import Summary


def lmm_accessors(data: pd.DataFrame) -> None:
    m = mmfast.lmer("y ~ x + (1 | g)", data)
    assert_type(m, mmfast.LinearMixedModel)
    assert_type(m.fixef, pd.Series)
    assert_type(m.vcov, pd.DataFrame)
    assert_type(m.summary(), Summary)
    assert_type(m.varcorr, pd.DataFrame)
    assert_type(m.ranef, dict[str, pd.DataFrame])
    assert_type(m.coef, dict[str, pd.DataFrame])
    assert_type(m.fitted, pd.Series)
    assert_type(m.residuals, pd.Series)
    assert_type(m.loglik, float)
    assert_type(m.aic, float)
    assert_type(m.bic, float)
    assert_type(m.nobs, int)
    assert_type(m.ngroups, dict[str, int])
    assert_type(m.singular, bool)
    assert_type(m.vcov_array, np.ndarray)
    assert_type(m.params, pd.Series)
    assert_type(m.bse, pd.Series)
    assert_type(m.pvalues, pd.Series)
    assert_type(m.conf_int(), pd.DataFrame)
    assert_type(m.cov_params(), pd.DataFrame)
    assert_type(m.llf, float)
    assert_type(m.confint(method="wald"), pd.DataFrame)
    assert_type(m.anova(), pd.DataFrame)
    assert_type(m.profile(), pd.DataFrame)
    assert_type(m.bootstrap(nsim=10), pd.DataFrame)
    assert_type(m.tidy(), pd.DataFrame)
    assert_type(m.glance(), pd.DataFrame)
    assert_type(m.refit(np.zeros(3)), mmfast.LinearMixedModel)
    assert_type(m.predict(), pd.Series)
    assert_type(m.get_prediction(), PredictionResults)
    assert_type(m.get_prediction().summary_frame(), pd.DataFrame)
    assert_type(m.drop1(), pd.DataFrame)
    assert_type(m.simulate(nsim=2), pd.DataFrame | np.ndarray)


def glmm_accessors(data: pd.DataFrame) -> None:
    g = mmfast.glmer("y ~ x + (1 | g)", data, family="binomial")
    assert_type(g, mmfast.GeneralizedLinearMixedModel)
    assert_type(g.fixef, pd.Series)
    assert_type(g.vcov, pd.DataFrame)
    assert_type(g.summary(), Summary)
    assert_type(g.loglik, float)
    assert_type(g.fitted, pd.Series)
    assert_type(g.predict(type="response"), pd.Series)


def functions(data: pd.DataFrame) -> None:
    assert_type(mmfast.fit_many(data, "y ~ x + (1 | g)", by="gene"), pd.DataFrame)
    assert_type(mmfast.lm("y ~ x", data), mmfast.LinearModel)

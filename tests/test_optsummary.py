"""``model.optsummary``: what the optimiser really did, checked against counters and spies
that sit outside it (a wrapped criterion, wrapped optimiser functions), lme4's start and
lme4's answer for a singular fit (tests/reference/dyestuff2_reml.json.gz)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast import datasets
from mmfast.model import fitting as fitting_module
from mmfast.model import glmm_fit as glmm_module
from mmfast.model.frame import model_frame
from mmfast.api import LinearMixedModel  # the fit class with summary() (mmfast.api)
from reference_cases import load_reference

SLEEP = "Reaction ~ Days + (Days | Subject)"


def _counted_lmm(formula, data, **optctrl):
    """An LMM fitted with its criterion wrapped in a counter: (model, calls)."""
    model = LinearMixedModel(model_frame(formula, data))
    calls, criterion = [0], model.criterion

    def counting(reml=None):
        f = criterion(reml)

        def g(theta):
            calls[0] += 1
            return f(theta)

        return g

    model.criterion = counting  # the instance's: what fit and its restarts call
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(**optctrl)
    return model, calls[0]


def test_evaluations_are_every_criterion_call_including_the_check():
    """sleepstudy from the moment start: BOBYQA's run plus the one evaluation at lme4's start
    that rules out a restart; before OptSummary that evaluation went uncounted."""
    m, calls = _counted_lmm(SLEEP, datasets.load("sleepstudy"))
    s = m.optsummary
    assert s.evaluations == calls
    assert [st.name for st in s.stages] == ["moment"] and s.start_kind == "moment"
    assert s.restart == {"taken": False, "checked": "criterion at lme4's start"}
    assert s.evaluations == s.stages[0].evaluations + 1
    assert s.optimizer == "bobyqa" and s.converged
    np.testing.assert_array_equal(s.theta_final, m.theta)
    assert s.objective == m.objective_value and s.seconds > 0
    assert m.optinfo["evaluations"] == calls and m.optinfo["start"] == "moment"


def test_start_is_lme4s_when_that_path_is_used():
    """Optimiser settings given: no moment start, lme4's start (1 on the template diagonals, 0
    below, as lme4's ``lmer`` starts) and no extra check."""
    m, calls = _counted_lmm(SLEEP, datasets.load("sleepstudy"), maxeval=10**5)
    s = m.optsummary
    assert s.start_kind == "lme4" and s.restart is None
    np.testing.assert_array_equal(s.theta_start, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(s.stages[0].start, [1.0, 0.0, 1.0])
    assert s.evaluations == calls == s.stages[0].evaluations


def test_singular_fit_records_its_restart():
    """Dyestuff2 (lme4: θ = 0, singular): the fit near the boundary is rerun from lme4's
    start (θ = 1); both runs are in the record and in the evaluations."""
    ref = load_reference("dyestuff2_reml")["results"]
    m, calls = _counted_lmm("Yield ~ 1 + (1 | Batch)", datasets.load("Dyestuff2"))
    assert ref["theta"]["values"] == [0] and m.singular and m.theta[0] < 1e-4
    assert m.reml_criterion == pytest.approx(ref["REMLcrit"], rel=1e-10)
    s = m.optsummary
    assert s.restart["taken"] and [t["from"] for t in s.restart["tried"]] == ["moment", "lme4"]
    assert [st.name for st in s.stages] == ["moment", "lme4"] and s.fallback
    np.testing.assert_array_equal(s.stages[1].start, [1.0])
    assert s.evaluations == calls == sum(st.evaluations for st in s.stages)
    assert s.restart["won"] == s.start_kind
    text = str(m.summary())
    assert "optimizer (bobyqa) convergence code: 0 (OK)" in text
    assert "boundary (singular) fit" in text


def _spy(monkeypatch, module, names):
    """Wrap ``module``'s optimiser functions: each call's name and objective calls recorded."""
    ran = []
    for name in names:
        orig = getattr(module, name)

        def wrapper(fun, *args, _orig=orig, _name=name, **kw):
            rec = [_name, 0]
            ran.append(rec)

            def counted(*a, **k):
                rec[1] += 1
                return fun(*a, **k)

            return _orig(counted, *args, **kw)

        monkeypatch.setattr(module, name, wrapper)
    return ran


def test_summary_names_the_gradient_optimiser_not_bobyqa(monkeypatch):
    """Dyestuff2 on the gradient path (forced): Newton steps on log θ ran, BOBYQA never did,
    and summary() says so (it printed "bobyqa" whatever ran)."""
    ran = _spy(monkeypatch, fitting_module, ["minimize_log_newton", "minimize_bounded", "minimize_with_gradient"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.lmer(
            "Yield ~ 1 + (1 | Batch)", datasets.load("Dyestuff2"), control=mmfast.LmmControl(gradient_min_q=0)
        )
    assert m.use_gradient and m.singular
    assert {r[0] for r in ran} == {"minimize_log_newton"}
    assert m.optsummary.optimizer == "newton(log)"
    text = str(m.summary())
    assert "optimizer (newton(log)) convergence code: 0 (OK)" in text
    assert "bobyqa" not in text


def test_glmm_summary_names_its_optimisers(monkeypatch):
    """A singular binomial GLMM (no g2 variation, as in test_glmm_gradient): stage 1 BOBYQA,
    stage 2 Newton on the Laplace gradient; the summary prints both, and the evaluations are
    the objective calls the spies counted."""
    ran = _spy(monkeypatch, glmm_module, ["minimize_bounded", "minimize_newton", "minimize_with_gradient"])
    rng = np.random.default_rng(7)
    n = 800
    g1, g2, x = rng.integers(0, 80, n), rng.integers(0, 10, n), rng.normal(size=n)
    eta = -0.2 + 0.4 * x + 0.7 * rng.normal(size=80)[g1]
    df = pd.DataFrame(
        {"y": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int), "x": x, "g1": g1.astype(str), "g2": g2.astype(str)}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mmfast.glmer("y ~ x + (1 | g1) + (1 | g2)", df, family="binomial")
    assert m.singular
    names = {"minimize_bounded": "bobyqa", "minimize_newton": "newton", "minimize_with_gradient": "lbfgsb(log)"}
    s = m.optsummary
    parts = iter(s.optimizer.split("+"))  # every optimiser that ran, in order (a fallback too)
    assert [r[0] for r in ran][:2] == ["minimize_bounded", "minimize_newton"]
    assert all(names[r[0]] in parts for r in ran)
    assert s.stages[1].optimizer.startswith("newton") and s.fallback == (len(ran) > 2)
    assert s.evaluations == sum(r[1] for r in ran)
    np.testing.assert_array_equal(s.theta_start, m.theta_start)
    text = str(m.summary())
    assert f"optimizer ({s.optimizer}) convergence code" in text
    assert m.optinfo["optimizer"] == s.optimizer and "stage2" in m.optinfo

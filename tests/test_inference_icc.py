"""Intraclass correlations: the model's, and per treatment group as the lecture tabulates them
(ex1 ``extras.icc_by_group``: ``lmer(res ~ 1 + (1|midx))`` on each group's rows, REML and ML)."""

from __future__ import annotations

import numpy as np
import pytest

import mmfast
from mmfast.errors import ModelSpecError


@pytest.mark.parametrize("reml", [True, False])
def test_icc_by_group(reml, fit_case):
    fit = fit_case("ex1_ml")
    ref = fit.ref["results"]["extras"]["icc_by_group"]
    key = "REML" if reml else "ML"
    tab = fit.model.icc(by="treatment_idx", reml=reml)
    assert [int(v) for v in tab.index] == [r["treatment_idx"] for r in ref]
    assert list(tab["nobs"]) == [r["n_cells"] for r in ref]
    assert list(tab["n_midx"]) == [r["n_mice"] for r in ref]
    for col, name in [("var_midx", "var_mouse"), ("var_resid", "var_resid"), ("icc", "icc")]:
        want = np.array([r[key][name] for r in ref])
        assert np.allclose(tab[col], want, rtol=1e-5, atol=0), (col, tab[col].to_numpy(), want)
    assert list(tab["singular"]) == [r[key]["singular"] for r in ref]
    # the function form gives the same table
    same = mmfast.icc_by_group("res ~ 1 + (1 | midx)", fit.model.frame.data, by="treatment_idx", reml=reml)
    assert np.allclose(same["icc"], tab["icc"], rtol=1e-12)


def test_model_icc(fit_case):
    m = fit_case("penicillin_reml").model
    icc = m.icc()
    vc = m.varcorr
    var = {g: v for g, v in zip(vc["grp"], vc["vcov"])}
    total = sum(var.values())
    assert set(icc.index) == {"plate", "sample"}
    for g in icc.index:
        assert icc[g] == pytest.approx(var[g] / total, rel=1e-12)


def test_icc_needs_random_intercepts(fit_case):
    with pytest.raises(ModelSpecError, match="random-intercept"):
        fit_case("sleepstudy_slope_reml").model.icc()

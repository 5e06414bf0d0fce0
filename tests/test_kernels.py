"""The two PLS kernels agree, the analytic gradient is the derivative, and weights scale as derived.

The CHOLMOD kernel (any pattern) and the blocked kernel (first term eliminated blockwise, dense
Schur complement) must give the same criterion at the same θ; the analytic gradient must match
a Richardson-extrapolated central difference; all-equal prior weights c describe the same
distribution of y (residual variance σ²/c), so β and the log-likelihood stay, σ grows by √c and
θ = sd(b)/σ shrinks by √c.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast._ext._blocked import BlockedKernel
from mmfast._ext._pls import PLSKernel
from mmfast.model.gradient import profiled_gradient
from reference_cases import case_data, case_fit_kwargs, load_reference

CASES = [
    "sleepstudy_slope_reml",
    "penicillin_reml",
    "pastes_reml",
    "orthodont_reml",
    "ex3_nested_ml",
    "ex3_cell_slope_ml",
]


def _fit(case):
    ref = load_reference(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.lmer(ref["formula"], case_data(ref), **case_fit_kwargs(ref))


@pytest.fixture(scope="module")
def fits():
    return {c: _fit(c) for c in CASES}


def _points(m, k=3, seed=0):
    rng = np.random.default_rng(seed)
    lo = np.where(np.isfinite(m.theta_lower), 0.0, -0.5)
    return [np.maximum(m.theta + rng.uniform(-0.3, 0.6, len(m.theta)), lo) for _ in range(k)]


@pytest.mark.parametrize("case", CASES)
def test_cholmod_and_blocked_kernels_agree(fits, case):
    m = fits[case]
    sparse, blocked = PLSKernel(m.blocks), BlockedKernel(m.blocks)
    for theta in _points(m):
        T = m.templates(theta)
        ld_s, M_s = sparse.update(T)
        ld_b, M_b = blocked.update(T)
        np.testing.assert_allclose(ld_b, ld_s, rtol=1e-11, atol=1e-9)
        np.testing.assert_allclose(M_b, M_s, rtol=1e-9, atol=1e-9 * np.abs(M_s).max())
        beta = np.linalg.solve(M_s[:-1, :-1], M_s[:-1, -1])
        np.testing.assert_allclose(
            blocked.conditional_modes(beta), sparse.conditional_modes(beta), rtol=1e-7, atol=1e-9
        )


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("reml", [True, False])
def test_analytic_gradient_is_the_derivative(fits, case, reml):
    m = fits[case]
    for theta in _points(m, k=2, seed=1):
        _, g = profiled_gradient(m, theta, reml)
        h = 1e-3 * np.maximum(np.abs(theta), 0.1)
        fd = np.empty(len(theta))
        for i in range(len(theta)):
            e = np.zeros(len(theta))
            e[i] = h[i]
            d1 = (m.objective(theta + e, reml) - m.objective(theta - e, reml)) / (2 * h[i])
            d2 = (m.objective(theta + 2 * e, reml) - m.objective(theta - 2 * e, reml)) / (4 * h[i])
            fd[i] = (4 * d1 - d2) / 3  # Richardson: O(h^4)
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(fd).max()))


@pytest.mark.parametrize("case", ["penicillin_reml", "pastes_reml", "ex3_nested_ml"])
def test_diagonal_trace_equals_the_selected_inverse(fits, case):
    """Scalar terms: Q_k = (q_k - tr_k(A⁻¹)) / θ_k from A⁻¹'s diagonal is the general
    selected-inverse trace; below DIAG_TRACE_MIN the kernel takes the general path itself."""
    from mmfast._ext._selinv import DIAG_TRACE_MIN

    m = fits[case]
    for theta in _points(m) + [np.full(len(m.theta), 0.5 * DIAG_TRACE_MIN)]:
        T = m.templates(theta)
        m.kernel.update(T)
        fast = m.kernel.trace_gradient(T)
        general = m.kernel.trace_gradient(T, general=True)
        np.testing.assert_allclose(fast, general, rtol=1e-10, atol=1e-12 * np.abs(general).max())


def _crossed(n_a=60, n_b=50, n=2400, seed=3):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_a, n)
    b = rng.integers(0, n_b, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(0, 0.7, n_a)[a] + rng.normal(0, 0.4, n_b)[b] + rng.normal(0, 1, n)
    return pd.DataFrame({"y": y, "x": x, "a": a, "b": b})


def test_cholmod_path_reaches_the_blocked_optimum():
    """A crossed model fitted through CHOLMOD (forced) and through the blocked kernel."""
    data = _crossed()
    formula = "y ~ x + (1 | a) + (x | b)"
    blocked = mmfast.lmer(formula, data)
    assert isinstance(blocked.kernel, BlockedKernel)
    sparse = mmfast.lmer(formula, data, control=mmfast.LmmControl(dense_schur_max=0))
    assert isinstance(sparse.kernel, PLSKernel)
    assert sparse.reml_criterion == pytest.approx(blocked.reml_criterion, abs=1e-6)
    np.testing.assert_allclose(sparse.fixef, blocked.fixef, rtol=1e-5)
    np.testing.assert_allclose(sparse.theta, blocked.theta, rtol=1e-3, atol=1e-4)
    # condVar goes through a CHOLMOD factor for both; the modes through each kernel
    np.testing.assert_allclose(sparse.b, blocked.b, rtol=1e-3, atol=1e-4)


def test_equal_weights_scale_sigma_and_loglik():
    """Weights all c: the same model for y, with σ_w = σ√c, θ_w = θ/√c, β and logLik unchanged."""
    d = mmfast.datasets.load("sleepstudy")
    c = 2.5
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", d, reml=False)
    w = mmfast.lmer("Reaction ~ Days + (Days | Subject)", d, reml=False, weights=np.full(len(d), c))
    np.testing.assert_allclose(w.theta, m.theta / np.sqrt(c), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(w.fixef, m.fixef, rtol=1e-7)
    assert w.sigma == pytest.approx(m.sigma * np.sqrt(c), rel=1e-6)
    assert w.loglik == pytest.approx(m.loglik, abs=1e-6)


def test_refit_with_same_response_reproduces_fit():
    d = mmfast.datasets.load("sleepstudy")
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", d)
    r = m.refit(d["Reaction"].to_numpy())
    assert r.reml_criterion == pytest.approx(m.reml_criterion, abs=1e-8)
    shifted = m.refit(d["Reaction"].to_numpy() + 10.0)  # an intercept shift moves only β0
    assert shifted.fixef["(Intercept)"] == pytest.approx(m.fixef["(Intercept)"] + 10.0, rel=1e-7)
    assert shifted.reml_criterion == pytest.approx(m.reml_criterion, abs=1e-6)


def test_predict_on_new_data_follows_the_model():
    """newdata = the fit's data gives the fitted values; a new level gets Xβ only, when allowed."""
    d = mmfast.datasets.load("sleepstudy")
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", d)
    np.testing.assert_allclose(m.predict(d), m.fitted, rtol=1e-12)
    new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": [999, 999]})
    with pytest.raises(mmfast.MmfastError, match="new levels"):
        m.predict(new)
    pop = m.fixef["(Intercept)"] + m.fixef["Days"] * new["Days"].to_numpy()
    np.testing.assert_allclose(m.predict(new, allow_new_levels=True), pop, rtol=1e-12)
    np.testing.assert_allclose(
        m.predict(d.iloc[:3], re_form=None), m.fixef["(Intercept)"] + m.fixef["Days"] * d["Days"].iloc[:3], rtol=1e-12
    )


@pytest.mark.parametrize("singular", [False, True, "two"])
def test_gradient_and_derivative_free_optimisers_agree(singular):
    """The gradient path (log-θ Newton, else log-scale L-BFGS-B) reaches BOBYQA's optimum, also
    on the boundary, with one or two variances at 0 (near 0 the log scale flattens the
    criterion: the bounded pass must still take them there)."""
    data = _crossed(seed=5)
    formula = "y ~ x + (1 | a) + (1 | b)"
    if singular:  # no b-level variation at all: that variance must be estimated as 0
        rng = np.random.default_rng(7)
        data["y"] = 1 + 0.5 * data["x"] + rng.normal(0, 0.7, 60)[data["a"]] + rng.normal(0, 1, len(data))
    if singular == "two":
        data["c"] = np.random.default_rng(8).integers(0, 12, len(data))
        formula = "y ~ x + (1 | a) + (1 | b) + (1 | c)"
    never = mmfast.LmmControl(gradient_min_q=10**9, gradient_min_dense=10**9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dfo = mmfast.lmer(formula, data, control=never)
        grad = mmfast.lmer(formula, data, control=mmfast.LmmControl(gradient_min_q=0))
    # Newton on log θ from the moment start; a variance heading for 0 hands over to L-BFGS-B
    assert grad.optinfo["optimizer"].startswith("newton(log)+lbfgsb" if singular else "newton(log)")
    assert dfo.optinfo["optimizer"].startswith("bobyqa")
    assert grad.reml_criterion <= dfo.reml_criterion + 1e-7
    np.testing.assert_allclose(grad.theta, dfo.theta, atol=2e-4)
    assert grad.singular == dfo.singular == bool(singular)


def test_moment_start_of_a_vector_term():
    """(x | g) with a known covariance: the per-level regressions recover Σ/σ² (the start is
    T T' = Σ/σ²); a constant-within-level x (no per-level slope) gives no moment estimate for
    that factor, and lme4's start is kept."""
    from mmfast.model.frame import model_frame
    from mmfast.model.lmm import LinearMixedModel
    from mmfast.model.start import moment_start

    rng = np.random.default_rng(5)
    G, m = 400, 25
    g = np.repeat(np.arange(G), m)
    x = rng.normal(size=G * m)
    S = np.array([[1.0, 0.3], [0.3, 0.25]])  # σ = 1
    b = rng.multivariate_normal([0, 0], S, size=G)
    y = 1 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(size=G * m)
    model = LinearMixedModel(model_frame("y ~ x + (x | g)", pd.DataFrame({"y": y, "x": x, "g": g})))
    th = moment_start(model)
    T = np.array([[th[0], 0.0], [th[1], th[2]]])
    np.testing.assert_allclose(T @ T.T, S, atol=0.12)
    xc = np.repeat(rng.normal(size=G), m)  # x constant within g: X_g'X_g singular everywhere
    yc = 1 + b[g, 0] + rng.normal(size=G * m)
    model = LinearMixedModel(model_frame("y ~ x + (x | g)", pd.DataFrame({"y": yc, "x": xc, "g": g})))
    th = moment_start(model)
    assert th is None


def test_moment_start_of_nested_factors():
    """(1 | a/b): the outer factor's level means carry the inner variance too, so σ² comes
    from the variance within the inner levels; the start lands near the simulated ratios."""
    from mmfast.model.frame import model_frame
    from mmfast.model.lmm import LinearMixedModel
    from mmfast.model.start import moment_start

    rng = np.random.default_rng(9)
    a = np.repeat(np.arange(60), 40)
    b = np.repeat(np.arange(60 * 8), 5)  # 8 inner levels per outer level, 5 rows each
    y = rng.normal(0, 1.5, 60)[a] + rng.normal(0, 0.8, 480)[b] + rng.normal(size=a.size)
    data = pd.DataFrame({"y": y, "a": a, "b": b % 8})  # b coded within a, as in the lecture
    model = LinearMixedModel(model_frame("y ~ 1 + (1 | a/b)", data))
    th = moment_start(model)  # terms: b:a (480 levels), a (60)
    np.testing.assert_allclose(th, [0.8, 1.5], rtol=0.25)


def test_intercepts_anova_start_is_reml_for_balanced_data(fits):
    """Random intercepts only: Henderson's method 1 gives the ANOVA estimators, which for
    balanced data (Penicillin: 24 plates x 6 samples, one each; Pastes: nested) are the REML
    estimates themselves when positive."""
    from mmfast.model.lmm import LinearMixedModel
    from mmfast.model.start import moment_start

    for case in ("penicillin_reml", "pastes_reml"):
        m = fits[case]
        np.testing.assert_allclose(moment_start(LinearMixedModel(m.frame)), m.theta, rtol=2e-5)


def test_moment_start_and_log_newton():
    """The moment start recovers a one-way design's variance ratio; Newton on log x finds a
    known minimum (some coordinates in log scale, some not) and declines (converged False) when
    its start Hessian is indefinite."""
    from mmfast.model.frame import model_frame
    from mmfast.model.lmm import LinearMixedModel
    from mmfast.model.optimize import minimize_log_newton
    from mmfast.model.start import moment_start

    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(400), 25)
    data = pd.DataFrame({"y": 2.0 + 1.5 * rng.normal(size=400)[g] + rng.normal(size=g.size), "g": g.astype(str)})
    th0 = moment_start(LinearMixedModel(model_frame("y ~ 1 + (1 | g)", data)))
    assert th0[0] == pytest.approx(1.5, rel=0.1)  # σ_g / σ = 1.5

    a = np.array([0.3, 2.0])
    at = {}

    def fg(x, gr):  # Σ (log x - log a)², minimum at a; exact Hessian in x
        d = np.log(x) - np.log(a)
        gr[:] = 2.0 * d / x
        at["H"] = np.diag((2.0 - 2.0 * d) / x**2)
        return float(d @ d)

    res = minimize_log_newton(fg, np.array([0.5, 1.0]), lambda: at["H"])
    assert res.converged and np.allclose(res.x, a, rtol=1e-6)
    assert res.evaluations <= 4  # exact Newton on a quadratic in log x: one step, one check

    b = np.array([0.3, -1.0])  # the second coordinate not logged: (log x0 - log b0)² + (x1 - b1)²

    def fg2(x, gr):
        gr[:] = [2.0 * (np.log(x[0]) - np.log(b[0])) / x[0], 2.0 * (x[1] - b[1])]
        at["H"] = np.diag([(2.0 - 2.0 * (np.log(x[0]) - np.log(b[0]))) / x[0] ** 2, 2.0])
        return float((np.log(x[0]) - np.log(b[0])) ** 2 + (x[1] - b[1]) ** 2)

    res = minimize_log_newton(fg2, np.array([0.5, 0.5]), lambda: at["H"], logged=np.array([True, False]), max_step=1.0)
    assert res.converged and np.allclose(res.x, b, rtol=1e-6)

    def concave(x, gr):
        gr[:] = -2.0 * x
        at["H"] = -2.0 * np.eye(2)
        return -float(x @ x)

    assert not minimize_log_newton(concave, np.array([0.5, 1.0]), lambda: at["H"]).converged


@pytest.mark.parametrize("na,nb,n", [(300, 120, 7000), (3, 5000, 20000), (1, 1, 5), (50, 2, 400)])
def test_pair_codes_number_pairs_in_sorted_order(na, nb, n):
    """The design's pair coding is pandas' sorted factorize of a·nb + b (few and many b per a:
    insertion sort and qsort), and rejects codes out of range."""
    from mmfast._ext._pairs import pair_codes

    rng = np.random.default_rng(na + nb)
    a, b = rng.integers(0, na, n), rng.integers(0, nb, n)
    codes, keys = pair_codes(a, b, na, nb)
    ref_codes, ref_keys = pd.factorize(a * nb + b, sort=True)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(keys, ref_keys)
    with pytest.raises(ValueError, match="out of range"):
        pair_codes(a, b, na, nb - 1 if nb > 1 else 0)


def test_unevaluated_final_step_is_kept_only_if_no_worse(monkeypatch):
    """An optimiser result whose last step was not evaluated (``history`` holds the last
    evaluated point) is checked by the fit: a worse point falls back to the evaluated one."""
    from mmfast.model.optimize import OptResult

    d = mmfast.datasets.load("sleepstudy")
    good = mmfast.lmer("Reaction ~ Days + (Days | Subject)", d)
    bad_theta = good.theta * np.array([1.5, 1.0, 0.5])
    f_good = good.objective(good.theta)

    def fake(fun, x0, lower, **kw):
        return OptResult(
            x=bad_theta,
            fun=f_good,
            evaluations=1,
            seconds=0.0,
            optimizer="fake",
            converged=True,
            history=[(good.theta.copy(), f_good)],
        )

    import mmfast.model.fitting as fitting_module  # where LinearMixedModel.fit calls it

    monkeypatch.setattr(fitting_module, "minimize_bounded", fake)
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", d)
    np.testing.assert_array_equal(m.theta, good.theta)
    assert m.reml_criterion == pytest.approx(good.reml_criterion, abs=1e-9)


def test_two_variances_at_zero_on_the_gradient_path():
    """InstEval-sized crossed design where two of three variances are 0: Newton gives up (a
    standard deviation heads for 0), L-BFGS-B must still reach BOBYQA's optimum, also from a
    point with one variance small but not 0 (in log scale the criterion is flat there)."""
    rng = np.random.default_rng(11)
    n = 20000
    a, b, c = rng.integers(0, 3000, n), rng.integers(0, 300, n), rng.integers(0, 20, n)
    x = rng.normal(size=n)
    y = 1 + 0.3 * x + rng.normal(0, 0.5, 3000)[a] + rng.normal(size=n)
    data = pd.DataFrame({"y": y, "x": x, "a": a, "b": b, "c": c})
    formula = "y ~ x + (1 | a) + (1 | b) + (1 | c)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grad = mmfast.lmer(formula, data, reml=False)
        dfo = mmfast.lmer(formula, data, reml=False, ftol_abs=1e-12)  # BOBYQA, lme4's start
    assert grad.use_gradient and dfo.optinfo["optimizer"].startswith("bobyqa")
    assert grad.ml_deviance <= dfo.ml_deviance + 1e-7
    np.testing.assert_allclose(grad.theta, dfo.theta, atol=1e-4)
    assert grad.singular
    # L-BFGS-B alone from a point with one variance small but not tiny
    from mmfast.model.gradient import profiled_gradient
    from mmfast.model.optimize import minimize_with_gradient

    res = minimize_with_gradient(
        lambda th: profiled_gradient(grad, th), grad.objective, np.array([grad.theta[0], 0.0015, 0.0]), grad.theta_lower
    )
    assert res.fun <= dfo.ml_deviance + 1e-7
    np.testing.assert_allclose(res.x, dfo.theta, atol=1e-4)

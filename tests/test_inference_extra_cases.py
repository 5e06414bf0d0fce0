"""Inference on models beyond the reference JSONs: interactions, Type I/II/III, nlme df, drop1, LRT.

The expected numbers were computed once with R 4.2.2 (lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2,
nlme 3.1-162) from mmfast's bundled CSVs (factor levels sorted, treatment contrasts), e.g.::

    oats <- read.csv("Oats.csv"); oats$Block <- factor(oats$Block); oats$Variety <- factor(oats$Variety)
    oatsU <- oats[-c(1, 5, 20, 33, 50), ]                      # unbalanced: Type I/II/III differ
    cake <- read.csv("cake.csv"); cake$recipe <- factor(cake$recipe); cake$replicate <- factor(cake$replicate)
    m <- lmerTest::lmer(formula, data);  anova(m, type = t[, ddf = "Kenward-Roger"]);  summary(m[, ddf])
    drop1(as(m, "lmerMod"), test = "Chisq");  nlme::lme(fixed, random = ~ 1 | Block/Variety)
    anova(lm(yield ~ factor(nitro) * Variety, oatsU));  anova(m0, m1)   # m0: yield ~ nitro + Variety + ...

and pasted below (10 significant digits); the tests need neither R nor the network.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mmfast

R_EXTRA = {
    'oats_nitro_num': {
        'formula': 'yield ~ nitro * Variety + (1 | Block/Variety)',
        'REML': True,
        'logLik': -281.6185987,
        'satterthwaite': {
            'names': [
                '(Intercept)',
                'nitro',
                'VarietyMarvellous',
                'VarietyVictory',
                'nitro:VarietyMarvellous',
                'nitro:VarietyVictory',
            ],
            'se': [8.570747656, 11.85854101, 8.684670321, 8.684670321, 16.77050952, 16.77050952],
            'df': [12.84883914, 51.00000483, 21.57466156, 21.57466157, 51.00000481, 51.00000481],
            'p': [3.348362266e-07, 5.725594518e-08, 0.3376325493, 0.3330284253, 0.5243888299, 0.7331101788],
        },
        'kenward_roger': {
            'se': [8.570747656, 11.85854101, 8.684670321, 8.684670321, 16.77050952, 16.77050952],
            'df': [12.84876846, 51, 21.57472929, 21.57472929, 51, 51],
            'p': [3.348513909e-07, 5.72559659e-08, 0.3376325156, 0.3330283913, 0.5243888302, 0.7331101789],
        },
        'drop1': {
            'terms': ['<none>', 'nitro:Variety'],
            'npar': [None, 2],
            'AIC': [618.0616162, 615.1077312],
            'LRT': [None, 1.046115042],
            'p': [None, 0.5927055651],
        },
        'anova1_satterthwaite': {
            'terms': ['nitro', 'Variety', 'nitro:Variety'],
            'SumSq': [19536.4, 501.3011604, 168.35],
            'MeanSq': [19536.4, 250.6505802, 84.175],
            'NumDF': [1, 2, 2],
            'DenDF': [51.0000048, 9.99996539, 51.0000048],
            'F': [115.7712635, 1.485336826, 0.4988148331],
            'p': [1.001598619e-14, 0.2723877494, 0.6101815226],
        },
        'anova1_kenward_roger': {
            'terms': ['nitro', 'Variety', 'nitro:Variety'],
            'SumSq': [19536.4, 501.3011604, 168.35],
            'MeanSq': [19536.4, 250.6505802, 84.175],
            'NumDF': [1, 2, 2],
            'DenDF': [51, 10, 51],
            'F': [115.7712635, 1.485336826, 0.4988148331],
            'p': [1.00159983e-14, 0.2723876029, 0.6101815228],
        },
        'anova2_satterthwaite': {
            'terms': ['nitro', 'Variety', 'nitro:Variety'],
            'SumSq': [19536.4, 655.5093786, 168.35],
            'MeanSq': [19536.4, 327.7546893, 84.175],
            'NumDF': [1, 2, 2],
            'DenDF': [51.0000048, 21.57466157, 51.0000048],
            'F': [115.7712635, 1.942250082, 0.4988148331],
            'p': [1.001598619e-14, 0.16764467, 0.6101815226],
        },
        'anova2_kenward_roger': {
            'terms': ['nitro', 'Variety', 'nitro:Variety'],
            'SumSq': [19536.4, 655.5093786, 168.35],
            'MeanSq': [19536.4, 327.7546893, 84.175],
            'NumDF': [1, 2, 2],
            'DenDF': [51, 21.57472929, 51],
            'F': [115.7712635, 1.942250082, 0.4988148331],
            'p': [1.00159983e-14, 0.1676445963, 0.6101815228],
        },
        'anova3_satterthwaite': {
            'terms': ['nitro', 'Variety', 'nitro:Variety'],
            'SumSq': [19536.40009, 655.5093786, 168.35],
            'MeanSq': [19536.40009, 327.7546893, 84.175],
            'NumDF': [1, 2, 2],
            'DenDF': [51.0000048, 21.57466157, 51.0000048],
            'F': [115.771264, 1.942250082, 0.4988148331],
            'p': [1.001598539e-14, 0.16764467, 0.6101815226],
            'L': {
                'nitro': [[0, 1, 0, 0, 0.3333333, 0.3333333]],
                'Variety': [[0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0]],
                'nitro:Variety': [[0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1]],
            },
        },
        'anova3_kenward_roger': {
            'terms': ['nitro', 'Variety', 'nitro:Variety'],
            'SumSq': [19536.40009, 655.5093786, 168.35],
            'MeanSq': [19536.40009, 327.7546893, 84.175],
            'NumDF': [1, 2, 2],
            'DenDF': [51, 21.57472929, 51],
            'F': [115.771264, 1.942250082, 0.4988148331],
            'p': [1.001599749e-14, 0.1676445963, 0.6101815228],
        },
        'nlme': {
            'tDF': [51, 51, 10, 10, 51, 51],
            'terms': ['(Intercept)', 'nitro', 'Variety', 'nitro:Variety'],
            'denDF': [51, 51, 10, 51],
        },
    },
    'oatsU_factorial': {
        'formula': 'yield ~ factor(nitro) * Variety + (1 | Block/Variety)',
        'REML': True,
        'logLik': -244.1687758,
        'satterthwaite': {
            'names': [
                '(Intercept)',
                'factor(nitro)0.2',
                'factor(nitro)0.4',
                'factor(nitro)0.6',
                'VarietyMarvellous',
                'VarietyVictory',
                'factor(nitro)0.2:VarietyMarvellous',
                'factor(nitro)0.4:VarietyMarvellous',
                'factor(nitro)0.6:VarietyMarvellous',
                'factor(nitro)0.2:VarietyVictory',
                'factor(nitro)0.4:VarietyVictory',
                'factor(nitro)0.6:VarietyVictory',
            ],
            'se': [
                9.481233128,
                8.302777042,
                8.302777042,
                8.792059783,
                10.5671374,
                10.54599344,
                11.74413351,
                11.74413351,
                12.09199648,
                12.07271653,
                11.72511222,
                12.07271653,
            ],
            'df': [
                19.00754285,
                40.25454319,
                40.2545432,
                41.10099498,
                33.82712185,
                33.25305719,
                40.21009481,
                40.21009482,
                40.6972213,
                40.93753289,
                40.46001984,
                40.9375329,
            ],
            'p': [
                1.124285459e-07,
                0.01731778428,
                7.070153386e-05,
                1.72734063e-05,
                0.3873028968,
                0.5477822866,
                0.9497302604,
                0.5683767412,
                0.8005722731,
                0.7269823425,
                0.827529363,
                0.72652315,
            ],
        },
        'kenward_roger': {
            'se': [
                9.49597278,
                8.319604799,
                8.319604799,
                8.833071332,
                10.59242639,
                10.57772275,
                11.76689321,
                11.76689321,
                12.13325588,
                12.11957709,
                11.75365891,
                12.11957709,
            ],
            'df': [
                19.25741267,
                40.64987896,
                40.64987896,
                41.4803612,
                34.09490542,
                33.52503202,
                40.60628747,
                40.60628747,
                41.08434368,
                41.31963633,
                40.85125363,
                41.31963633,
            ],
            'p': [
                1.045458163e-07,
                0.01748604705,
                7.161265423e-05,
                1.823355442e-05,
                0.3883766197,
                0.5489440611,
                0.9498243088,
                0.5690910309,
                0.801223698,
                0.7279779486,
                0.8279309483,
                0.7275202765,
            ],
        },
        'drop1': {
            'terms': ['<none>', 'factor(nitro):Variety'],
            'npar': [None, 6],
            'AIC': [586.3473009, 576.8383733],
            'LRT': [None, 2.491072397],
            'p': [None, 0.8694654654],
        },
        'anova1_satterthwaite': {
            'terms': ['factor(nitro)', 'Variety', 'factor(nitro):Variety'],
            'SumSq': [16824.98211, 551.2113407, 383.907042],
            'MeanSq': [5608.32737, 275.6056704, 63.98450701],
            'NumDF': [3, 2, 6],
            'DenDF': [40.31853126, 9.669032575, 40.18337312],
            'F': [30.49446672, 1.498565863, 0.3479064775],
            'p': [1.851552544e-10, 0.2710781402, 0.9069432381],
        },
        'anova1_kenward_roger': {
            'terms': ['factor(nitro)', 'Variety', 'factor(nitro):Variety'],
            'SumSq': [16744.5095, 550.86691, 383.0100389],
            'MeanSq': [5581.503166, 275.433455, 63.83500649],
            'NumDF': [3, 2, 6],
            'DenDF': [40.71265383, 9.892403434, 40.58084568],
            'F': [30.34852651, 1.497624624, 0.347090832],
            'p': [1.803788114e-10, 0.2702837258, 0.9074628052],
        },
        'anova2_satterthwaite': {
            'terms': ['factor(nitro)', 'Variety', 'factor(nitro):Variety'],
            'SumSq': [16888.77576, 551.2113407, 383.907042],
            'MeanSq': [5629.591919, 275.6056704, 63.98450701],
            'NumDF': [3, 2, 6],
            'DenDF': [40.07199836, 9.669032575, 40.18161684],
            'F': [30.61008962, 1.498565863, 0.3479064775],
            'p': [1.863415864e-10, 0.2710781402, 0.9069430491],
        },
        'anova2_kenward_roger': {
            'terms': ['factor(nitro)', 'Variety', 'factor(nitro):Variety'],
            'SumSq': [16807.71906, 550.86691, 383.0100389],
            'MeanSq': [5602.57302, 275.433455, 63.83500649],
            'NumDF': [3, 2, 6],
            'DenDF': [40.47083701, 9.892403434, 40.58084568],
            'F': [30.46311856, 1.497624624, 0.347090832],
            'p': [1.811708619e-10, 0.2702837258, 0.9074628052],
        },
        'anova3_satterthwaite': {
            'terms': ['factor(nitro)', 'Variety', 'factor(nitro):Variety'],
            'SumSq': [16862.79877, 579.0853, 383.907042],
            'MeanSq': [5620.932922, 289.54265, 63.98450701],
            'NumDF': [3, 2, 6],
            'DenDF': [40.11094793, 9.717623556, 40.18161684],
            'F': [30.56300758, 1.574346168, 0.3479064775],
            'p': [1.885807361e-10, 0.2557050606, 0.9069430491],
            'L': {
                'factor(nitro)': [
                    [0, 1, 0, 0, 0, 0, 0.3333333, 0, 0, 0.3333333, 0, 0],
                    [0, 0, 1, 0, 0, 0, 0, 0.3333333, 0, 0, 0.3333333, 0],
                    [0, 0, 0, 1, 0, 0, 0, 0, 0.3333333, 0, 0, 0.3333333],
                ],
                'Variety': [
                    [0, 0, 0, 0, 1, 0, 0.25, 0.25, 0.25, 0, 0, 0],
                    [0, 0, 0, 0, 0, 1, 0, 0, 0, 0.25, 0.25, 0.25],
                ],
                'factor(nitro):Variety': [
                    [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
                    [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
                    [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
                    [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
                    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                ],
            },
        },
        'anova3_kenward_roger': {
            'terms': ['factor(nitro)', 'Variety', 'factor(nitro):Variety'],
            'SumSq': [16779.28793, 578.6461167, 383.0100389],
            'MeanSq': [5593.095977, 289.3230583, 63.83500649],
            'NumDF': [3, 2, 6],
            'DenDF': [40.51025969, 9.941332485, 40.58084568],
            'F': [30.41159012, 1.573147688, 0.347090832],
            'p': [1.837644122e-10, 0.2549301704, 0.9074628052],
        },
        'nlme': {
            'tDF': [40, 40, 40, 40, 10, 10, 40, 40, 40, 40, 40, 40],
            'terms': ['(Intercept)', 'factor(nitro)', 'Variety', 'factor(nitro):Variety'],
            'denDF': [40, 40, 10, 40],
        },
        'lm': {
            'terms': ['factor(nitro)', 'Variety', 'factor(nitro):Variety', 'Residuals'],
            'Df': [3, 2, 6, 55],
            'SumSq': [21033.72096, 2085.093272, 546.9001923, 25634.73333],
            'F': [15.04280199, 2.236811448, 0.1955648103, None],
            'p': [2.874601938e-07, 0.1164268385, 0.9767511916, None],
            'logLik': -294.2937456,
            'coef': [72.6, 25.9, 42.06666667, 47.4, 13.6, -9, -3.6, -11.1, -6.766666667, 0.1, 5.166666667, 7.5],
        },
    },
    'cake_num_by_factor': {
        'formula': 'angle ~ recipe * temp + (1 | recipe:replicate)',
        'REML': True,
        'logLik': -851.63374,
        'satterthwaite': {
            'names': ['(Intercept)', 'recipeB', 'recipeC', 'temp', 'recipeB:temp', 'recipeC:temp'],
            'se': [5.902801668, 8.347822175, 8.347822175, 0.0282074798, 0.0398914005, 0.0398914005],
            'df': [254.0157714, 254.0157699, 254.0157699, 222.0000075, 222.0000055, 222.0000054],
            'p': [0.6872204877, 0.662377802, 0.8162996219, 1.339032062e-07, 0.7857461885, 0.9581587601],
        },
        'kenward_roger': {
            'se': [5.902801668, 8.347822175, 8.347822175, 0.0282074798, 0.0398914005, 0.0398914005],
            'df': [254.0157632, 254.0157632, 254.0157632, 222.0, 222.0, 222.0],
            'p': [0.6872204877, 0.662377802, 0.8162996219, 1.339032102e-07, 0.7857461885, 0.9581587601],
        },
        'drop1': {
            'terms': ['<none>', 'recipe:temp'],
            'npar': [None, 2],
            'AIC': [1712.073257, 1708.157752],
            'LRT': [None, 0.08449584383],
            'p': [None, 0.9586320852],
        },
        'anova1_satterthwaite': {
            'terms': ['recipe', 'temp', 'recipe:temp'],
            'SumSq': [10.39246544, 1966.705079, 1.741587302],
            'MeanSq': [5.19623272, 1966.705079, 0.8707936508],
            'NumDF': [2, 1, 2],
            'DenDF': [41.99998742, 222.0000048, 222.0000048],
            'F': [0.2487887361, 94.16323275, 0.04169244595],
            'p': [0.7808856441, 8.746828985e-19, 0.9591722386],
        },
        'anova1_kenward_roger': {
            'terms': ['recipe', 'temp', 'recipe:temp'],
            'SumSq': [10.39246544, 1966.705079, 1.741587302],
            'MeanSq': [5.19623272, 1966.705079, 0.8707936508],
            'NumDF': [2, 1, 2],
            'DenDF': [42.0, 222.0, 222.0],
            'F': [0.2487887361, 94.16323275, 0.04169244595],
            'p': [0.7808856437, 8.746830183e-19, 0.9591722386],
        },
        'anova2_satterthwaite': {
            'terms': ['recipe', 'temp', 'recipe:temp'],
            'SumSq': [3.996683917, 1966.705079, 1.741587302],
            'MeanSq': [1.998341959, 1966.705079, 0.8707936508],
            'NumDF': [2, 1, 2],
            'DenDF': [254.0157694, 222.0000048, 222.0000048],
            'F': [0.0956779646, 94.16323275, 0.04169244595],
            'p': [0.9087893549, 8.746828985e-19, 0.9591722386],
        },
        'anova2_kenward_roger': {
            'terms': ['recipe', 'temp', 'recipe:temp'],
            'SumSq': [3.996683917, 1966.705079, 1.741587302],
            'MeanSq': [1.998341959, 1966.705079, 0.8707936508],
            'NumDF': [2, 1, 2],
            'DenDF': [254.0157632, 222.0, 222.0],
            'F': [0.0956779646, 94.16323275, 0.04169244595],
            'p': [0.9087893549, 8.746830183e-19, 0.9591722386],
        },
        'anova3_satterthwaite': {
            'terms': ['recipe', 'temp', 'recipe:temp'],
            'SumSq': [3.996683917, 1966.705069, 1.741587302],
            'MeanSq': [1.998341959, 1966.705069, 0.8707936508],
            'NumDF': [2, 1, 2],
            'DenDF': [254.0157694, 222.0000048, 222.0000048],
            'F': [0.0956779646, 94.16323223, 0.04169244595],
            'p': [0.9087893549, 8.746830581e-19, 0.9591722386],
            'L': {
                'recipe': [[0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]],
                'temp': [[0, 0, 0, 1, 0.3333333, 0.3333333]],
                'recipe:temp': [[0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1]],
            },
        },
        'anova3_kenward_roger': {
            'terms': ['recipe', 'temp', 'recipe:temp'],
            'SumSq': [3.996683917, 1966.705069, 1.741587302],
            'MeanSq': [1.998341959, 1966.705069, 0.8707936508],
            'NumDF': [2, 1, 2],
            'DenDF': [254.0157632, 222.0, 222.0],
            'F': [0.0956779646, 94.16323223, 0.04169244595],
            'p': [0.9087893549, 8.746831779e-19, 0.9591722386],
        },
    },
    'lrt_oats': {
        'npar': [7, 9],
        'AIC': [615.1077312, 618.0616162],
        'BIC': [631.0443941, 638.5516113],
        'logLik': [-300.5538656, -300.0308081],
        'Chisq': [None, 1.046115042],
        'Df': [None, 2],
        'p': [None, 0.5927055651],
    },
}


def assert_close(actual, expected, rtol, atol=0.0, what=""):
    a = np.asarray(actual, dtype=float)
    e = np.asarray([np.nan if v is None else v for v in np.ravel(expected)], dtype=float).reshape(a.shape)
    ok = np.abs(a - e) <= atol + rtol * np.abs(e)
    assert np.all(ok | (np.isnan(a) & np.isnan(e))), f"{what}: {a} vs {e}"


@pytest.fixture(scope="module")
def data():
    oats = mmfast.datasets.load("Oats")
    oats_u = oats.drop(index=np.array([1, 5, 20, 33, 50]) - 1).reset_index(drop=True)
    return {"oats_nitro_num": oats, "oatsU_factorial": oats_u, "cake_num_by_factor": mmfast.datasets.load("cake")}


@pytest.fixture(scope="module")
def fits(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {k: mmfast.lmer(R_EXTRA[k]["formula"], data[k], reml=R_EXTRA[k]["REML"]) for k in data}


CASES = ["oats_nitro_num", "oatsU_factorial", "cake_num_by_factor"]
# derived quantities: lme4's default stopping vs our optimum moves SEs by ~1e-6 here
RT, RDF, RP = 1e-5, 1e-4, 1e-3


@pytest.mark.parametrize("case", CASES)
def test_loglik(case, fits):
    assert abs(fits[case].loglik - R_EXTRA[case]["logLik"]) < 1e-6 * abs(R_EXTRA[case]["logLik"])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward_roger"])
def test_summary(case, ddf, fits):
    ref = R_EXTRA[case][ddf]
    tab = fits[case].summary(ddf=ddf).coefficients
    assert list(tab.columns) == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    assert_close(tab["Std. Error"], ref["se"], RT, what=f"{case} {ddf} SE")
    assert_close(tab["df"], ref["df"], RDF, what=f"{case} {ddf} df")
    assert_close(tab["Pr(>|t|)"], ref["p"], RP, what=f"{case} {ddf} p")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("type_", [1, 2, 3])
@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward_roger"])
def test_anova_types(case, type_, ddf, fits):
    ref = R_EXTRA[case][f"anova{type_}_{ddf}"]
    tab = fits[case].anova(type=type_, ddf=ddf)
    assert list(tab.index) == ref["terms"]
    assert list(tab.columns) == ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    assert_close(tab["NumDF"], ref["NumDF"], 0, what="NumDF")
    assert_close(tab["Sum Sq"], ref["SumSq"], RT, what=f"{case} type {type_} {ddf} Sum Sq")
    assert_close(tab["F value"], ref["F"], RT, what=f"{case} type {type_} {ddf} F")
    assert_close(tab["DenDF"], ref["DenDF"], RDF, what=f"{case} type {type_} {ddf} DenDF")
    assert_close(tab["Pr(>F)"], ref["p"], RP, what=f"{case} type {type_} {ddf} p")
    if type_ == 3 and ddf == "satterthwaite":  # lmerTest's contrast matrices, exactly
        hyp = tab.attrs["hypotheses"]
        for term, L in ref["L"].items():
            assert_close(hyp[term], np.asarray(L, dtype=float).reshape(hyp[term].shape), 0, 1e-9, f"{case} L[{term}]")


@pytest.mark.parametrize("case", CASES)
def test_drop1(case, fits):
    ref = R_EXTRA[case]["drop1"]
    tab = fits[case].drop1(test="Chisq")
    assert list(tab.index) == ref["terms"]
    assert list(tab.columns) == ["npar", "AIC", "LRT", "Pr(Chi)"]
    assert_close(tab["npar"], ref["npar"], 0, what="npar")
    assert_close(tab["AIC"], ref["AIC"], 1e-8, what="AIC")
    assert_close(tab["LRT"], ref["LRT"], 1e-5, 1e-6, what="LRT")
    assert_close(tab["Pr(Chi)"], ref["p"], 1e-4, what="p")


@pytest.mark.parametrize("case", ["oats_nitro_num", "oatsU_factorial"])
def test_between_within_df_as_nlme(case, fits):
    ref = R_EXTRA[case]["nlme"]
    m = fits[case]
    assert_close(m.summary(ddf="between-within").coefficients["df"], ref["tDF"], 0, what="t-table DF")
    tab = m.anova(type=1, ddf="between-within")
    want = dict(zip(ref["terms"], ref["denDF"]))
    assert_close(tab["DenDF"], [want[t] for t in tab.index], 0, what="anova denDF")


def test_lm_sequential_anova(data):
    ref = R_EXTRA["oatsU_factorial"]["lm"]
    fit = mmfast.lm("yield ~ factor(nitro) * Variety", data["oatsU_factorial"])
    tab = fit.anova()
    assert list(tab.index) == ref["terms"]
    assert_close(tab["Df"], ref["Df"], 0, what="Df")
    assert_close(tab["Sum Sq"], ref["SumSq"], 1e-9, what="Sum Sq")  # 10 significant digits pasted
    assert_close(tab["F value"], ref["F"], 1e-9, what="F")
    assert_close(tab["Pr(>F)"], ref["p"], 1e-7, what="p")
    assert abs(fit.loglik - ref["logLik"]) < 1e-9 * abs(ref["logLik"])
    assert_close(fit.fixef, ref["coef"], 1e-9, 1e-9, "coef")


def test_lrt_refits_reml_by_ml(data, fits):
    ref = R_EXTRA["lrt_oats"]
    m0 = mmfast.lmer("yield ~ nitro + Variety + (1 | Block/Variety)", data["oats_nitro_num"])
    tab = mmfast.anova(fits["oats_nitro_num"], m0)  # sorted by npar: m0 first
    assert list(tab.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    # rows named as R's anova(fit, m0) names them: the caller's variable (formula when it has none)
    assert tab.index[0] == "m0" and "refitting model(s) with ML (instead of REML)" in tab.attrs["notes"]
    assert tab.index[1] == fits["oats_nitro_num"].frame.parsed.formula
    assert_close(tab["npar"], ref["npar"], 0, what="npar")
    for col, key in [("AIC", "AIC"), ("BIC", "BIC"), ("logLik", "logLik")]:
        assert_close(tab[col], ref[key], 1e-8, what=col)
    assert_close(tab["Chisq"], ref["Chisq"], 1e-5, what="Chisq")
    assert_close(tab["Pr(>Chisq)"], ref["p"], 1e-5, what="p")

"""Issue 14, inputs: every user error is an MmfastError naming the problem; keyword arguments
are checked (REML=False -> "did you mean reml=False?"); data may be pandas, polars, pyarrow or a
dict; the CLI prints one-line errors; fit_many refuses to resume on changed data."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast.errors import ArgumentError, DataError, MmfastError
from reference_cases import load_reference

SRC = str(Path(mmfast.__file__).resolve().parents[1])
F = "Reaction ~ Days + (Days | Subject)"
_REF = load_reference("sleepstudy_slope_reml")["results"]  # lme4's lmer(F, sleepstudy)
LME4_REML = _REF["REMLcrit"]
LME4_FIXEF = _REF["fixef"]["estimate"]
LME4_ML_DEVIANCE = load_reference("sleepstudy_slope_ml")["results"]["deviance"]


@pytest.fixture(scope="module")
def sleep():
    return mmfast.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def model(sleep):
    return mmfast.lmer(F, sleep)


@pytest.fixture(scope="module")
def binary():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(10), 8)
    x = rng.normal(size=80)
    y = (rng.random(80) < 1 / (1 + np.exp(-(0.5 * x + rng.normal(size=10)[g])))).astype(int)
    return pd.DataFrame({"y": y, "x": x, "g": g})


def _timed(sleep, kind):
    t = pd.to_timedelta(sleep.Days, unit="D")
    return sleep.assign(t=t if kind == "m" else pd.Timestamp("2020-01-01") + t)


# (call, exception class, text the message must contain)
BAD = {
    "REML": (lambda s, m, b: mmfast.lmer(F, s, REML=False), ArgumentError, "did you mean reml=False?"),
    "reml=ML": (lambda s, m, b: mmfast.lmer(F, s, reml="ML"), ArgumentError, "reml must be True or False"),
    "reml positional": (lambda s, m, b: mmfast.lmer(F, s, "ML"), ArgumentError, "reml must be"),
    "reml=1": (lambda s, m, b: mmfast.lmer(F, s, reml=1), ArgumentError, "reml must be"),
    "nobs check": (
        lambda s, m, b: mmfast.lmer(F, s, check_nobs_vs_nre="stp"),
        ArgumentError,
        "did you mean check_nobs_vs_nre='stop'",
    ),
    "R dotted name": (
        lambda s, m, b: mmfast.lmer(F, s, **{"check.nobs.vs.nRE": "ignore"}),
        ArgumentError,
        "did you mean check_nobs_vs_nre=",
    ),
    "control": (lambda s, m, b: mmfast.lmer(F, s, control={}), ArgumentError, "'control'"),
    "start length": (
        lambda s, m, b: mmfast.lmer(F, s, start=[1, 2]),
        ArgumentError,
        "start has 2 values; this model has 3",
    ),
    "start dict": (
        lambda s, m, b: mmfast.lmer(F, s, start={"theta": [1, 0, 1], "fixef": [0, 0]}),
        ArgumentError,
        "start as a dict takes 'theta' only",
    ),
    "start below bound": (lambda s, m, b: mmfast.lmer(F, s, start=[-1, 0, 1]), ArgumentError, "below its lower bound"),
    "glmer nAGQ": (lambda s, m, b: mmfast.glmer("y ~ x + (1|g)", b, nAGQ=1), ArgumentError, "did you mean n_agq=1?"),
    "glmer n_agq": (
        lambda s, m, b: mmfast.glmer("y ~ x + (1|g)", b, n_agq="1"),
        MmfastError,
        "n_agq must be an integer",
    ),
    "glmer start": (
        lambda s, m, b: mmfast.glmer("y ~ x + (1|g)", b, start=[1, 1]),
        ArgumentError,
        "start has 2 values; this model has 1",
    ),
    "family": (
        lambda s, m, b: mmfast.glmer("y ~ x + (1|g)", b, family="binomal"),
        MmfastError,
        "unknown family 'binomal'",
    ),
    "link": (
        lambda s, m, b: mmfast.glmer("y ~ x + (1|g)", b, family=mmfast.families.Binomial(link="logt")),
        MmfastError,
        "unknown link 'logt'",
    ),
    "lm REML": (
        lambda s, m, b: mmfast.lm("Reaction ~ Days", s, REML=False),
        ArgumentError,
        "lm() got an unexpected keyword argument 'REML'",
    ),
    "lme method": (
        lambda s, m, b: mmfast.lme("Reaction ~ Days", s, random="~1|Subject", method="MLE"),
        ArgumentError,
        "'MLE'",
    ),
    "lme keyword": (
        lambda s, m, b: mmfast.lme("Reaction ~ Days", s, random="~1|Subject", wieghts="Days"),
        ArgumentError,
        "did you mean weights=",
    ),
    "fit_many REML": (
        lambda s, m, b: mmfast.fit_many(s, "Reaction ~ Days + (1|Subject)", by="Days", REML=False),
        ArgumentError,
        "did you mean reml=False?",
    ),
    "fit_many reml": (
        lambda s, m, b: mmfast.fit_many(s, "Reaction ~ Days + (1|Subject)", by="Days", reml="ML"),
        ArgumentError,
        "reml must be True or False",
    ),
    "fit_many ddf": (
        lambda s, m, b: mmfast.fit_many(s, "Reaction ~ Days + (1|Subject)", by="Days", ddf="satterthwait"),
        ArgumentError,
        "did you mean ddf='satterthwaite'",
    ),
    "fit_many by": (lambda s, m, b: mmfast.fit_many(s, "Reaction ~ 1 + (1|Subject)", by="Dys"), DataError, "Dys"),
    "summary ddf": (lambda s, m, b: m.summary(ddf="satterthwait"), ArgumentError, "did you mean ddf='satterthwaite'"),
    "summary keyword": (lambda s, m, b: m.summary(dff="residual"), ArgumentError, "did you mean ddf='residual'"),
    "anova ddf": (lambda s, m, b: m.anova(ddf="foo"), ArgumentError, "ddf must be one of"),
    "anova keyword": (lambda s, m, b: m.anova(tpye=1), ArgumentError, "did you mean type=1?"),
    "mmfast.anova keyword": (
        lambda s, m, b: mmfast.anova(m, m, refti=False),
        ArgumentError,
        "did you mean refit=False?",
    ),
    "confint keyword": (lambda s, m, b: m.confint(levle=0.9), ArgumentError, "did you mean level=0.9?"),
    "confint method": (lambda s, m, b: m.confint(method="prof"), ArgumentError, "did you mean method='profile'"),
    "confint nsim": (lambda s, m, b: m.confint(method="Wald", nsim=10), ArgumentError, "method='boot' only"),
    "predict keyword": (
        lambda s, m, b: m.predict(s, allow_new_level=True),
        ArgumentError,
        "did you mean allow_new_levels=True?",
    ),
    "predict empty": (lambda s, m, b: m.predict(s.iloc[:0]), DataError, "newdata has no rows"),
    "predict list": (lambda s, m, b: m.predict([1, 2]), DataError, "newdata must be"),
    "pbmodcomp nsim": (
        lambda s, m, b: mmfast.pbmodcomp(m, "Reaction ~ 1 + (Days | Subject)", nsim=0),
        ArgumentError,
        "nsim must be >= 1",
    ),
    "variance_test": (lambda s, m, b: mmfast.variance_test(m, methd="mixture"), ArgumentError, "did you mean method="),
    "duplicate columns": (
        lambda s, m, b: mmfast.lmer(F, pd.concat([s, s[["Days"]]], axis=1)),
        DataError,
        "duplicate column names: 'Days'",
    ),
    "datetime fixed": (
        lambda s, m, b: mmfast.lmer("Reaction ~ t + (1|Subject)", _timed(s, "M")),
        DataError,
        "column 't' holds datetime",
    ),
    "timedelta fixed": (
        lambda s, m, b: mmfast.lmer("Reaction ~ t + (1|Subject)", _timed(s, "m")),
        DataError,
        "column 't' holds timedelta",
    ),
    "timedelta random": (
        lambda s, m, b: mmfast.lmer("Reaction ~ Days + (t|Subject)", _timed(s, "m")),
        DataError,
        "column 't'",
    ),
    "datetime response": (
        lambda s, m, b: mmfast.lmer("t ~ Days + (1|Subject)", _timed(s, "M")),
        DataError,
        "column 't' holds datetime",
    ),
    "datetime fit_many": (
        lambda s, m, b: mmfast.fit_many(_timed(s, "m"), "Reaction ~ t + (1|Subject)", by="Days"),
        DataError,
        "column 't'",
    ),
    "weights text": (lambda s, m, b: mmfast.lmer(F, s, weights=["a"] * 180), DataError, "weights must be numbers"),
    "weights text column": (
        lambda s, m, b: mmfast.lmer(F, s.assign(w="a"), weights="w"),
        DataError,
        "weights column 'w' must be numeric",
    ),
    "maxeval": (lambda s, m, b: mmfast.lmer(F, s, maxeval="x"), ArgumentError, "maxeval must be an integer"),
    "predict missing column": (
        lambda s, m, b: m.predict(s.drop(columns="Days")),
        DataError,
        "newdata lacks column(s) the model uses: 'Days'",
    ),
    "anova not a model": (lambda s, m, b: m.anova("x"), ArgumentError, "argument 2 is a str"),
    "mmfast.anova one model": (lambda s, m, b: mmfast.anova(m), ArgumentError, "two or more"),
    "confint level": (lambda s, m, b: m.confint(level=2), ArgumentError, "level must be a number between 0 and 1"),
    "confint parm": (
        lambda s, m, b: m.confint(parm="nope", method="Wald"),
        ArgumentError,
        "parm='nope' names no parameter",
    ),
    "profile which": (lambda s, m, b: m.profile(which="nope"), ArgumentError, "no parameter 'nope'"),
    "fit_many by None": (
        lambda s, m, b: mmfast.fit_many(s, "Reaction ~ 1 + (1|Subject)", by=None),
        ArgumentError,
        "by must be a column name",
    ),
    "fit_many n_jobs": (
        lambda s, m, b: mmfast.fit_many(s, "Reaction ~ 1 + (1|Subject)", by="Days", n_jobs="a"),
        ArgumentError,
        "n_jobs must be an integer",
    ),
    "fit_many weights text": (
        lambda s, m, b: mmfast.fit_many(s, "Reaction ~ 1 + (1|Subject)", by="Days", weights=["a"] * 180),
        DataError,
        "weights must be numbers",
    ),
    "dataset name": (lambda s, m, b: mmfast.datasets.load("sleepstudyy"), DataError, "unknown data set 'sleepstudyy'"),
    "refit length": (lambda s, m, b: m.refit(np.ones(3)), DataError, "new response has 3 values"),
    "drop1 test": (lambda s, m, b: m.drop1(test="F"), ArgumentError, "test must be 'Chisq'"),
    "anova type": (lambda s, m, b: m.anova(type=5), ArgumentError, "type must be 1, 2 or 3"),
    "contest width": (lambda s, m, b: m.contest([1, 2, 3]), ArgumentError, "contrast has 3 columns"),
    "emmeans spec": (lambda s, m, b: mmfast.emmeans(m, "nope"), ArgumentError, "['nope'] are not variables"),
    "variance_test null": (lambda s, m, b: mmfast.variance_test(m, "x"), ArgumentError, "argument 2 is a str"),
    "simulate nsim": (lambda s, m, b: m.simulate(nsim=0), ArgumentError, "nsim must be >= 1"),
    "data list": (
        lambda s, m, b: mmfast.lmer(F, [1, 2, 3]),
        DataError,
        "data must be a pandas DataFrame, a polars DataFrame, a pyarrow Table",
    ),
    "data None": (lambda s, m, b: mmfast.lmer(F, None), DataError, "data is missing"),
    "dict ragged": (
        lambda s, m, b: mmfast.lmer(F, {"Reaction": [1.0, 2.0], "Days": [1]}),
        DataError,
        "different lengths",
    ),
    "dict 2-d": (
        lambda s, m, b: mmfast.lmer(F, {"Reaction": np.zeros((3, 2))}),
        DataError,
        "column 'Reaction' must be a one-dimensional",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_named_mmfast_error(case, sleep, model, binary):
    call, cls, text = BAD[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(cls) as info:
            call(sleep, model, binary)
    assert isinstance(info.value, MmfastError)
    assert text in str(info.value), str(info.value)


def test_argument_error_is_also_a_type_error(sleep):
    # code that caught Python's "unexpected keyword argument" TypeError keeps working
    with pytest.raises(TypeError):
        mmfast.lmer(F, sleep, REML=False)


def test_valid_keywords_still_pass(sleep):
    m = mmfast.lmer(
        F, sleep, reml=np.bool_(False), check_nobs_vs_nre="warning", start={"theta": [1.0, 0.0, 1.0]}
    )  # lme4's start = list(theta = ...)
    assert not m.reml
    assert m.deviance == pytest.approx(LME4_ML_DEVIANCE, abs=1e-5)  # lme4: REML = FALSE


# --- data types ----------------------------------------------------------------------------
def _check_sleep_fit(m):
    assert m.reml_criterion == pytest.approx(LME4_REML, abs=1e-5)
    np.testing.assert_allclose(m.fixef.to_numpy(), LME4_FIXEF, rtol=1e-6)


def test_dict_and_pyarrow_data_fit_as_pandas(sleep, model):
    pa = pytest.importorskip("pyarrow")
    _check_sleep_fit(model)
    as_dict = {c: sleep[c].tolist() for c in sleep.columns}
    for data in (as_dict, {c: sleep[c].to_numpy() for c in sleep.columns}, pa.Table.from_pandas(sleep)):
        m = mmfast.lmer(F, data)
        _check_sleep_fit(m)
        np.testing.assert_allclose(m.theta, model.theta, rtol=1e-10)
        assert m.loglik == pytest.approx(model.loglik, rel=1e-12)
    np.testing.assert_allclose(model.predict(as_dict), model.predict(sleep))
    np.testing.assert_allclose(model.predict(pa.Table.from_pandas(sleep)), model.predict(sleep))


def test_polars_data_fit_as_pandas(sleep, model, binary):
    pl = pytest.importorskip("polars")
    frame = pl.from_pandas(sleep)
    m = mmfast.lmer(F, frame)
    _check_sleep_fit(m)
    assert m.loglik == pytest.approx(model.loglik, rel=1e-12)
    # a text grouping column (polars Utf8) and a lazy frame
    text = pl.DataFrame(
        {c: sleep[c].astype(str).tolist() if c == "Subject" else sleep[c].tolist() for c in sleep.columns}
    )
    m2 = mmfast.lmer(F, text.lazy())
    assert m2.loglik == pytest.approx(model.loglik, rel=1e-10)
    np.testing.assert_allclose(model.predict(frame), model.predict(sleep))
    g = mmfast.glmer("y ~ x + (1|g)", pl.from_pandas(binary))
    g0 = mmfast.glmer("y ~ x + (1|g)", binary)
    np.testing.assert_allclose(g.fixef, g0.fixef, rtol=1e-10)
    assert g.loglik == pytest.approx(g0.loglik, rel=1e-12)
    lm = mmfast.lm("Reaction ~ Days", frame)
    # balanced design: R's lm() gives the same coefficients as lmer's fixef
    np.testing.assert_allclose(lm.fixef, LME4_FIXEF, rtol=1e-6)
    res = mmfast.fit_many(frame, "Reaction ~ 1 + (1 | Subject)", by="Days")
    ref = mmfast.fit_many(sleep, "Reaction ~ 1 + (1 | Subject)", by="Days")
    pd.testing.assert_frame_equal(res.drop(columns="Days"), ref.drop(columns="Days"))


# --- command line ---------------------------------------------------------------------------
def _cli(*args):
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-m", "mmfast", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(
    "args, text",
    [
        (["fit", "sleepstudy", "Reaction ~ Days + (Days | Subjct)"], "'Subjct'"),
        (["fit", "no_such_file.csv", "y ~ x + (1 | g)"], "no such file or bundled data set"),
        (["fit", "sleepstudy", F, "--ddf", "foo"], "ddf must be one of"),
        (["fit", "sleepstudy", "Reaction ~ Days + (1 | Subject)", "--family", "binomal"], "unknown family 'binomal'"),
    ],
)
def test_cli_user_error_is_one_line(args, text):
    r = _cli(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmfast: error: ") and text in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_cli_empty_file_and_debug(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    r = _cli("fit", str(empty), "y ~ x + (1 | g)")
    assert r.returncode == 2 and r.stderr.startswith("mmfast: error: cannot read")
    r = _cli("fit", "sleepstudy", "Reaction ~ Days + (Days | Subjct)", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr and "FormulaError" in r.stderr


# --- fit_many resume --------------------------------------------------------------------------
def _groups_data(seed=0, genes=6):
    rng = np.random.default_rng(seed)
    n_an, reps = 5, 4
    rows = []
    for gi in range(genes):
        a = np.repeat(np.arange(n_an), reps)
        x = np.tile(np.arange(reps, dtype=float), n_an)
        y = 1 + 0.5 * x + rng.normal(size=n_an)[a] + rng.normal(size=a.size)
        rows.append(pd.DataFrame({"gene": f"g{gi}", "animal": a, "x": x, "y": y}))
    return pd.concat(rows, ignore_index=True)


RFORM = "y ~ x + (1 | animal)"


def test_resume_refuses_changed_data(tmp_path):
    data = _groups_data()
    out = tmp_path / "r.parquet"
    first = mmfast.fit_many(data[data.gene.isin(["g0", "g1", "g2"])], RFORM, by="gene", output=str(out))
    # same data, more groups: resumes (only the new groups are fitted)
    full = mmfast.fit_many(data, RFORM, by="gene", output=str(out))
    pd.testing.assert_frame_equal(full[full.gene.isin(["g0", "g1", "g2"])].reset_index(drop=True), first)
    changed = data.copy()
    changed.loc[changed.gene == "g1", "y"] += 1.0  # a group already on disk
    with pytest.raises(DataError, match=r"data changed.*g1"):
        mmfast.fit_many(changed, RFORM, by="gene", output=str(out))
    moved = data.copy()
    moved.loc[moved.gene == "g4", "x"] *= 2.0  # a design column
    with pytest.raises(DataError, match=r"g4"):
        mmfast.fit_many(moved, RFORM, by="gene", output=str(out))
    # a column the model does not use may change
    again = mmfast.fit_many(data.assign(unused=1.0), RFORM, by="gene", output=str(out))
    pd.testing.assert_frame_equal(again, full)


def test_resume_refuses_changed_array_weights(tmp_path):
    data = _groups_data(seed=2, genes=3)
    w = np.ones(len(data))
    out = tmp_path / "w.parquet"
    mmfast.fit_many(data, RFORM, by="gene", output=str(out), weights=w)
    w2 = w.copy()
    w2[data.gene.to_numpy() == "g2"] = 2.0
    with pytest.raises(DataError, match=r"g2"):
        mmfast.fit_many(data, RFORM, by="gene", output=str(out), weights=w2)


def test_corrupt_part_is_named(tmp_path):
    data = _groups_data(seed=3, genes=3)
    out = tmp_path / "c.parquet"
    mmfast.fit_many(data, RFORM, by="gene", output=str(out))
    part = sorted(out.glob("part-*.parquet"))[0]
    raw = part.read_bytes()
    part.write_bytes(raw[: len(raw) // 2])  # truncated
    with pytest.raises(DataError, match=part.name):
        mmfast.fit_many(data, RFORM, by="gene", output=str(out))
    a_file = tmp_path / "file.parquet"
    a_file.write_text("x")
    with pytest.raises(DataError, match="is not a fit_many results directory"):
        mmfast.fit_many(data, RFORM, by="gene", output=str(a_file))


def test_glmm_predict_and_icc_take_other_frames(binary, sleep):
    pl = pytest.importorskip("polars")
    g = mmfast.glmer("y ~ x + (1|g)", binary)
    np.testing.assert_allclose(g.predict(pl.from_pandas(binary), type="response"), g.predict(binary, type="response"))
    with pytest.raises(ArgumentError, match="did you mean type='response'"):
        g.predict(binary, type="respnse")
    with pytest.raises(DataError, match="newdata has no rows"):
        g.predict(binary.iloc[:0])
    ic = mmfast.icc_by_group(
        "Reaction ~ 1 + (1 | Subject)", pl.from_pandas(sleep.assign(half=(sleep.Days >= 5).astype(int))), by="half"
    )
    ref = mmfast.icc_by_group(
        "Reaction ~ 1 + (1 | Subject)", sleep.assign(half=(sleep.Days >= 5).astype(int)), by="half"
    )
    pd.testing.assert_frame_equal(ic, ref)


def test_a_date_may_be_a_grouping_factor(sleep):
    """Only arithmetic parts of a formula refuse dates: (1 | day) groups by day, as in R."""
    code = sleep.Subject.astype("int64") % 7
    dated = sleep.assign(day=pd.Timestamp("2020-01-01") + pd.to_timedelta(code, unit="D"), code=code)
    m = mmfast.lmer("Reaction ~ Days + (1 | day)", dated)
    ref = mmfast.lmer("Reaction ~ Days + (1 | code)", dated)  # the same partition of the rows
    assert m.ngroups == {"day": 7}
    assert m.loglik == pytest.approx(ref.loglik, rel=1e-12)
    with pytest.raises(DataError, match="column 'day' holds datetime"):
        mmfast.lmer("Reaction ~ day + (1 | Subject)", dated)


def test_lme_methods_check_keywords(sleep):
    fit = mmfast.lme("Reaction ~ Days", sleep, random="~ Days | Subject")
    with pytest.raises(ArgumentError, match="did you mean adjust_sigma=False?"):
        fit.summary(adjustSigma=False)
    with pytest.raises(ArgumentError, match="adjust_sigma must be True or False"):
        fit.tTable(adjust_sigma="no")
    assert mmfast.ArgumentError is ArgumentError


def test_resume_refuses_reordered_factor_levels(tmp_path):
    """Same values, another reference level: the stored coefficients would be stale."""
    data = _groups_data(seed=4, genes=3)
    data["arm"] = pd.Categorical(np.where(data.animal % 2 == 0, "a", "b"), categories=["a", "b"])
    form = "y ~ arm + (1 | animal)"
    out = tmp_path / "l.parquet"
    mmfast.fit_many(data, form, by="gene", output=str(out))
    flipped = data.assign(arm=data.arm.cat.reorder_categories(["b", "a"]))
    with pytest.raises(DataError, match="another fit_many call"):
        mmfast.fit_many(flipped, form, by="gene", output=str(out))

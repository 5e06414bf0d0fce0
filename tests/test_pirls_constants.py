"""PIRLS tuning constants have one definition (src/mmfast/_ext/_pirls.pyx) that both engines
read, and the ones that follow lme4 equal lme4's defaults (tests/oracle/pirls_constants.R)."""
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

import mmfast
import mmfast.datasets
from mmfast._ext import _pirls
from mmfast._ext._pirls import SingleTerm, pirls_constants
from mmfast.model import glmm, pirls

SRC = Path(mmfast.__file__).parent
REF = Path(__file__).parent / "reference" / "pirls_constants.json.gz"
# module constant in model/pirls.py -> key of pirls_constants()
NAMES = {"PIRLS_TOL": "tol", "PIRLS_MAXIT": "maxit", "MAX_HALVINGS": "max_halvings",
         "HALVING_SLACK": "halving_slack", "STALL_STEP": "stall_step",
         "NEWTON_STEP": "newton_step", "NEWTON_RATIO": "newton_ratio"}


def test_python_side_reads_the_cython_values():
    c = pirls_constants()
    assert set(c) == set(NAMES.values())
    for name, key in NAMES.items():
        assert getattr(pirls, name) == c[key], name


def test_each_constant_is_defined_once():
    """No literal redefinition on either side: the .pyx defines each once, pirls.py none."""
    pyx = (SRC / "_ext" / "_pirls.pyx").read_text()
    py = (SRC / "model" / "pirls.py").read_text()
    cnames = ["PIRLS_TOL", "PIRLS_MAXIT", "MAX_HALVINGS", "HALVING_SLACK", "STALL_STEP",
              "NEWTON_STEP", "NEWTON_RATIO"]
    for name in cnames:
        defs = re.findall(rf"^cdef (?:double|int) {name} = [0-9.e+-]+\b", pyx, re.M)
        assert len(defs) == 1, name
        assert not re.search(rf"^\s*{name}\s*=\s*[0-9.]", py, re.M), name
    # the loops use the names, not literals (the old code had `k < 30`, `1e-10 * (1.0 + ...`)
    for src in (pyx, py):
        assert not re.search(r"k < \d", src)
        assert not re.search(r"slack = \d", src)
        assert not re.search(r"dmax < \d", src)
        assert not re.search(r"self\.maxit = \d", src)
        assert not re.search(r"self\.tol = \d", src)


def test_values_and_lme4_defaults():
    c = pirls_constants()
    ref = json.loads(gzip.decompress(REF.read_bytes()))
    assert c["maxit"] == ref["glmer_maxit"] == 100  # lme4: mkGlmerDevfun(maxit = 100L)
    # Not lme4's: our tol is on the step (max |Δu|), lme4's tolPwrss = 1e-7 on the relative
    # change of the penalised deviance, so no equality is claimed; stage 1's looser PIRLS
    # tolerance is numerically lme4's tolPwrss.
    assert glmm.STAGE1_PIRLS_TOL == ref["tolPwrss"]
    assert c["tol"] < ref["tolPwrss"]
    # lme4 halves at most 20 times (external.cpp maxstephalfit); we allow more (documented).
    assert c["max_halvings"] >= 20


@pytest.fixture(scope="module")
def cbpp():
    df = mmfast.datasets.load("cbpp").copy()
    df["obs"] = np.arange(len(df))
    return df


def test_engines_start_from_the_shared_values(cbpp):
    c = pirls_constants()
    one = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                       family="binomial")
    two = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)",
                       cbpp, family="binomial")
    assert isinstance(one.engine, SingleTerm)
    assert isinstance(two.engine, pirls.KernelPIRLS)
    for eng in (one.engine, two.engine):
        assert eng.tol == c["tol"] and eng.maxit == c["maxit"] and eng.ftol == 0.0
    assert _pirls.SingleTerm is SingleTerm


def test_kernel_engine_uses_the_models_layout(cbpp):
    m = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)",
                     cbpp, family="binomial")
    assert m.engine.layout is m.layout
    assert m.engine.tidx is m.layout.pos

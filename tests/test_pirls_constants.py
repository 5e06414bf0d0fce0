"""PIRLS tuning constants have one definition (src/mmfast/_ext/_pirls.pyx), read by the one
loop both kernels run, and the ones that follow lme4 equal lme4's defaults
(tests/oracle/pirls_constants.R)."""

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

import mmfast
import mmfast.datasets
from mmfast._ext._kernel_loop import KernelLoop
from mmfast._ext._pirls import PirlsLoop, pirls_constants
from mmfast._ext._single_term import SingleTerm

SRC = Path(mmfast.__file__).parent
REF = Path(__file__).parent / "reference" / "pirls_constants.json.gz"
CNAMES = ["PIRLS_TOL", "PIRLS_MAXIT", "MAX_HALVINGS", "HALVING_SLACK", "STALL_STEP", "NEWTON_STEP", "NEWTON_RATIO"]


def test_each_constant_is_defined_once_and_the_loop_is_written_once():
    """The .pyx defines each constant once; no other source defines or bypasses them, and the
    PIRLS iteration (step halving) appears in one loop only."""
    pyx = (SRC / "_ext" / "_pirls.pyx").read_text()
    for name in CNAMES:
        defs = re.findall(rf"^cdef (?:double|int) {name} = [0-9.e+-]+\b", pyx, re.M)
        assert len(defs) == 1, name
    others = [f for f in SRC.rglob("*.py*") if f.name != "_pirls.pyx" and f.suffix in (".py", ".pyx", ".pxd")]
    for f in others:
        src = f.read_text()
        for name in CNAMES:
            assert not re.search(rf"^\s*(?:cdef \w+ )?{name}\s*=\s*[0-9.]", src, re.M), (f, name)
        assert "MAX_HALVINGS" not in src, f  # step halving is the loop's alone
    # the loop uses the names, not literals (the old code had `k < 30`, `1e-10 * (1.0 + ...`)
    assert not re.search(r"k < \d", pyx)
    assert not re.search(r"slack = \d", pyx)
    assert not re.search(r"dmax < \d", pyx)
    assert len(re.findall(r"cdef int _pirls\(", pyx)) == 1


def test_values_and_lme4_defaults():
    c = pirls_constants()
    ref = json.loads(gzip.decompress(REF.read_bytes()))
    assert c["maxit"] == ref["glmer_maxit"] == 100  # lme4: mkGlmerDevfun(maxit = 100L)
    # Not lme4's: our tol is on the step (max |Δu|), lme4's tolPwrss = 1e-7 on the relative
    # change of the penalised deviance, so no equality is claimed; stage 1's looser PIRLS
    # tolerance is numerically lme4's tolPwrss.
    assert mmfast.GlmmControl().stage1_pirls_tol == ref["tolPwrss"]
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
    one = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    two = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)", cbpp, family="binomial")
    assert isinstance(one.engine, SingleTerm)
    assert isinstance(two.engine, KernelLoop)
    for eng in (one.engine, two.engine):
        assert isinstance(eng, PirlsLoop)  # one loop, two kernels
        assert eng.tol == c["tol"] and eng.maxit == c["maxit"] and eng.ftol == 0.0


def test_kernel_engine_uses_the_models_layout(cbpp):
    m = mmfast.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)", cbpp, family="binomial")
    assert m.engine.layout is m.layout
    assert m.engine.tidx is m.layout.pos

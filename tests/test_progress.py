"""Issue 18: progress bars (tqdm) on bootstrap, confint(method="boot"), profile, permutation
tests and fit_many; issue 15: the one parallel runner (mmfast.runner) behind resample and
fit_many.  A bar is written to stderr only when forced (progress=True) or when stderr is a
terminal; the numbers never depend on it, on n_jobs or on the backend."""

from __future__ import annotations

import io
import os
import re
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import mmfast
from mmfast import datasets, progress as progress_mod
from mmfast.resample import bootstrap, cluster_permutation_test
from mmfast.resample.parallel import run_tasks
from mmfast.runner import effective_n_jobs, run_calls

EX1 = "res ~ factor(treatment_idx) + (1 | midx)"


@pytest.fixture(scope="module")
def sleep():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mmfast.lmer("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))


def _genes(n=6):
    rng = np.random.default_rng(3)
    rows = []
    for g in range(n):
        for a in range(6):
            u = rng.normal()
            for _ in range(4):
                rows.append((f"g{g}", f"a{a}", "ab"[a % 2], 1.0 + u + rng.normal()))
    return pd.DataFrame(rows, columns=["gene", "animal", "group", "y"])


def _bar(total: int, err: str) -> bool:
    """A tqdm bar over ``total`` steps was written (it redraws at most every 0.1 s)."""
    return re.search(rf"\b\d+/{total} \[", err) is not None


class _Terminal(io.StringIO):
    def isatty(self):
        return True


# --- when a bar is written -------------------------------------------------------------------
def test_no_output_unless_forced_or_a_terminal(sleep, capsys):
    a = bootstrap(sleep, nsim=6, seed=1)  # default: stderr (captured) is not a terminal
    b = bootstrap(sleep, nsim=6, seed=1, progress=False)
    assert capsys.readouterr().err == ""
    c = bootstrap(sleep, nsim=6, seed=1, progress=True)
    err = capsys.readouterr().err
    assert "bootstrap" in err and _bar(6, err)
    pd.testing.assert_frame_equal(a, b, check_exact=True)  # the bar changes nothing
    pd.testing.assert_frame_equal(a, c, check_exact=True)


def test_default_bar_on_a_terminal_only(monkeypatch):
    monkeypatch.setattr(progress_mod, "DELAY", 0.0)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    list(progress_mod.counted(range(3), 3, "tty", None))
    assert _bar(3, sys.stderr.getvalue())
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: nothing
    list(progress_mod.counted(range(3), 3, "pipe", None))
    assert sys.stderr.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", _Terminal())  # a terminal but progress=False
    list(progress_mod.counted(range(3), 3, "off", False))
    assert sys.stderr.getvalue() == ""


def test_default_bar_waits_for_long_runs(monkeypatch):
    """progress=None on a terminal: nothing for a run shorter than DELAY seconds."""
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert progress_mod.DELAY >= 1
    list(progress_mod.counted(range(3), 3, "short", None))
    assert sys.stderr.getvalue() == ""


def test_bad_progress_argument(sleep):
    with pytest.raises(mmfast.ArgumentError, match="progress"):
        sleep.profile("sigma", progress="yes")
    with pytest.raises(mmfast.ArgumentError, match="progress"):
        bootstrap(sleep, nsim=2, seed=1, progress=1)
    with pytest.raises(mmfast.ArgumentError, match="method='boot'"):
        sleep.confint(method="wald", progress=True)


def test_confint_boot_and_profile_bars(sleep, capsys):
    ci = sleep.confint(method="boot", nsim=5, seed=2, progress=True)
    err = capsys.readouterr().err
    assert "bootstrap" in err and _bar(5, err)
    pd.testing.assert_frame_equal(ci, sleep.confint(method="boot", nsim=5, seed=2))
    prof = sleep.profile(["sigma", "Days"], progress=True)
    err = capsys.readouterr().err
    assert "profile" in err and _bar(2, err) and "parameter" in err
    assert set(prof.parameter) == {"sigma", "Days"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ci = sleep.confint(parm=["sigma"], method="profile", progress=True)
    assert _bar(1, capsys.readouterr().err)
    assert ci.shape == (1, 2)
    sleep.confint(parm=["sigma"], method="profile")
    assert capsys.readouterr().err == ""


def test_permutation_bar(capsys):
    ex1 = datasets.load("ex1")
    a = cluster_permutation_test(EX1, ex1, "treatment_idx", "midx", n_perm=4, seed=9, progress=True)
    err = capsys.readouterr().err
    assert "permutations" in err and _bar(4, err)
    b = cluster_permutation_test(EX1, ex1, "treatment_idx", "midx", n_perm=4, seed=9)
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(np.asarray(a.pvalues), np.asarray(b.pvalues))


def test_fit_many_bar_counts_groups(capsys):
    data = _genes(6)
    quiet = mmfast.fit_many(data, "y ~ group + (1 | animal)", by="gene")
    assert capsys.readouterr().err == ""
    loud = mmfast.fit_many(data, "y ~ group + (1 | animal)", by="gene", progress=True)
    err = capsys.readouterr().err
    assert "fit_many" in err and _bar(6, err) and "group" in err
    pd.testing.assert_frame_equal(quiet, loud, check_exact=True)
    with pytest.raises(mmfast.ArgumentError, match="progress"):
        mmfast.fit_many(data, "y ~ group + (1 | animal)", by="gene", progress="on")


# --- the runner --------------------------------------------------------------------------------
def test_n_jobs_meaning():
    assert effective_n_jobs(None) == 1 and effective_n_jobs(1) == 1 and effective_n_jobs(3) == 3
    cores = os.cpu_count() or 1
    assert effective_n_jobs(-1) == cores
    assert effective_n_jobs(-2) == max(1, cores - 1)
    with pytest.raises(mmfast.ArgumentError, match="n_jobs"):
        effective_n_jobs(0)
    with pytest.raises(mmfast.ArgumentError, match="backend"):
        run_calls(divmod, [(7, 2)], backend="threads")


def test_run_calls_order_and_backends():
    calls = [(k, 3) for k in range(10)]
    expect = [divmod(k, 3) for k in range(10)]
    assert list(run_calls(divmod, calls)) == expect
    assert list(run_calls(divmod, calls, n_jobs=2, backend="serial")) == expect
    assert list(run_calls(divmod, calls, n_jobs=2)) == expect  # loky, in order
    assert sorted(run_calls(divmod, calls, n_jobs=2, ordered=False)) == expect
    assert list(run_calls(divmod, [])) == []


def _normal(payload, rng):
    return payload + float(rng.standard_normal())


def test_seeded_tasks_same_on_dask():
    distributed = pytest.importorskip("distributed")
    serial = run_tasks(_normal, 1.0, 12, seed=5)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster),
    ):
        on_dask = run_tasks(_normal, 1.0, 12, seed=5, n_jobs=2, backend="dask")
    assert on_dask == serial
    rng = [np.random.default_rng(s) for s in np.random.SeedSequence(5).spawn(12)]
    assert serial == [1.0 + float(r.standard_normal()) for r in rng]  # child i draws task i

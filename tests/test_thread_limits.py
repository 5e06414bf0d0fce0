"""Issue 18, thread oversubscription: each fit holds the BLAS/OpenMP pools at
``threads.fit_threads`` threads: one for small dense work, one per SMALL_DENSE rows of a big
dense part, never more than the cores other processes leave free (InstEval went from 0.22 s
to 20-27 s with a competing load while two threads spun on busy cores)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from mmfast import threads

import threadpoolctl  # a core dependency


@pytest.fixture
def two_idle_cores(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0)


def test_small_problems_get_one_thread_or_no_limit(two_idle_cores):
    assert threads.fit_threads(dense_size=10, q=50) is None  # tiny: no context at all
    assert threads.fit_threads(dense_size=50, q=4000) == 1  # big_nested: 2,000 2x2 blocks
    assert threads.fit_threads(dense_size=threads.SMALL_DENSE - 1, q=1000) == 1


def test_big_dense_parts_get_the_free_cores(monkeypatch, two_idle_cores):
    assert threads.fit_threads(dense_size=1156, q=4128) == 2  # InstEval, idle
    assert threads.fit_threads(dense_size=None, q=5000) == 2  # order unknown: all cores
    monkeypatch.setattr(threads, "busy_cores", lambda: 2)  # a 2-thread job elsewhere
    assert threads.fit_threads(dense_size=1156, q=4128) == 1
    monkeypatch.setattr(threads, "busy_cores", lambda: 40)
    assert threads.fit_threads(dense_size=None, q=5000) == 1
    monkeypatch.setattr(threads, "usable_cores", lambda: 16)
    monkeypatch.setattr(threads, "busy_cores", lambda: 1)
    # what helps: one thread per SMALL_DENSE rows (1156 // 400 = 2), however many cores
    assert threads.fit_threads(dense_size=1156, q=4128) == 1156 // threads.SMALL_DENSE
    assert threads.fit_threads(dense_size=4000, q=9000) == 10
    assert threads.fit_threads(dense_size=40000, q=9000) == 15  # 16 cores, 1 busy


def test_busy_cores_counts_other_processes():
    """Two spinning processes are runnable, so at least one of them is counted whenever
    /proc/loadavg is sampled; the usable cores are this process's affinity."""
    assert threads.usable_cores() == len(os.sched_getaffinity(0))
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.3)
        seen = max(threads.busy_cores() for _ in range(20))
    finally:
        for p in spin:
            p.kill()
            p.wait()
    assert seen >= 1


def test_the_limit_holds_every_pool(monkeypatch):
    ctl = threadpoolctl.ThreadpoolController()
    assert ctl.lib_controllers, "numpy's BLAS is always a pool threadpoolctl sees"
    with threadpoolctl.threadpool_limits(limits=2):  # a pool to limit even on a 1-core machine
        _limit_holds(monkeypatch)


def _limit_holds(monkeypatch):
    before = [lib.num_threads for lib in threadpoolctl.ThreadpoolController().lib_controllers]
    assert max(before) >= 2
    monkeypatch.setattr(threads, "busy_cores", lambda: 10**6)  # every core busy elsewhere
    with threads.limit_fit_threads(dense_size=1156, q=4128):
        inside = [info["num_threads"] for info in threadpoolctl.threadpool_info()]
        assert inside and all(k == 1 for k in inside)
    assert [lib.num_threads for lib in threadpoolctl.ThreadpoolController().lib_controllers] == before
    with threads.limit_fit_threads(dense_size=10, q=50):  # small: no limit is taken
        assert [i["num_threads"] for i in threadpoolctl.threadpool_info()] == before


def test_a_fit_runs_under_the_limit(monkeypatch):
    """The LMM fit asks limit_fit_threads with its kernel's dense order and q."""
    import mmfast
    from mmfast.model import fitting

    seen = []
    real = fitting.limit_fit_threads

    def spy(dense_size, q, min_q=1000):
        seen.append((dense_size, q, min_q))
        return real(dense_size, q, min_q)

    monkeypatch.setattr(fitting, "limit_fit_threads", spy)
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", mmfast.datasets.load("sleepstudy"))
    assert seen and seen[-1][1] == m.blocks.q == 36
    assert seen[-1][2] == 1000  # BOBYQA: small problems keep the libraries' own choice


def test_a_glmm_fit_runs_under_the_limit(monkeypatch):
    """One-term GLMM: no dense part beyond β (dense order 0), q = the herds."""
    import mmfast
    from mmfast.model import glmm

    seen = []
    real = glmm.limit_fit_threads
    monkeypatch.setattr(glmm, "limit_fit_threads", lambda dense, q: seen.append((dense, q)) or real(dense, q))
    cbpp = mmfast.datasets.load("cbpp")
    cbpp["prop"] = cbpp["incidence"] / cbpp["size"]
    mmfast.glmer("prop ~ period + (1 | herd)", cbpp, family="binomial", weights=cbpp["size"])
    assert seen == [(0, 15)]

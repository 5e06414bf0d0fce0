"""Issue 18, thread oversubscription: each fit holds the BLAS/OpenMP pools at
``threads.fit_threads`` threads: one for small dense work, one per SMALL_DENSE rows of a big
dense part, never more than the cores other processes leave free (InstEval went from 0.22 s
to 20-27 s with a competing load while two threads spun on busy cores)."""

from __future__ import annotations

import os

import pytest

from mmfast import threads

threadpoolctl = pytest.importorskip("threadpoolctl")


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
    n = threads.busy_cores()
    assert isinstance(n, int) and n >= 0
    assert 1 <= threads.usable_cores() <= (os.cpu_count() or 1)


def test_the_limit_holds_every_pool(monkeypatch):
    ctl = threadpoolctl.ThreadpoolController()
    if not ctl.lib_controllers or max(lib.num_threads for lib in ctl.lib_controllers) < 2:
        pytest.skip("no multi-threaded BLAS/OpenMP pool to limit")
    before = [lib.num_threads for lib in ctl.lib_controllers]
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

    def spy(dense_size, q):
        seen.append((dense_size, q))
        return real(dense_size, q)

    monkeypatch.setattr(fitting, "limit_fit_threads", spy)
    m = mmfast.lmer("Reaction ~ Days + (Days | Subject)", mmfast.datasets.load("sleepstudy"))
    assert seen and seen[-1][1] == m.blocks.q == 36


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

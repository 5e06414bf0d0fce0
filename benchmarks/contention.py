"""InstEval's fit with and without a competing CPU load: does mmfast keep its speed when
another process is using the cores?  (Issue 18: it went from 0.22 s to 20-27 s with BLAS and
OpenMP threads spinning on busy cores; target: within 2x of the idle time.)

    .venv/bin/python benchmarks/contention.py [--rounds 3] [--fits 2] [--unlimited]
                                              [--same-session] [--json F]

Each round fits InstEval (lme4's ML fit, the ``insteval_ml`` case) ``--fits`` times with no
extra load, then starts a competing process (numpy's matrix products on 2 OpenBLAS threads,
burning 2 cores), waits for it to run, fits again ``--fits`` times and stops it.  The
competing process runs in its own session, as another program started from another terminal
would: with Linux's autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``) a
session's threads share one slice of the CPU, so a child in this session (``--same-session``)
takes 2 of every 3 of this benchmark's time slices whatever mmfast does.  Rounds
alternate so that a change in the machine's other load affects both sides alike.  Reported:
the median idle and loaded times and their ratio, every time (wall and this process's CPU
time: wasted spinning shows in the CPU time), the load averages and
``mmfast.threads.fit_threads``'s choice in each phase.  ``--unlimited`` also times the fits
with mmfast's per-fit thread limit switched off (what happened before it; slow when loaded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_cases  # noqa: E402

BURNER = "import numpy as np\na = np.random.default_rng(0).random((1500, 1500))\nwhile True:\n    a @ a\n"


def start_burner(threads: int = 2, new_session: bool = True) -> subprocess.Popen:
    """A separate process burning ``threads`` cores (OpenBLAS matrix products)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen([sys.executable, "-c", BURNER], env=env, start_new_session=new_session)
    time.sleep(1.5)  # numpy imported, the products running
    if proc.poll() is not None:
        raise RuntimeError("the competing load did not start")
    return proc


def stop_burner(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


def _state(fit_threads) -> dict:
    return {"loadavg": [round(x, 2) for x in os.getloadavg()], "fit_threads": fit_threads()}


def _autogroup() -> bool | None:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fits", type=int, default=2, help="fits per phase and round")
    ap.add_argument("--unlimited", action="store_true", help="also time the fits without mmfast's per-fit thread limit")
    ap.add_argument(
        "--same-session", action="store_true", help="run the competing load in this session (one autogroup with mmfast)"
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import mmfast
    from mmfast import threads
    from mmfast.model import fitting

    case = bench_cases.build_cases(["insteval_ml"])[0]
    data = bench_cases.case_data(case)
    fit = bench_cases._fitter(case, data)
    kernel_size = {}

    cpu: list[float] = []

    def timed() -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0, c0 = time.perf_counter(), time.process_time()
            m = fit()
            seconds = time.perf_counter() - t0
        cpu.append(time.process_time() - c0)
        kernel_size.update(dense=getattr(m.kernel, "dense_size", None), q=int(m.blocks.q))
        return seconds

    def choice():
        return threads.fit_threads(kernel_size["dense"], kernel_size["q"])

    variants = {"limited": None}
    if args.unlimited:
        variants["unlimited"] = lambda *a, **k: threads.contextlib.nullcontext()
    timed()  # warm-up: imports, caches
    out: dict = {
        "case": case.name,
        "formula": case.formula,
        "rows": int(len(data)),
        "mmfast": mmfast.__version__,
        "cores": threads.usable_cores(),
        "competing_load": "a second process: numpy matrix products on 2 OpenBLAS "
        "threads (2 cores busy), " + ("in this session" if args.same_session else "in its own session"),
        "autogroup": _autogroup(),
        "rounds": args.rounds,
        "fits_per_phase": args.fits,
        "variants": {},
    }
    original = fitting.limit_fit_threads
    try:
        for name, patch in variants.items():
            fitting.limit_fit_threads = original if patch is None else patch
            idle, busy, states, cpu_idle, cpu_busy = [], [], [], [], []
            for r in range(args.rounds):
                states.append({"round": r, "idle": _state(choice)})
                idle += [timed() for _ in range(args.fits)]
                cpu_idle += cpu[-args.fits :]
                burner = start_burner(new_session=not args.same_session)
                try:
                    states[-1]["loaded"] = _state(choice)
                    busy += [timed() for _ in range(args.fits)]
                    cpu_busy += cpu[-args.fits :]
                finally:
                    stop_burner(burner)
                print(
                    f"{name} round {r + 1}: idle {', '.join(f'{t:.3f}' for t in idle[-args.fits :])} s"
                    f"; loaded {', '.join(f'{t:.3f}' for t in busy[-args.fits :])} s "
                    f"(load average {states[-1]['loaded']['loadavg'][0]})",
                    flush=True,
                )
            out["variants"][name] = {
                "idle_s": idle,
                "loaded_s": busy,
                "idle_median_s": _median(idle),
                "loaded_median_s": _median(busy),
                "ratio": _median(busy) / _median(idle),
                "idle_cpu_s": cpu_idle,
                "loaded_cpu_s": cpu_busy,
                "phases": states,
            }
    finally:
        fitting.limit_fit_threads = original
    out["kernel"] = kernel_size
    for name, v in out["variants"].items():
        print(
            f"{name}: idle median {v['idle_median_s']:.3f} s, loaded median "
            f"{v['loaded_median_s']:.3f} s, ratio {v['ratio']:.2f} (CPU s per fit: idle "
            f"{_median(v['idle_cpu_s']):.3f}, loaded {_median(v['loaded_cpu_s']):.3f})"
        )
    if args.json:
        out["generated"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        out["command"] = " ".join(["benchmarks/contention.py", *(argv or sys.argv[1:])])
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Instructions per millisecond fit (valgrind's callgrind), for A/B runs between trees when the
machine is too loaded for timings to resolve a few per cent (issue 15's overhead work).

Usage: ``python benchmarks/per_fit_instructions.py TREE [TREE ...]`` (each tree built in
place) prints, per tree and fit, the instructions executed per fit: deterministic, so one run
per tree suffices.  Start-up and imports run uninstrumented; callgrind counts only the N fits
after warm-up.  Needs valgrind (``callgrind_control`` on PATH); takes a few minutes per tree.

``--l2`` also simulates a 2 MB last-level cache (this machine's per-core L2) and prints its
misses per fit: equal instructions can still cost more wall time when a fit touches more
distinct code and objects than L2 holds (issue 15: lmer sleepstudy 3.0k -> 3.8k misses, cbpp
1.4k -> 2.5k, at equal instructions, while wall time rose 5-9%).
"""

import os
import subprocess
import sys
import tempfile
import time
import warnings

FITS = ("ss", "ssd", "pen", "cbpp", "frame")
N = 10
L2 = ["--cache-sim=yes", "--I1=65536,8,64", "--D1=49152,12,64", "--LL=2097152,16,64"]


def _fits():
    import mmfast
    from mmfast.model.frame import model_frame

    ds = mmfast.datasets
    sleep, pen, cbpp = ds.load("sleepstudy"), ds.load("Penicillin"), ds.load("cbpp")
    cbpp["incid_p"] = cbpp["incidence"] / cbpp["size"]
    formula = "Reaction ~ Days + (Days | Subject)"
    return {
        "ss": lambda: mmfast.lmer(formula, sleep),
        "ssd": lambda: mmfast.lmer("Reaction ~ Days + (Days || Subject)", sleep),
        "pen": lambda: mmfast.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", pen),
        "cbpp": lambda: mmfast.glmer("incid_p ~ period + (1 | herd)", cbpp, family="binomial", weights="size"),
        "frame": lambda: model_frame(formula, sleep),
    }


def _wait(path: str, exists: bool) -> None:
    while os.path.exists(path) != exists:
        time.sleep(0.05)


def child(flag: str) -> None:
    """Under valgrind: warm up, signal, then run each fit N times between the parent's dumps."""
    warnings.simplefilter("ignore")
    fits = _fits()
    for name in FITS:
        for _ in range(3):
            fits[name]()
    open(flag, "w").close()
    _wait(flag, False)  # the parent switched instrumentation on and zeroed the counters
    for name in FITS:
        for _ in range(N):
            fits[name]()
        open(f"{flag}.{name}", "w").close()
        _wait(f"{flag}.{name}", False)


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def measure(tree: str, l2: bool = False) -> dict:
    """Instructions per fit of each of FITS in ``tree`` (its ``src`` first on the path); with
    ``l2`` (instructions, simulated L2 misses) per fit."""
    work = tempfile.mkdtemp()
    flag = os.path.join(work, "flag")
    env = dict(os.environ, PYTHONPATH=os.path.join(tree, "src"), PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", *(L2 if l2 else [])]
    cmd.append(f"--callgrind-out-file={work}/out.%p")
    proc = subprocess.Popen([*cmd, sys.executable, __file__, "--child", flag], env=env, stderr=subprocess.DEVNULL)
    _wait(flag, True)
    _control(proc.pid, "-i", "on")
    _control(proc.pid, "-z")
    os.remove(flag)
    out = {}
    for name in FITS:
        _wait(f"{flag}.{name}", True)
        before = set(os.listdir(work))
        _control(proc.pid, "-d", name)
        dump = [f for f in os.listdir(work) if f.startswith("out.") and f not in before]
        with open(os.path.join(work, max(dump, key=lambda f: os.path.getmtime(os.path.join(work, f))))) as fh:
            ev = next(line.split()[1:] for line in fh if line.startswith(("summary:", "totals:")))
        # events: Ir [Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw] with the cache simulation
        out[name] = (int(ev[0]) // N, sum(map(int, ev[6:9])) // N) if l2 else int(ev[0]) // N
        _control(proc.pid, "-z")
        os.remove(f"{flag}.{name}")
    proc.wait()
    return out


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        l2 = "--l2" in sys.argv
        for tree in [a for a in sys.argv[1:] if a != "--l2"]:
            print(os.path.basename(os.path.abspath(tree)), measure(tree, l2), flush=True)

"""Instructions per millisecond fit (valgrind's callgrind), for A/B runs between trees when the
machine is too loaded for timings to resolve a few per cent (issue 15's overhead work).

Usage: ``python benchmarks/per_fit_instructions.py TREE [TREE ...]`` (each tree built in
place) prints, per tree and fit, the instructions executed per fit: deterministic, so one run
per tree suffices.  Start-up and imports run uninstrumented; callgrind counts only the N fits
after warm-up.  Needs valgrind (``callgrind_control`` on PATH); takes a few minutes per tree.
"""

import os
import subprocess
import sys
import tempfile
import time
import warnings

FITS = ("ss", "ssd", "pen", "cbpp", "frame")
N = 10


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


def measure(tree: str) -> dict:
    """Instructions per fit of each of FITS in ``tree`` (its ``src`` first on the path)."""
    work = tempfile.mkdtemp()
    flag = os.path.join(work, "flag")
    env = dict(os.environ, PYTHONPATH=os.path.join(tree, "src"), PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={work}/out.%p"]
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
            total = next(int(line.split()[1]) for line in fh if line.startswith(("summary:", "totals:")))
        out[name] = total // N
        _control(proc.pid, "-z")
        os.remove(f"{flag}.{name}")
    proc.wait()
    return out


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        for tree in sys.argv[1:]:
            print(os.path.basename(os.path.abspath(tree)), measure(tree), flush=True)

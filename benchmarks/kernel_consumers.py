"""Time the inference that reads the fitted kernel (issue 15): KR anova and Satterthwaite
summary on Penicillin, sleepstudy and InstEval, and a fit on InstEval.  Minimum of ``--repeat`` runs
(the machine may be shared); each inference run is timed on a fresh fit (untimed), so no cache
is reused.  Usage: python benchmarks/kernel_consumers.py [--repeat 7]"""

from __future__ import annotations

import argparse
import time

import mmfast
from mmfast.datasets import load

CASES = {"Penicillin": "diameter ~ 1 + (1 | plate) + (1 | sample)", "sleepstudy": "Reaction ~ Days + (Days | Subject)"}
INSTEVAL = "y ~ service + (1 | s) + (1 | d) + (1 | dept)"


def best(f, repeat: int, setup=lambda: None) -> float:
    """Minimum over ``repeat`` runs of f(setup()), the setup untimed."""
    times = []
    for _ in range(repeat):
        arg = setup()
        t0 = time.perf_counter()
        f(arg)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    for name, formula in CASES.items():
        data = load(name)

        def fit(formula=formula, data=data):
            return mmfast.lmer(formula, data)

        kr = best(lambda m: m.anova(ddf="Kenward-Roger"), args.repeat, fit)
        sat = best(lambda m: str(m.summary()), args.repeat, fit)
        print(f"{name:12s} KR anova {kr * 1e3:8.2f} ms   Satterthwaite summary {sat * 1e3:8.2f} ms")
    data = load("InstEval")
    few = max(2, args.repeat // 3)
    t = best(lambda _: mmfast.lmer(INSTEVAL, data), few)

    def fit():
        return mmfast.lmer(INSTEVAL, data)

    sat = best(lambda m: str(m.summary()), few, fit)
    both = best(lambda m: (str(m.summary()), m.anova(ddf="Kenward-Roger")), few, fit)
    print(f"InstEval     fit {t:8.3f} s   Satterthwaite summary {sat:8.3f} s   summary + KR anova {both:8.3f} s")


if __name__ == "__main__":
    main()

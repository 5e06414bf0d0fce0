"""Per-fit overhead of millisecond fits, for A/B runs between two trees in one session.

Usage (each tree built in place): ``PYTHONPATH=<tree>/src python benchmarks/per_fit_overhead.py``,
alternating the trees; prints the minimum time per fit (µs) of each phase and of whole fits.
Issue 15's "ratios no worse" was checked this way against bcd9dc9 (before the issue).  On a
loaded machine timings do not resolve a few per cent: ``per_fit_instructions.py`` counts the
instructions per fit instead (deterministic).
"""

import json
import timeit
import warnings

import mmfast
from mmfast.model.frame import model_frame

warnings.simplefilter("ignore")
FORMULA = "Reaction ~ Days + (Days | Subject)"


def best_us(fn, number=300, repeat=7) -> float:
    """Minimum over ``repeat`` runs of the mean time of ``number`` calls, in µs."""
    return round(min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6, 1)


def main() -> None:
    ds = mmfast.datasets
    sleep, pen, cbpp = ds.load("sleepstudy"), ds.load("Penicillin"), ds.load("cbpp")
    cbpp["incid_p"] = cbpp["incidence"] / cbpp["size"]
    cls = type(mmfast.lmer(FORMULA, sleep))
    frame = model_frame(FORMULA, sleep)
    out = {
        "model_frame": best_us(lambda: model_frame(FORMULA, sleep)),
        "construct": best_us(lambda: cls(frame)),
        "construct_and_fit": best_us(lambda: cls(frame).fit()),
        "lmer sleepstudy (Days|Subject)": best_us(lambda: mmfast.lmer(FORMULA, sleep)),
        "lmer sleepstudy (Days||Subject)": best_us(lambda: mmfast.lmer("Reaction ~ Days + (Days || Subject)", sleep)),
        "lmer Penicillin": best_us(lambda: mmfast.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", pen)),
        "glmer cbpp": best_us(
            lambda: mmfast.glmer("incid_p ~ period + (1 | herd)", cbpp, family="binomial", weights="size")
        ),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

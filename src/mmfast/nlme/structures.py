"""nlme's residual structures given as objects or as R text (``"corAR1(form = ~ t | g)"``).

The R text is parsed, never evaluated: a known constructor name, then ``form = ~ ...`` and
``value = <number or c(...)>`` arguments (positional: value first, varFixed's formula first).
"""

from __future__ import annotations

import re

from ..errors import FormulaError
from ..formula.parse import split_top
from .corstruct import CorStruct, corAR1, corCAR1, corCompSymm, corExp, corSymm
from .varfunc import VarFunc, varConstPower, varExp, varFixed, varIdent, varPower

__all__ = ["as_structure", "CONSTRUCTORS"]

CONSTRUCTORS = {
    c.__name__: c
    for c in (corAR1, corCAR1, corExp, corCompSymm, corSymm, varIdent, varPower, varExp, varConstPower, varFixed)
}


def _value(text: str):
    text = text.strip()
    m = re.fullmatch(r"c\((.*)\)", text, flags=re.S)
    parts = [p for _, p in split_top(m.group(1), ",")] if m else [text]
    try:
        vals = [float(p.split("=")[-1]) for p in parts]
    except ValueError:
        raise FormulaError(f"value = {text!r}: expected a number or c(numbers)") from None
    return vals[0] if not m else vals


def _from_text(text: str):
    m = re.fullmatch(r"\s*([A-Za-z0-9]+)\s*\((.*)\)\s*", text, flags=re.S)
    if not m or m.group(1) not in CONSTRUCTORS:
        raise FormulaError(f"{text!r} is not one of nlme's structures: {', '.join(CONSTRUCTORS)}(...)")
    cls = CONSTRUCTORS[m.group(1)]
    kwargs = {}
    for i, (_, arg) in enumerate(split_top(m.group(2), ",") if m.group(2).strip() else []):
        name, eq, val = arg.partition("=")
        if not eq or name.strip().startswith("~"):  # positional
            name, val = ("form" if cls is varFixed or arg.strip().startswith("~") else "value"), arg
        name = name.strip()
        if name == "form" or (cls is varFixed and name == "value"):
            kwargs["form"] = val.strip()
        elif name == "value" and cls is not varConstPower:
            kwargs["value"] = _value(val)
        elif name in ("const", "power") and cls is varConstPower:
            kwargs[name] = _value(val)
        elif name == "fixed" and val.strip() in ("FALSE", "F"):
            continue
        else:
            raise FormulaError(f"{text!r}: argument {name!r} is not supported")
        del i
    return cls(**kwargs)


def as_structure(obj, kind: str, prior_ok: bool = False):
    """A CorStruct (``kind="correlation"``) or VarFunc (``"variance"``) from an object or R text;
    None for None, or (``prior_ok``) for anything else (lme's prior weights)."""
    if obj is None:
        return None
    if isinstance(obj, str) and re.match(r"\s*(cor|var)[A-Z]", obj):
        obj = _from_text(obj)
    want = CorStruct if kind == "correlation" else VarFunc
    if isinstance(obj, want):
        return obj
    if prior_ok and not isinstance(obj, (CorStruct, VarFunc)):
        return None
    raise FormulaError(f"{kind} = {obj!r}: expected one of nlme's {kind} structures")

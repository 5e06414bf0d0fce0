"""Keyword arguments of the public entry points, checked before any work is done.

R users type ``REML=FALSE``, ``nAGQ=``, ``check.nobs.vs.nRE=``; Python would either raise a
bare ``TypeError`` or (through ``**options``) pass the name on to a place that ignores or
misreads it.  ``validated`` wraps a public function or method: an unknown keyword raises
``ArgumentError`` naming the closest accepted one ("did you mean reml=False?"), and
arguments with a fixed type or set of values (``reml``: only a bool) are checked.  The cost
per call is one set lookup per keyword given.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import numbers
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np

from .errors import ArgumentError

__all__ = [
    "validated",
    "check_keywords",
    "unknown_keyword",
    "boolean",
    "one_of",
    "integer",
    "probability",
    "number",
    "is_model",
    "check_model_arguments",
    "check_start",
    "check_models",
    "OPTIMIZER_KEYWORDS",
    "NOBS_CHECKS",
]

OPTIMIZER_KEYWORDS = ("ftol_abs", "xtol_abs", "maxeval", "step")  # lmer's **optctrl
NOBS_CHECKS = ("stop", "warning", "ignore")  # lmerControl's check.nobs.vs.* values


def _norm(name: str) -> str:
    return str(name).lower().replace(".", "_")


def closest(name: str, allowed) -> str | None:
    """The accepted name ``name`` was probably meant as (case, R's dots, close spelling)."""
    allowed = [a for a in allowed if not a.startswith("_")]
    by_norm = {_norm(a): a for a in allowed}
    key = _norm(name)
    if key in by_norm:
        return by_norm[key]
    bare = {k.replace("_", ""): a for k, a in by_norm.items()}
    if key.replace("_", "") in bare:
        return bare[key.replace("_", "")]
    hit = difflib.get_close_matches(key, list(by_norm), n=1, cutoff=0.6)
    return by_norm[hit[0]] if hit else None


def unknown_keyword(func: str, name: str, value, allowed) -> ArgumentError:
    """The error for ``func(name=value)`` when ``name`` is not one of ``allowed``."""
    msg = f"{func}() got an unexpected keyword argument {name!r}"
    guess = closest(name, allowed)
    if guess is not None:
        shown = _r_value(value)
        shown = shown if len(shown) <= 40 else "..."
        return ArgumentError(f"{msg}: did you mean {guess}={shown}?")
    names = ", ".join(sorted(a for a in allowed if not a.startswith("_")))
    return ArgumentError(f"{msg} (accepted: {names})")


def _r_value(value) -> str:
    """R's logical constants as Python's (``REML=FALSE`` arrives as the string only in the CLI)."""
    if isinstance(value, str) and value in ("FALSE", "TRUE", "F", "T"):
        return "False" if value.startswith("F") else "True"
    return repr(value)


def check_keywords(func: str, kwargs: dict, allowed) -> None:
    """Raise ``ArgumentError`` for the first keyword of ``kwargs`` that is not ``allowed``."""
    for k in kwargs:
        if k not in allowed:
            raise unknown_keyword(func, k, kwargs[k], allowed)


# --- value checks: (name, value) -> the value to use ----------------------------------------
def boolean(name: str, value):
    """True or False (numpy's bools too); anything else, e.g. ``reml="ML"``, is an error."""
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    hint = ""
    if name == "reml" and isinstance(value, str):
        hint = " (reml=False fits by maximum likelihood, reml=True by REML)"
    raise ArgumentError(f"{name} must be True or False, not {value!r}{hint}")


def integer(minimum: int = 0, none: bool = False):
    """A whole number >= ``minimum`` (numpy integers too; None if ``none``)."""

    def check(name: str, value):
        if value is None and none:
            return value
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise ArgumentError(f"{name} must be an integer, not {value!r}")
        if value < minimum:
            raise ArgumentError(f"{name} must be >= {minimum}, not {value!r}")
        return int(value)

    return check


def probability(name: str, value):
    """A number strictly between 0 and 1 (a confidence level)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not 0 < float(value) < 1:
        raise ArgumentError(f"{name} must be a number between 0 and 1 (e.g. 0.95), not {value!r}")
    return float(value)


def number(name: str, value):
    """A real number (not a bool, not text)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ArgumentError(f"{name} must be a number, not {value!r}")
    return value


def is_model(value) -> bool:
    """A fitted mmfast model (lmer, glmer, lm, lme): it has a log-likelihood."""
    return hasattr(value, "loglik")


def check_model_arguments(func: str, values, what: str = "a fitted mmfast model") -> None:
    """Positional arguments that must be fitted models (``anova(m0, m1)``)."""
    for i, v in enumerate(values):
        if not is_model(v):
            raise ArgumentError(f"{func}() takes {what}s; argument {i + 1} is a {type(v).__name__} ({str(v)[:40]!r})")


def one_of(*choices, none: bool = False, case: bool = True):
    """One of ``choices`` (strings, compared as given, or ignoring case if ``case=False``);
    a close miss is suggested."""

    def check(name: str, value):
        if value is None and none:
            return value
        if isinstance(value, str) and (value in choices or not case and value.lower() in choices):
            return value
        guess = closest(value, choices) if isinstance(value, str) else None
        allowed = ", ".join(map(repr, choices)) + (" or None" if none else "")
        raise ArgumentError(
            f"{name} must be one of {allowed}, not {value!r}" + (f": did you mean {name}={guess!r}?" if guess else "")
        )

    return check


def check_start(start, lower, names):
    """``start`` as θ (lme4's order; lme4's ``list(theta = ...)`` as a dict too), checked: one
    finite value per θ, within the bounds.  Returns None or the array."""
    if start is None:
        return None
    if isinstance(start, dict):
        other = [k for k in start if k != "theta"]
        if other or "theta" not in start:
            raise ArgumentError(f"start as a dict takes 'theta' only (got {sorted(map(str, start))})")
        start = start["theta"]
    try:
        x = np.asarray(start, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"start must be numbers (θ in lme4's order), not {start!r}") from exc
    if x.ndim != 1 or len(x) != len(lower):
        raise ArgumentError(
            f"start has {x.size} value{'s' if x.size != 1 else ''}; this model has "
            f"{len(lower)} θ parameters ({', '.join(names)})"
        )
    if not np.all(np.isfinite(x)):
        raise ArgumentError(f"start has non-finite values: {list(x)}")
    low = np.asarray(lower, dtype=float)
    bad = np.flatnonzero(x < low)
    if bad.size:
        raise ArgumentError(f"start for {names[bad[0]]} is {x[bad[0]]:g}, below its lower bound {low[bad[0]]:g}")
    return x


def check_models(func: str, named: dict, allowed) -> None:
    """``anova(m0, m1=...)`` takes models by keyword: any other keyword is a misspelling."""
    for k, v in named.items():
        if k not in allowed and not is_model(v):
            raise unknown_keyword(func, k, v, allowed)


# --- the decorator ---------------------------------------------------------------------------
_F = TypeVar("_F", bound=Callable[..., Any])


def validated(extra=(), name: str | None = None, **checks) -> Callable[[_F], _F]:
    """Check a public callable's keyword arguments: names (its parameters plus ``extra``,
    for those it forwards through ``**kwargs``) and, for ``checks``, values."""

    def wrap(func: _F) -> _F:  # the wrapper keeps func's signature (and its static type)
        params = inspect.signature(func).parameters
        named = [p for p, v in params.items() if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]
        allowed = frozenset(named) | frozenset(extra)
        label = name or func.__name__
        positions = {
            k: named.index(k) for k in checks if k in named and params[k].kind == params[k].POSITIONAL_OR_KEYWORD
        }

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for k in kwargs:
                if k not in allowed:
                    raise unknown_keyword(label, k, kwargs[k], allowed)
                check = checks.get(k)
                if check is not None:
                    kwargs[k] = check(k, kwargs[k])
            for k, i in positions.items():
                if i < len(args):
                    args = (*args[:i], checks[k](k, args[i]), *args[i + 1 :])
            return func(*args, **kwargs)

        wrapper.accepted_keywords = allowed  # type: ignore[attr-defined]
        return cast(_F, wrapper)

    return wrap

"""Split an lme4 formula into response, fixed part and random-effects bars.

No numerics here: the result is text, ready for the design layer.  lme4's rules:
``(x || g)`` becomes one uncorrelated term per formula term of ``x``; ``(1 | a/b)``
becomes ``(1 | a) + (1 | b:a)``; ``offset(...)`` terms are kept apart.  Structured terms
``cs(0 + f | g)``, ``ar1(...)``, ``diag``, ``toep``, ``ou``, ``us`` (glmmTMB / lme4 2.0) become
Bars carrying their structure and ``hom`` flag (glmmTMB's ``homcs``/``hetar1``... spellings or
lme4 2.0's ``hom = TRUE`` argument); anything else of that shape is refused, never executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache

from ..errors import FormulaError, ModelSpecError
from .expr import parse_expr

__all__ = ["Bar", "ParsedFormula", "parse_formula", "split_top", "identifiers"]

_IDENT = re.compile(r"`[^`]+`|[A-Za-z_.][A-Za-z0-9_.]*")


@dataclass(frozen=True)
class Bar:
    """One random-effects term ``(lhs | group)`` after expansion."""

    lhs: str
    group: str  # grouping expression, e.g. "Subject" or "cask:batch"
    structure: str = "us"  # design.structures: us, diag, cs, ar1, toep, ou
    hom: bool | None = None  # shared SD across columns (None: the structure's default)

    @property
    def factors(self) -> list[str]:
        """Names of the variables whose interaction is the grouping factor."""
        return [f.strip() for f in self.group.split(":")]

    def __str__(self) -> str:  # as lme4 prints a term
        return f"{self.lhs} | {self.group}"


@dataclass
class ParsedFormula:
    """An lme4 formula taken apart."""

    formula: str
    response: str
    fixed: str  # right-hand side of the fixed part, R syntax
    bars: list[Bar] = field(default_factory=list)
    offsets: list[str] = field(default_factory=list)  # expressions inside offset(...)

    def variables(self, columns) -> list[str]:
        """Data columns the formula uses (response, fixed, random and offsets)."""
        from .expr import names_in, parse_expr

        exprs = [self.response, self.fixed, *self.offsets]
        exprs += [e for b in self.bars for e in (b.lhs, b.group)]
        cols = set(columns)
        found: dict = {}
        for e in exprs:
            for name in names_in(parse_expr(e)):
                if name in cols:
                    found[name] = None
        return list(found)


def identifiers(text: str) -> list[str]:
    """All identifier-like tokens in an expression (backticks stripped)."""
    return [t.strip("`") for t in _IDENT.findall(text)]


def _check_balanced(text: str) -> None:
    depth = 0
    for pos, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"unbalanced ')' at position {pos} in formula {text!r}")
    if depth:
        raise FormulaError(f"unbalanced '(' in formula {text!r}: {depth} not closed")


def split_top(text: str, seps: str = "+-") -> list[tuple[str, str]]:
    """Split ``text`` at top-level separators, returning (sign, term) pairs."""
    out, depth, start, sign = [], 0, 0, "+"
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch in seps:
            # a '-' directly after an operator or at the start is a unary minus
            prev = text[:i].rstrip()
            if ch == "-" and (not prev or prev[-1] in "+-*/:^(~,"):
                continue
            out.append((sign, text[start:i].strip()))
            sign, start = ch, i + 1
    out.append((sign, text[start:].strip()))
    return [(s, t) for s, t in out if t]


def _strip_parens(term: str) -> str:
    term = term.strip()
    while term.startswith("(") and term.endswith(")"):
        depth = 0
        for i, ch in enumerate(term):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(term) - 1:
                return term
        term = term[1:-1].strip()
    return term


def _find_bar(term: str) -> tuple[int, int] | None:
    """Position and width of a top-level ``|`` or ``||`` inside a parenthesised term."""
    depth = 0
    for i, ch in enumerate(term):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            return (i, 2) if term[i + 1 : i + 2] == "|" else (i, 1)
    return None


def _expand_group(group: str) -> list[str]:
    """``a/b`` -> [``a``, ``b:a``] (lme4 names nested groups inner-first)."""
    parts = [p.strip() for p in group.split("/")]
    if any(not p for p in parts):
        raise FormulaError(f"empty grouping factor in {group!r}")
    out = []
    for k in range(len(parts)):
        out.append(":".join(reversed(parts[: k + 1])))
    return out


# structure calls: name -> (structure, hom); glmmTMB's spellings and lme4 2.0's base names
_STRUCT_CALLS = {
    "us": ("us", None),
    "diag": ("diag", None),
    "cs": ("cs", None),
    "ar1": ("ar1", None),
    "toep": ("toep", None),
    "ou": ("ou", None),
    "homdiag": ("diag", True),
    "homcs": ("cs", True),
    "hetar1": ("ar1", False),
    "homtoep": ("toep", True),
}
_UNSUPPORTED = ("exp", "gau", "mat", "rr", "propto", "equalto", "hetdiag", "hetcs", "homar1", "homus")
_STRUCT_RE = re.compile(r"([A-Za-z][A-Za-z0-9_.]*)\s*\((.*)\)", re.S)


def _structure_term(term: str):
    """(structure, hom, bar text) of ``cs(0 + f | g, hom = TRUE)``; None if ``term`` is not a
    call with a top-level bar inside (then it is an ordinary fixed term such as ``exp(x)``)."""
    m = _STRUCT_RE.fullmatch(term.strip())
    if m is None:
        return None
    name, inner = m.group(1), m.group(2)
    args = [t for _, t in split_top(inner, ",")]
    if not args or _find_bar(args[0]) is None:
        return None
    if name not in _STRUCT_CALLS:
        known = ", ".join(sorted(_STRUCT_CALLS))
        what = "is not supported by mmfast" if name in _UNSUPPORTED else "is not a covariance structure"
        raise ModelSpecError(f"random-effects structure '{name}(...)' {what} (use one of: {known})")
    kind, hom = _STRUCT_CALLS[name]
    for arg in args[1:]:
        key, eq, val = arg.partition("=")
        key, val = key.strip(), val.strip()
        if not eq or key != "hom":
            raise ModelSpecError(f"'{arg}' in {name}(...): the only argument allowed is hom = TRUE/FALSE")
        if val not in ("TRUE", "FALSE", "T", "F"):
            raise ModelSpecError(f"hom = {val} in {name}(...): hom must be TRUE or FALSE")
        if hom is not None or kind in ("us", "ou"):
            raise ModelSpecError(f"{name}(...) takes no hom argument")
        hom = val in ("TRUE", "T")
    return kind, hom, args[0]


def _split_double(lhs: str) -> list[str]:
    """``x + z`` in ``(x + z || g)`` -> ``1``, ``0 + x``, ``0 + z`` (lme4's expandDoubleVerts)."""
    terms = split_top(lhs)
    has_int = True
    pieces = []
    for sign, t in terms:
        if t in ("0", "-1") or (sign == "-" and t == "1"):
            has_int = False
        elif t == "1":
            has_int = sign == "+"
        elif sign == "+":
            pieces.append(t)
    out = ["1"] if has_int else []
    out += [f"0 + {t}" for t in pieces]
    return out


def parse_formula(formula: str) -> ParsedFormula:
    """Parse an lme4 formula string such as ``y ~ x + (x | g)``.

    Parses are cached (a pipeline parses the same formula for every fit); each call gets its
    own ParsedFormula with fresh lists (the Bars themselves are immutable).
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise FormulaError(f"formula must be a string of the form 'y ~ terms', got {formula!r}")
    p = _parse_cached(formula)
    return replace(p, bars=list(p.bars), offsets=list(p.offsets))


@lru_cache(maxsize=256)
def _parse_cached(formula: str) -> ParsedFormula:
    _check_balanced(formula)
    lhs, _, rhs = formula.partition("~")
    response = lhs.strip()
    if not response:
        raise FormulaError(f"formula {formula!r} has no response left of '~'")
    if not rhs.strip():
        raise FormulaError(f"formula {formula!r} has nothing right of '~'")
    if "~" in rhs:
        raise FormulaError(f"formula {formula!r} has more than one '~'")
    node = parse_expr(response)
    if node.kind == "binary" and node.value in ("|", "||"):
        raise FormulaError(
            f"a random-effects bar '|' cannot be on the left-hand side of '~' (in {formula!r}): write y ~ x + (1 | g)"
        )
    parse_expr(rhs)  # syntax errors name the position in the right-hand side
    if _find_bar(rhs) is not None:  # lme4: '|' binds loosest, the whole RHS is one bar
        rhs = f"({rhs})"
    fixed_terms, bars, offsets = [], [], []
    for sign, term in split_top(rhs):
        struct = _structure_term(_strip_parens(term))
        if struct is not None:
            kind, hom, inner = struct
            if sign == "-":
                raise FormulaError(f"cannot subtract a random-effects term: {term}")
            pos, width = _find_bar(inner)
            blhs, group = inner[:pos].strip(), inner[pos + width :].strip()
            if width == 2 or not blhs or not group:
                raise FormulaError(f"structured term {term} needs the form {kind}(terms | group)")
            bars.extend(Bar(blhs, g, kind, hom) for g in _expand_group(group))
            continue
        inner = _strip_parens(term)
        bar = _find_bar(inner) if term.startswith("(") else None
        if bar is not None:
            if sign == "-":
                raise FormulaError(f"cannot subtract a random-effects term: ({inner})")
            pos, width = bar
            blhs, group = inner[:pos].strip(), inner[pos + width :].strip()
            if not blhs or not group:
                raise FormulaError(f"random-effects term ({inner}) needs both sides of '|'")
            lhs_list = _split_double(blhs) if width == 2 else [blhs]
            for g in _expand_group(group):
                bars.extend(Bar(lhs_i, g) for lhs_i in lhs_list)
            continue
        m = re.fullmatch(r"offset\((.*)\)", term)
        if m:
            if parse_expr(m.group(1)).kind == "str":
                raise FormulaError(
                    f"offset({m.group(1).strip()}) must be a numeric expression, "
                    "not text (write offset(log(t)), or pass offset='column')"
                )
            offsets.append(m.group(1).strip())
            continue
        fixed_terms.append((sign, term))
    fixed = ""
    for sign, term in fixed_terms:
        fixed += (f" {sign} " if fixed else ("- " if sign == "-" else "")) + term
    if not fixed:
        fixed = "1"
    return ParsedFormula(formula=formula, response=response, fixed=fixed.strip(), bars=bars, offsets=offsets)

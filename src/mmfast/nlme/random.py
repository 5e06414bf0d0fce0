"""nlme's ``random =`` argument, translated to lme4's random-effects terms.

nlme writes the random part apart from the fixed formula:

* ``"~ 1 | midx"``, ``"~ x | g"``: one grouping level; lme4 ``(1 | midx)``, ``(x | g)``;
* ``"~ 1 | midx/cidx"``: nested levels, outermost first, the same formula at each level;
  lme4 ``(1 | midx) + (1 | cidx:midx)``;
* ``{"midx": "~1", "cidx": "~treatment"}`` (nlme's ``list(midx = ~1, cidx = ~treatment)``,
  also accepted as that R text): nested levels in the order given, outermost first, each with
  its own formula; lme4 ``(1 | midx) + (treatment | cidx:midx)``.  When the inner ids are
  unique across outer groups (the lecture's cell ids), ``(treatment | cidx)`` is the same model;
* ``"pdDiag(~ x)"`` as a level's formula: independent effects, lme4 ``(x || g)``.

Each nlme level becomes one lme4 grouping expression (``cidx:midx``: inner first, as lme4
names nested groups), so the fitted terms can be found again by their factor name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import FormulaError
from ..formula.parse import split_top

__all__ = ["RandomLevel", "parse_random", "lme4_formula"]


@dataclass(frozen=True)
class RandomLevel:
    """One nlme grouping level: its formula, its factor and the lme4 grouping expression."""

    name: str  # the level's own variable, e.g. "cidx"
    outer: tuple[str, ...]  # the enclosing levels' variables, outermost first
    lhs: str  # R's left-hand side: "1", "treatment"
    diagonal: bool = False  # pdDiag: independent random effects

    @property
    def group(self) -> str:
        """lme4's grouping expression (inner first): ``cidx:midx``."""
        return ":".join([self.name, *reversed(self.outer)])

    @property
    def label(self) -> str:
        """nlme's name of the level: ``cidx %in% midx``."""
        if not self.outer:
            return self.name
        return f"{self.name} %in% " + "/".join(self.outer)

    @property
    def formula(self) -> str:
        """nlme's printed formula: ``~treatment | cidx %in% midx``."""
        return f"~{self.lhs} | {self.label}"

    @property
    def bar(self) -> str:
        return f"({self.lhs} {'||' if self.diagonal else '|'} {self.group})"


def _one_sided(text: str, where: str) -> tuple[str, bool]:
    """``"~ x"`` / ``"x"`` / ``"pdDiag(~x)"`` -> (``"x"``, diagonal)."""
    text = str(text).strip()
    diagonal = False
    m = re.fullmatch(r"(pd[A-Za-z]+)\((.*)\)", text, flags=re.S)
    if m:
        kind = m.group(1)
        if kind == "pdDiag":
            diagonal = True
        elif kind not in ("pdSymm", "pdLogChol"):
            raise FormulaError(
                f"{kind}() in {where} is not supported: use pdSymm (the default, a "
                "general covariance) or pdDiag (independent effects)"
            )
        text = m.group(2).strip()
    if text.startswith("~"):
        text = text[1:].strip()
    if "~" in text or "|" in text:
        raise FormulaError(f"{where}: expected a one-sided formula such as '~ 1' or '~ x', got {text!r}")
    if not text:
        raise FormulaError(f"{where}: empty random-effects formula")
    lhs = re.sub(r"\s+", " ", text)
    # nlme's '-1' (no intercept) is lme4's '0 + ...'
    lhs = re.sub(r"^-\s*1\s*\+\s*(.*)$", r"0 + \1", lhs)
    lhs = re.sub(r"^(.*?)\s*-\s*1$", r"0 + \1", lhs)
    return lhs, diagonal


def _names(group_text: str, where: str) -> list[str]:
    parts = [p.strip().strip("`") for p in group_text.split("/")]
    if not all(parts) or any(not re.fullmatch(r"[A-Za-z_.][A-Za-z0-9_.]*", p) for p in parts):
        raise FormulaError(f"{where}: grouping factors must be column names separated by '/', got {group_text!r}")
    return parts


def _from_list_text(text: str) -> dict[str, str]:
    """R's ``list(midx = ~1, cidx = ~treatment)`` -> {"midx": "~1", "cidx": "~treatment"}."""
    inner = text.strip()[len("list(") : -1]
    out = {}
    for _, item in split_top(inner, ","):
        name, eq, value = item.partition("=")
        if not eq:
            raise FormulaError(f"random = {text!r}: every element of list() needs a name (g = ~ ...)")
        out[name.strip().strip("`")] = value.strip()
    return out


def parse_random(random) -> list[RandomLevel]:
    """The grouping levels, outermost first, of nlme's ``random`` argument."""
    if isinstance(random, str) and re.fullmatch(r"\s*list\(.*\)\s*", random, flags=re.S):
        random = _from_list_text(random)
    if isinstance(random, dict):
        if not random:
            raise FormulaError("random = {}: give at least one grouping factor")
        levels, outer = [], []
        for name, form in random.items():
            where = f"random[{name!r}]"
            (name,) = _names(str(name), where)
            lhs, diag = _one_sided(form, where)
            levels.append(RandomLevel(name, tuple(outer), lhs, diag))
            outer.append(name)
        return levels
    if isinstance(random, (list, tuple)):
        if all(isinstance(r, (list, tuple)) and len(r) == 2 for r in random):
            return parse_random(dict(random))
        raise FormulaError("random as a sequence must hold (group, formula) pairs")
    if not isinstance(random, str):
        raise FormulaError(
            f"random must be a string such as '~ 1 | g' or a dict {{group: '~ 1'}}, not {type(random).__name__}"
        )
    text = random.strip()
    if not text.startswith("~"):
        raise FormulaError(f"random = {random!r}: nlme's random formula is one-sided, '~ 1 | g'")
    body = text[1:]
    depth, bar = 0, -1
    for i, ch in enumerate(body):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "|" and depth == 0:
            bar = i
            break
    if bar < 0:
        raise FormulaError(
            f"random = {random!r} names no grouping factor: write '~ 1 | g' "
            "(nlme takes the groups from a groupedData object, mmfast does not)"
        )
    lhs, diag = _one_sided(body[:bar], f"random = {random!r}")
    names = _names(body[bar + 1 :], f"random = {random!r}")
    return [RandomLevel(n, tuple(names[:k]), lhs, diag) for k, n in enumerate(names)]


def lme4_formula(fixed: str, levels: list[RandomLevel]) -> str:
    """The lme4 formula of an nlme model: the fixed part plus one bar per level."""
    if "|" in fixed:
        raise FormulaError(f"fixed = {fixed!r}: random effects go in 'random', not in the fixed formula")
    if "~" not in fixed:
        raise FormulaError(f"fixed = {fixed!r} must be a two-sided formula, 'y ~ x'")
    return fixed.strip() + " + " + " + ".join(lv.bar for lv in levels)

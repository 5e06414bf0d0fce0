"""nlme's one-sided structure forms (``~ covariate | g1/g2``) and what the structures share.

Forms are parsed as column names, never executed.
"""

from __future__ import annotations

import copy
import re

from ..errors import FormulaError

__all__ = ["parse_form", "FormStructure"]

_NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"


def parse_form(text: str | None, where: str) -> tuple[str | None, list[str]]:
    """nlme's one-sided ``~ covariate | g1/g2`` -> (covariate or None for ``1``, groups)."""
    if text is None:
        return None, []
    body = str(text).strip()
    body = body[1:].strip() if body.startswith("~") else body
    lhs, bar, rhs = body.partition("|")
    lhs = lhs.strip()
    groups = [g.strip().strip("`") for g in rhs.split("/")] if bar else []
    if bar and not all(re.fullmatch(_NAME, g) for g in groups):
        raise FormulaError(f"{where}: grouping factors must be column names separated by '/', got {rhs.strip()!r}")
    if lhs in ("", "1"):
        return None, groups
    if re.fullmatch(r"fitted\(\s*\.\s*\)", lhs):
        return "fitted(.)", groups
    if not re.fullmatch(_NAME, lhs.strip("`")):
        raise FormulaError(f"{where}: the covariate must be a column name, got {lhs!r}")
    return lhs.strip("`"), groups


class FormStructure:
    """A structure given by a form: its covariate and groups, printed formula, used columns."""

    covariate: str | None
    groups: list[str]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(form={self.formula!r})"

    @property
    def formula(self) -> str:
        """nlme's printed formula: ``~time | g`` (``~1 | g`` without a covariate)."""
        lhs = self.covariate or "1"
        return f"~{lhs}" + (f" | {'/'.join(self.groups)}" if self.groups else "")

    def columns(self) -> list[str]:
        return [c for c in [self.covariate, *self.groups] if c]

    def _copy(self):
        """A shallow copy (binding fills in the copy; the user's object stays unbound)."""
        return copy.copy(self)

"""Tables that stay pandas DataFrames but print as R's ``print.anova`` does (heading, then the
columns formatted by R's rules, never truncated): anova, drop1, lmerTest's F tests, anova.lm."""

from __future__ import annotations

import html
import re

import pandas as pd

from .numbers import coefmat_lines

__all__ = ["AnovaTable", "PrintedFrame", "anova_lines"]


class PrintedFrame(pd.DataFrame):
    """A DataFrame (index, columns and values as before) that prints as R prints it: each
    subclass gives the layout (``_r_text``); derived frames (slices, arithmetic) are plain."""

    @property
    def _constructor(self):
        return pd.DataFrame

    def _r_text(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self._r_text()

    def __repr__(self) -> str:
        return self._r_text()


def anova_lines(table: pd.DataFrame, digits: int = 5) -> list[str]:
    """R's ``print.anova``: the heading, then ``printCoefmat`` with print.anova's choice of
    test-statistic columns (``* value``, F, Chisq), zapped columns and blank NAs."""
    cols = [str(c) for c in table.columns]
    nc = len(cols)
    has_p = bool(nc) and re.match(r"^(P|Pr)\(", cols[-1]) is not None
    tst = [j for j, c in enumerate(cols) if c[1:7] == " value"]
    tst += [j for j, c in enumerate(cols) if c in ("F", "Cp", "Chisq")]
    zap = [j for j in range(nc - 1 if has_p else nc) if j not in tst and not cols[j].endswith("Df")]
    heading = table.attrs.get("heading")
    lines = heading.split("\n") if heading else []
    return lines + coefmat_lines(table, digits, cs_ind=[], tst_ind=tst, zap_ind=zap, has_p=has_p, na_print="")


class AnovaTable(PrintedFrame):
    """anova/drop1 tables: R's ``print.anova`` layout (``anova_lines``)."""

    @classmethod
    def wrap(cls, df: pd.DataFrame) -> AnovaTable:
        out = cls(df)
        out.attrs.update(df.attrs)
        return out

    def _r_text(self) -> str:
        return "\n".join(anova_lines(self))

    def _repr_html_(self) -> str:
        return "<pre>" + html.escape(str(self)) + "</pre>"

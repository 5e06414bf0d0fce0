"""R's number formatting, in one place: ``format()``, ``zapsmall``, ``format.pval``, significance
stars, ``printCoefmat``, ``abbreviate`` and the layout of a printed character matrix.

Every printed table of mmfast (lme4/lmerTest summaries, anova/drop1, nlme, emmeans) goes through
these functions, so a number is shown as R would show it: common decimals per column, scientific
notation when R's fixed notation would be wider (8.6e-04, never 0.0009), ``< 2.2e-16`` p-values.
The rules follow R's ``formatReal`` (format.c) and ``scientific`` (format.c), re-derived here.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np

__all__ = [
    "DOUBLE_EPS",
    "STARS_LEGEND",
    "abbreviate",
    "cat_fill",
    "char_matrix",
    "coefmat_cells",
    "coefmat_lines",
    "format_num",
    "format_pval",
    "frame_lines",
    "named_vector",
    "r_round",
    "signif_stars",
    "strwrap",
    "zapsmall",
]

DOUBLE_EPS = 2.220446049250313e-16  # .Machine$double.eps, R's default eps of format.pval
STARS_LEGEND = "0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1"


def _nonfinite(v: float) -> str:
    if math.isnan(v):
        return "NA"
    return "Inf" if v > 0 else "-Inf"


def _scientific(x: float, digits: int) -> tuple[int, int]:
    """(decimal exponent, significant digits needed (<= digits)) of x rounded to ``digits``."""
    if x == 0:
        return 0, 1
    ax = abs(x)
    mant, ex = f"{ax:.{digits - 1}e}".split("e")
    kpower = int(ex)
    nsig = max(1, len(mant.replace(".", "").rstrip("0")))
    return kpower, nsig


def format_num(values, digits: int = 7, nsmall: int = 0, na: str = "NA") -> list[str]:
    """R's ``format(x, digits, nsmall)`` of a numeric vector: one common width and layout,
    fixed with common decimals unless scientific notation is narrower."""
    x = np.asarray(values, dtype=float).ravel()
    digits = max(1, min(int(digits), 22))
    fin = [float(v) for v in x if np.isfinite(v)]
    neg = any(v < 0 for v in fin)
    rgt = mxsl = mxns = -(10**9)
    mxl, mnl = -(10**9), 10**9
    for v in fin:
        kpower, nsig = _scientific(v, digits)
        left = kpower + 1
        sleft = (v < 0) + (left if left > 0 else 1)
        rgt, mxl, mnl = max(rgt, nsig - left), max(mxl, left), min(mnl, left)
        mxsl, mxns = max(mxsl, sleft), max(mxns, nsig)
    out = []
    if fin:
        if mxl < 0:
            mxsl = 1 + neg
        rgt = max(rgt, 0)
        w_fixed = mxsl + rgt + (rgt != 0)
        e = 2 if (mxl > 100 or mnl <= -99) else 1
        d = mxns - 1
        w_sci = neg + (d > 0) + d + 4 + e
        if w_fixed <= w_sci:
            rgt = max(rgt, nsmall)
            out = [f"{v:.{rgt}f}" if np.isfinite(v) else None for v in x]
        else:
            out = [f"{v:.{d}e}" if np.isfinite(v) else None for v in x]
    else:
        out = [None] * len(x)
    out = [s if s is not None else (na if np.isnan(v) else _nonfinite(v)) for s, v in zip(out, x)]
    w = max((len(s) for s in out), default=0)
    return [s.rjust(w) for s in out]


def r_round(x, digits) -> np.ndarray:
    """R's ``round(x, digits)``: digits itself rounded to an integer first."""
    return np.round(np.asarray(x, dtype=float), math.floor(float(digits) + 0.5))


def zapsmall(x, digits: int = 7) -> np.ndarray:
    """R's (4.2) ``zapsmall``: ``round(x, max(0, digits - log10(max|x|)))`` over the non-NA
    values (an infinite one rounds the rest to integers, as in R)."""
    x = np.asarray(x, dtype=float)
    known = x[~np.isnan(x)]
    if known.size == 0:
        return x
    mx = float(np.max(np.abs(known)))
    return r_round(x, max(0.0, digits - math.log10(mx)) if mx > 0 else digits)


def format_pval(p, digits: int = 5, eps: float = DOUBLE_EPS, na: str = "NA") -> list[str]:
    """R's ``format.pval``: ``< eps`` below eps, fixed for p >= 1e-4 (1e-3 at one digit),
    scientific below, each group with R's common format."""
    p = np.asarray(p, dtype=float).ravel()
    out = [na] * len(p)
    ok = ~np.isnan(p)
    is0 = ok & (p < eps)
    rest = ok & ~is0
    rr = {}
    if rest.any():
        pv = p[rest]
        expo = np.floor(np.log10(np.where(pv > 0, pv, 1e-50)))
        fixp = (expo >= -3) | ((expo == -4) & (digits > 1))
        cells = np.empty(len(pv), dtype=object)
        for mask in (fixp, ~fixp):
            if mask.any():
                cells[mask] = format_num(pv[mask], digits)
        for i, c in zip(np.flatnonzero(rest), cells):
            rr[i] = c
            out[i] = c
    if is0.any():
        dig = max(1, digits - 2)
        if rr:
            nc = max(len(c) for c in rr.values())
            if dig > 1 and dig + 6 > nc:
                dig = max(1, nc - 7)
            sep = "" if dig == 1 and nc <= 6 else " "
        else:
            sep = "" if dig == 1 else " "
        txt = "<" + sep + format_num([eps], dig)[0]
        for i in np.flatnonzero(is0):
            out[i] = txt
    return out


def signif_stars(p) -> list[str]:
    """``symnum`` codes of p-values (cut at .001, .01, .05, .1), padded to a common width."""
    codes = []
    for v in np.asarray(p, dtype=float).ravel():
        if np.isnan(v):
            codes.append("")
        else:
            codes.append("***" if v <= 0.001 else "**" if v <= 0.01 else "*" if v <= 0.05 else "." if v <= 0.1 else " ")
    w = max((len(c) for c in codes), default=0)
    return [c.ljust(w) for c in codes]


def char_matrix(cells, rows, cols, right: bool = True) -> list[str]:
    """``print.default`` of a character matrix (quote = FALSE): row names left-aligned, columns
    (and their headers) right- or left-aligned to their widest cell, one space apart."""
    rows = [str(r) for r in rows]
    rw = max((len(r) for r in rows), default=0)
    columns = [[str(c)] + [str(row[j]) for row in cells] for j, c in enumerate(cols)]
    widths = [max(len(s) for s in col) for col in columns]
    lines = []
    for i in range(len(rows) + 1):
        name = "" if i == 0 else rows[i - 1]
        body = [(col[i].rjust(w) if right else col[i].ljust(w)) for col, w in zip(columns, widths)]
        lines.append(" ".join([name.ljust(rw)] + body))
    return lines


def frame_lines(df, right: bool = True, index: bool = True) -> list[str]:
    """A DataFrame of strings printed as R prints that character matrix (see ``char_matrix``)."""
    rows = list(df.index) if index else [""] * len(df)
    return char_matrix(df.astype(str).to_numpy().tolist(), rows, list(df.columns), right)


def named_vector(names, values: list[str]) -> list[str]:
    """R's print of a named vector: names over values, every column one common width."""
    cells = [str(n) for n in names] + [str(v) for v in values]
    w = max((len(c) for c in cells), default=0)
    return [" ".join(str(n).rjust(w) for n in names) + " ", " ".join(str(v).rjust(w) for v in values) + " "]


def coefmat_cells(
    table,
    digits: int = 4,
    cs_ind=None,
    tst_ind=None,
    zap_ind=(),
    has_p: bool | None = None,
    na_print: str = "NA",
    eps: float = DOUBLE_EPS,
) -> tuple[list[list[str]], list[str], bool]:
    """The cells of R's ``printCoefmat`` (rows of strings, header, stars shown?): estimate and
    standard-error columns rounded together at the smallest one's precision, test statistics
    to ``digits - 1`` decimals, p-values by ``format.pval`` and their stars.
    ``cs_ind``/``tst_ind``/``zap_ind`` are column positions (R's defaults when None)."""
    cols = [str(c) for c in table.columns]
    xm = table.to_numpy(dtype=float, na_value=np.nan).copy()
    nr, nc = xm.shape
    if has_p is None:
        has_p = nc >= 4 and cols[-1][:3] in ("Pr(", "p-v")
    k = nc - has_p - (1 if tst_ind is None else len(tst_ind))
    cs_ind = list(range(k)) if cs_ind is None else list(cs_ind)
    tst_ind = [k] if tst_ind is None else list(tst_ind)
    dig_tst = max(1, min(5, digits - 1))
    cf = np.full((nr, nc), "", dtype=object)
    ina = np.isnan(xm)
    for i in zap_ind:
        xm[:, i] = zapsmall(xm[:, i], digits)
    if cs_ind:
        cs = xm[:, cs_ind]
        acs = np.abs(cs)
        fin = np.isfinite(acs)
        if fin.any():
            nz = acs[fin & (acs != 0)]
            digmin = 1 + (math.floor(math.log10(nz.min())) if nz.size else 0)
            txt = format_num(r_round(cs, max(1, digits - digmin)).ravel(order="F"), digits)
            cf[:, cs_ind] = np.array(txt, dtype=object).reshape(cs.shape, order="F")
    if tst_ind:
        t = xm[:, tst_ind]
        txt = format_num(r_round(t, dig_tst).ravel(order="F"), digits)
        cf[:, tst_ind] = np.array(txt, dtype=object).reshape(t.shape, order="F")
    pcol = nc - 1 if has_p else None
    for j in range(nc):
        if j not in cs_ind and j not in tst_ind and j != pcol:
            cf[:, j] = format_num(xm[:, j], digits)
    okp = ~ina
    okp[:, tst_ind] = False
    if has_p:
        okp[:, pcol] = False
    fix = [(i, j) for i, j in zip(*np.nonzero(okp)) if (xm[i, j] == 0) != (float(cf[i, j]) == 0)]
    if fix:  # a nonzero shown as 0 (or the reverse): reformat those cells with one digit less
        txt = format_num([xm[i, j] for i, j in fix], max(1, digits - 1))
        for (i, j), s in zip(fix, txt):
            cf[i, j] = s
    cf[ina] = na_print
    stars = None
    if has_p:
        okpv = ~ina[:, pcol]
        pv = xm[:, pcol]
        if okpv.any():
            for i, s in zip(np.flatnonzero(okpv), format_pval(pv[okpv], dig_tst, eps)):
                cf[i, pcol] = s
            if np.any(pv[okpv] < 0.1):
                stars = signif_stars(np.where(okpv, pv, np.nan))
    header = cols + ([""] if stars else [])
    return [list(cf[i]) + ([stars[i]] if stars else []) for i in range(nr)], header, bool(stars)


def coefmat_lines(table, digits: int = 4, signif_legend: bool = True, **options) -> list[str]:
    """R's ``printCoefmat`` of a DataFrame (see ``coefmat_cells``), with the stars' legend."""
    cells, header, stars = coefmat_cells(table, digits, **options)
    lines = char_matrix(cells, [str(r) for r in table.index], header, right=True)
    if stars and signif_legend:
        lines += ["---", "Signif. codes:  " + STARS_LEGEND]
    return lines


def _abbrev_one(name: str, minlength: int) -> str:
    """R's C ``stripchars``: drop lower-case vowels, then lower-case letters, from the right
    (word-final ones first, never a word's first letter), then any letters; spaces last."""
    p = list(name.strip())

    def short() -> bool:
        return len(p) - sum(c == " " for c in p) <= minlength

    def first(i):
        return p[i - 1] == " "

    def last(i):
        return p[i - 1] != " " and (i + 1 == len(p) or p[i + 1] == " ")

    if not short():
        passes = [
            (lambda c: c in "aeiou", last),
            (lambda c: c in "aeiou", lambda i: not first(i)),
            (str.islower, last),
            (str.islower, lambda i: not first(i)),
            (lambda c: c != " ", lambda i: not first(i)),
        ]
        done = False
        for keep, where in passes:
            for i in range(len(p) - 1, 0, -1):
                if i < len(p) and keep(p[i]) and where(i):
                    del p[i]
                if short():
                    done = True
                    break
            if done:
                break
    if len(p) > minlength:
        p = [p[0]] + [c for c in p[1:] if c != " "]
    return "".join(p)


def abbreviate(names, minlength: int = 4) -> list[str]:
    """R's ``abbreviate(names, minlength)``: minlength grows for names whose abbreviations clash."""
    names = [str(n) for n in names]
    out = [_abbrev_one(n, minlength) for n in names]
    m = minlength
    while len(set(out)) < len(set(names)) and m < max(len(n) for n in names):
        m += 1
        seen = {}
        for a in out:
            seen[a] = seen.get(a, 0) + 1
        out = [_abbrev_one(n, m) if seen[a] > 1 else a for n, a in zip(names, out)]
    return out


def strwrap(text: str, width: int, exdent: int = 0) -> list[str]:
    """R's ``strwrap``: greedy word wrap to lines shorter than ``width``."""
    return textwrap.wrap(
        text, width=width - 1, subsequent_indent=" " * exdent, break_long_words=False, break_on_hyphens=False
    )


def cat_fill(items, width: int = 80) -> list[str]:
    """R's ``cat(..., sep = "", fill = TRUE)``: a new line before an item that would pass ``width``."""
    lines, cur = [], ""
    for it in items:
        if cur and len(cur) + len(it) > width:
            lines.append(cur)
            cur = ""
        cur += it
    return lines + [cur]

"""The text lme4's (and lmerTest's) ``summary()`` prints, built from a fitted model, with R's
number formatting (mmfast.present.rformat) and its HTML twin."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..rformat import (
    abbreviate,
    cat_fill,
    char_matrix,
    coefmat_cells,
    coefmat_lines,
    format_num,
    named_vector,
    r_round,
    strwrap,
    zapsmall,
)

__all__ = ["Summary", "COR_MAX"]

COR_MAX = 12  # lme4's option lme4.summary.cor.max: no correlation block above 12 fixed effects
WIDTH = 80  # R's getOption("width")


def title_lines(title: str, cls: str, width: int = WIDTH) -> list[str]:
    """lme4's ``.prt.methTitle``: ``title ['class']``, wrapped as R's ``cat(fill = TRUE)`` does."""
    if len(title) + 5 + len(cls) <= width:
        return [f"{title} ['{cls}']"]
    return cat_fill(strwrap(title, width - 2, exdent=2) + [" [", cls, "]"], width)


def varcorr_lines(vc: pd.DataFrame, digits: int = 4, compact: dict | None = None) -> list[str]:
    """lme4's ``formatVC``: variances and standard deviations each in R's common format,
    correlations to ``digits - 2`` decimals in the lower triangle.  ``compact`` maps a group to
    (label, ρ, rows) for glmmTMB's one-number correlation of a structured term (``0.879 (ar1)``)
    shown beside its first ``rows`` SDs."""
    compact = compact or {}
    groups: list[str] = []
    names: list[str] = []
    sd_list: list[float] = []
    cors: list = []
    for grp, sub in vc.groupby("grp", sort=False):
        var = sub[sub["var2"].isna()]
        terms = [] if grp == "Residual" else [str(v) for v in var["var1"].fillna("")]
        if grp in compact:
            label, rho, nrow = compact[grp]
            var, terms = var.iloc[:nrow], terms[:nrow]
            dig = max(2, digits - 2)
            text = format_num(r_round(np.array([rho]), dig), 7, nsmall=dig)[0]
            cors.append((f"{text} ({label})", len(terms)))
        p = len(var)
        C = np.eye(p)
        for _, r in sub[sub["var2"].notna()].iterrows():
            if grp in compact:
                break
            i, j = terms.index(r["var1"]), terms.index(r["var2"])
            C[i, j] = C[j, i] = r["sdcor"]
        groups += [str(grp)] + [""] * (p - 1)
        names += terms if terms else [""]
        sd_list += list(var["sdcor"].astype(float))
        if grp not in compact:
            cors.append(C)
    sds = np.array(sd_list)
    header = ["Groups", "Name", "Variance", "Std.Dev."]
    cols = [groups, names, format_num(sds**2, digits), format_num(sds, digits)]
    maxlen = max(2 if isinstance(C, tuple) else len(C) for C in cors)
    if maxlen > 1:
        dig = max(2, digits - 2)
        blocks = []
        for C in cors:
            if isinstance(C, tuple):  # a structure's one correlation, on its first row
                text, nrow = C
                blocks += [[text if k == 0 else ""] + [""] * (maxlen - 2) for k in range(nrow)]
                continue
            cc = np.array(format_num(r_round(C, dig).ravel(), 7, nsmall=dig), dtype=object).reshape(C.shape)
            cc[~np.tril(np.ones(C.shape, bool), -1)] = ""
            blocks += [list(row) + [""] * (maxlen - len(C)) for row in cc]
        for j in range(maxlen - 1):
            cols.append([row[j] for row in blocks])
            header.append("Corr" if j == 0 else "")
    cells = [list(row) for row in zip(*cols)]
    return char_matrix(cells, [""] * len(cells), header, right=False)


def structure_notes(model) -> dict:
    """glmmTMB's compact correlation for ar1 and cs terms: {group: (label, ρ, SD rows shown)}
    (a homogeneous ar1 shows its one SD, cs all of them)."""
    out = {}
    for t, s in zip(model.frame.terms, model.layout.slices):
        pm = t.param
        if pm.kind in ("ar1", "cs") and pm.nphi:
            rho = float(pm.correlation_parameters(model.theta[s])[0])
            out[t.group] = (pm.kind, rho, 1 if pm.kind == "ar1" and pm.hom else pm.p)
    return out


def correlation_lines(vcov: np.ndarray, names: list[str]) -> list[str]:
    """lme4's "Correlation of Fixed Effects:" block: 3 decimals, lower triangle, R's abbreviations."""
    sd = np.sqrt(np.diag(vcov))
    with np.errstate(invalid="ignore", divide="ignore"):
        C = vcov / np.outer(sd, sd)
    p = len(names)
    txt = np.array(format_num(r_round(C, 3).ravel(), 7, nsmall=3), dtype=object).reshape(p, p)
    txt[~np.tril(np.ones((p, p), bool), -1)] = ""
    rows, cols = abbreviate(names, 11), abbreviate(names, 6)
    return char_matrix([list(r[:-1]) for r in txt[1:]], rows[1:], cols[:-1], right=False)


class Summary:
    """lme4-style summary: criteria, scaled residuals, random effects, fixed effects and their
    correlations (``correlation=None``: shown up to 12 fixed effects, as lme4)."""

    def __init__(self, model, ddf: str | None = "default", print_out: bool = False, correlation: bool | None = None):
        self.model = model
        # LMMs: t tests with lmerTest's default Satterthwaite df (see mmfast.inference.ftests)
        self.ddf = ("satterthwaite" if self._is_lmm() else None) if ddf == "default" else ddf
        self.correlation = correlation
        self.coefficients = self._coefficients()
        if print_out:
            print(self)

    def _is_lmm(self) -> bool:
        m = self.model
        return m.family == "gaussian" and getattr(m, "use_scale", True) and hasattr(m, "reml")

    def _coefficients(self) -> pd.DataFrame:
        m = self.model
        if self._is_lmm():
            from ..inference.ftests import coefficient_table

            return coefficient_table(m, self.ddf)
        est = m.fixef
        se = np.sqrt(np.diag(m.vcov_array)) if len(est) else np.zeros(0)
        stat = est.to_numpy() / se if len(est) else np.zeros(0)
        df = pd.DataFrame({"Estimate": est.to_numpy(), "Std. Error": se}, index=est.index)
        if getattr(m, "use_scale", True) and m.family == "gaussian":
            df["t value"] = stat
        else:
            df["z value"] = stat
            df["Pr(>|z|)"] = 2 * stats.norm.sf(np.abs(stat))
        return df

    def _title(self) -> list[str]:
        m = self.model
        if m.family != "gaussian":
            approx = getattr(m, "approximation", "Laplace Approximation")
            return title_lines(f"Generalized linear mixed model fit by maximum likelihood ({approx})", "glmerMod")
        how = "REML" if getattr(m, "reml", False) else "maximum likelihood "  # lme4's trailing blank
        title, cls = f"Linear mixed model fit by {how}", "lmerMod"
        if self._is_lmm():
            from ..inference.ftests import ddf_method, resolve_ddf

            name = resolve_ddf(self.ddf)
            if name != "lme4":  # lmerTest's title and class
                title += f". t-tests use {ddf_method(m, name).title}"
                cls = "lmerModLmerTest"
        return title_lines(title, cls)

    def _criteria(self) -> list[str]:
        """lme4's ``.prt.aictab``: the REML criterion, or AIC ... df.resid rounded to 0.1."""
        m = self.model
        if getattr(m, "reml", False):
            return [f"REML criterion at convergence: {format_num([round(m.reml_criterion, 1)])[0]}"]
        dev = m.deviance if m.family == "gaussian" else -2.0 * m.loglik  # glmer prints -2 logLik
        vals = [round(v, 1) for v in (m.aic, m.bic, m.loglik, dev, m.nobs - m.npar)]
        txt = [s.strip() for s in format_num(vals)]
        txt[-1] = format_num([vals[-1]])[0]
        return named_vector(["AIC", "BIC", "logLik", "deviance", "df.resid"], txt)

    def _residuals(self, digits: int = 4) -> list[str]:
        m = self.model
        res = getattr(m, "scaled_residuals", None)
        if callable(res):  # GLMMs: Pearson residuals / sigma
            res = np.asarray(res(), dtype=float)
        else:  # LMMs: sqrt(w) (y - fitted) / sigma, lme4's resid(, "pearson", scaled = TRUE)
            from .diagnostic_plots import pearson_residuals

            res = pearson_residuals(m)
        res = res[~np.isnan(res)]  # rows dropped for missing values are NaN (na.exclude)
        q = zapsmall(np.quantile(res, [0, 0.25, 0.5, 0.75, 1.0]), digits + 1)
        return ["Scaled residuals: "] + named_vector(
            ["Min", "1Q", "Median", "3Q", "Max"], [s.strip() for s in format_num(q, digits)]
        )

    def _correlation(self) -> list[str]:
        names = list(self.coefficients.index)
        p = len(names)
        show = self.correlation
        if show is None:
            show = p <= COR_MAX
            if not show:
                return [
                    "",
                    f"Correlation matrix not shown by default, as p = {p} > {COR_MAX}.",
                    "Use summary(correlation=True)  or",
                    "    vcov        if you need it",
                    "",
                ]
        if not show or p < 2:
            return []
        vcov = np.asarray(self.model.vcov_array, dtype=float)  # lme4's vcov, as lmerTest prints
        return ["", "Correlation of Fixed Effects:"] + correlation_lines(vcov, names)

    def __str__(self) -> str:
        m = self.model
        lines = self._title()
        if m.family != "gaussian":
            lines.append(f" Family: {m.family}  ( {getattr(m, 'link', '')} )")
        lines.append(f"Formula: {m.frame.parsed.formula}")
        labels = getattr(m, "call_labels", {})
        lines += [
            f"{head} {labels[k]}"
            for k, head in (("data", "   Data:"), ("weights", "Weights:"), ("offset", " Offset:"))
            if labels.get(k)
        ]
        lines += [""] + self._criteria() + [""] + self._residuals() + [""]
        lines += ["Random effects:"] + varcorr_lines(m.varcorr, compact=structure_notes(m))
        ng = "; ".join(f"{k}, {v}" for k, v in m.ngroups.items())
        lines.append(f"Number of obs: {m.nobs}, groups:  {ng}")
        if hasattr(m, "structure_lines"):  # lmer(residual=): nlme's blocks (Correlation Structure, ...)
            lines += [""] + m.structure_lines()
        if len(self.coefficients):
            lines += ["", "Fixed effects:"] + coefmat_lines(self.coefficients, digits=4)
            lines += self._correlation()
        if not m.converged or m.singular:  # as lme4: the optimiser (the one that ran), then why
            opt = getattr(m, "optsummary", None)
            if opt is not None:
                lines.append(opt.convergence_line())
            if not m.converged:
                why = "" if opt is None or not opt.message else f": {opt.message}"
                lines.append(f"Warning: model failed to converge{why}")
            if m.singular:
                lines.append("boundary (singular) fit: see help('isSingular')")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        """The text up to the fixed effects, then their table in HTML (cells as R prints them)."""
        import html

        head = str(self).split("\nFixed effects:")[0]
        cells, header, _ = coefmat_cells(self.coefficients, digits=4)
        table = pd.DataFrame(cells, index=self.coefficients.index, columns=header)
        return "<pre>" + html.escape(head) + "</pre><b>Fixed effects</b>" + table.to_html()

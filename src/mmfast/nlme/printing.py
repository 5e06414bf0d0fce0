"""What nlme prints for an ``lme`` fit: ``print()``, ``summary()`` and ``anova()`` text."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..rformat import abbreviate, format_num, frame_lines, named_vector, zapsmall
from .format import pval_column

__all__ = ["LmeSummary", "print_lme", "format_anova", "format_compare"]


def _random_block(fit) -> list[str]:
    lines = ["Random effects:"]
    nlev = len(fit.levels)
    for k, lv in enumerate(fit.levels):
        names, S = fit.level_covariance(k)
        sd = np.sqrt(np.diag(S))
        last = k == nlev - 1
        lines.append(f" Formula: {lv.formula}")
        if len(names) == 1 or lv.diagonal:
            if lv.diagonal:
                lines.append(" Structure: Diagonal")
            vals = list(sd) + ([fit.sigma] if last else [])
            cols = names + (["Residual"] if last else [])
            t = pd.DataFrame([[format_num([v], 7)[0].strip() for v in vals]], columns=cols, index=["StdDev:"])
            lines += frame_lines(t)
        else:
            lines.append(" Structure: General positive-definite, Log-Cholesky parametrization")
            rows = names + (["Residual"] if last else [])
            sds = list(sd) + ([fit.sigma] if last else [])
            table = pd.DataFrame({"StdDev": format_num(sds, 7)}, index=rows)
            with np.errstate(invalid="ignore", divide="ignore"):
                C = S / np.outer(sd, sd)
            p = len(names)
            for j in range(p - 1):  # nlme: the names head the block, correlations below
                col = [abbreviate(names, 6)[j]] + ["" if i <= j else f"{C[i, j]:.3f}" for i in range(1, p)]
                col += [""] * (len(rows) - p)
                table.insert(1 + j, "Corr" if j == 0 else " " * j, col)
            lines += frame_lines(table)
        lines.append("")
    return lines


def _structure_blocks(fit) -> list[str]:
    """nlme's "Correlation Structure:" and "Variance function:" blocks (none without them)."""
    lines = getattr(fit.model, "structure_lines", None)
    return [] if lines is None else lines()


def _fixed_block(fit, tt: pd.DataFrame) -> list[str]:
    cols = {}
    for c in ["Value", "Std.Error", "DF", "t-value"]:
        v = tt[c].to_numpy()
        cols[c] = [s.strip() for s in format_num(zapsmall(v) if c != "DF" else v, 7)]
    cols["p-value"] = [s.strip() for s in format_num(np.round(tt["p-value"].to_numpy(), 4), 7)]
    lines = [f"Fixed effects:  {fit.fixed} "]
    lines += frame_lines(pd.DataFrame(cols, index=tt.index))
    p = len(tt)
    if p > 1:
        V = fit.vcov.to_numpy()
        sd = np.sqrt(np.diag(V))
        C = V / np.outer(sd, sd)
        names = list(tt.index)
        ab = abbreviate(names, 6)
        corr = pd.DataFrame(
            {ab[j]: [f"{C[i, j]:.3f}" if j < i else "" for i in range(1, p)] for j in range(p - 1)}, index=names[1:]
        )
        lines.append(" Correlation: ")
        lines += frame_lines(corr)
    return lines


def _residual_block(fit) -> list[str]:
    r = np.asarray(fit.residuals, dtype=float)
    scale = getattr(fit.model, "residual_sd", fit.sigma)  # nlme's σ / weights per row
    r = r[~np.isnan(r)] / scale  # rows dropped for missing values are NaN (na.exclude)
    q = np.quantile(r, [0, 0.25, 0.5, 0.75, 1])
    vec = named_vector(["Min", "Q1", "Med", "Q3", "Max"], format_num(q, 7))
    return ["Standardized Within-Group Residuals:"] + vec


def _groups_block(fit) -> list[str]:
    lines = [f"Number of Observations: {fit.nobs}"]
    ng = fit.ngroups
    if len(ng) == 1:
        lines.append(f"Number of Groups: {next(iter(ng.values()))} ")
    else:
        lines.append("Number of Groups: ")
        lines += named_vector(list(ng), [str(v) for v in ng.values()])
    return lines


def _header(fit) -> list[str]:
    how = "REML" if fit.reml else "maximum likelihood"
    crit = format_num([fit.aic], 7), format_num([fit.bic], 7), format_num([fit.loglik], 7)
    t = pd.DataFrame({"AIC": [crit[0][0]], "BIC": [crit[1][0]], "logLik": [crit[2][0]]}, index=[" "])
    return [f"Linear mixed-effects model fit by {how}"] + frame_lines(t)


class LmeSummary:
    """nlme's ``summary.lme``: ``tTable``, ``corFixed``, criteria, and the printed text."""

    def __init__(self, fit, adjust_sigma: bool = True):
        self.fit = fit
        self.tTable = fit.tTable(adjust_sigma=adjust_sigma)
        V = fit.vcov.to_numpy()
        sd = np.sqrt(np.diag(V))
        self.corFixed = pd.DataFrame(V / np.outer(sd, sd), index=fit.vcov.index, columns=fit.vcov.columns)
        self.AIC, self.BIC, self.logLik = fit.aic, fit.bic, fit.loglik
        self.sigma = fit.sigma
        self.varcorr = fit.varcorr()

    def __str__(self) -> str:
        fit = self.fit
        lines = _header(fit) + [""] + _random_block(fit) + _structure_blocks(fit)
        lines += _fixed_block(fit, self.tTable) + [""] + _residual_block(fit) + [""]
        lines += _groups_block(fit)
        return "\n".join(lines)

    __repr__ = __str__


def print_lme(fit) -> str:
    """nlme's ``print.lme``: the short form."""
    how = "REML" if fit.reml else "maximum likelihood"
    crit = "Log-restricted-likelihood" if fit.reml else "Log-likelihood"
    fe = fit.fixef
    lines = [
        f"Linear mixed-effects model fit by {how}",
        f"  {crit}: {format_num([fit.loglik], 7)[0].strip()}",
        f"  Fixed: {fit.fixed} ",
    ] + named_vector(list(fe.index), format_num(fe.to_numpy(), 7))
    lines += [""]
    lines += _random_block(fit) + _structure_blocks(fit) + _groups_block(fit)
    return "\n".join(lines)


def format_anova(table: pd.DataFrame) -> str:
    """nlme's ``print.anova.lme`` for the F-test table."""
    t = pd.DataFrame(
        {
            "numDF": table["numDF"].astype(int).astype(str),
            "denDF": [s.strip() for s in format_num(table["denDF"], 7)],
            "F-value": [s.strip() for s in format_num(table["F-value"], 7)],
            "p-value": pval_column(table["p-value"]),
        },
        index=table.index,
    )
    return table.attrs.get("heading", "") + "\n".join(frame_lines(t))


def format_compare(table: pd.DataFrame) -> str:
    """nlme's ``print.anova.lme`` for a comparison of fits."""
    t = pd.DataFrame({"Model": table["Model"].astype(str), "df": table["df"].astype(str)}, index=table.index)
    for c in ["AIC", "BIC", "logLik"]:
        t[c] = [s.strip() for s in format_num(table[c], 7)]
    t["Test"] = table["Test"]
    lr = table["L.Ratio"].to_numpy()
    fin = np.isfinite(lr)
    t["L.Ratio"] = ""
    t.loc[fin, "L.Ratio"] = [s.strip() for s in format_num(lr[fin], 7)] if fin.any() else []
    t["p-value"] = pval_column(table["p-value"])
    return "\n".join(frame_lines(t))

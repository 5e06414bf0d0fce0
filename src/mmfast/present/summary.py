"""The text lme4's ``summary()`` prints, built from a fitted model (and its HTML twin)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["Summary", "format_table", "signif"]


def signif(x: float, digits: int = 5) -> str:
    """R's ``format(signif(x, digits))`` for one number."""
    if x is None or not np.isfinite(x):
        return "NA" if x is None or np.isnan(x) else ("Inf" if x > 0 else "-Inf")
    return f"{x:.{digits}g}"


def format_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as R prints a numeric table (aligned columns, significant digits)."""
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                return ""
            av = abs(v)
            if av != 0 and (av < 1e-4 or av >= 1e6):
                return f"{v:.{digits - 1}e}"
            return f"{v:.{digits}g}" if av >= 1 else f"{v:.{digits}f}".rstrip("0").rstrip(".") \
                if av != 0 else "0"
        return "" if v is None else str(v)
    cells = [[str(i)] + [fmt(v) for v in row] for i, row in zip(df.index, df.to_numpy())]
    header = [""] + [str(c) for c in df.columns]
    widths = [max(len(r[k]) for r in cells + [header]) for k in range(len(header))]
    lines = [" ".join(h.ljust(w) if k == 0 else h.rjust(w) for k, (h, w) in enumerate(zip(header, widths)))]
    for r in cells:
        lines.append(" ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


class Summary:
    """lme4-style summary: criteria, scaled residuals, random effects, fixed effects."""

    def __init__(self, model, ddf: str | None = "default", print_out: bool = False):
        self.model = model
        # LMMs: t tests with lmerTest's default Satterthwaite df (see mmfast.inference.ftests)
        self.ddf = ("satterthwaite" if self._is_lmm() else None) if ddf == "default" else ddf
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

    def _ddf_title(self) -> str:
        """lmerTest's '. t-tests use Satterthwaite's method' (empty for lme4's plain table)."""
        if not self._is_lmm():
            return ""
        from ..inference.ftests import ddf_method, resolve_ddf
        name = resolve_ddf(self.ddf)
        return "" if name == "lme4" else f". t-tests use {ddf_method(self.model, name).title}"

    def _random_effects(self) -> str:
        vc = self.model.varcorr
        rows = []
        for grp, sub in vc.groupby("grp", sort=False):
            var = sub[sub["var2"].isna()]
            cor = sub[sub["var2"].notna()]
            names = list(var["var1"].fillna(""))
            for k, (_, r) in enumerate(var.iterrows()):
                cors = []
                for j in range(k):
                    c = cor[(cor["var1"] == names[j]) & (cor["var2"] == names[k])]
                    cors.append(f"{c['sdcor'].iloc[0]:.2f}" if len(c) else "")
                rows.append([grp if k == 0 else "", names[k] if grp != "Residual" else "",
                             signif(r["vcov"], 4), signif(r["sdcor"], 4), " ".join(cors)])
        header = ["Groups", "Name", "Variance", "Std.Dev.", "Corr" if any(r[4] for r in rows) else ""]
        widths = [max(len(r[k]) for r in rows + [header]) for k in range(5)]
        out = [" " + " ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
        out += [" " + " ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(out)

    def __str__(self) -> str:
        m = self.model
        reml = getattr(m, "reml", False)
        lines = []
        if m.family == "gaussian":
            lines.append(f"Linear mixed model fit by {'REML' if reml else 'maximum likelihood'}"
                         + self._ddf_title() + " ['lmerMod']")
        else:
            lines.append(f"Generalized linear mixed model fit by maximum likelihood "
                         f"({getattr(m, 'approximation', 'Laplace Approximation')}) ['glmerMod']")
            lines.append(f" Family: {m.family}  ( {getattr(m, 'link', '')} )")
        lines.append(f"Formula: {m.frame.parsed.formula}")
        if reml:
            lines.append(f"\nREML criterion at convergence: {m.reml_criterion:.1f}")
        else:
            dev = m.deviance if m.family == "gaussian" else -2.0 * m.loglik  # glmer prints -2 logLik
            crit = pd.DataFrame([[m.aic, m.bic, m.loglik, dev, m.nobs - m.npar]],
                                columns=["AIC", "BIC", "logLik", "deviance", "df.resid"])
            lines.append("\n" + crit.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
        res = getattr(m, "scaled_residuals", None)
        res = np.asarray(res() if callable(res) else m.residuals / m.sigma, dtype=float)
        res = res[~np.isnan(res)]  # rows dropped for missing values are NaN (na.exclude)
        q = np.quantile(res, [0, 0.25, 0.5, 0.75, 1.0])
        lines.append("\nScaled residuals: ")
        lines.append(pd.DataFrame([q], columns=["Min", "1Q", "Median", "3Q", "Max"])
                     .to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        lines.append("\nRandom effects:")
        lines.append(self._random_effects())
        ng = "; ".join(f"{k}, {v}" for k, v in m.ngroups.items())
        lines.append(f"Number of obs: {m.nobs}, groups:  {ng}")
        lines.append("\nFixed effects:")
        lines.append(format_table(self.coefficients))
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
        import html
        return ("<pre>" + html.escape(str(self).split("\nFixed effects:")[0]) + "</pre>"
                + "<b>Fixed effects</b>" + self.coefficients.to_html(float_format=lambda v: f"{v:.4g}"))

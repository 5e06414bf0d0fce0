"""emmeans' contrast families (``pairwise``, ``trt.vs.ctrl``, ...) and its p-value adjustments.

Contrast families give a coefficient matrix over the k means of one group, with labels and
the default adjustment emmeans attaches to them:

| method | contrasts | default adjust |
| --- | --- | --- |
| ``pairwise`` | level_i - level_j, i < j | tukey |
| ``revpairwise`` | level_j - level_i, i < j | tukey |
| ``trt.vs.ctrl`` (``dunnett``; ``trt.vs.ctrlk``: last level) | level_i - level_ref | dunnettx |
| ``consec`` | level_{i+1} - level_i | mvt (not implemented: pass ``adjust``) |
| ``eff`` / ``del.eff`` | level_i - mean (of all / of the others) | fdr |
| a dict ``{name: coefficients}`` | as given | none |

Adjustments (emmeans' ``.adj.p.value``; one test is never adjusted):

* ``tukey``: the studentized range, ``P(Q > sqrt(2) |t|)`` with k means (pairwise families only;
  elsewhere emmeans uses ``sidak`` instead);
* ``dunnettx``: emmeans' approximation to Dunnett's many-to-one distribution, a mixture of the
  Tukey distribution with (1 + sqrt(1 + 8 m))/2 means and the Šidák bound,
  ``P(max|T| < x) ≈ w P(Q < sqrt(2) x) + (1 - w) F_{1,df}(x²)^m``, w = (m - 1)/m, m contrasts;
* ``scheffe`` (rank r of the family: F_{r,df}(t²/r)), ``sidak``, ``bonferroni``, ``holm``,
  ``hochberg``, ``BH``/``fdr``, ``BY``, ``none``.
"""

from __future__ import annotations

import numpy as np
from scipy import integrate, special, stats

from ..errors import ArgumentError
from ..rformat import zapsmall

__all__ = ["contrast_family", "adjust_pvalues", "DEFAULT_ADJUST", "ptukey_sf", "pdunnx_sf"]

DEFAULT_ADJUST = {
    "pairwise": "tukey",
    "revpairwise": "tukey",
    "tukey": "tukey",
    "trt.vs.ctrl": "dunnettx",
    "trt.vs.ctrl1": "dunnettx",
    "trt.vs.ctrlk": "dunnettx",
    "dunnett": "dunnettx",
    "consec": "mvt",
    "eff": "fdr",
    "del.eff": "fdr",
}
PAIRWISE = {"pairwise", "revpairwise", "tukey"}
_P_ADJUST = {"holm", "hochberg", "bonferroni", "bh", "fdr", "by", "none"}


def _ref_index(ref, labels: list[str], default: int) -> int:
    if ref is None:
        return default
    if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
        k = int(ref)
        if not -len(labels) <= k < len(labels):
            raise ArgumentError(f"ref={ref} is out of range for {len(labels)} levels (0-based)")
        return k % len(labels)
    if str(ref) in labels:
        return labels.index(str(ref))
    raise ArgumentError(f"ref={ref!r} is neither a 0-based index nor one of the levels {labels}")


def contrast_family(method, labels: list[str], ref=None) -> tuple[np.ndarray, list[str], str]:
    """(coefficients: contrasts x levels, contrast labels, family kind) for ``method``."""
    k = len(labels)
    if isinstance(method, dict):
        rows, names = [], []
        for name, coef in method.items():
            c = np.asarray(coef, dtype=float).ravel()
            if len(c) != k:
                raise ArgumentError(f"contrast {name!r} has {len(c)} coefficients for {k} means")
            rows.append(c)
            names.append(str(name))
        return np.array(rows), names, "custom"
    m = str(method)
    rows, names = [], []
    if m in ("pairwise", "tukey", "revpairwise"):
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        if m == "revpairwise":
            pairs = [(j, i) for j in range(1, k) for i in range(j)]
        for a, b in pairs:
            c = np.zeros(k)
            c[a], c[b] = 1.0, -1.0
            rows.append(c)
            names.append(f"{labels[a]} - {labels[b]}")
    elif m in ("trt.vs.ctrl", "trt.vs.ctrl1", "dunnett", "trt.vs.ctrlk"):
        r = _ref_index(ref, labels, k - 1 if m == "trt.vs.ctrlk" else 0)
        for i in range(k):
            if i == r:
                continue
            c = np.zeros(k)
            c[i], c[r] = 1.0, -1.0
            rows.append(c)
            names.append(f"{labels[i]} - {labels[r]}")
    elif m == "consec":
        for i in range(1, k):
            c = np.zeros(k)
            c[i], c[i - 1] = 1.0, -1.0
            rows.append(c)
            names.append(f"{labels[i]} - {labels[i - 1]}")
    elif m in ("eff", "del.eff"):
        for i in range(k):
            c = np.full(k, -1.0 / (k if m == "eff" else k - 1))
            c[i] = 1.0 - 1.0 / k if m == "eff" else 1.0
            rows.append(c)
            names.append(f"{labels[i]} effect")
    else:
        raise ArgumentError(
            f"unknown contrast method {method!r}: use one of {sorted(DEFAULT_ADJUST)} or a dict {{name: coefficients}}"
        )
    if not rows:
        raise ArgumentError(f"contrast method {method!r} needs at least two means (got {k})")
    return np.array(rows), names, ("pairwise" if m in PAIRWISE else m)


def _range_sf(w: float, k: float, n: int = 6001) -> float:
    """P(range of k iid N(0,1) > w) = k ∫ φ(x) [Φ(x)^(k-1) - (Φ(x) - Φ(x-w))^(k-1)] dx, written
    without the cancellation of 1 - P(range <= w) (Simpson's rule on x in [-12, w + 12])."""
    x = np.linspace(-12.0, w + 12.0, n)
    lPx = special.log_ndtr(x)
    ratio = np.minimum(np.exp(special.log_ndtr(x - w) - lPx), 1.0)
    with np.errstate(divide="ignore"):
        diff = -np.expm1((k - 1.0) * np.log1p(-ratio))
    f = np.exp((k - 1.0) * lPx + stats.norm.logpdf(x)) * diff
    return float(k * integrate.simpson(f, x=x))


def _ptukey_tail(q: float, k: float, df: float) -> float:
    """The studentized range's upper tail by direct integration, accurate for tiny values:
    P(Q > q) = ∫ f_S(s) P(range > q s) ds, S = sqrt(χ²_df / df)."""
    if not np.isfinite(df):
        return _range_sf(q, k)
    sd = 1.0 / np.sqrt(2.0 * df)
    lo, hi = max(0.0, 1.0 - 15.0 * sd), 1.0 + 15.0 * sd
    root = np.sqrt(df)

    def f(s):
        return stats.chi.pdf(s * root, df) * root * _range_sf(q * s, k)

    val, _ = integrate.quad(f, lo, hi, points=[1.0], epsabs=0.0, epsrel=1e-10, limit=200)
    return float(val)


def ptukey_sf(q, nmeans: float, df, tail_below: float = 1e-6) -> np.ndarray:
    """Upper tail of the studentized range (R's ``ptukey(q, nmeans, df, lower.tail = FALSE)``).

    scipy's ``studentized_range`` except below ``tail_below``, where its (and R's) absolute
    accuracy of ~1e-12 matters: there the tail is integrated directly (relative accuracy ~1e-10).
    """
    q, df = np.broadcast_arrays(np.asarray(q, dtype=float), np.asarray(df, dtype=float))
    out = []
    for qi, di in zip(q.ravel(), df.ravel()):
        if np.isnan(qi) or np.isnan(di):
            out.append(np.nan)
            continue
        if not qi > 0:
            out.append(1.0)
            continue
        p = float(stats.studentized_range.sf(qi, nmeans, di))
        out.append(_ptukey_tail(qi, nmeans, di) if p < tail_below else p)
    return np.array(out).reshape(q.shape)


def pdunnx_sf(x, m: int, df) -> np.ndarray:
    """``1 - .pdunnx(x, m, df)``: emmeans' approximate Dunnett upper tail for m contrasts."""
    x, df = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(df, dtype=float))
    w = (m - 1.0) / m
    tuk = ptukey_sf(np.sqrt(2.0) * x, (1.0 + np.sqrt(1.0 + 8.0 * m)) / 2.0, df)
    sf_f = np.where(np.isfinite(df), stats.f.sf(x**2, 1, np.where(np.isfinite(df), df, 1.0)), stats.chi2.sf(x**2, 1))
    sidak = -np.expm1(m * np.log1p(-sf_f))  # 1 - F(x²)^m without cancellation
    return np.clip(w * tuk + (1.0 - w) * sidak, 0.0, 1.0)


def _p_adjust(p: np.ndarray, method: str, n: int | None = None) -> np.ndarray:
    """R's ``p.adjust(p, method, n)`` (holm, hochberg, bonferroni, BH/fdr, BY, none)."""
    p = np.asarray(p, dtype=float)
    n = len(p) if n is None else int(n)
    if method == "none" or n <= 1 or len(p) == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(1.0, n * p)
    o = np.argsort(p, kind="stable")
    ps = p[o]
    i = np.arange(1, len(p) + 1)  # ranks among the available p-values; n is the family size
    if method == "holm":
        adj = np.minimum(1.0, np.maximum.accumulate((n - i + 1) * ps))
    elif method == "hochberg":
        adj = np.minimum(1.0, np.minimum.accumulate(((n - i + 1) * ps)[::-1])[::-1])
    elif method in ("bh", "fdr", "by"):
        q = np.sum(1.0 / np.arange(1, n + 1)) if method == "by" else 1.0
        adj = np.minimum(1.0, np.minimum.accumulate((q * n / i * ps)[::-1])[::-1])
    else:  # pragma: no cover - checked by the caller
        raise ValueError(method)
    out = np.empty(len(p))
    out[o] = adj
    return out


def adjust_pvalues(
    t: np.ndarray, df: np.ndarray, adjust: str, kind: str, nmeans: int, rank: int
) -> tuple[np.ndarray, str, str | None]:
    """(two-sided p-values, adjustment actually used, emmeans' note) for one family of tests.

    Non-estimable rows (NaN) get NaN but count in the family size, as in emmeans.
    """
    t_all = np.asarray(t, dtype=float)
    df_all = np.asarray(df, dtype=float)
    n = len(t_all)  # the family: every contrast, estimable or not
    ok = np.isfinite(t_all)
    t, df = t_all[ok], df_all[ok]
    adj = str(adjust).lower()
    if adj == "dunnett":
        adj = "dunnettx"
    if n == 1:
        adj = "none"
    if adj == "tukey" and kind != "pairwise":
        adj = "sidak"
    abst = np.abs(t)
    unadj = np.where(
        np.isfinite(df), 2.0 * stats.t.sf(abst, np.where(np.isfinite(df), df, 1.0)), 2.0 * stats.norm.sf(abst)
    )
    if adj == "tukey":
        p = ptukey_sf(np.sqrt(2.0) * abst, nmeans, zapsmall(df))  # as emmeans
    elif adj == "dunnettx":
        p = pdunnx_sf(abst, n, df)
    elif adj == "scheffe":
        p = np.where(
            np.isfinite(df),
            stats.f.sf(t**2 / rank, rank, np.where(np.isfinite(df), df, 1.0)),
            stats.chi2.sf(t**2, rank),
        )
    elif adj == "sidak":
        p = -np.expm1(n * np.log1p(-unadj))
    elif adj in _P_ADJUST:
        p = _p_adjust(unadj, adj, n)
    elif adj == "mvt":
        raise NotImplementedError(
            "adjust='mvt' (multivariate t, emmeans' default for 'consec') is not "
            "implemented: pass adjust='sidak', 'holm', 'bonferroni' or 'none'"
        )
    else:
        raise ArgumentError(f"unknown adjust method {adjust!r}")
    if adj == "tukey":
        note = f"P value adjustment: tukey method for comparing a family of {nmeans} estimates"
    elif adj == "scheffe":
        note = f"P value adjustment: scheffe method with rank {rank}"
    elif adj == "none":
        note = None
    else:
        name = {"bh": "BH", "by": "BY"}.get(adj, adj)
        note = f"P value adjustment: {name} method for {n} tests"
    out = np.full(n, np.nan)
    out[ok] = np.clip(p, 0.0, 1.0)
    return out, adj, note

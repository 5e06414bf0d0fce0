"""Profile-likelihood intervals as lme4's ``profile()`` / ``confint(method = "profile")``.

Profiles are taken on the ML fit (a REML fit is refitted by ML, as lme4 does).  For a
parameter ψ_w the signed root deviance is ζ(x) = sign(x - ψ̂_w) √(min d(ψ | ψ_w = x) - d̂):

* variance parameters on lme4's "sdcor" scale (per term: standard deviations and
  correlations of σ²TT', then σ): d(θ, σ) = log|A| + r²(θ)/σ² + n log(2πσ²), minimised
  over the other sdcor parameters (BOBYQA on the fast, n-free objective);
* a fixed effect β_j = x: with β̂(θ), C = F⁻¹ and r²(θ) at θ, the partial minimum over the
  other β is r²(θ) + (x - β̂_j(θ))² / C_jj, σ profiled: d = log|A| + n(1 + log(2π r²/n)),
  minimised over θ.

Each profile is traced from the estimate in steps of about 1/8 of the cutoff in ζ
(√χ²_{0.99, npar}, lme4's default), and interval ends are the exact roots ζ(x) = ±z_{α/2}
(Brent's method between traced points), not a spline through them.
"""

from __future__ import annotations

import nlopt
import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..errors import ArgumentError
from ..model.criterion import deviance_at_sigma, profiled_deviance
from ..progress import counted

__all__ = ["Profile", "profile_model", "confint_table", "parameter_names"]


def _pct(a: float) -> str:
    return f"{100 * a:.3g} %"


def parameter_names(model) -> list[str]:
    """lme4's ``confint(oldNames = FALSE)`` names of the variance parameters, then ``sigma``."""
    out = []
    for t in model.frame.terms:
        g = t.factor.name
        if not t.param.linear:  # a structure: its SDs and reported correlations
            out += t.param.sdcor_names()
            continue
        for i, j in zip(t.param.rows.tolist(), t.param.cols.tolist()):  # θ's order
            out.append(f"sd_{t.names[i]}|{g}" if i == j else f"cor_{t.names[i]}.{t.names[j]}|{g}")
    return out + ["sigma"]


def theta_to_sdcor(model, theta: np.ndarray, sigma: float) -> np.ndarray:
    """(sd, cor per term in θ's order, σ) from (θ, σ)."""
    out = []
    for t, T, s in zip(model.frame.terms, model.layout.templates(theta), model.layout.slices):
        if not t.param.linear:
            out.extend(t.param.sdcor(theta[s], sigma))
            continue
        S = sigma**2 * T @ T.T
        sd = np.sqrt(np.diag(S))
        for i, j in zip(t.param.rows.tolist(), t.param.cols.tolist()):  # θ's order
            out.append(sd[i] if i == j else (S[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else 0.0))
    return np.array(out + [sigma])


def sdcor_to_theta(model, psi: np.ndarray) -> np.ndarray | None:
    """θ from (sd, cor, σ); None if a term's correlation matrix is not positive semi-definite."""
    sigma = psi[-1]
    theta = []
    for t, s in zip(model.frame.terms, model.layout.slices):  # (sd, cor) in θ's order
        vals = psi[s]
        if not t.param.linear:
            th = t.param.from_sdcor(vals, sigma)
            if th is None:
                return None
            theta.append(th)
            continue
        if t.p == 1:
            theta.append(vals[0] / sigma)
            continue
        R = np.eye(t.p)
        sd = np.zeros(t.p)
        for k, (i, j) in enumerate(zip(t.param.rows.tolist(), t.param.cols.tolist())):
            if i == j:
                sd[i] = vals[k]
            else:
                R[i, j] = R[j, i] = vals[k]
        nz = sd > 0
        T = np.zeros((t.p, t.p))
        if nz.any():
            S = (sd[nz, None] * R[np.ix_(nz, nz)] * sd[None, nz]) / sigma**2
            try:
                Tn = np.linalg.cholesky(S)
            except np.linalg.LinAlgError:
                return None
            T[np.ix_(nz, nz)] = Tn
        theta.append(t.param.from_template(T))
    return np.concatenate([np.atleast_1d(np.asarray(v, dtype=float)) for v in theta])


class Profile:
    """Profiles of one model (computed lazily per parameter) and their intervals."""

    def __init__(self, model, alphamax: float = 0.01, maxpts: int = 100, delta_cutoff: float = 1 / 8):
        self.source = model
        if getattr(model, "reml", False):
            import warnings

            with warnings.catch_warnings():  # an internal refit: lme4 is silent about it too
                warnings.simplefilter("ignore")
                model = model.refit_ml()
        self.model = model
        m = self.model
        self.n, self.p = m.nobs, m.frame.X.shape[1]  # rows of weight 0 do not count
        self.logw = getattr(m, "_logw", 0.0)
        self.theta_hat = np.asarray(m.theta, dtype=float).copy()
        self.psi_hat = theta_to_sdcor(m, self.theta_hat, float(m.sigma))
        self.beta_hat = np.asarray(m.beta, dtype=float).copy()
        self.se = np.sqrt(np.diag(m.vcov_array))
        self.names = parameter_names(m) + list(m.frame.fixef_names)
        self.base = float(m.ml_deviance)
        nvp = len(self.psi_hat)
        self.lower = np.concatenate([np.where(np.isfinite(m.theta_lower), 0.0, -1.0), [0.0]])
        self.upper = np.concatenate([np.where(np.isfinite(m.theta_lower), np.inf, 1.0), [np.inf]])
        self.cutoff = float(np.sqrt(stats.chi2.ppf(1 - alphamax, nvp + self.p)))
        self.delta = self.cutoff * delta_cutoff
        self.maxpts = maxpts
        self._traces: dict[str, pd.DataFrame] = {}
        self._warm: dict[str, dict] = {}

    # --- deviances ---------------------------------------------------------------------------
    def _dev_theta_sigma(self, theta, sigma) -> float:
        prof = self.model._profile(theta)
        if prof is None or not sigma > 0:
            return np.inf
        ldL2, _, r2, _, _ = prof
        return deviance_at_sigma(ldL2, 0.0, r2, sigma**2, self.n, 0, False, self.logw)

    def _dev_psi(self, psi) -> float:
        theta = sdcor_to_theta(self.model, psi)
        return np.inf if theta is None else self._dev_theta_sigma(theta, psi[-1])

    def _dev_beta(self, theta, j, x) -> float:
        prof = self.model._profile(theta)
        if prof is None:
            return np.inf
        ldL2, _, r2, R, cb = prof
        beta = np.linalg.solve(R, cb)
        Ri = np.linalg.inv(R)
        cjj = float(Ri[j] @ Ri[j])
        r2x = r2 + (x - beta[j]) ** 2 / cjj
        return profiled_deviance(ldL2, 0.0, np.log(r2x), self.n, 0, False, self.logw)

    @staticmethod
    def _minimize(f, x0, lower, upper):
        if len(x0) == 0:
            return f(np.zeros(0)), np.zeros(0)
        opt = nlopt.opt(nlopt.LN_BOBYQA, len(x0))
        opt.set_min_objective(lambda x, grad: min(float(f(x)), 1e300))
        opt.set_lower_bounds(lower)
        opt.set_upper_bounds(np.where(np.isfinite(upper), upper, 1e300))
        opt.set_ftol_abs(1e-11)
        opt.set_xtol_abs(1e-10)
        opt.set_maxeval(5000)
        x0 = np.clip(x0, lower, upper)
        step = np.where(np.abs(x0) > 0, 0.1 * np.abs(x0), 0.05)
        opt.set_initial_step(step)
        try:
            x = opt.optimize(x0)
        except (nlopt.RoundoffLimited, RuntimeError, ValueError):
            x = x0
        return float(f(x)), np.asarray(x)

    def zeta(self, w: int, x: float) -> float:
        """ζ of parameter w (index into ``names``) at value x."""
        name = self.names[w]
        nvp = len(self.psi_hat)
        warm = self._warm.setdefault(name, {})
        start = warm.get("x")
        if w < nvp:
            others = [i for i in range(nvp) if i != w]
            x0 = self.psi_hat[others] if start is None else start

            def f(v):
                psi = self.psi_hat.copy()
                psi[others] = v
                psi[w] = x
                return self._dev_psi(psi)

            dev, xs = self._minimize(f, x0, self.lower[others], self.upper[others])
            centre = self.psi_hat[w]
        else:
            j = w - nvp
            x0 = self.theta_hat if start is None else start
            lo = np.asarray(self.model.theta_lower, dtype=float)
            dev, xs = self._minimize(lambda th: self._dev_beta(th, j, x), x0, lo, np.full(len(lo), np.inf))
            centre = self.beta_hat[j]
        warm["x"] = xs
        diff = max(dev - self.base, 0.0)
        return float(np.sign(x - centre) * np.sqrt(diff))

    # --- traces ------------------------------------------------------------------------------
    def trace(self, w: int) -> pd.DataFrame:
        """The profile of parameter w on a grid out to |ζ| = cutoff (or a bound)."""
        name = self.names[w]
        if name in self._traces:
            return self._traces[name]
        nvp = len(self.psi_hat)
        est = self.psi_hat[w] if w < nvp else self.beta_hat[w - nvp]
        lo = self.lower[w] if w < nvp else -np.inf
        hi = self.upper[w] if w < nvp else np.inf
        pts = [(est, 0.0)]
        for direction in (1.0, -1.0):
            self._warm.pop(name, None)
            if w < nvp:
                first = est * (1 + 0.01 * direction) if est != 0 else est + 0.001 * direction
            else:
                first = est + direction * self.delta * self.se[w - nvp]
            if (direction < 0 and est <= lo) or (direction > 0 and est >= hi):
                continue
            first = min(max(first, lo), hi)
            prev = (est, 0.0)
            cur = (first, self.zeta(w, first))
            pts.append(cur)
            for _ in range(self.maxpts):
                if abs(cur[1]) > self.cutoff or cur[0] in (lo, hi):
                    break
                dz = cur[1] - prev[1]
                dx = cur[0] - prev[0]
                # lme4's nextpar: a step of delta in ζ along the secant, at most 10x the last one
                step = self.delta * abs(dx / dz) if dz != 0 and dx / dz > 0 else 1e-6
                step = direction * (min(step, 10 * abs(dx)) if dx != 0 else step)
                nxt = min(max(cur[0] + step, lo), hi)
                prev, cur = cur, (nxt, self.zeta(w, nxt))
                pts.append(cur)
        df = pd.DataFrame(sorted(set(pts)), columns=["value", "zeta"])
        df.insert(0, "parameter", name)
        self._traces[name] = df
        return df

    def data(self, which=None, progress: bool | None = None) -> pd.DataFrame:
        """All traced profiles: columns parameter, value, zeta (for zeta plots)."""
        idx = self._which(which)
        try:
            return pd.concat(self._each(self.trace, idx, progress), ignore_index=True)
        finally:
            self._restore()

    def _restore(self) -> None:
        """Leave the model's kernel at the estimate (profiling moved it)."""
        self.model._profile(self.model.theta)

    def _each(self, fn, idx: list[int], progress: bool | None) -> list:
        """``[fn(w) for w in idx]`` with a progress bar over the parameters."""
        return list(counted((fn(w) for w in idx), len(idx), "profile", progress, "parameter"))

    def _which(self, which) -> list[int]:
        if which is None:
            return list(range(len(self.names)))
        which = [which] if isinstance(which, (str, int)) else list(which)
        out = []
        for w in which:
            if isinstance(w, str):
                if w == "theta_":
                    out += list(range(len(self.psi_hat)))
                elif w == "beta_":
                    out += list(range(len(self.psi_hat), len(self.names)))
                elif w in self.names:
                    out.append(self.names.index(w))
                else:
                    raise ArgumentError(f"no parameter {w!r}; parameters are {self.names}")
            else:
                out.append(int(w))
        return out

    # --- intervals ---------------------------------------------------------------------------
    def interval(self, w: int, level: float = 0.95) -> tuple[float, float]:
        """Exact roots of ζ = ±z between traced points; a bound where ζ never reaches z."""
        z = stats.norm.ppf(0.5 + level / 2)
        tr = self.trace(w)
        nvp = len(self.psi_hat)
        lo = self.lower[w] if w < nvp else -np.inf
        hi = self.upper[w] if w < nvp else np.inf
        x, zz = tr["value"].to_numpy(), tr["zeta"].to_numpy()
        ends = []
        for target, bound in ((-z, lo), (z, hi)):
            hit = np.flatnonzero((zz[:-1] - target) * (zz[1:] - target) <= 0)
            if len(hit) == 0:
                ends.append(bound if np.isfinite(bound) else np.nan)
                continue
            i = hit[0] if target < 0 else hit[-1]
            a, b = x[i], x[i + 1]
            self._warm.pop(self.names[w], None)
            try:
                root = optimize.brentq(
                    lambda v, t=target: self.zeta(w, v) - t, a, b, xtol=1e-7 * max(1.0, abs(b - a)), rtol=1e-10
                )
            except ValueError:
                root = a + (target - zz[i]) * (b - a) / (zz[i + 1] - zz[i])
            ends.append(root)
        return ends[0], ends[1]

    def confint(self, which=None, level: float = 0.95, progress: bool | None = None) -> pd.DataFrame:
        idx = self._which(which)
        try:
            rows = self._each(lambda w: self.interval(w, level), idx, progress)
        finally:
            self._restore()
        a = (1 - level) / 2
        return pd.DataFrame(rows, index=[self.names[w] for w in idx], columns=[_pct(a), _pct(1 - a)])


def profile_model(model, **kwargs) -> Profile:
    """The model's profiles: ``Profile`` for an LMM, ``profile_glmm.GlmmProfile`` for a GLMM."""
    from ..model.glmm import GeneralizedLinearMixedModel

    if isinstance(model, GeneralizedLinearMixedModel):
        from .profile_glmm import GlmmProfile

        return GlmmProfile(model, **kwargs)
    return Profile(model, **kwargs)


def _confint_names(model) -> list[str]:
    """``confint``'s row names: variance parameters (no ``sigma`` for a GLMM), then β."""
    from ..model.glmm import GeneralizedLinearMixedModel

    names = parameter_names(model)
    if isinstance(model, GeneralizedLinearMixedModel) and not model.use_scale:
        names = names[:-1]
    return names + list(model.frame.fixef_names)


def confint_table(
    model, parm=None, level: float = 0.95, method: str = "profile", progress: bool | None = None
) -> pd.DataFrame:
    """lme4's ``confint(model, level, method, oldNames = FALSE)``; ``progress``: a bar over
    the profiled parameters."""
    method = method.lower()
    names = _confint_names(model)
    a = (1 - level) / 2
    if method == "wald":
        z = stats.norm.ppf(1 - a)
        nvp = len(names) - len(model.beta)
        se = np.sqrt(np.diag(model.vcov_array))
        lo = np.concatenate([np.full(nvp, np.nan), model.beta - z * se])
        hi = np.concatenate([np.full(nvp, np.nan), model.beta + z * se])
        out = pd.DataFrame({_pct(a): lo, _pct(1 - a): hi}, index=names)
        return out if parm is None else out.loc[[parm] if isinstance(parm, str) else list(parm)]
    if method == "profile":
        from .ftests import _cache
        from .locking import model_lock

        with model_lock(model):  # the cached Profile and (ML fits) the model's kernel are shared
            store = _cache(model)
            if "profile" not in store:
                store["profile"] = profile_model(model)
            return store["profile"].confint(parm, level, progress)
    from ..errors import ArgumentError

    raise ArgumentError(f"method must be 'profile' or 'wald', not {method!r}")

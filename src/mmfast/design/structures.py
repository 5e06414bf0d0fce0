"""Structured random-effect (G-side) covariances: ``diag``, ``cs``, ``ar1``, ``toep``, ``ou``.

Each structure maps its θ_i to a term's relative covariance factor T (p x p, lower triangular,
T T' = D C D with D = diag(τ) the relative standard deviations and C a structured correlation
matrix), so the PLS/PIRLS kernels see only a new template: the per-evaluation cost is p x p work,
independent of n.  θ_i is (τ, φ): τ are SDs relative to σ for an LMM (absolute for a GLMM),
bounded below by 0 as lme4's template diagonals (a singular fit sits on that bound); φ are the
correlation parameters on glmmTMB 1.1.5's unbounded scales, the anchor we follow for reporting:

* ``cs``   ρ = logit⁻¹(φ)(1 + a) - a, a = 1/(p - 1)          (C_ij = ρ, i != j)
* ``ar1``  ρ = φ / √(1 + φ²)                                 (C_ij = ρ^|i-j|, unit-spaced levels)
* ``toep`` ρ_k = φ_k / √(1 + φ_k²), k = 1..p-1               (C_ij = ρ_|i-j|)
* ``ou``   ρ(d) = exp(-exp(φ) d) over the levels' numeric times (C_ij = ρ(|t_i - t_j|))
* ``diag`` no φ (C = I).

``hom`` structures share one τ across the p columns (glmmTMB's ``homdiag``/``homcs``/``homtoep``,
lme4 2.0's ``hom = TRUE``); ``het`` give each column its own (glmmTMB's ``hetar1``).  Defaults
follow glmmTMB 1.1.5: ``diag``/``cs``/``toep`` heterogeneous, ``ar1``/``ou`` homogeneous.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Structured", "make_structure", "STRUCTURES", "HOM_DEFAULT"]

STRUCTURES = ("diag", "cs", "ar1", "toep", "ou")
HOM_DEFAULT = {"diag": False, "cs": False, "ar1": True, "toep": False, "ou": True}


def _chol_derivative(L: np.ndarray, dA: np.ndarray) -> np.ndarray:
    """dL for A = L L' moved by dA: L Φ(L⁻¹ dA L⁻ᵀ), Φ the lower triangle with half its diagonal."""
    X = np.linalg.solve(L, np.linalg.solve(L, dA).T).T  # L⁻¹ dA L⁻ᵀ (dA symmetric)
    X = np.tril(X)
    X[np.diag_indices_from(X)] *= 0.5
    return L @ X


class Structured:
    """One term's structured covariance: θ_i = (τ, φ) -> T = D chol(C(φ)) (module docstring).

    Offers what ``LowerCholesky`` offers (names, bounds, start, templates, the positions of T's
    entries) plus the Jacobian dT/dθ_i and the first and second derivatives of Σ = T T' that the
    gradient and Satterthwaite code chain through.
    """

    linear = False

    def __init__(self, kind: str, p: int, columns: list[str], group: str, hom: bool, times=None):
        self.kind, self.p, self.columns, self.group, self.hom = kind, int(p), list(columns), group, bool(hom)
        p = self.p
        self.times = None if times is None else np.asarray(times, dtype=float)
        self.ntau = 1 if self.hom else p
        self.nphi = {
            "diag": 0,
            "cs": 1 if p > 1 else 0,
            "ar1": 1 if p > 1 else 0,
            "toep": p - 1,
            "ou": 1 if p > 1 else 0,
        }[kind]
        self.ntheta = self.ntau + self.nphi
        # where T's lower-triangular entries sit (LowerCholesky's order): what the kernels scatter
        self.entry_rows = np.array([i for j in range(p) for i in range(j, p)], dtype=np.int64)
        self.entry_cols = np.array([j for j in range(p) for i in range(j, p)], dtype=np.int64)
        self.flat_pos = self.entry_rows + self.entry_cols * p
        self.diagonal = np.arange(self.ntheta) < self.ntau  # τ: bounded below by 0
        self.scaled = self.diagonal.copy()  # τ carries its column's units, φ none
        # the column whose units each θ carries (τ_j: column j; a shared τ or φ: column 0)
        self.rows = np.where(self.diagonal & (not self.hom), np.arange(self.ntheta), 0).astype(np.int64)
        self.cols = self.rows.copy()
        self.lower = np.where(self.diagonal, 0.0, -np.inf)
        self.start = self.diagonal.astype(float)  # glmmTMB's start: SDs 1, φ = 0
        self._lag = np.abs(np.subtract.outer(np.arange(p), np.arange(p)))
        if kind == "ou":
            self._dist = np.abs(np.subtract.outer(self.times, self.times))

    # --- names and reporting -------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """``g.x`` per heterogeneous SD (lme4's diagonal names), ``g.sd`` for a shared one;
        ``g.rho`` (cs, ar1), ``g.rho1``.. (toep), ``g.lograte`` (ou) for φ."""
        g = self.group
        out = [f"{g}.sd"] if self.hom else [f"{g}.{c}" for c in self.columns]
        if self.kind == "toep":
            out += [f"{g}.rho{k + 1}" for k in range(self.nphi)]
        elif self.nphi:
            out += [f"{g}.lograte" if self.kind == "ou" else f"{g}.rho"]
        return out

    def correlation_parameters(self, theta_i: np.ndarray) -> np.ndarray:
        """glmmTMB's reported correlations: ρ (cs, ar1), ρ_1..ρ_{p-1} (toep), the correlation at
        unit time distance exp(-exp(φ)) (ou); empty for diag."""
        phi = np.asarray(theta_i, dtype=float)[self.ntau :]
        if self.nphi == 0:
            return phi[:0]
        if self.kind == "cs":
            a = 1.0 / (self.p - 1)
            return 1.0 / (1.0 + np.exp(-phi)) * (1.0 + a) - a
        if self.kind in ("ar1", "toep"):
            return phi / np.sqrt(1.0 + phi * phi)
        if self.kind == "ou":
            return np.exp(-np.exp(phi))
        return phi[:0]

    def rho_to_phi(self, rho: np.ndarray) -> np.ndarray | None:
        """φ from the reported correlations (inverse of ``correlation_parameters``); None
        outside their range."""
        rho = np.asarray(rho, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.kind == "cs":
                a = 1.0 / (self.p - 1)
                s = (rho + a) / (1.0 + a)
                phi = np.log(s / (1.0 - s))
            elif self.kind in ("ar1", "toep"):
                phi = rho / np.sqrt(1.0 - rho * rho)
            else:
                phi = np.log(-np.log(rho))
        return phi if np.all(np.isfinite(phi)) else None

    def sdcor(self, theta_i: np.ndarray, sigma: float) -> np.ndarray:
        """The profiled parameters of this term: its SDs (σ τ) and reported correlations."""
        theta_i = np.asarray(theta_i, dtype=float)
        return np.concatenate([sigma * theta_i[: self.ntau], self.correlation_parameters(theta_i)])

    def from_sdcor(self, vals: np.ndarray, sigma: float) -> np.ndarray | None:
        """θ_i from ``sdcor``'s values; None where a correlation is out of range."""
        phi = self.rho_to_phi(vals[self.ntau :]) if self.nphi else np.zeros(0)
        if phi is None or not sigma > 0:
            return None
        return np.concatenate([np.asarray(vals[: self.ntau], dtype=float) / sigma, phi])

    def sdcor_names(self) -> list[str]:
        """``sd_x|g`` per SD (``sd|g`` shared), ``rho|g`` / ``rho1|g``.. as ``confint`` names."""
        g = self.group
        out = [f"sd|{g}"] if self.hom else [f"sd_{c}|{g}" for c in self.columns]
        if self.kind == "toep":
            return out + [f"rho{k + 1}|{g}" for k in range(self.nphi)]
        return out + ([f"{'rho_unit' if self.kind == 'ou' else 'rho'}|{g}"] if self.nphi else [])

    # --- the map -------------------------------------------------------------------------
    def _sd(self, theta_i) -> np.ndarray:
        tau = np.asarray(theta_i[: self.ntau], dtype=float)
        return np.full(self.p, tau[0]) if self.hom else tau

    def _corr(self, phi):
        """(C, dC (nφ, p, p), d²C (nφ, nφ, p, p)) at φ."""
        p, k, nphi = self.p, self._lag, self.nphi
        dC, d2C = np.zeros((nphi, p, p)), np.zeros((nphi, nphi, p, p))
        if self.kind == "diag" or nphi == 0:
            return np.eye(p), dC, d2C
        if self.kind == "cs":
            a = 1.0 / (p - 1)
            s = 1.0 / (1.0 + np.exp(-phi[0]))
            rho = s * (1.0 + a) - a
            off = 1.0 - np.eye(p)
            dC[0] = s * (1.0 - s) * (1.0 + a) * off
            d2C[0, 0] = s * (1.0 - s) * (1.0 - 2.0 * s) * (1.0 + a) * off
            return np.eye(p) + rho * off, dC, d2C
        if self.kind == "ar1":
            f = phi[0]
            g = 1.0 + f * f
            rho, d1, d2 = f / np.sqrt(g), g**-1.5, -3.0 * f * g**-2.5
            C = rho**k
            with np.errstate(divide="ignore", invalid="ignore"):
                pk1 = np.where(k >= 1, rho ** np.maximum(k - 1, 0), 0.0)
                pk2 = np.where(k >= 2, rho ** np.maximum(k - 2, 0), 0.0)
            dC[0] = k * pk1 * d1
            d2C[0, 0] = k * (k - 1) * pk2 * d1 * d1 + k * pk1 * d2
            return C, dC, d2C
        if self.kind == "toep":
            g = 1.0 + phi * phi
            rho, d1, d2 = phi / np.sqrt(g), g**-1.5, -3.0 * phi * g**-2.5
            C = np.eye(p)
            for m in range(nphi):
                band = (k == m + 1).astype(float)
                C += rho[m] * band
                dC[m] = d1[m] * band
                d2C[m, m] = d2[m] * band
            return C, dC, d2C
        # ou
        kappa = np.exp(phi[0])
        d = self._dist
        C = np.exp(-kappa * d)
        dC[0] = -kappa * d * C
        d2C[0, 0] = (kappa * kappa * d * d - kappa * d) * C
        return C, dC, d2C

    def _factor(self, theta_i):
        """(sd, C, L_C, dC, d²C) at θ_i; L_C None when C is not positive definite."""
        C, dC, d2C = self._corr(np.asarray(theta_i[self.ntau :], dtype=float))
        try:
            L = np.linalg.cholesky(C)
        except np.linalg.LinAlgError:
            L = None
        return self._sd(theta_i), C, L, dC, d2C

    def to_template(self, theta_i: np.ndarray) -> np.ndarray:
        """T = D chol(C): NaN where C(φ) is not positive definite (an infeasible toep φ)."""
        sd, _, L, _, _ = self._factor(theta_i)
        if L is None:
            return np.full((self.p, self.p), np.nan)
        return sd[:, None] * L

    def entries(self, theta_i: np.ndarray) -> np.ndarray:
        """T's lower-triangular entries in ``flat_pos`` order (what the kernels scatter)."""
        return self.to_template(theta_i)[self.entry_rows, self.entry_cols]

    def _tau_masks(self) -> np.ndarray:
        """(ntau, p): which columns each τ scales."""
        return np.ones((1, self.p)) if self.hom else np.eye(self.p)

    def jacobian(self, theta_i: np.ndarray) -> np.ndarray:
        """dT/dθ_i, (nθ, p, p): dD L_C for τ, D dL_C for φ (dL_C from dC, ``_chol_derivative``)."""
        sd, _, L, dC, _ = self._factor(theta_i)
        out = np.zeros((self.ntheta, self.p, self.p))
        if L is None:
            return out * np.nan
        for i, m in enumerate(self._tau_masks()):
            out[i] = m[:, None] * L
        for j in range(self.nphi):
            out[self.ntau + j] = sd[:, None] * _chol_derivative(L, dC[j])
        return out

    def chain(self, G: np.ndarray, theta_i: np.ndarray) -> np.ndarray:
        """∂f/∂θ_i from ∂f/∂T (p x p): Σ_ab G_ab ∂T_ab/∂θ_i."""
        return np.einsum("ab,kab->k", G, self.jacobian(theta_i))

    def sigma_derivatives(self, theta_i: np.ndarray):
        """(dΣ/dθ_i (nθ, p, p), d²Σ/dθ_i dθ_j (nθ, nθ, p, p)) of Σ = D C D."""
        sd, C, _, dC, d2C = self._factor(theta_i)
        D = np.diag(sd)
        masks = [np.diag(m) for m in self._tau_masks()]
        nt, p = self.ntheta, self.p
        d1, d2 = np.zeros((nt, p, p)), np.zeros((nt, nt, p, p))
        for i, E in enumerate(masks):
            d1[i] = E @ C @ D + D @ C @ E
            for j, F in enumerate(masks):
                d2[i, j] = E @ C @ F + F @ C @ E
            for m in range(self.nphi):
                x = E @ dC[m] @ D + D @ dC[m] @ E
                d2[i, self.ntau + m] = d2[self.ntau + m, i] = x
        for m in range(self.nphi):
            d1[self.ntau + m] = D @ dC[m] @ D
            for l in range(self.nphi):
                d2[self.ntau + m, self.ntau + l] = D @ d2C[m, l] @ D
        return d1, d2

    def variance_directions(self, theta_i: np.ndarray, sigma: float) -> np.ndarray:
        """∂(σ²TT')/∂τ, (nθ, p, p), for τ = (the variances (σθ_j)², then φ): Kenward-Roger's
        G-side directions.  On the variance scale a ``diag`` term is linear in τ (pbkrtest's
        parametrisation of ``(x || g)``) and stays regular at a zero SD; the off-diagonal part
        of a zero-SD column's direction (its correlations are unidentified there) is dropped."""
        sd, C, _, dC, _ = self._factor(theta_i)
        out = np.zeros((self.ntheta, self.p, self.p))
        for i, m in enumerate(self._tau_masks()):
            E = np.diag(m)
            if self.hom:
                out[i] = C  # Σ = v C
                continue
            s = sd[i]
            out[i] = (E @ C * sd[None, :] + sd[:, None] * C @ E) / (2.0 * s) if s > 0 else E
        for m in range(self.nphi):
            out[self.ntau + m] = sigma**2 * sd[:, None] * dC[m] * sd[None, :]
        return out

    # --- starts and projections ----------------------------------------------------------
    def from_template(self, T: np.ndarray) -> np.ndarray:
        """The structure's θ_i nearest (moment-wise) to a template T: SDs from diag(T T'), φ
        from the mean correlation of the matching entries; the start where that is infeasible."""
        S = np.asarray(T, dtype=float) @ np.asarray(T, dtype=float).T
        sd = np.sqrt(np.maximum(np.diag(S), 0.0))
        tau = np.array([np.sqrt(np.mean(sd * sd))]) if self.hom else sd
        with np.errstate(divide="ignore", invalid="ignore"):
            R = S / np.outer(sd, sd)
        phi = np.zeros(self.nphi)
        k = self._lag
        if self.nphi and np.all(sd > 0):
            if self.kind == "cs":
                a = 1.0 / (self.p - 1)
                rho = np.clip(np.mean(R[k > 0]), -a + 1e-3, 1.0 - 1e-3)
                s = (rho + a) / (1.0 + a)
                phi[0] = np.log(s / (1.0 - s))
            elif self.kind == "ar1":
                rho = np.clip(np.mean(R[k == 1]), -0.95, 0.95)
                phi[0] = rho / np.sqrt(1.0 - rho * rho)
            elif self.kind == "toep":
                rho = np.clip([np.mean(R[k == m + 1]) for m in range(self.nphi)], -0.95, 0.95)
                phi[:] = rho / np.sqrt(1.0 - rho * rho)
            else:  # ou: the rate that matches the mean log-correlation per unit time
                off = self._dist > 0
                r = np.clip(R[off], 1e-3, 0.999)
                phi[0] = np.log(np.mean(-np.log(r) / self._dist[off]))
        theta = np.concatenate([tau, phi])
        if not np.all(np.isfinite(self.to_template(theta))):
            theta = np.concatenate([tau, np.zeros(self.nphi)])
        return theta

    def diagonal_position(self, j: int) -> int:
        """Position in θ_i of the SD that scales column j."""
        return 0 if self.hom else int(j)

    def below_positions(self, j: int) -> np.ndarray:
        """None: a structure's correlations are not T's entries (no sign reflection applies)."""
        return np.zeros(0, dtype=np.int64)

    def singular(self, theta_i: np.ndarray, tol: float = 1e-4) -> bool:
        """An SD below ``tol`` or a correlation matrix within ``tol`` of singular (|ρ| -> 1)."""
        sd, C, L, _, _ = self._factor(theta_i)
        if np.any(sd < tol) or L is None:
            return True
        return bool(np.min(np.diag(L)) < tol)


def make_structure(kind: str, hom: bool | None, p: int, columns: list[str], group: str, times=None) -> Structured:
    """The ``kind`` structure for a p-column term (``hom`` None: glmmTMB 1.1.5's default)."""
    return Structured(kind, p, columns, group, HOM_DEFAULT[kind] if hom is None else hom, times)

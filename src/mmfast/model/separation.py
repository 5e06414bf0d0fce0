"""Data the likelihood cannot pin down: complete or quasi-complete separation in a binomial or
Poisson GLMM, and a constant response.

When some rows can be fitted exactly (every trial at one level of a factor a success, a Poisson
group of zeros), the likelihood keeps rising as a combination of fixed effects goes to ±∞: the
fitted means of those rows approach 0 or 1, their working weights vanish and R_X'R_X becomes
singular along that combination.  lme4 then ends wherever its tolerances stop it, with large
estimates and a convergence warning.  mmfast detects it after stage 1 (fitted means at the
family's bounds *and* a near-null direction of R_X'R_X, its columns scaled by X's: a
direction the weights have emptied), holds the estimates
along that direction where PIRLS stopped (the deviance no longer moves there) and optimises the
identified directions and θ as usual; the fit then warns, naming the coefficients involved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._ext._glm import mean_at_bounds
from ..errors import DataError

__all__ = [
    "Separation",
    "at_bounds",
    "detect_separation",
    "separation_message",
    "EDGE",
    "NULL_RATIO",
    "check_response_not_constant",
]

EDGE = 1e-7  # a fitted mean within this of 0 (or 1, binomial) is at the family's bound
NULL_RATIO = 1e-8  # eigenvalue / largest of the column-scaled R_X'R_X: a near-null direction


@dataclass
class Separation:
    """The identified directions as a whitening (beta = beta1 + Binv delta, the last ``nnull``
    columns zero) and the coefficients along the diverging directions."""

    Binv: np.ndarray
    nnull: int
    names: list[str]
    nedge: int


def at_bounds(family, eta: np.ndarray) -> np.ndarray:
    """Rows whose fitted mean is numerically at the family's bound (binomial: 0 or 1,
    Poisson: 0); none for other families."""
    if family.name not in ("binomial", "poisson"):
        return np.zeros(len(eta), dtype=bool)
    return mean_at_bounds(family.code, family.link.code, eta, EDGE)


def detect_separation(family, M: np.ndarray, X: np.ndarray, eta: np.ndarray, names) -> Separation | None:
    """None unless fitted means sit at the family's bounds and R_X'R_X (M, or a function
    giving it, at the estimates), scaled by X's column norms, is near-singular; O(n) for the means (O(np) and a
    p x p eigendecomposition only when some are at a bound)."""
    if X.shape[1] == 0:
        return None
    edge = at_bounds(family, eta)
    if not edge.any():
        return None
    if callable(M):  # computed only now (a factorisation)
        M = M()
    d = np.sqrt(np.einsum("ij,ij->j", X, X))
    if not np.all(np.isfinite(M)) or np.any(d <= 0):
        return None
    lam, V = np.linalg.eigh(M / np.outer(d, d))
    null = lam < NULL_RATIO * lam[-1]
    if not null.any() or null.all():
        return None
    keep = ~null
    p, r = M.shape[0], int(keep.sum())
    Binv = np.zeros((p, p))
    Binv[:, :r] = (V[:, keep] / np.sqrt(lam[keep])) / d[:, None]
    weight = np.sqrt(np.sum((V[:, null] / d[:, None]) ** 2, axis=1))
    involved = [names[j] for j in np.flatnonzero(weight > 0.1 * weight.max())]
    return Separation(Binv=Binv, nnull=p - r, names=involved, nedge=int(edge.sum()))


def separation_message(family, sep: Separation, held: bool = True) -> str:
    """The warning: what happened, which estimates are affected, what remains meaningful."""
    what = "fitted probabilities numerically 0 or 1" if family.name == "binomial" else "fitted means numerically 0"
    return (
        f"{what} for {sep.nedge} row{'s' if sep.nedge != 1 else ''} (complete or "
        f"quasi-complete separation): the estimates of {', '.join(sep.names)} tend to "
        "±infinity; "
        + ("they are held where the deviance stops changing, so " if held else "")
        + "their values and standard errors are not meaningful "
        "(θ, the log-likelihood and the identified combinations of fixed effects are)"
    )


def check_response_not_constant(frame, family) -> None:
    """lme4's ``check.response.not.const``: a response with one value (all 0, all 1, all the
    same cbind() row) has no information about the linear predictor: estimates go to ±∞."""
    y, extra = frame.y, frame.y_extra
    if len(y) and (y == y[0]).all() and (extra is None or (extra == extra[0]).all()):
        what = f"every row is cbind({y[0]:g}, {extra[0] - y[0]:g})" if extra is not None else f"every value is {y[0]:g}"
        raise DataError(
            f"response '{frame.parsed.response}' is constant ({what}): a {family.name} "
            "GLMM cannot be fitted to it (lme4: 'Response is constant')"
        )

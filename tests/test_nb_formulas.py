"""The negative binomial (nbinom2) formulas of ``mmfast._ext._glm`` against R: -2 dnbinom(log=TRUE)
and MASS's negative.binomial(theta)$dev.resids (values printed by R 4.2), and the Poisson limit."""

import numpy as np
import pytest
from scipy import stats

from mmfast._ext._glm import family_dev_resids, family_variance, nb2_m2logp

Y = np.array([0, 1, 3, 10, 50.0])
MU = np.array([0.5, 2, 3, 7, 40.0])
# R: -2 * dnbinom(y, size = theta, mu = mu, log = TRUE); MASS::negative.binomial(theta)$dev.resids(y, mu, 1)
R_M2LOGP = {
    0.7: [0.7545951, 3.2034565, 4.8384428, 7.1873954, 10.2960707],
    3.0: [0.9249041, 2.7003106, 3.7125960, 5.9780262, 8.8277488],
}
R_DEVRES = {
    0.7: [0.75459510, 0.18662561, 0.0, 0.09239785, 0.03699637],
    3.0: [0.9249041, 0.3988540, 0.0, 0.3120280, 0.1506246],
}


@pytest.mark.parametrize("theta", [0.7, 3.0])
def test_nb2_against_r(theta):
    np.testing.assert_allclose(nb2_m2logp(Y, MU, 1.0, theta), R_M2LOGP[theta], rtol=2e-7, atol=1e-7)
    np.testing.assert_allclose(family_dev_resids(4, Y, MU, 1.0, theta), R_DEVRES[theta], rtol=2e-7, atol=1e-7)
    np.testing.assert_allclose(family_variance(4, MU, theta), MU + MU**2 / theta)
    # scipy's parametrisation: n = theta, p = theta / (theta + mu)
    np.testing.assert_allclose(
        nb2_m2logp(Y, MU, 2.0, theta), -4.0 * stats.nbinom.logpmf(Y, theta, theta / (theta + MU)), rtol=1e-12
    )


@pytest.mark.parametrize("theta", [1e5, 1e7, 1e12])
def test_nb2_poisson_limit(theta):
    """theta -> infinity: Poisson's -2 log p and deviance, to O(mu^2 / theta) (Stirling's branch)."""
    pois = -2.0 * stats.poisson.logpmf(Y, MU)
    dev = 2.0 * (np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1) / MU), 0.0) - (Y - MU))
    tol = 10 * np.max(MU**2 + Y**2) / theta
    np.testing.assert_allclose(nb2_m2logp(Y, MU, 1.0, theta), pois, atol=tol)
    np.testing.assert_allclose(family_dev_resids(4, Y, MU, 1.0, theta), dev, atol=tol)
    # continuity across the two branches of lgamma's ratio (theta = 1e5)
    a, b = nb2_m2logp(Y, MU, 1.0, 1e5 * (1 - 1e-9)), nb2_m2logp(Y, MU, 1.0, 1e5 * (1 + 1e-9))
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_nbinom1_and_beta_densities():
    """nbinom1 (size mu/φ, var mu (1 + φ)) and beta (shapes mu φ, (1 - mu) φ): their deviance
    is -2 log p itself (no closed-form saturated model), checked against scipy's densities."""
    phi = 1.7
    np.testing.assert_allclose(
        family_dev_resids(5, Y, MU, 1.0, phi), -2.0 * stats.nbinom.logpmf(Y, MU / phi, 1 / (1 + phi)), rtol=1e-12
    )
    np.testing.assert_allclose(family_variance(5, MU, phi), MU * (1 + phi))
    yb, mb, ph = np.array([0.01, 0.3, 0.5, 0.97]), np.array([0.2, 0.4, 0.5, 0.9]), 7.0
    np.testing.assert_allclose(
        family_dev_resids(6, yb, mb, 2.0, ph), -4.0 * stats.beta.logpdf(yb, mb * ph, (1 - mb) * ph), rtol=1e-12
    )
    np.testing.assert_allclose(family_variance(6, mb, ph), mb * (1 - mb) / (1 + ph))


@pytest.mark.parametrize("fam", [4, 5, 6])
def test_score_and_information_are_derivatives(fam):
    """PIRLS's score and observed information are the first two eta-derivatives of log p (central
    differences of scipy's log density); the expected information of nbinom2 is theta mu / (mu + theta)."""
    from scipy import special

    from mmfast._ext._glm import score_info

    disp, h = 1.7, 1e-4
    if fam == 6:
        y, mu = np.array([0.01, 0.3, 0.5, 0.97]), np.array([0.2, 0.4, 0.5, 0.9])
        eta, me = special.logit(mu), mu * (1 - mu)

        def lp(e):
            m = special.expit(e)
            return stats.beta.logpdf(y, m * disp, (1 - m) * disp)
    else:
        y, mu, eta, me = Y, MU, np.log(MU), MU

        def lp(e):
            m = np.exp(e)
            return (
                stats.nbinom.logpmf(y, disp, disp / (disp + m))
                if fam == 4
                else stats.nbinom.logpmf(y, m / disp, 1 / (1 + disp))
            )

    s, info = score_info(fam, y, mu, me, disp, 1)
    np.testing.assert_allclose(s, (lp(eta + h) - lp(eta - h)) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(info, -(lp(eta + h) - 2 * lp(eta) + lp(eta - h)) / h**2, rtol=1e-5, atol=1e-6)
    if fam == 4:
        np.testing.assert_allclose(score_info(4, y, mu, me, disp, 0)[1], disp * mu / (mu + disp))

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

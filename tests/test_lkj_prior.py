"""The LKJ(2) prior on segment correlations (``models/gmm.py`` and the hurdle model) is the LKJ
distribution: its draws, its log density and its constant.

pymc 6.3.2 got all three wrong (fixed in 6.4.0): draws from the third row on came from the wrong
beta, the log density missed the Cholesky Jacobian, and the constant had the wrong sign. That is
why the project needs ``pymc>=6.4`` even though pymc-marketing 1.3.0 asks for ``<6.4`` (issue 18).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import stats


def test_every_correlation_has_the_lkj_marginal():
    """Under LKJ(eta) in dimension n, each correlation is 2 Beta(b, b) - 1 with b = eta - 1 +
    n / 2: variance 1 / (2 b + 1) = 1/6 for n = 3, eta = 2."""
    chol = pm.draw(pm.LKJCorr.dist(n=3, eta=2.0, size=20_000), random_seed=1)
    corr = chol @ np.swapaxes(chol, -1, -2)
    marginal = stats.beta(2.5, 2.5, loc=-1, scale=2)
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        draws = corr[:, a, b]
        assert draws.var() == pytest.approx(1 / 6, rel=0.04), (a, b)
        assert stats.kstest(draws, marginal.cdf).pvalue > 1e-3, (a, b)


@pytest.mark.parametrize("eta", [1.0, 2.0])
def test_log_density_is_stans_lkj_corr_cholesky(eta):
    """log p(L) - log p(I) = sum_i (n - i + 2 eta - 2) log L_ii (Stan's lkj_corr_cholesky)."""
    corr = np.array([[1, 0.5, 0.3], [0.5, 1, 0.2], [0.3, 0.2, 1.0]])
    chol = np.linalg.cholesky(corr)

    def logp(value):
        return float(pm.logp(pm.LKJCorr.dist(n=3, eta=eta), value).eval())

    expected = sum((3 - i + 2 * eta - 2) * np.log(chol[i - 1, i - 1]) for i in (1, 2, 3))
    assert logp(chol) - logp(np.eye(3)) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(("n", "volume"), [(2, 2.0), (3, np.pi**2 / 2)])
def test_uniform_lkj_integrates_to_one(n, volume):
    """LKJ(1) is uniform over correlation matrices, whose set has volume 2 (n = 2) and pi^2 / 2
    (n = 3): the density at the identity (Jacobian 1) is 1 / volume."""
    value = float(pm.logp(pm.LKJCorr.dist(n=n, eta=1.0), np.eye(n)).eval())
    assert value == pytest.approx(-np.log(volume), abs=1e-9)

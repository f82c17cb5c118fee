"""The later period's weights by EM with the segments fixed
(:mod:`analysis.decisions.later_weights`), no sampling: against a direct maximisation of the same
likelihood, and the re-weighting identity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import norm

from analysis.decisions.later_weights import later_weights, reweighted

MEANS = np.array([-1.5, 0.0, 1.5])  # unit-sd segments, heavily overlapping


def memberships(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(S, N, K) float32 memberships of 1-d ``x`` (N,) under (S, K) ``weights``."""
    joint = weights[:, None, :] * norm.pdf(x[:, None], MEANS, 1.0)
    return (joint / joint.sum(axis=-1, keepdims=True)).astype(np.float32)


def direct_mle(x: np.ndarray) -> np.ndarray:
    """The weights maximising sum_i log sum_k w_k N(x_i; mu_k, 1), by BFGS over softmax logits."""
    density = norm.pdf(x[:, None], MEANS, 1.0)

    def negative(logits):
        w = np.exp(logits - logits.max())
        return -np.log(density @ (w / w.sum())).sum()

    logits = minimize(negative, np.zeros(3), method="BFGS", options={"gtol": 1e-9}).x
    w = np.exp(logits - logits.max())
    return w / w.sum()


def test_em_finds_the_maximum_likelihood_weights_from_any_fit_weights():
    rng = np.random.default_rng(5)
    x = rng.normal(MEANS[rng.choice(3, size=2000, p=[0.2, 0.3, 0.5])], 1.0)
    fit = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]])  # three "draws"
    sizes = later_weights(memberships(x, fit), fit)
    target = direct_mle(x)
    np.testing.assert_allclose(sizes, np.tile(target, (3, 1)), atol=2e-5)
    # the first EM step alone (mean membership under the fit's weights) is still biased
    assert np.abs(memberships(x, fit[:1]).mean(axis=1) - target).max() > 0.05


def test_reweighting_is_the_membership_under_the_new_weights():
    rng = np.random.default_rng(6)
    x = rng.normal(size=50)
    old, new = np.array([[0.5, 0.3, 0.2]]), np.array([[0.2, 0.2, 0.6]])
    np.testing.assert_allclose(
        reweighted(memberships(x, old), old, new), memberships(x, new), atol=1e-6
    )
    same = memberships(x, old)
    np.testing.assert_allclose(reweighted(same, old, old), same, atol=1e-7)


def test_segments_nobody_resembles_more_than_segment_0_get_weight_zero():
    x = np.full(30, -1.5)  # everyone at segment 0's mean: the likelihood is largest at w = e_0
    fit = np.array([[0.4, 0.3, 0.3]])
    sizes = later_weights(memberships(x, fit), fit)
    assert sizes[0, 0] == pytest.approx(1.0, abs=1e-3)
    assert sizes.sum() == pytest.approx(1.0)

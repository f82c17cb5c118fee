"""The hurdle mixture: its density against scipy, its draws against its parameters, its model."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
import pytest
from pymc.initial_point import make_initial_point_fn
from scipy import stats
from scipy.special import logsumexp

from analysis.data.simulate import hurdle_mixture
from models.hurdle import (
    DEFAULT_PRIORS,
    build_hurdle,
    initial_point,
    mixture_random,
    segment_log_joint,
)

ZERO_VALUES = (-9.0, -8.0, -10.0)


@pytest.fixture(scope="module")
def truth():
    zero_prob = [[0.1, 0.6, 0.0], [0.5, 0.2, 0.3]]
    return hurdle_mixture(zero_prob, ZERO_VALUES, n=300, weights=(0.6, 0.4), seed=4)


def scipy_log_joint(x, weights, means, covariances, zero_prob):
    """The stated density, one customer and segment at a time: Bernoulli zeros times the
    Gaussian marginal over the positive features; a missing value (NaN) is in neither part."""
    out = np.empty((len(x), len(weights)))
    for i, row in enumerate(x):
        observed = ~np.isnan(row)
        zero = observed & (np.nan_to_num(row) <= np.asarray(ZERO_VALUES))
        positive = observed & ~zero
        for k in range(len(weights)):
            bernoulli = np.where(zero, np.log(zero_prob[k]), np.log1p(-zero_prob[k]))
            value = np.log(weights[k]) + np.sum(bernoulli[observed])
            if positive.any():
                marginal = stats.multivariate_normal(
                    means[k][positive], covariances[k][np.ix_(positive, positive)]
                )
                value += marginal.logpdf(row[positive])
            out[i, k] = value
    return out


def test_segment_log_joint_matches_the_marginal_gaussian_times_bernoulli(truth):
    rng = np.random.default_rng(1)
    weights = np.array([0.3, 0.7])
    means = rng.normal(size=(2, 3))
    covariances = truth.gaussian.covariances
    zero_prob = np.array([[0.2, 0.5, 0.1], [0.4, 0.3, 0.6]])
    chols = np.linalg.cholesky(covariances)
    ours = segment_log_joint(
        pt.as_tensor(truth.x), weights, means, chols, zero_prob, zero_values=ZERO_VALUES
    ).eval()
    expected = scipy_log_joint(truth.x, weights, means, covariances, zero_prob)
    assert (truth.x <= np.asarray(ZERO_VALUES)).any(axis=1).mean() > 0.3  # zeros are exercised
    np.testing.assert_allclose(ours, expected, rtol=1e-10)
    batched = segment_log_joint(
        pt.as_tensor(truth.x),
        np.stack([weights] * 2),
        np.stack([means] * 2),
        np.stack([chols] * 2),
        np.stack([zero_prob] * 2),
        zero_values=ZERO_VALUES,
    ).eval()
    np.testing.assert_allclose(batched[1], expected, rtol=1e-10)


def test_missing_values_drop_out_of_both_parts_of_the_hurdle(truth):
    """Issue 16: a missing value is neither a zero nor a positive spend; what is left is the
    stated density over the customer's observed features."""
    rng = np.random.default_rng(2)
    x = np.where(rng.random(truth.x.shape) < 0.2, np.nan, truth.x)
    weights = np.array([0.3, 0.7])
    means = rng.normal(size=(2, 3))
    covariances = truth.gaussian.covariances
    zero_prob = np.array([[0.2, 0.5, 0.1], [0.4, 0.3, 0.6]])
    chols = np.linalg.cholesky(covariances)
    ours = segment_log_joint(x, weights, means, chols, zero_prob, zero_values=ZERO_VALUES).eval()
    expected = scipy_log_joint(x, weights, means, covariances, zero_prob)
    missing_and_zero = np.isnan(x).any(axis=1) & (x <= np.asarray(ZERO_VALUES)).any(axis=1)
    assert missing_and_zero.sum() > 10  # both kinds in one customer are exercised
    np.testing.assert_allclose(ours, expected, rtol=1e-10)


def test_draws_have_the_zero_shares_and_positive_means_of_the_parameters():
    rng = np.random.default_rng(2)
    weights = np.array([1.0, 0.0])  # every draw from segment 0
    means = np.array([[1.0, -1.0, 2.0], [0.0, 0.0, 0.0]])
    chols = np.stack([np.diag([0.5, 1.0, 0.3])] * 2)
    zero_prob = np.array([[0.25, 0.5, 0.0], [0.9, 0.9, 0.9]])
    draws = mixture_random(
        weights, means, chols, zero_prob, rng=rng, size=(20_000,), zero_values=ZERO_VALUES
    )
    zero = draws == np.asarray(ZERO_VALUES)
    np.testing.assert_allclose(zero.mean(axis=0), zero_prob[0], atol=0.015)
    positive_mean = np.nanmean(np.where(zero, np.nan, draws), axis=0)
    np.testing.assert_allclose(positive_mean, means[0], atol=0.03)


def test_model_has_dims_and_its_likelihood_is_the_hurdle_mixture_at_the_em_start(truth):
    model = build_hurdle(
        truth.x, 2, customers=np.arange(300), features=["a", "b", "c"], zero_values=ZERO_VALUES
    )
    for variable in model.free_RVs + model.deterministics + model.observed_RVs:
        assert model.named_vars_to_dims.get(variable.name), f"{variable.name} has no dims"
    start = initial_point(truth.x, 2, zero_values=ZERO_VALUES, seed=0)
    # EM memberships give each segment its zero shares: near the truth (segments by weight).
    order = np.argsort(-truth.gaussian.weights)
    np.testing.assert_allclose(start["zero_prob"], truth.zero_prob[order].clip(0.02), atol=0.1)
    transformed = make_initial_point_fn(
        model=model, overrides=start, jitter_rvs=set(), return_transformed=True
    )(0)
    loglik = model.compile_fn(model.logp(vars=[model["x"]], sum=False)[0])(transformed)
    structured = start["structured_sd"][:, :, None] * start["corr_chol"]
    covariances = DEFAULT_PRIORS["nugget_sd"] ** 2 * np.eye(3) + structured @ np.swapaxes(
        structured, 1, 2
    )
    expected = logsumexp(
        scipy_log_joint(truth.x, start["weights"], start["means"], covariances, start["zero_prob"]),
        axis=1,
    )
    np.testing.assert_allclose(np.ravel(loglik), expected, rtol=1e-8)

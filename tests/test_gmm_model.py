"""Structure tests of the GMM builder: dims, a finite log density and gradient, one formula."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
import pytest
from pymc.initial_point import make_initial_point_fn
from scipy import stats
from scipy.special import logsumexp

from analysis.data.simulate import gaussian_mixture
from models.gmm import (
    DEFAULT_PRIORS,
    build_gmm,
    initial_point,
    merged_priors,
    mixture_random,
    segment_log_joint,
)


@pytest.fixture(scope="module")
def truth():
    return gaussian_mixture(n=200, n_features=3, seed=3)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_every_variable_has_named_dims_and_logp_is_finite(truth, covariance):
    model = build_gmm(
        truth.x, 3, customers=np.arange(200) + 1000, features=["a", "b", "c"], covariance=covariance
    )
    for variable in model.free_RVs + model.deterministics + model.observed_RVs:
        assert model.named_vars_to_dims.get(variable.name), f"{variable.name} has no dims"
    assert list(model.coords["customer"])[:2] == [1000, 1001]
    point = model.initial_point()
    assert np.isfinite(model.compile_logp()(point))
    assert np.all(np.isfinite(model.compile_dlogp()(point)))


def test_segment_log_joint_matches_scipy(truth):
    rng = np.random.default_rng(0)
    weights = np.array([0.2, 0.5, 0.3])
    means = rng.normal(size=(3, 3))
    chols = np.linalg.cholesky(truth.covariances)
    ours = segment_log_joint(pt.as_tensor(truth.x), weights, means, chols).eval()
    expected = np.stack(
        [
            np.log(weights[k])
            + stats.multivariate_normal(means[k], truth.covariances[k]).logpdf(truth.x)
            for k in range(3)
        ],
        axis=-1,
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-10)
    # Leading draw dims broadcast: two draws at once give both answers.
    batched = segment_log_joint(
        pt.as_tensor(truth.x), np.stack([weights] * 2), np.stack([means] * 2), np.stack([chols] * 2)
    ).eval()
    np.testing.assert_allclose(batched[1], expected, rtol=1e-10)


def test_model_logp_is_the_marginal_mixture_density(truth):
    model = build_gmm(truth.x, 3, customers=np.arange(200), features=["a", "b", "c"])
    point = initial_point(truth.x, 3, seed=0)
    transformed = make_initial_point_fn(
        model=model, overrides=point, jitter_rvs=set(), return_transformed=True
    )(0)
    loglik = np.ravel(model.compile_fn(model.logp(vars=[model["x"]], sum=False)[0])(transformed))
    structured = point["structured_sd"][:, :, None] * point["corr_chol"]
    covariances = DEFAULT_PRIORS["nugget_sd"] ** 2 * np.eye(3) + structured @ structured.transpose(
        0, 2, 1
    )
    expected = logsumexp(
        [
            np.log(point["weights"][k])
            + stats.multivariate_normal(point["means"][k], covariances[k]).logpdf(truth.x)
            for k in range(3)
        ],
        axis=0,
    )
    np.testing.assert_allclose(loglik, expected, rtol=1e-8)


def test_idiomatic_pm_mixture_coding_has_the_same_log_density(truth):
    """The benchmark's pm.Mixture model is the same posterior: equal logp and gradient."""
    point = initial_point(truth.x, 3, seed=0)
    values = []
    for likelihood in ("vectorized", "pm_mixture"):
        model = build_gmm(
            truth.x, 3, customers=np.arange(200), features=["a", "b", "c"], likelihood=likelihood
        )
        transformed = make_initial_point_fn(
            model=model, overrides=point, jitter_rvs=set(), return_transformed=True
        )(0)
        values.append((model.compile_logp()(transformed), model.compile_dlogp()(transformed)))
    np.testing.assert_allclose(values[0][0], values[1][0], rtol=1e-9)
    np.testing.assert_allclose(values[0][1], values[1][1], rtol=1e-7, atol=1e-8)


def test_mixture_random_reproduces_weights_and_means():
    rng = np.random.default_rng(1)
    weights = np.array([0.6, 0.4])
    means = np.array([[-5.0, 0.0], [5.0, 2.0]])
    chol = np.stack([np.eye(2), 0.5 * np.eye(2)])
    draws = mixture_random(weights, means, chol, rng=rng, size=(20_000,))
    assert draws.shape == (20_000, 2)
    left = draws[:, 0] < 0
    assert abs(left.mean() - 0.6) < 0.015
    np.testing.assert_allclose(draws[left].mean(0), means[0], atol=0.05)
    np.testing.assert_allclose(draws[~left].std(0), [0.5, 0.5], atol=0.02)


def test_initial_point_is_ordered_by_weight_and_inside_the_support(truth):
    point = initial_point(truth.x, 3, seed=0)
    assert np.all(np.diff(point["weights"]) <= 0)
    assert np.all(point["structured_sd"] > 0)
    np.testing.assert_allclose(
        np.diagonal(point["corr_chol"] @ point["corr_chol"].transpose(0, 2, 1), 0, 1, 2), 1
    )


def test_priors_merge_and_reject_unknown_keys():
    assert merged_priors({"mean_sd": 3.0})["mean_sd"] == 3.0
    assert merged_priors()["nugget_sd"] == DEFAULT_PRIORS["nugget_sd"]
    with pytest.raises(ValueError, match="unknown GMM prior"):
        merged_priors({"mean_SD": 3.0})


def with_missing(x: np.ndarray, share: float, seed: int) -> np.ndarray:
    """``x`` with each value missing (NaN) completely at random with probability ``share``;
    every row keeps at least one value."""
    rng = np.random.default_rng(seed)
    hidden = rng.random(x.shape) < share
    hidden[hidden.all(axis=1), 0] = False
    return np.where(hidden, np.nan, x)


def test_missing_values_drop_out_as_the_marginal_over_observed_features(truth):
    """Issue 16: a customer's missing features leave the likelihood; the rest is the segment
    Gaussian's marginal over the observed coordinates (scipy on the observed sub-vector)."""
    x = with_missing(truth.x, 0.25, seed=1)
    rng = np.random.default_rng(0)
    weights = np.array([0.2, 0.5, 0.3])
    means = rng.normal(size=(3, 3))
    chols = np.linalg.cholesky(truth.covariances)
    ours = segment_log_joint(x, weights, means, chols).eval()
    expected = np.empty_like(ours)
    for i, row in enumerate(x):
        kept = ~np.isnan(row)
        for k in range(3):
            marginal = stats.multivariate_normal(
                means[k, kept], truth.covariances[k][np.ix_(kept, kept)]
            )
            expected[i, k] = np.log(weights[k]) + marginal.logpdf(row[kept])
    assert np.isnan(x).any(axis=1).sum() > 50
    np.testing.assert_allclose(ours, expected, rtol=1e-10)


def test_model_with_missing_values_has_a_finite_density_and_an_em_start(truth):
    """NaN data enter the graph as a constant (PyMC would impute NaN in pm.Data); the EM start
    with missing values is ordered by weight and the model's density there is finite."""
    x = with_missing(truth.x, 0.1, seed=2)
    model = build_gmm(x, 3, customers=np.arange(200), features=["a", "b", "c"])
    assert [v.name for v in model.free_RVs] == ["weights", "means", "structured_sd", "corr_chol"]
    point = initial_point(x, 3, seed=0)
    assert np.all(np.diff(point["weights"]) <= 0)
    transformed = make_initial_point_fn(
        model=model, overrides=point, jitter_rvs=set(), return_transformed=True
    )(0)
    assert np.isfinite(model.compile_logp()(transformed))
    assert np.all(np.isfinite(model.compile_dlogp()(transformed)))

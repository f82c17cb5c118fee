"""Transforms: round trips, back-transformed means, config round trip, one-hot width."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from analysis.data.transforms import TRANSFORMS, FittedTransform, fit_transform


@pytest.fixture
def spend() -> pd.DataFrame:
    """(200, 3) right-skewed spend with exact zeros, as in the real data."""
    rng = np.random.default_rng(7)
    values = rng.lognormal(mean=[3.0, 1.0, 5.0], sigma=[1.0, 0.5, 1.5], size=(200, 3))
    values[rng.random((200, 3)) < 0.15] = 0.0
    return pd.DataFrame(np.round(values, 2), columns=["wine", "fruit", "meat"])


@pytest.mark.parametrize("name", ["standardize", "log-standardize"])
def test_apply_standardizes_and_to_original_recovers_x(spend, name):
    transform = fit_transform(name, spend)
    z = transform.apply(spend)
    assert z.shape == spend.shape
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(transform.to_original(z), spend.to_numpy(), rtol=1e-10, atol=1e-9)


def test_none_keeps_values_as_given_signed_or_not(spend):
    signed = spend - spend.mean()  # negative values: the domain of standardize and none
    transform = fit_transform("none", signed)
    np.testing.assert_array_equal(transform.apply(signed), signed.to_numpy())
    np.testing.assert_array_equal(transform.to_original(signed.to_numpy()), signed.to_numpy())


@pytest.mark.parametrize("name", ["standardize", "log-standardize"])
def test_model_zero_is_where_zero_spend_lands_and_nothing_else(spend, name):
    """The hurdle model finds zero spends by this value (models.hurdle.ZERO_TOLERANCE)."""
    from models.hurdle import ZERO_TOLERANCE

    transform = fit_transform(name, spend)
    z = transform.apply(spend)
    flagged = np.abs(z - np.asarray(transform.model_zero())) <= ZERO_TOLERANCE
    np.testing.assert_array_equal(flagged, spend.to_numpy() == 0)
    assert flagged.any(axis=0).all()


def test_standardize_matches_sklearn_standard_scaler(spend):
    z = fit_transform("standardize", spend).apply(spend)
    np.testing.assert_allclose(z, StandardScaler().fit_transform(spend), rtol=1e-12)


def test_log_standardize_is_log1p_then_standardize(spend):
    z = fit_transform("log-standardize", spend).apply(spend)
    expected = StandardScaler().fit_transform(np.log1p(spend.to_numpy()))
    np.testing.assert_allclose(z, expected, rtol=1e-12, atol=1e-12)


def test_original_mean_matches_monte_carlo_lognormal(spend):
    transform = fit_transform("log-standardize", spend)
    mean = np.array([0.5, -1.0, 0.2])
    var = np.array([0.3, 0.8, 0.05])
    rng = np.random.default_rng(11)
    draws = rng.normal(mean, np.sqrt(var), size=(400_000, 3))
    monte_carlo = transform.to_original(draws).mean(axis=0)
    analytic = transform.original_mean(mean, var)
    np.testing.assert_allclose(analytic, monte_carlo, rtol=0.01)
    # The mean of x is not the back-transformed mean of z (Jensen): the variance term matters.
    assert np.all(analytic > transform.to_original(mean))


def test_original_mean_is_linear_for_standardize(spend):
    transform = fit_transform("standardize", spend)
    mean = np.array([[0.5, -1.0, 0.2], [0.0, 0.0, 0.0]])
    got = transform.original_mean(mean, np.ones_like(mean))
    np.testing.assert_allclose(got, transform.to_original(mean))
    np.testing.assert_allclose(got[1], spend.mean().to_numpy())


def test_original_probability_below_matches_monte_carlo(spend):
    transform = fit_transform("log-standardize", spend)
    mean, var = np.array([0.0, 0.4, -0.3]), np.array([1.0, 0.5, 2.0])
    draws = np.random.default_rng(3).normal(mean, np.sqrt(var), size=(200_000, 3))
    expected = (transform.to_original(draws) < 20.0).mean(axis=0)
    got = transform.original_probability_below(20.0, mean, var)
    np.testing.assert_allclose(got, expected, atol=0.005)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_config_round_trips_through_json(spend, name):
    frame = spend if name != "one-hot" else spend.astype(int).astype(str).iloc[:, :2]
    transform = fit_transform(name, frame)
    restored = FittedTransform.from_config(json.loads(json.dumps(transform.to_config())))
    assert restored == transform
    np.testing.assert_array_equal(restored.apply(frame), transform.apply(frame))


def test_one_hot_is_drop_first():
    frame = pd.DataFrame(
        {
            "size": pd.Categorical(["1", "2", "5+", "2"], categories=["1", "2", "3", "5+"]),
            "owner": ["Renter", "Homeowner", "Unknown", "Renter"],
        }
    )
    transform = fit_transform("one-hot", frame)
    # 4 categories + 3 observed levels, minus one dropped level per column.
    assert transform.columns == ("size=2", "size=3", "size=5+", "owner=Renter", "owner=Unknown")
    x = transform.apply(frame)
    assert x.shape == (4, 5)
    expected = [[0, 0, 0, 1, 0], [1, 0, 0, 0, 0], [0, 0, 1, 0, 1], [1, 0, 0, 1, 0]]
    np.testing.assert_array_equal(x, expected)


def test_one_hot_width_on_demographics(demographics):
    transform = fit_transform("one-hot", demographics.features)
    levels = demographics.features.apply(lambda column: len(column.cat.categories))
    assert len(transform.columns) == int((levels - 1).sum()) == 32
    x = transform.apply(demographics.features)
    assert x.shape == (801, 32)
    # Each row has at most one 1 per input column, and exactly one unless it is the dropped level.
    assert set(np.unique(x)) == {0.0, 1.0}
    assert x.sum(axis=1).max() <= 7


def test_unknown_transform_is_refused(spend):
    with pytest.raises(ValueError, match="unknown transform"):
        fit_transform("log", spend)

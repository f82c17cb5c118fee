"""Structure tests of the mixed mixture (continuous part times independent categoricals): one
formula against a direct computation, missing values in both parts, draws, the EM start."""

from __future__ import annotations

import numpy as np
import pytest
from pymc.initial_point import make_initial_point_fn
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from models import MIXTURES
from models.lca import sample_households
from models.mixed import log_joint_function, mixture_random

LEVELS = {"home": ["own", "rent", "other"], "kids": ["0", "1+"]}
N_LEVELS = (3, 2)
ITEMS = [f"{v}={level}" for v, lv in LEVELS.items() for level in lv]
WEIGHTS = np.array([0.6, 0.4])
MEANS = np.array([[-1.0, 0.5], [1.5, -0.5]])
CHOL = np.array([[[0.8, 0.0], [0.3, 0.6]], [[0.5, 0.0], [-0.2, 0.7]]])
ZERO_PROB = np.array([[0.3, 0.1], [0.05, 0.4]])
ZERO_VALUES = (-2.5, -2.5)
ITEM_PROBS = np.array([[0.7, 0.2, 0.1, 0.8, 0.2], [0.1, 0.3, 0.6, 0.3, 0.7]])


def options(part: str) -> dict:
    extra = {"zero_values": ZERO_VALUES} if part == "hurdle" else {}
    return {"n_continuous": 2, "levels": LEVELS, "covariance": "full"} | extra


def parameters(part: str) -> list[np.ndarray]:
    zero = [ZERO_PROB] if part == "hurdle" else []
    return [WEIGHTS, MEANS, CHOL, *zero, ITEM_PROBS]


@pytest.fixture(scope="module")
def data():
    """(labels (N,), value (N, 2 + 5)) drawn from the hurdle variant, with 10% of the features
    and the first 5 customers' answers to ``home`` missing."""
    rng = np.random.default_rng(3)
    batch = (240,)
    value = mixture_random(
        WEIGHTS, MEANS, CHOL, ZERO_PROB, ITEM_PROBS, np.zeros(7), rng=rng, size=batch,
        n_levels=N_LEVELS, zero_values=ZERO_VALUES,
    )  # fmt: skip
    value[:, :2][rng.random((240, 2)) < 0.1] = np.nan
    value[:5, 2:5] = 0.0
    return value


def direct_log_joint(value: np.ndarray, part: str) -> np.ndarray:
    """log w_k + log p(x_i[o_i] | k) + sum of log theta over answered variables, by loops."""
    out = np.empty((len(value), 2))
    covariances = CHOL @ np.swapaxes(CHOL, -1, -2)
    for i, row in enumerate(value):
        x, y = row[:2], row[2:]
        observed = ~np.isnan(x)
        zero = observed & (x <= np.asarray(ZERO_VALUES) + 1e-9) if part == "hurdle" else ~observed
        keep = observed & ~zero
        for k in range(2):
            total = np.log(WEIGHTS[k]) + np.log(ITEM_PROBS[k][y == 1]).sum()
            if keep.any():
                total += multivariate_normal(
                    MEANS[k][keep], covariances[k][np.ix_(keep, keep)]
                ).logpdf(x[keep])
            if part == "hurdle":
                total += np.log(ZERO_PROB[k][zero & observed]).sum()
                total += np.log1p(-ZERO_PROB[k][keep]).sum()
            out[i, k] = total
    return out


def joint_function(value: np.ndarray, part: str):
    return log_joint_function(value, 2, options(part).get("zero_values"))


@pytest.mark.parametrize("part", ["gmm", "hurdle"])
def test_segment_log_joint_is_the_continuous_part_times_the_categorical_part(data, part):
    joint = joint_function(data, part)(*parameters(part))
    np.testing.assert_allclose(joint, direct_log_joint(data, part), rtol=1e-9)


@pytest.mark.parametrize("part", ["gmm", "hurdle"])
def test_model_log_density_is_the_mixture_and_the_em_start_is_inside_the_support(data, part):
    mixture = MIXTURES[f"mixed-{part}"]
    features = ["f0", "f1", *ITEMS]
    model = mixture.build(data, 2, customers=np.arange(len(data)), features=features,
                          **options(part))  # fmt: skip
    start = mixture.initial_point(data, 2, seed=0, **options(part))
    assert set(start) == {v.name for v in model.free_RVs}
    assert start["weights"][0] >= start["weights"][1]
    transformed = make_initial_point_fn(
        model=model, overrides=start, jitter_rvs=set(), return_transformed=True
    )(0)
    likelihood = model.compile_fn(model.logp(vars=[model["x"]]))(transformed)
    outputs = model.replace_rvs_by_values([model[name] for name in mixture.parameters])
    point = model.compile_fn(outputs, inputs=model.value_vars, on_unused_input="ignore")(
        transformed
    )
    np.testing.assert_allclose(point[0], start["weights"], rtol=1e-9)
    expected = logsumexp(joint_function(data, part)(*point), axis=1).sum()
    np.testing.assert_allclose(likelihood, expected, rtol=1e-9)
    assert np.isfinite(expected)


def test_draws_give_one_answer_per_variable_and_the_segments_level_shares():
    rng = np.random.default_rng(0)
    draws = mixture_random(
        np.array([1.0, 0.0]), MEANS, CHOL, ITEM_PROBS, np.zeros(7), rng=rng, size=(20_000,),
        n_levels=N_LEVELS,
    )  # fmt: skip
    assert draws.shape == (20_000, 7)
    np.testing.assert_array_equal(draws[:, 2:5].sum(1), 1.0)
    np.testing.assert_array_equal(draws[:, 5:].sum(1), 1.0)
    np.testing.assert_allclose(draws[:, 2:].mean(0), ITEM_PROBS[0], atol=0.015)
    np.testing.assert_allclose(draws[:, :2].mean(0), MEANS[0], atol=0.03)


def test_em_start_recovers_separated_segments_from_both_parts():
    """Continuous means that overlap (1 sd apart) and answers that separate the segments: the
    start finds the segments only by using both parts."""
    rng = np.random.default_rng(1)
    labels, answers = sample_households(
        np.array([0.5, 0.5]),
        np.array([[0.9, 0.05, 0.05, 0.9, 0.1], [0.05, 0.05, 0.9, 0.1, 0.9]]),
        N_LEVELS, rng, (600,),
    )  # fmt: skip
    x = rng.normal(np.where(labels[:, None] == 0, -0.5, 0.5), 1.0, (600, 2))
    start = MIXTURES["mixed-gmm"].initial_point(
        np.concatenate([x, answers], axis=1), 2, seed=0, **options("gmm")
    )
    home = start["theta_home"]  # (K, 3)
    assert {int(np.argmax(home[0])), int(np.argmax(home[1]))} == {0, 2}
    assert np.abs(np.sort(start["means"][:, 0]) - [-0.5, 0.5]).max() < 0.2

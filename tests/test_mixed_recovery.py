"""Mixed model: parameter recovery on simulated data with known truth (issue 16).

Truth: 2 segments (weights 0.6, 0.4) of 500 customers, each with 2 continuous features (means
1.4 sd apart in each, correlated within segment) and 3 categorical answers (3, 4 and 3 levels,
each segment favouring its own level with probability 0.6). 10% of the features and 10% of the
answers are missing completely at random and drop out of the likelihood. Neither part alone
separates the segments well; together they do better (with the true parameters, seed 1: ARI
0.61 from both parts, 0.49 from the features alone, 0.33 from the answers alone; the test
computes these).

The data come from seed 1. Seed 0's sample is one a calibrated posterior must miss: among its
322 customers of segment 0, the mean of f0 is -0.80, 3.4 standard errors from the true -0.60,
and the posterior follows the data there (2 of 26 true values outside the 99% HDI, both of them
that segment's means). Seed 1's segment means are within 1.3 standard errors of the truth.

Label-invariant checks only: fitted segments are matched to the true ones by the distance
between their means (scipy's assignment), never by label order. The fit goes through the
pipeline's ``fit_k``.
"""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from analysis.inference.fit import FitSpec, SamplerSettings, fit_k
from models import gmm
from models.mixed import log_joint_function, mixture_random

pytestmark = pytest.mark.sampling  # every test here fits a posterior (slow ones: slow)

N_CUSTOMERS = 500
WEIGHTS = np.array([0.6, 0.4])
MEANS = np.array([[-0.6, 0.5], [0.8, -0.9]])
CHOL = np.linalg.cholesky(np.array([[[1.0, 0.4], [0.4, 1.0]], [[0.8, -0.2], [-0.2, 0.9]]]))
LEVELS = {"a": ["a0", "a1", "a2"], "b": ["b0", "b1", "b2", "b3"], "c": ["c0", "c1", "c2"]}
N_LEVELS = tuple(len(levels) for levels in LEVELS.values())
ITEM_PROBS = np.array(
    [
        [0.6, 0.25, 0.15, 0.6, 0.2, 0.1, 0.1, 0.2, 0.6, 0.2],
        [0.15, 0.25, 0.6, 0.1, 0.1, 0.2, 0.6, 0.6, 0.2, 0.2],
    ]
)
FEATURES = ["f0", "f1", *(f"{v}={level}" for v, levels in LEVELS.items() for level in levels)]
MISSING_SHARE = 0.10


def simulate(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,), value (N, 2 + 10)) with missing features (NaN) and answers (zero blocks)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(N_CUSTOMERS) < WEIGHTS[1]).astype(int)
    value = np.stack(
        [
            mixture_random(np.eye(2)[k], MEANS, CHOL, ITEM_PROBS, np.zeros(12), rng=rng,
                           size=(), n_levels=N_LEVELS)
            for k in labels
        ]
    )  # fmt: skip
    value[:, :2][rng.random((N_CUSTOMERS, 2)) < MISSING_SHARE] = np.nan
    start = 2
    for n in N_LEVELS:
        value[rng.random(N_CUSTOMERS) < MISSING_SHARE, start : start + n] = 0.0
        start += n
    return labels, value


@pytest.fixture(scope="module")
def truth():
    return simulate(seed=1)


@pytest.fixture(scope="module")
def fitted(truth):
    _, value = truth
    options = {"covariance": "full", "n_continuous": 2, "levels": LEVELS}
    settings = SamplerSettings(chains=4, draws=500, tune=500, seed=3)
    spec = FitSpec("simulated", "tests", "mixed-gmm", {}, options, {}, settings)
    return fit_k(spec, value, 2, np.arange(N_CUSTOMERS), FEATURES)


def matched(fitted) -> np.ndarray:
    """Index of the fitted segment matched to each true segment (label-invariant)."""
    means = fitted["posterior"]["means"].mean(("chain", "draw")).values
    cost = ((means[:, None, :] - MEANS[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return rows[np.argsort(cols)]


def test_recovers_weights_means_and_level_probabilities(fitted):
    """26 true values (2 weights, 4 means, 20 level probabilities) against their HDIs: at most
    1 outside the 99% HDI, at least 22 inside the 94% HDI (expected 24.4)."""
    order = matched(fitted)
    posterior = fitted["posterior"].isel(segment=order)
    inside = {}
    for prob in (0.94, 0.99):
        checks = []
        for name, true in (("weights", WEIGHTS), ("means", MEANS), ("item_probs", ITEM_PROBS)):
            hdi = az.hdi(posterior[name], prob=prob)
            low, high = hdi.sel(ci_bound="lower").values, hdi.sel(ci_bound="upper").values
            checks.append(((low <= true) & (true <= high)).ravel())
        inside[prob] = np.concatenate(checks)
    assert inside[0.94].size == 26
    assert (~inside[0.99]).sum() <= 1, f"{(~inside[0.99]).sum()} of 26 outside the 99% HDI"
    assert inside[0.94].sum() >= 22, f"{inside[0.94].sum()} of 26 inside the 94% HDI"


def true_classification_ari(labels: np.ndarray, value: np.ndarray) -> dict[str, float]:
    """ARI of the modal segment under the true parameters: from both parts, from the features
    alone and from the answers alone."""
    both = log_joint_function(value, 2)(WEIGHTS, MEANS, CHOL, ITEM_PROBS)
    features = gmm.log_joint_function(value[:, :2])(WEIGHTS, MEANS, CHOL)
    answers = np.log(WEIGHTS) + value[:, 2:] @ np.log(ITEM_PROBS).T
    return {
        name: adjusted_rand_score(labels, joint.argmax(axis=1))
        for name, joint in (("both", both), ("features", features), ("answers", answers))
    }


def test_assigns_every_customer_using_both_parts(truth, fitted):
    """The fit classifies almost as well as the true parameters do (ARI within 0.05), and
    better than either part alone could with the true parameters."""
    labels, value = truth
    modal = fitted["assignments"]["modal_segment"].values
    assert len(modal) == N_CUSTOMERS
    ari = adjusted_rand_score(labels, modal)
    reference = true_classification_ari(labels, value)
    assert ari >= reference["both"] - 0.05, (ari, reference)
    assert ari > max(reference["features"], reference["answers"]), (ari, reference)
    assert np.isfinite(fitted["log_likelihood"]["x"].values).all()


def test_diagnostics_pass_and_replicated_data_have_both_parts(fitted):
    diagnostics = json.loads(fitted.attrs["segment_diagnostics"])
    assert diagnostics["divergences"] == 0
    assert diagnostics["max_rhat"] <= 1.02
    replicated = fitted["posterior_predictive"]["x"]
    assert replicated.dims[-2:] == ("customer", "column")
    answers = replicated.isel(column=slice(2, 5)).sum("column")
    np.testing.assert_array_equal(answers, 1.0)  # one answer per variable in every draw

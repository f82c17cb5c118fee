"""Hurdle mixture recovery on simulated data with known truth: one small but real sampling run.

Two segments that differ in who buys (zero probabilities) as much as in how much (means); the
fitted segments are matched to the true ones by their means (label-invariant).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from analysis.data.simulate import hurdle_mixture
from analysis.inference.fit import FitSpec, SamplerSettings, fit_k
from analysis.inference.profiles import continuous_profiles, mean_spend_draws
from tests.test_fit_recovery import hdi_contains, match_to_truth

pytestmark = pytest.mark.sampling  # every test here fits a posterior (slow ones: slow)

FEATURES = ["f0", "f1", "f2"]
ZERO_VALUES = (-8.0, -8.0, -8.0)
ZERO_PROB = [[0.05, 0.5, 0.2], [0.4, 0.1, 0.02]]  # none on the boundary, where no HDI reaches


@pytest.fixture(scope="module")
def truth():
    return hurdle_mixture(ZERO_PROB, ZERO_VALUES, n=500, weights=(0.6, 0.4), seed=9)


@pytest.fixture(scope="module")
def fitted(truth):
    settings = SamplerSettings(chains=4, draws=1000, tune=500, seed=3)
    # Original units = model scale + 8, so a zero spend sits at -8 on the model scale.
    transform = {
        "name": "standardize",
        "columns": FEATURES,
        "center": [8.0] * 3,
        "scale": [1.0] * 3,
    }
    options = {"covariance": "full", "zero_values": list(ZERO_VALUES)}
    spec = FitSpec(
        "simulated", "analysis.data.simulate", "hurdle", transform, options, {}, settings
    )
    return fit_k(spec, truth.x, 2, np.arange(len(truth.x)), FEATURES)


def test_recovers_weights_means_zero_probabilities_and_assignments(truth, fitted):
    """14 true values (2 weights, 6 means, 6 zero probabilities): all inside their 99% HDI, at
    least 12 inside the 94% HDI (what a calibrated posterior delivers, see test_fit_recovery)."""
    diagnostics = json.loads(fitted.attrs["segment_diagnostics"])
    assert diagnostics["status"] == "ok", diagnostics["reason"]
    means = fitted["posterior"]["means"].mean(("chain", "draw")).values
    order = match_to_truth(means, truth.gaussian.means)
    values = {
        "weights": truth.gaussian.weights,
        "means": truth.gaussian.means,
        "zero_prob": np.asarray(ZERO_PROB),
    }
    inside = {
        prob: np.concatenate([hdi_contains(fitted, n, v, order, prob) for n, v in values.items()])
        for prob in (0.94, 0.99)
    }
    assert inside[0.99].all()
    assert inside[0.94].sum() >= 12
    modal = fitted["assignments"]["modal_segment"].values
    assert adjusted_rand_score(truth.gaussian.labels, modal) >= 0.9


def test_mean_spend_counts_the_zeros(truth, fitted):
    """Per true segment, the profile's mean spend (zeros included, original units) is the
    observed mean of its customers' spend."""
    order = match_to_truth(
        fitted["posterior"]["means"].mean(("chain", "draw")).values, truth.gaussian.means
    )
    profile = mean_spend_draws(fitted).mean(("chain", "draw")).values[order]
    spend = truth.x + 8.0
    observed = np.stack([spend[truth.gaussian.labels == k].mean(axis=0) for k in range(2)])
    np.testing.assert_allclose(profile, observed, atol=0.25)


def test_profiles_show_the_zero_probabilities_and_their_hdis(truth, fitted):
    """profiles.csv carries pi_kd (posterior mean, 94% HDI) per segment and feature, and it
    agrees with the observed share of zeros of the segment's true customers."""
    _, profiles = continuous_profiles(fitted)
    order = match_to_truth(
        fitted["posterior"]["means"].mean(("chain", "draw")).values, truth.gaussian.means
    )
    table = profiles.set_index(["segment", "feature"])
    segments = fitted["posterior"]["segment"].values[order]
    for true_k, k in enumerate(segments):
        customers = truth.gaussian.labels == true_k
        observed = (truth.x[customers] == np.asarray(ZERO_VALUES)).mean(axis=0)
        rows = table.loc[k].loc[FEATURES]
        assert (rows["zero_prob_hdi_low"] <= rows["zero_prob"]).all()
        assert (rows["zero_prob"] <= rows["zero_prob_hdi_high"]).all()
        np.testing.assert_allclose(rows["zero_prob"], observed, atol=0.03)

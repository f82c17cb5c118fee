"""Mode finding on synthetic relabelled posteriors whose chain groupings are known exactly."""

from __future__ import annotations

import json
import re

import numpy as np
import xarray as xr

from analysis.inference.modes import (
    SEPARATION_SD,
    describe_modes,
    find_modes,
    pairwise_separation,
    summary,
)

VARIABLES = ("weights", "means", "scales")
DRAWS = 500
CONCENTRATION = 250.0  # Dirichlet-like weight sd: 0.03 at weight 0.5, 0.006 at 0.01
MEANS = np.array([[-1.0, 0.5], [0.0, 0.0], [1.5, -0.5]])  # (K, D) shared by every chain
PARAMETER_SD = 0.05
LP_SD = 3.0


def fake_fit(weights, lp, shift=None, means_shift=None, chains=None, seed=0):
    """Independent normal draws of C chains: a posterior dataset and its lp (chain, draw).

    weights (C, K) and lp (C,) are the chain means; means (K, D) centre on MEANS, scales (K, D)
    on 1, in every chain, plus ``means_shift`` (C, K, D) if given; shift (C,) moves every
    scalar of a chain by that many within-chain sd; chains are the chain coordinate values.
    """
    rng = np.random.default_rng(seed)
    weights = np.asarray(weights, dtype=float)
    n_chains = len(weights)
    shift = np.zeros(n_chains) if shift is None else np.asarray(shift, dtype=float)
    means = np.broadcast_to(MEANS, (n_chains, *MEANS.shape))
    if means_shift is not None:
        means = means + means_shift

    def draw(centre, sd):
        centre = np.asarray(centre, dtype=float)
        offset = shift.reshape(n_chains, *[1] * centre.ndim)  # (C, 1, ...) per chain, per draw
        noise = rng.standard_normal((n_chains, DRAWS, *centre.shape[1:]))
        return centre[:, None] + np.asarray(sd)[:, None] * (offset + noise)

    coords = {
        "chain": np.arange(n_chains) if chains is None else np.asarray(chains),
        "draw": np.arange(DRAWS),
        "segment": np.arange(MEANS.shape[0]),
        "feature": ["income", "spend"],
    }
    weight_sd = np.sqrt(weights * (1 - weights) / (CONCENTRATION + 1))
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "segment"), draw(weights, weight_sd)),
            "means": (
                ("chain", "draw", "segment", "feature"),
                draw(means, np.full_like(means, PARAMETER_SD)),
            ),
            "scales": (
                ("chain", "draw", "segment", "feature"),
                draw(np.ones_like(means), np.full_like(means, PARAMETER_SD)),
            ),
        },
        coords=coords,
    )
    lp_draws = draw(np.asarray(lp, dtype=float), np.full(n_chains, LP_SD))
    lp = xr.DataArray(lp_draws, dims=("chain", "draw"), coords={"chain": coords["chain"]})
    return posterior, lp


def test_chains_around_the_same_values_form_one_mode():
    posterior, lp = fake_fit([[0.5, 0.3, 0.2]] * 4, [0.0] * 4)
    separation = pairwise_separation(posterior, lp, VARIABLES)
    assert separation.shape == (4, 4)
    np.testing.assert_array_equal(np.diag(separation), 0.0)
    np.testing.assert_allclose(separation, separation.T)
    modes = find_modes(posterior, lp, VARIABLES)
    assert [mode.chains for mode in modes] == [(0, 1, 2, 3)]
    assert modes[0].draws == 4 * DRAWS
    np.testing.assert_allclose(modes[0].weights, [0.5, 0.3, 0.2], atol=0.005)
    assert describe_modes(modes, posterior, VARIABLES) == []


def test_slowly_mixing_chains_offset_by_a_fifth_of_an_sd_stay_one_mode():
    posterior, lp = fake_fit([[0.5, 0.3, 0.2]] * 4, [0.0] * 4, shift=[0.0, 0.2, 0.0, 0.2])
    separation = pairwise_separation(posterior, lp, VARIABLES)
    assert 0.2 < separation.max() < SEPARATION_SD
    assert [mode.chains for mode in find_modes(posterior, lp, VARIABLES)] == [(0, 1, 2, 3)]


def test_chains_that_empty_a_segment_form_a_second_lower_mode():
    emptied, full = [0.6, 0.39, 0.01], [0.5, 0.3, 0.2]
    posterior, lp = fake_fit([emptied, full, full, emptied], [-15.0, 0.0, 0.0, -15.0])
    modes = find_modes(posterior, lp, VARIABLES)
    assert [mode.chains for mode in modes] == [(1, 2), (0, 3)]
    assert [mode.draws for mode in modes] == [2 * DRAWS, 2 * DRAWS]
    np.testing.assert_allclose(modes[0].mean_lp - modes[1].mean_lp, 15.0, atol=0.5)
    np.testing.assert_allclose(modes[1].weights, emptied, atol=0.005)
    (sentence,) = describe_modes(modes, posterior, VARIABLES)
    empty = r"segment 2 nearly empty \(weight 0\.01 vs 0\.20\)"
    assert re.fullmatch(r"chains 0, 3: mean log density 1[45]\.\d lower; " + empty, sentence)


def test_three_ways_of_splitting_overlapping_groups_are_three_modes():
    chain_weights = [[0.60, 0.33, 0.07], [0.51, 0.34, 0.16], [0.36, 0.34, 0.31]]
    posterior, lp = fake_fit(chain_weights, [0.0, -3.0, -6.0])
    modes = find_modes(posterior, lp, VARIABLES)
    assert [mode.chains for mode in modes] == [(0,), (1,), (2,)]
    first, second = describe_modes(modes, posterior, VARIABLES)
    lower = r"chains {}: mean log density {}\.\d lower; "
    weights = r"segment 0 weight {} vs 0\.60, segment 2 weight {} vs 0\.07"
    assert re.fullmatch(lower.format(1, "[23]") + weights.format(r"0\.51", r"0\.16"), first)
    assert re.fullmatch(lower.format(2, "[56]") + weights.format(r"0\.36", r"0\.31"), second)


def test_modes_with_equal_weights_are_told_apart_by_the_largest_standardized_difference():
    means_shift = np.zeros((2, *MEANS.shape))
    means_shift[1, 1, 1] = 0.5  # 10 sd: chain 2's segment 1 spend mean
    posterior, lp = fake_fit(
        [[0.5, 0.3, 0.2]] * 2, [0.0, -1.0], means_shift=means_shift, chains=[1, 2]
    )
    modes = find_modes(posterior, lp, VARIABLES)
    assert [mode.chains for mode in modes] == [(1,), (2,)]
    (sentence,) = describe_modes(modes, posterior, VARIABLES)
    spend = r"means segment 1, feature spend 0\.[45]\d* vs -?0\.0\d* \(\d+\.\d sd\)"
    assert re.fullmatch(r"chains 2: mean log density [01]\.\d lower; " + spend, sentence)


def test_summary_is_json_able_and_round_trips():
    emptied, full = [0.6, 0.39, 0.01], [0.5, 0.3, 0.2]
    posterior, lp = fake_fit([emptied, full, full, emptied], [-15.0, 0.0, 0.0, -15.0])
    modes = find_modes(posterior, lp, VARIABLES)
    stored = summary(modes)
    assert json.loads(json.dumps(stored)) == stored
    assert [entry["chains"] for entry in stored] == [[1, 2], [0, 3]]
    assert stored[1]["draws"] == 2 * DRAWS
    np.testing.assert_allclose(stored[1]["weights"], modes[1].weights)
    assert stored[0]["mean_lp"] == modes[0].mean_lp

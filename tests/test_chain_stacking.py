"""Stacking over chains: weights against a closed form, the stacked elpd, and ArviZ's compare.

The log-likelihood draws are constant within a chain up to a seeded jitter of 1e-6 (exactly
constant draws make PSIS fail: "All tail values are the same"), so each chain's PSIS-LOO
elpd_i is its log-likelihood value to about 1e-6.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
import xarray as xr

from analysis.inference.chain_stacking import stack_chains, stacked_elpd_data
from analysis.inference.elpd import psis_loo, summed

DRAWS = 200
JITTER = 1e-6
N1, N2 = 30, 10  # customers that chain 0 predicts better, and those chain 1 predicts better
LOG_A, LOG_B = -1.0, -3.0  # log predictive densities of the better and the worse chain


def chain_tree(log_lik: np.ndarray, seed: int = 0) -> xr.DataTree:
    """A fit whose chain c has log-likelihood ``log_lik[c]`` (C, N) at every draw."""
    rng = np.random.default_rng(seed)
    n_chains, n = log_lik.shape
    draws = log_lik[:, None, :] + JITTER * rng.normal(size=(n_chains, DRAWS, n))
    posterior = xr.Dataset({"mu": (("chain", "draw"), rng.normal(size=(n_chains, DRAWS)))})
    log_likelihood = xr.Dataset(
        {"y": (("chain", "draw", "household"), draws)},
        coords={"household": [f"h{i}" for i in range(n)]},
    )
    return xr.DataTree.from_dict({"posterior": posterior, "log_likelihood": log_likelihood})


def two_modes(offset: float = 0.0) -> np.ndarray:
    """Chain 0 has density a on the first N1 customers and b on the last N2; chain 1 reverse."""
    a, b = LOG_A + offset, LOG_B + offset
    return np.array([[a] * N1 + [b] * N2, [b] * N1 + [a] * N2])


def closed_form_weight() -> float:
    """Chain 0's stacking weight for :func:`two_modes`.

    f(w) = N1 log(w a + (1 - w) b) + N2 log(w b + (1 - w) a), with d = a - b:
    f'(w) = N1 d / (b + w d) - N2 d / (a - w d) = 0  <=>  N1 (a - w d) = N2 (b + w d)
    <=>  w* = (N1 a - N2 b) / ((N1 + N2) d). f is concave, so w* is the maximum (here in (0, 1)).
    """
    a, b = math.exp(LOG_A), math.exp(LOG_B)
    return (N1 * a - N2 * b) / ((N1 + N2) * (a - b))


@pytest.fixture(scope="module")
def two_mode_tree() -> xr.DataTree:
    return chain_tree(two_modes())


@pytest.fixture(scope="module")
def two_mode_stack(two_mode_tree):
    return stack_chains(two_mode_tree, "y")


def test_weights_match_the_closed_form(two_mode_stack):
    w = closed_form_weight()
    assert 0.8 < w < 0.85  # 0.8283: an interior optimum, not a vertex
    np.testing.assert_allclose(two_mode_stack.weights, [w, 1 - w], atol=1e-3)
    assert two_mode_stack.weights.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(two_mode_stack.chains, [0, 1])
    assert two_mode_stack.notes == ()


def test_weights_survive_elpd_that_underflows_exp():
    # exp(-1001) is 0.0 in float64: unshifted, ArviZ's optimiser would stay at (0.5, 0.5)
    stack = stack_chains(chain_tree(two_modes(offset=-1000.0)), "y")
    w = closed_form_weight()
    np.testing.assert_allclose(stack.weights, [w, 1 - w], atol=1e-3)
    assert np.all(np.isfinite(stack.pointwise))


def test_a_chain_better_everywhere_takes_all_the_weight():
    rng = np.random.default_rng(1)
    better = rng.normal(-2.0, 0.3, size=40)
    stack = stack_chains(chain_tree(np.stack([better - 1.0, better]), seed=1), "y")
    np.testing.assert_allclose(stack.weights, [0.0, 1.0], atol=1e-6)
    assert stack.elpd == pytest.approx(stack.chain_elpd[1], abs=1e-5)
    assert stack.elpd == pytest.approx(better.sum(), abs=1e-4)
    # the negligible chain's Pareto k is left out of the stacked k
    stacked = stacked_elpd_data(stack, psis_loo(chain_tree(np.stack([better])), "y"))
    np.testing.assert_array_equal(stacked.pareto_k.values, stack.pareto_k[1])


def test_stacked_pointwise_and_its_sum_and_se():
    rng = np.random.default_rng(2)
    log_lik = rng.normal(-3.0, 1.0, size=(3, 25))
    stack = stack_chains(chain_tree(log_lik, seed=2), "y")
    np.testing.assert_allclose(stack.chain_pointwise, log_lik, atol=1e-5)
    np.testing.assert_allclose(stack.chain_elpd, stack.chain_pointwise.sum(axis=1), rtol=1e-12)
    hand = np.log(np.sum(stack.weights[:, None] * np.exp(stack.chain_pointwise), axis=0))
    np.testing.assert_allclose(stack.pointwise, hand, rtol=1e-12)
    elpd, se = summed(hand)
    assert stack.elpd == pytest.approx(elpd, rel=1e-12)
    assert stack.se == pytest.approx(math.sqrt(25) * np.std(hand, ddof=1), rel=1e-12)
    assert stack.se == pytest.approx(se, rel=1e-12)
    # the optimum is at least as good as any single chain (a vertex of the simplex)
    assert stack.elpd >= stack.chain_elpd.max() - 1e-6
    assert stack.pareto_k.shape == (3, 25)
    assert stack.n_samples == 3 * DRAWS


def test_mode_weights_sums_groups_of_chain_positions(two_mode_stack):
    stack = replace(two_mode_stack, weights=np.array([0.1, 0.2, 0.7]))
    np.testing.assert_allclose(stack.mode_weights([[0, 2], [1]]), [0.8, 0.2])
    np.testing.assert_allclose(stack.mode_weights([[1], [], [0, 1, 2]]), [0.2, 0.0, 1.0])


def test_stacked_elpd_data_goes_into_compare_beside_a_plain_loo(two_mode_tree, two_mode_stack):
    import arviz as az

    plain = psis_loo(two_mode_tree, "y")
    stacked = stacked_elpd_data(two_mode_stack, plain)
    assert type(stacked) is type(plain)
    assert stacked.elpd_i.dims == plain.elpd_i.dims == ("household",)
    np.testing.assert_array_equal(stacked.elpd_i["household"], plain.elpd_i["household"])
    np.testing.assert_allclose(stacked.elpd_i.values, two_mode_stack.pointwise)
    np.testing.assert_array_equal(stacked.pareto_k.values, two_mode_stack.pareto_k.max(axis=0))
    assert stacked.p == pytest.approx(two_mode_stack.weights @ two_mode_stack.chain_p)
    assert (stacked.n_data_points, stacked.n_samples) == (N1 + N2, 2 * DRAWS)
    assert stacked.good_k == two_mode_stack.good_k
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = az.compare({"stacked": stacked, "pooled": plain}, round_to="none")
    assert set(table.index) == {"stacked", "pooled"}
    assert table.loc["stacked", "elpd"] == pytest.approx(two_mode_stack.elpd)
    assert table.loc["stacked", "se"] == pytest.approx(two_mode_stack.se)
    assert table["weight"].sum() == pytest.approx(1.0, abs=1e-6)

"""WAIC against a hand calculation, and against PSIS-LOO where the two must agree."""

from __future__ import annotations

import math
import statistics

import arviz as az
import numpy as np
import pytest
import xarray as xr

from analysis.selection.waic import waic

# log p(y_i | theta_s): 2 chains x 2 draws, 3 customers.
TINY = [
    [[-1.0, -2.0, -0.5], [-1.5, -2.5, -0.7]],
    [[-0.8, -3.0, -0.6], [-1.2, -2.2, -0.4]],
]


def hand_waic(values: list[list[list[float]]]) -> tuple[float, float, float]:
    """elpd_waic, se and p_waic with the math module, one customer at a time."""
    draws = [draw for chain in values for draw in chain]  # S lists of n values
    n = len(draws[0])
    elpd_i, p_i = [], []
    for i in range(n):
        column = [draw[i] for draw in draws]
        lppd = math.log(sum(math.exp(v) for v in column) / len(column))
        p = statistics.variance(column)  # sample variance, divisor S - 1
        p_i.append(p)
        elpd_i.append(lppd - p)
    se = math.sqrt(n) * statistics.stdev(elpd_i)
    return sum(elpd_i), se, sum(p_i)


def as_dataarray(values) -> xr.DataArray:
    return xr.DataArray(np.asarray(values), dims=("chain", "draw", "customer"))


def test_waic_matches_hand_calculation():
    result = waic(as_dataarray(TINY))
    elpd, se, p = hand_waic(TINY)
    assert result.elpd == pytest.approx(elpd, rel=1e-12)
    assert result.se == pytest.approx(se, rel=1e-12)
    assert result.p == pytest.approx(p, rel=1e-12)
    assert (result.n_data_points, result.n_samples) == (3, 4)
    # the written-out number for customer 0, as a check on the helper itself:
    # lppd_0 = log(mean(exp([-1, -1.5, -0.8, -1.2]))), Var = 0.0891666...
    lppd_0 = math.log((math.exp(-1) + math.exp(-1.5) + math.exp(-0.8) + math.exp(-1.2)) / 4)
    assert result.elpd_i[0] == pytest.approx(lppd_0 - 0.0891666666666667, rel=1e-12)


def test_waic_reads_the_log_likelihood_group_of_a_datatree():
    tree = xr.DataTree.from_dict({"log_likelihood": xr.Dataset({"x": as_dataarray(TINY)})})
    assert waic(tree).elpd == pytest.approx(hand_waic(TINY)[0], rel=1e-12)


def test_constant_draws_have_no_penalty():
    values = np.broadcast_to(np.array([-1.0, -2.0, -3.0]), (2, 5, 3))
    result = waic(as_dataarray(values))
    assert result.p == 0.0
    assert result.elpd == pytest.approx(-6.0)


def test_waic_agrees_with_psis_loo_on_a_regular_posterior():
    """Normal mean, known sd 1, flat prior: 200 points, exact posterior draws. WAIC and LOO are
    asymptotically equivalent here; they agree to well within their SE (about 14)."""
    rng = np.random.default_rng(3)
    y = rng.normal(size=200)
    mu = rng.normal(y.mean(), 1 / np.sqrt(len(y)), size=(4, 1000))
    log_lik = -0.5 * (y[None, None, :] - mu[..., None]) ** 2 - 0.5 * np.log(2 * np.pi)
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"mu": (("chain", "draw"), mu)}),
            "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), log_lik)}),
        }
    )
    result = waic(tree)
    loo = az.loo(tree)
    assert result.elpd == pytest.approx(loo.elpd, abs=0.05)
    assert result.p == pytest.approx(loo.p, abs=0.05)
    assert result.se == pytest.approx(loo.se, rel=0.01)
    assert result.p == pytest.approx(1.0, abs=0.3)  # one parameter

"""PSIS-LOO on a fit where ArviZ cannot smooth a customer's tail: no traceback, the customer
scored by plain importance sampling and flagged with Pareto k = inf."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy.special import logsumexp

from analysis.inference.elpd import psis_loo


def loglik_tree(loglik: np.ndarray) -> xr.DataTree:
    chains, draws, _ = loglik.shape
    rng = np.random.default_rng(0)
    return xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"mu": (("chain", "draw"), rng.normal(size=(chains, draws)))}),
            "log_likelihood": xr.Dataset({"x": (("chain", "draw", "customer"), loglik)}),
        }
    )


def test_a_customer_with_a_flat_tail_gets_plain_is_loo_and_infinite_k():
    rng = np.random.default_rng(0)
    loglik = rng.normal(-2.0, 0.3, size=(2, 100, 20))
    loglik[:, :, 3] = -1.5  # the same in every draw: ArviZ's Pareto fit raises for the whole fit
    with pytest.raises(ValueError, match="All tail values are the same"):
        az.loo(loglik_tree(loglik), pointwise=True, var_name="x")
    result = psis_loo(loglik_tree(loglik), "x")
    others = az.loo(loglik_tree(np.delete(loglik, 3, axis=2)), pointwise=True, var_name="x")
    assert result.n_data_points == 20
    assert result.elpd_i.values[3] == pytest.approx(-1.5)  # log mean of a constant likelihood
    assert np.isinf(result.pareto_k.values[3])
    np.testing.assert_allclose(np.delete(result.elpd_i.values, 3), others.elpd_i.values)
    np.testing.assert_allclose(np.delete(result.pareto_k.values, 3), others.pareto_k.values)
    assert result.elpd == pytest.approx(others.elpd - 1.5)
    assert result.se == pytest.approx(np.sqrt(20 * np.var(result.elpd_i.values, ddof=1)))


def test_a_fit_arviz_can_smooth_is_left_to_arviz():
    rng = np.random.default_rng(1)
    loglik = rng.normal(-2.0, 0.3, size=(2, 100, 10))
    ours, theirs = psis_loo(loglik_tree(loglik), "x"), az.loo(loglik_tree(loglik), var_name="x")
    assert ours.elpd == pytest.approx(theirs.elpd)
    raw = np.log(200) - logsumexp(-loglik.reshape(200, 10), axis=0)  # unsmoothed IS-LOO
    assert not np.allclose(ours.elpd_i.values, raw)  # smoothed, not the fallback

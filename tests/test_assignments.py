"""hdi_nearest is ArviZ's nearest HDI, value for value, for every cell at once."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

from analysis.inference.assignments import HDI_PROB, hdi_nearest


@pytest.mark.parametrize("n_samples", [7, 300, 1001])
def test_hdi_nearest_matches_arviz(n_samples):
    rng = np.random.default_rng(n_samples)
    samples = rng.beta(0.5, 0.5, size=(n_samples, 40, 3)).astype(np.float32)
    samples[:, 0, 0] = 1.0  # all tied
    samples[: n_samples // 2, 1, 1] = 0.25  # half tied
    draws = xr.DataArray(samples[None], dims=("chain", "draw", "customer", "segment"))
    expected = az.hdi(draws, prob=HDI_PROB)
    lower, upper = hdi_nearest(samples, HDI_PROB)
    np.testing.assert_array_equal(lower, expected.sel(ci_bound="lower").values)
    np.testing.assert_array_equal(upper, expected.sel(ci_bound="upper").values)

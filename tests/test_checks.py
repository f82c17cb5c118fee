"""Predictive checks on constructed fits whose zero shares are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from analysis.data.transforms import fit_transform
from analysis.reporting.predictive_checks import predictive_figure, zero_share_table


def constructed_tree():
    rng = np.random.default_rng(0)
    n = 400
    spend = pd.DataFrame({"a": 5 + rng.gamma(2.0, 50.0, n), "b": 5 + rng.gamma(2.0, 50.0, n)})
    spend.loc[:99, "b"] = 0.0  # 25% exact zeros in b, none in a
    spend.loc[100:119, "b"] = 1.0  # exactly one unit: not "below one unit"
    transform = fit_transform("log-standardize", spend)
    observed = transform.apply(spend)
    # Replicates: observed data with 10% of b set to zero in every draw.
    replicated = np.repeat(observed[None, None], 30, axis=1).copy()
    zero_b = transform.apply(pd.DataFrame({"a": [0.0], "b": [0.0]}))[0, 1]
    replicated[:, :, :40, 1] = zero_b
    replicated[:, :, 40:, 1] = rng.normal(2.0, 0.1, (1, 30, n - 40))
    dims = ("customer", "feature")
    coords = {"customer": np.arange(n), "feature": ["a", "b"]}
    tree = xr.DataTree.from_dict(
        {
            "observed_data": xr.Dataset({"x": (dims, observed)}, coords=coords),
            "posterior_predictive": xr.Dataset(
                {"x": (("chain", "draw", *dims), replicated)}, coords=coords
            ),
        }
    )
    return tree, transform


def test_zero_share_table_counts_spend_below_one_unit():
    tree, transform = constructed_tree()
    table = zero_share_table(tree, transform)
    assert table.loc["a", "observed"] == 0.0
    assert table.loc["b", "observed"] == 0.25  # the 1.0 values do not count as zero
    assert np.isclose(table.loc["b", "replicated_mean"], 0.10)
    assert not table.loc["b", "inside_hdi"]
    assert table.loc["a", "inside_hdi"]


def test_predictive_figure_has_one_panel_per_feature():
    tree, _ = constructed_tree()
    figure = predictive_figure(tree, n_lines=5)
    titles = [axis.get_title() for axis in figure.axes if axis.get_visible()]
    assert titles == ["a", "b"]

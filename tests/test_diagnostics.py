"""The pass/fail rule on constructed draws, and which failures call for a longer warm-up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from analysis.diagnostics import MIN_BFMI, diagnose, unmixed_ks


def draws(offsets) -> tuple[xr.Dataset, xr.Dataset]:
    """4 chains x 1000 independent normal draws of ``means`` (segment 2) shifted per chain, and
    sample stats with independent energies (E-BFMI about 2) and no divergences."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(4, 1000, 2)) + np.asarray(offsets)[:, None, None]
    posterior = xr.Dataset({"means": (("chain", "draw", "segment"), values)})
    stats = xr.Dataset(
        {
            "energy": (("chain", "draw"), rng.normal(size=(4, 1000))),
            "diverging": (("chain", "draw"), np.zeros((4, 1000), dtype=bool)),
        }
    )
    return posterior, stats


def test_mixed_chains_pass():
    posterior, stats = draws([0, 0, 0, 0])
    result = diagnose(posterior, stats, ("means",))
    assert result["status"] == "ok", result["reason"]
    assert result["max_rhat"] < 1.01 and result["min_ess_bulk"] > 2000


def test_a_chain_in_another_mode_fails_on_rhat_and_names_it():
    posterior, stats = draws([0, 0, 0, 1.0])
    result = diagnose(posterior, stats, ("means",))
    assert result["status"] == "failed"
    assert result["reason"].startswith("R-hat ") and result["max_rhat"] > 1.1
    assert result["divergences"] == 0


def test_divergences_fail_the_fit():
    posterior, stats = draws([0, 0, 0, 0])
    stats["diverging"][0, :3] = True
    result = diagnose(posterior, stats, ("means",))
    assert result["status"] == "failed" and "3 divergent transitions" in result["reason"]


def test_only_rhat_and_ess_failures_are_called_unmixed():
    table = pd.DataFrame(
        {
            "K": [1, 2, 3, 4, 5],
            "status": ["ok", "failed", "failed", "failed", "failed"],
            "divergences": [0, 0, 12, 0, 0],
            "min_bfmi": [1.0, 0.9, 0.9, MIN_BFMI / 2, MIN_BFMI],
        }
    )
    assert unmixed_ks(table) == [2, 5]

"""The diagnosis rule on constructed draws: ok, slow, multimodal (with its chains), divergent."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from analysis.inference.diagnostics import diagnose

CHAINS, DRAWS = 4, 1000


def draws(offsets, lp_offsets=(0, 0, 0, 0)) -> tuple[xr.Dataset, xr.Dataset]:
    """4 chains x 1000 independent normal draws of ``means`` (segment 2) shifted per chain by
    ``offsets`` (posterior sd units), fixed ``weights``, and sample stats with independent
    energies (E-BFMI about 2), ``lp`` shifted per chain by ``lp_offsets``, no divergences."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(CHAINS, DRAWS, 2)) + np.asarray(offsets)[:, None, None]
    weights = np.broadcast_to([0.5, 0.5], (CHAINS, DRAWS, 2)) + rng.normal(
        scale=1e-3, size=(CHAINS, DRAWS, 2)
    )
    posterior = xr.Dataset(
        {
            "means": (("chain", "draw", "segment"), values),
            "weights": (("chain", "draw", "segment"), weights),
        },
        coords={"chain": np.arange(CHAINS), "segment": np.arange(2)},
    )
    lp = rng.normal(size=(CHAINS, DRAWS)) + np.asarray(lp_offsets)[:, None]
    stats = xr.Dataset(
        {
            "energy": (("chain", "draw"), rng.normal(size=(CHAINS, DRAWS))),
            "diverging": (("chain", "draw"), np.zeros((CHAINS, DRAWS), dtype=bool)),
            "lp": (("chain", "draw"), lp),
        },
        coords={"chain": np.arange(CHAINS)},
    )
    return posterior, stats


def test_mixed_chains_pass():
    posterior, stats = draws([0, 0, 0, 0])
    result = diagnose(posterior, stats, ("means",))
    assert result["status"] == "ok", result["reason"]
    assert result["max_rhat"] < 1.01 and result["min_ess_bulk"] > 2000
    assert result["n_modes"] == 1


def test_chains_a_fraction_of_an_sd_apart_are_slow_not_multimodal():
    posterior, stats = draws([0, 0.3, 0, 0.3])
    result = diagnose(posterior, stats, ("means",))
    assert result["max_rhat"] > 1.01
    assert result["status"] == "slow" and result["n_modes"] == 1
    assert "more warm-up and draws" in result["reason"]


def test_chains_in_another_mode_are_multimodal_with_their_chains():
    posterior, stats = draws([0, 3.0, 0, 3.0], lp_offsets=[0, -20, 0, -20])
    result = diagnose(posterior, stats, ("means",))
    assert result["status"] == "multimodal", result["reason"]
    assert [mode["chains"] for mode in result["modes"]] == [[0, 2], [1, 3]]
    assert "chains 1, 3: mean log density 20" in result["reason"]


def test_divergences_make_a_fit_divergent_and_name_where():
    posterior, stats = draws([0, 0, 0, 0])
    stats["diverging"][0, :3] = True
    posterior["means"][0, :3, 1] = -4.0  # the divergent draws sit far out on means[1]
    result = diagnose(posterior, stats, ("means",))
    assert result["status"] == "divergent"
    assert "3 divergent transitions (chains 0), at means[1]" in result["reason"]


def test_a_constant_parameter_is_diagnosed_without_a_warning():
    """At K = 1 the one weight is 1.0 in every draw: its R-hat is 0/0. The fit is still judged
    on the other parameters, and no RuntimeWarning reaches the user's terminal."""
    posterior, stats = draws([0, 0, 0, 0])
    posterior["weights"] = xr.ones_like(posterior["weights"].isel(segment=[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = diagnose(posterior, stats, ("means", "weights"))
    assert result["status"] == "ok", result["reason"]
    assert 1.0 <= result["max_rhat"] < 1.01

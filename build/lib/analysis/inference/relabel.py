"""Undo label switching: permute each posterior draw's segments onto one common labelling.

Method: Stephens (2000, JRSS-B 62:795-809), the Kullback-Leibler relabelling algorithm, started
from a pivot as in ECR (Papastamoulis & Iliopoulos 2010, JCGS 19:313-331). With p[s, i, j] the
membership probabilities of draw s and q[i, k] a reference, each draw's permutation minimises

    sum_i sum_k p[s, i, perm_s(k)] * log(p[s, i, perm_s(k)] / q[i, k]),

a K x K assignment problem per draw with cost C[s, j, k] = -sum_i p[s, i, j] log q[i, k]
(solved by ``scipy.optimize.linear_sum_assignment``). q starts as the pivot draw's memberships
(the draw with the highest log posterior density) and is then the mean of the relabelled
memberships; the two steps alternate until no permutation changes (Stephens' algorithm 2).

``permutation[s, k]`` is the draw's original label that becomes segment k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

MAX_ITERATIONS = 100


@dataclass(frozen=True)
class Relabelling:
    """permutation (S, K) int; reference (N, K) consensus memberships; iterations run."""

    permutation: np.ndarray
    reference: np.ndarray
    iterations: int


def stephens(membership: np.ndarray, pivot: int) -> Relabelling:
    """Relabel draws of ``membership`` (S, N, K) starting from draw ``pivot``."""
    n_samples, _, n_segments = membership.shape
    permutation = np.tile(np.arange(n_segments), (n_samples, 1))
    reference = membership[pivot].astype(float)
    for iteration in range(1, MAX_ITERATIONS + 1):
        log_reference = np.log(np.clip(reference, 1e-12, None)).astype(membership.dtype)
        cost = -(membership.transpose(0, 2, 1) @ log_reference)  # (S, K, K): draw label j -> k
        updated = np.empty_like(permutation)
        for s in range(n_samples):
            rows, cols = linear_sum_assignment(cost[s])
            updated[s, cols] = rows
        changed = not np.array_equal(updated, permutation)
        permutation = updated
        reference = permute(membership, permutation).mean(axis=0, dtype=float)
        if not changed:
            return Relabelling(permutation, reference, iteration)
    return Relabelling(permutation, reference, MAX_ITERATIONS)


def permute(membership: np.ndarray, permutation: np.ndarray) -> np.ndarray:
    """Reorder memberships (S, N, K) along segments by (S, K) permutations."""
    return np.take_along_axis(membership, permutation[:, None, :], axis=-1)


def relabel_posterior(posterior: xr.Dataset, permutation: np.ndarray) -> xr.Dataset:
    """Apply (chain*draw, K) permutations to every variable with a ``segment`` dim."""
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    per_draw = xr.DataArray(
        permutation.reshape(n_chains, n_draws, -1), dims=("chain", "draw", "segment_new")
    )
    relabelled = posterior.copy()
    for name, variable in posterior.data_vars.items():
        if "segment" in variable.dims:
            taken = variable.isel(segment=per_draw).rename(segment_new="segment")
            relabelled[name] = taken.transpose(*variable.dims).assign_coords(
                segment=posterior["segment"]
            )
    return relabelled


def permutation_dataarray(permutation: np.ndarray, posterior: xr.Dataset) -> xr.DataArray:
    """The (chain, draw, segment) permutations as a DataArray for the saved fit."""
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    return xr.DataArray(
        permutation.reshape(n_chains, n_draws, -1),
        dims=("chain", "draw", "segment"),
        coords={
            "chain": posterior["chain"],
            "draw": posterior["draw"],
            "segment": posterior["segment"],
        },
        name="permutation",
    )

"""Where each chain starts: its own EM solution, put into one common labelling before sampling.

Chain c starts at the model's EM start (``Mixture.initial_point``) computed with seed
``seed + c``: different k-means initialisations, so on a posterior with several modes (a
segment emptied, or overlapping groups split differently) the chains start in different ones
and the diagnosis (:mod:`analysis.inference.modes`) can see them, instead of every chain starting at
one point and hiding them. On data with one clear optimum every seed finds it and the chains start
together.

Each start's segments are then matched to chain 0's (an assignment problem on the distance
between the segments' parameters), so chains do not start in different ones of the K! label
permutations of the same mode; Stephens relabelling after sampling removes any switch left.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from models import Mixture


def segment_vectors(start: dict[str, np.ndarray]) -> np.ndarray:
    """(K, P): every start array (each has segments first) flattened per segment, side by side."""
    return np.concatenate(
        [np.asarray(v, dtype=float).reshape(len(v), -1) for v in start.values()], axis=1
    )


def align(start: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict:
    """``start`` with its segments permuted onto ``reference``'s: the permutation that minimises
    the summed squared distance between matched segments' parameters (``linear_sum_assignment``).
    """
    ours, theirs = segment_vectors(start), segment_vectors(reference)
    cost = ((theirs[:, None, :] - ours[None, :, :]) ** 2).sum(axis=-1)  # (reference k, ours j)
    _, order = linear_sum_assignment(cost)
    return {name: np.asarray(value)[order] for name, value in start.items()}


def chain_starts(
    mixture: Mixture,
    x: np.ndarray,
    k: int,
    *,
    chains: int,
    seed: int,
    priors: dict,
    options: dict,
) -> list[dict[str, np.ndarray]]:
    """One start per chain (EM at seed ``seed + c``), aligned to chain 0's labelling.

    ``x`` (N, D) is the model-scale data; each start maps the model's free variables (e.g.
    ``weights`` (K,), ``means`` (K, D)) to constrained values, as ``pm.sample(initvals=...)``
    takes them.
    """
    starts = [
        mixture.initial_point(x, k, priors=priors, seed=seed + chain, **options)
        for chain in range(chains)
    ]
    return [starts[0]] + [align(start, starts[0]) for start in starts[1:]]


def starts_dataset(starts: list[dict[str, np.ndarray]], posterior: xr.Dataset) -> xr.Dataset:
    """The chains' starts as a Dataset (chain, <the variable's posterior dims>) for the fit."""
    return xr.Dataset(
        {
            name: (("chain", *posterior[name].dims[2:]), np.stack([s[name] for s in starts]))
            for name in starts[0]
        },
        coords={"chain": posterior["chain"].values}
        | {dim: posterior[dim].values for dim in posterior.dims if dim not in ("chain", "draw")},
    )

"""Fit a subsample, assign everyone: the path for 100k+ customers (``segment fit --subsample n``).

NUTS costs one pass over the data per gradient, so for large N it runs on a random subsample of
n customers (seeded, recorded in the fit). The posterior is then the posterior given those n
customers: its intervals are honest for what it saw, and wider than a full-data fit's (about
sqrt(N / n) for segment weights and means).

From the same (relabelled) posterior draws every customer of the population gets membership
probabilities with 94% HDIs (:func:`analysis.inference.assignments.summarize_memberships`), and a
log predictive density ``lpd_i = log mean_s p(x_i | theta^s)``. For a customer outside the subsample
that is an exact held-out score: the posterior never saw them, so no importance sampling
(``loo_subsample``) is needed, and the sum over them estimates the out-of-sample elpd of the fit
with a plain standard error.

Work goes in blocks of customers (all draws, in chunks, per block), so memory stays at one
block of float32 memberships, at most :data:`BLOCK_ELEMENTS`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np
import xarray as xr
from scipy.special import logsumexp

from analysis.distributed import Cluster, current
from analysis.inference.assignments import summarize_memberships
from analysis.inference.block_layout import laid_out_blocks
from analysis.inference.elpd import summed
from analysis.inference.membership import (
    compile_memberships,
    memberships_and_loglik,
    stacked_parameters,
)
from models import MIXTURES, Mixture

BLOCK_ELEMENTS = 25_000_000  # float32 memberships (draws x customers x segments) per block
PARTS_PER_WORKER = 4  # on a cluster: tasks of consecutive blocks per worker (load balance)


def subsample_indices(n_customers: int, n_fit: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n_fit`` customers drawn without replacement (seeded)."""
    rng = np.random.default_rng([seed, n_customers, n_fit])
    return np.sort(rng.choice(n_customers, size=n_fit, replace=False))


def block_size(posterior: xr.Dataset) -> int:
    """Customers per block: at most :data:`BLOCK_ELEMENTS` memberships of all draws."""
    n_samples = posterior.sizes["chain"] * posterior.sizes["draw"]
    return max(1, BLOCK_ELEMENTS // (n_samples * posterior.sizes["segment"]))


def membership_blocks(
    mixture: Mixture, options: dict, x: np.ndarray, posterior: xr.Dataset
) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """(rows, membership (S, B, K) float32, loglik (S, B)) for consecutive blocks of the
    customers of ``x`` (N, D), model scale, with all S draws of the relabelled ``posterior``.

    A block holds at most :data:`BLOCK_ELEMENTS` memberships (:func:`block_size`); equally long
    tables get equal blocks, so two of them can be walked side by side. One compiled function
    serves every block: when the mixture reads structure off the data
    (``Mixture.structured``), each block is evaluated laid out with one structure
    (:func:`analysis.inference.block_layout.laid_out_blocks`).
    """
    block = block_size(posterior)
    parameters = stacked_parameters(posterior.isel(draw=[0]), mixture.parameters)
    if not mixture.structured(x):
        function = compile_memberships(mixture, options, x[:block], parameters)
        for start in range(0, len(x), block):
            rows = slice(start, min(start + block, len(x)))
            yield rows, *memberships_and_loglik(mixture, options, x[rows], posterior, function)
        return
    function = None
    structure = mixture.data_structure(options)(x)
    for rows, order, position in laid_out_blocks(structure, block):
        laid_out = x[order]
        if function is None:
            function = compile_memberships(mixture, options, laid_out, parameters)
        membership, loglik = memberships_and_loglik(mixture, options, laid_out, posterior, function)
        yield rows, membership[:, position], loglik[:, position]


def population(
    mixture: Mixture,
    options: dict,
    x: np.ndarray,
    customers: np.ndarray,
    fitted: np.ndarray,
    posterior: xr.Dataset,
    label: str = "",
) -> xr.Dataset:
    """Assignments and log predictive density of every customer of ``x`` (N, D), model scale.

    ``fitted`` (N,) bool marks the customers the posterior was fitted on; ``posterior`` must be
    relabelled already. Returns the variables of ``summarize_memberships`` plus ``lpd`` (nats)
    and ``in_fit``, all over ``customer``. Prints progress per block on stderr.
    """
    cluster = current()
    if cluster is None:
        parts = blocks_summaries(mixture, options, x, customers, posterior)
    else:
        parts = cluster_summaries(cluster, mixture, options, x, customers, posterior)
    summaries, lpd = [], []
    for rows, summary, part_lpd in parts:
        summaries.append(summary)
        lpd.append(part_lpd)
        print(f"{label}assigned {rows.stop:,} of {len(x):,} customers", file=sys.stderr)
    result = xr.concat(summaries, dim="customer")
    result["lpd"] = ("customer", np.concatenate(lpd))
    result["in_fit"] = ("customer", fitted)
    result["lpd"].attrs["meaning"] = "log mean over draws of p(x_i | theta), nats, model scale"
    result["in_fit"].attrs["meaning"] = "customer was in the subsample the posterior is fitted on"
    return result


def blocks_summaries(
    mixture: Mixture, options: dict, x: np.ndarray, customers: np.ndarray, posterior: xr.Dataset
) -> Iterator[tuple[slice, xr.Dataset, np.ndarray]]:
    """(rows, assignment summaries, lpd (B,)) per block of :func:`membership_blocks`."""
    n_chains = posterior.sizes["chain"]
    segments = posterior["segment"].values
    for rows, membership, loglik in membership_blocks(mixture, options, x, posterior):
        summary = summarize_memberships(membership, n_chains, customers[rows], segments)
        yield rows, summary, logsumexp(loglik, axis=0) - np.log(len(loglik))


def part_summaries(
    model: str, options: dict, x: np.ndarray, customers: np.ndarray, posterior: xr.Dataset
) -> tuple[xr.Dataset, np.ndarray]:
    """The cluster task of a run of consecutive blocks (``x`` (B, D), its ``customers``): their
    assignment summaries and lpd, concatenated. Runs in a worker process, where ``x`` may
    arrive unaligned in memory (PyTensor refuses that: aligned here, same values)."""
    x = np.require(x, requirements="A")
    parts = list(blocks_summaries(MIXTURES[model], options, x, customers, posterior))
    return xr.concat([p[1] for p in parts], dim="customer"), np.concatenate([p[2] for p in parts])


def cluster_summaries(
    cluster: Cluster,
    mixture: Mixture,
    options: dict,
    x: np.ndarray,
    customers: np.ndarray,
    posterior: xr.Dataset,
) -> Iterator[tuple[slice, xr.Dataset, np.ndarray]]:
    """:func:`blocks_summaries` on the cluster: runs of consecutive blocks (the same blocks as
    in-process, so the same numbers), :data:`PARTS_PER_WORKER` runs per worker, one task each;
    the posterior goes to every worker once. Yields them in order of customers."""
    block = block_size(posterior)
    n_blocks = -(-len(x) // block)
    per_part = -(-n_blocks // min(n_blocks, PARTS_PER_WORKER * cluster.n_workers))
    rows = [
        slice(start, min(start + per_part * block, len(x)))
        for start in range(0, len(x), per_part * block)
    ]
    shared = cluster.scatter(posterior)
    futures = [
        cluster.submit(
            part_summaries,
            mixture.name,
            options,
            x[r],
            customers[r],
            shared,
            key=cluster.key(f"population-{i}"),
        )
        for i, r in enumerate(rows)
    ]
    try:
        for part, future in zip(rows, futures, strict=True):
            yield part, *future.result()
    finally:
        for future in futures:
            future.cancel()


def customer_assignments(tree: xr.DataTree) -> xr.Dataset:
    """Every customer's assignment summaries: the ``population`` group of a fit on a subsample,
    else the fit's own ``assignments``."""
    return tree["population" if "population" in tree.children else "assignments"].to_dataset()


def lpd_outside_fit(population: xr.Dataset) -> np.ndarray:
    """``lpd`` (nats) of the customers outside the fitted subsample, in population order."""
    return population["lpd"].values[~population["in_fit"].values]


def heldout_elpd(population: xr.Dataset) -> dict:
    """Sum of ``lpd`` over customers outside the fit, its SE
    (:func:`analysis.inference.elpd.summed`) and the count."""
    held_out = lpd_outside_fit(population)
    elpd, se = summed(held_out)
    return {"elpd_heldout": elpd, "se_heldout": se, "n_heldout": len(held_out)}

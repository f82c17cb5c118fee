"""Group the chains of one relabelled mixture fit into posterior modes and say how they differ.

After relabelling (:mod:`analysis.inference.relabel`) segment k means the same thing in every chain
that explores the same mode, so chains can be compared scalar by scalar. Two chains are *linked*
when no scalar of the compared variables, nor the log posterior density ``lp``, has chain means more
than :data:`SEPARATION_SD` pooled within-chain sd apart; the modes are the connected components of
that graph. Segments are named by their ``segment`` coordinate value as stored (0-based in this
project's fits), chains by their ``chain`` coordinate value, never by position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.sparse.csgraph import connected_components

SEPARATION_SD = 1.0
"""Largest chain-mean difference, in pooled within-chain sd, of two chains in the same mode.

A chain that is merely mixing slowly (R-hat 1.01-1.02) sits a small fraction of an sd from the
others: measured on real data, 0.004 apart on a parameter with sd 0.023, i.e. 0.17 sd. R-hat is
about sqrt(1 + d**2 / 2) for two chains d sd apart (sqrt(1 + d**2 / 4) for one chain d sd from
three others), so R-hat 1.01-1.02 means d of about 0.2-0.4, and d = 1 is R-hat 1.12-1.22.
Chains in different modes (a segment emptied, two overlapping groups split differently) differ
by several sd: 0.60 vs 0.51 weight at sd 0.03 is 3 sd, an emptied 0.31 segment over 10. Finite
draws add noise of about sqrt(2 / ESS per chain) to d, 0.14 at ESS 100, whose maximum over a
few hundred scalars is about 0.4; 1.0 leaves room for that on top of slow mixing.
"""

EMPTY_WEIGHT = 0.02
"""Mean mixture weight below which a segment is reported as nearly empty.

Under the Dirichlet(1) weights prior a segment that holds no customers keeps a posterior mean
weight of about 1 / N (0.0005 for 2,000 customers), while a segment anyone would act on holds
a few percent of them; 2% sits between the two.
"""

VARIANCE_FLOOR = 1e-12
"""Floor on the pooled variance, so constant scalars compare as 0 (equal) or huge (not)."""


@dataclass(frozen=True)
class Mode:
    """One posterior mode: ``chains`` (sorted chain coordinate values), ``weights`` (K,) mean
    mixture weights over its draws, ``mean_lp`` mean log posterior density, ``draws`` count."""

    chains: tuple
    weights: np.ndarray
    mean_lp: float
    draws: int


def _standardized(mean_a, var_a, mean_b, var_b):
    """|mean_a - mean_b| / sqrt((var_a + var_b) / 2), elementwise (arrays or DataArrays)."""
    return abs(mean_a - mean_b) / np.sqrt(np.maximum((var_a + var_b) / 2, VARIANCE_FLOOR))


def _per_chain(array: xr.DataArray) -> np.ndarray:
    """A (chain, draw, ...) variable as float64 (C, S, P), its non-sample dims flattened to P."""
    values = array.transpose("chain", "draw", ...).to_numpy().astype(float)
    return values.reshape(*values.shape[:2], -1)


def pairwise_separation(
    posterior: xr.Dataset, lp: xr.DataArray, variables: tuple[str, ...]
) -> np.ndarray:
    """Separation (C, C) of every pair of chains, 0 on the diagonal and symmetric.

    Parameters
    ----------
    posterior : xr.Dataset
        Relabelled draws; each of ``variables`` has dims (chain, draw, ...).
    lp : xr.DataArray
        Log posterior density (chain, draw), same chains in the same order as ``posterior``.
    variables : tuple of str
        Variables compared, e.g. ``("weights", "means", "scales")``.

    Returns
    -------
    np.ndarray
        (C, C): for chains a and b, the largest over every scalar of ``variables`` and over
        ``lp`` of |mean_a - mean_b| / sqrt((var_a + var_b) / 2), var the within-chain variance.
    """
    if not np.array_equal(lp["chain"].values, posterior["chain"].values):
        raise ValueError("lp and posterior must have the same chain coordinates, in order")
    columns = np.concatenate(
        [_per_chain(lp)] + [_per_chain(posterior[name]) for name in variables], axis=-1
    )  # (C, S, P)
    mean, var = columns.mean(axis=1), columns.var(axis=1)  # (C, P)
    return _standardized(mean[:, None], var[:, None], mean[None], var[None]).max(axis=-1)


def find_modes(
    posterior: xr.Dataset,
    lp: xr.DataArray,
    variables: tuple[str, ...],
    *,
    threshold: float = SEPARATION_SD,
) -> list[Mode]:
    """Chains grouped into modes, highest mean ``lp`` first (ties: lowest first chain).

    Chains whose :func:`pairwise_separation` is <= ``threshold`` are linked; a mode is a
    connected component of those links, so chains can share a mode through a third one.

    Parameters
    ----------
    posterior : xr.Dataset
        Relabelled draws with ``weights`` (chain, draw, segment) and each of ``variables``.
    lp : xr.DataArray
        Log posterior density (chain, draw).
    variables : tuple of str
        Variables compared between chains.
    threshold : float
        Largest separation, in pooled within-chain sd, of two linked chains.

    Returns
    -------
    list of Mode
        Every chain in exactly one mode.
    """
    linked = pairwise_separation(posterior, lp, variables) <= threshold
    _, component = connected_components(linked, directed=False)
    chain_values = posterior["chain"].values
    modes = []
    for label in np.unique(component):
        chains = tuple(sorted(chain_values[component == label].tolist()))
        selected = posterior["weights"].sel(chain=list(chains))
        modes.append(
            Mode(
                chains=chains,
                weights=selected.mean(("chain", "draw")).to_numpy(),
                mean_lp=float(lp.sel(chain=list(chains)).mean()),
                draws=selected.sizes["chain"] * selected.sizes["draw"],
            )
        )
    return sorted(modes, key=lambda mode: (-mode.mean_lp, mode.chains[0]))


def _weight(value: float) -> str:
    """A weight as 0.31, or 0.004 when below 0.005."""
    return f"{value:.2f}" if value >= 0.005 else f"{value:.1g}"


def _weight_differences(mode: Mode, reference: Mode, segments, weight_sd) -> list[str]:
    """Phrases for segments nearly empty in only one of the two modes, else for the up-to-2
    segments whose weights differ most, by more than SEPARATION_SD (``weight_sd``, (K,))."""
    empty, empty_reference = mode.weights < EMPTY_WEIGHT, reference.weights < EMPTY_WEIGHT
    phrases = []
    for k in np.flatnonzero(empty != empty_reference):
        state = "nearly empty" if empty[k] else "occupied"
        phrases.append(
            f"segment {segments[k]} {state} "
            f"(weight {_weight(mode.weights[k])} vs {_weight(reference.weights[k])})"
        )
    if phrases:
        return phrases
    largest = np.argsort(-np.abs(mode.weights - reference.weights), kind="stable")[:2]
    return [
        f"segment {segments[k]} weight {_weight(mode.weights[k])} vs "
        f"{_weight(reference.weights[k])}"
        for k in sorted(largest)
        if weight_sd[k] > SEPARATION_SD
    ]


def _compare(draws: xr.DataArray, reference: xr.DataArray):
    """Standardized difference, mean and reference mean (each the variable's dims minus chain
    and draw) of one variable's draws in a mode and in the reference mode."""
    sample = ("chain", "draw")
    mean, reference_mean = draws.mean(sample), reference.mean(sample)
    score = _standardized(mean, draws.var(sample), reference_mean, reference.var(sample))
    return score, mean, reference_mean


def _largest_difference(draws: xr.Dataset, reference: xr.Dataset, variables) -> list[str]:
    """A phrase for the scalar of ``variables`` whose standardized difference is largest."""
    candidates = []
    for name in variables:
        score, mean, reference_mean = _compare(draws[name], reference[name])
        where = score.argmax(...)
        coords = ", ".join(f"{dim} {score[dim][i].item()}" for dim, i in where.items())
        values = (float(score[where]), float(mean[where]), float(reference_mean[where]))
        candidates.append((f"{name} {coords}".rstrip(), *values))
    if not candidates:
        return []
    label, score, value, reference_value = max(candidates, key=lambda candidate: candidate[1])
    return [f"{label} {value:.3g} vs {reference_value:.3g} ({score:.1f} sd)"]


def describe_modes(
    modes: list[Mode], posterior: xr.Dataset, variables: tuple[str, ...]
) -> list[str]:
    """One sentence per mode after the first, comparing it with the first (the reference).

    E.g. ``"chains 1, 3: mean log density 12.3 lower; segment 2 nearly empty (weight 0.004 vs
    0.31)"``. Named, in order of preference: segments nearly empty (weight < EMPTY_WEIGHT) in
    only one of the two modes; else the up-to-2 segments whose weights differ most, if by more
    than SEPARATION_SD; else the scalar of ``variables`` with the largest standardized
    difference, with its coordinates. Chains and segments are their coordinate values as is.

    Parameters
    ----------
    modes : list of Mode
        From :func:`find_modes`, the reference first.
    posterior : xr.Dataset
        The posterior the modes were found in.
    variables : tuple of str
        Variables searched when the weights tell the modes apart too little.

    Returns
    -------
    list of str
        len(modes) - 1 sentences.
    """
    reference = modes[0]
    reference_draws = posterior.sel(chain=list(reference.chains))
    segments = posterior["segment"].values
    sentences = []
    for mode in modes[1:]:
        draws = posterior.sel(chain=list(mode.chains))
        weight_sd = _compare(draws["weights"], reference_draws["weights"])[0].to_numpy()
        phrases = _weight_differences(mode, reference, segments, weight_sd) or (
            _largest_difference(draws, reference_draws, variables)
        )
        chains = ", ".join(str(chain) for chain in mode.chains)
        lower = reference.mean_lp - mode.mean_lp
        sentence = f"chains {chains}: mean log density {lower:.1f} lower"
        sentences.append(f"{sentence}; {', '.join(phrases)}" if phrases else sentence)
    return sentences


def summary(modes: list[Mode]) -> list[dict]:
    """JSON-able dicts, one per mode: chains (ints), weights (floats), mean_lp, draws."""
    return [
        {
            "chains": [int(chain) for chain in mode.chains],
            "weights": [float(weight) for weight in mode.weights],
            "mean_lp": float(mode.mean_lp),
            "draws": int(mode.draws),
        }
        for mode in modes
    ]

"""The migration matrix: expected customers moving between segments, per posterior draw.

With p_earlier[s, i, a] the membership of customer i in segment a at posterior draw s given their
earlier data, and p_later[s, i, b] the same given their later data, the expected number of the
matched customers moving from a to b at draw s is::

    M[s, a, b] = sum_i p_earlier[s, i, a] * p_later[s, i, b]

(customer i's segments in the two periods drawn independently given theta^s). Its row sums are
the expected earlier segment sizes, sum_i p_earlier[s, i, a], and all of M[s] sums to the number
of customers. Its HDI over the draws carries parameter uncertainty only.

The realised count also varies with which segment each customer actually took. At draw s every
customer's two segments are drawn from p_earlier[s, i] and p_later[s, i] and counted::

    C[s, a, b] = #{i : a_i^s = a, b_i^s = b}

(:func:`realised_draws`): its HDI over the draws is a predictive interval of the count itself,
with both parameter and assignment uncertainty. The table reports each cell's posterior mean of
M, the HDI of M and the HDI of C (94%).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.inference.assignments import HDI_PROB, hdi_nearest

MIGRATION_COLUMNS = (
    "from_segment", "from_name", "to_segment", "to_name", "expected", "hdi_low", "hdi_high",
    "realised_low", "realised_high",
)  # fmt: skip


def migration_draws(earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """(S, K, K) expected customers moving from segment a (axis 1) to b (axis 2), per draw.

    ``earlier`` and ``later`` are (S, N, K) memberships of the same N customers, in the same order,
    from the same posterior draws. Sums in float64 (float32 memberships drift over many customers).
    """
    return np.matmul(earlier.transpose(0, 2, 1), later, dtype=np.float64)


def drawn_segments(memberships: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(S, N) one segment per draw and customer, drawn from (S, N, K) membership probabilities."""
    cumulative = np.cumsum(memberships, axis=-1, dtype=np.float64)
    uniform = rng.random(memberships.shape[:2]) * cumulative[..., -1]  # float32 sums below 1
    return np.minimum((uniform[..., None] >= cumulative).sum(axis=-1), memberships.shape[-1] - 1)


def realised_draws(earlier: np.ndarray, later: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(S, K, K) customers counted moving from segment a to b when, at every draw, each customer's
    earlier and later segments are drawn from ``earlier`` and ``later`` ((S, N, K) memberships of
    the same customers from the same posterior draws); integer counts as float64."""
    n_samples, _, n_segments = earlier.shape
    cells = drawn_segments(earlier, rng) * n_segments + drawn_segments(later, rng)  # (S, N)
    flat = cells + (np.arange(n_samples) * n_segments**2)[:, None]
    counts = np.bincount(flat.ravel(), minlength=n_samples * n_segments**2)
    return counts.reshape(n_samples, n_segments, n_segments).astype(np.float64)


def migration_table(draws: np.ndarray, realised: np.ndarray, names: pd.Series) -> pd.DataFrame:
    """One row per (from, to) pair of (S, K, K) expected ``draws`` (:func:`migration_draws`):
    the posterior mean of the expected number of customers and its 94% HDI
    (:func:`analysis.inference.assignments.hdi_nearest`), the 94% HDI of the (S, K, K) ``realised``
    counts (:func:`realised_draws`), and the segment names; ``names`` maps segment -> name, in
    segment order."""
    low, high = hdi_nearest(draws, HDI_PROB)
    realised_low, realised_high = hdi_nearest(realised, HDI_PROB)
    segments = names.index.to_numpy()
    origin, destination = np.meshgrid(segments, segments, indexing="ij")
    table = pd.DataFrame(
        {
            "from_segment": origin.ravel(),
            "from_name": names.reindex(origin.ravel()).to_numpy(),
            "to_segment": destination.ravel(),
            "to_name": names.reindex(destination.ravel()).to_numpy(),
            "expected": draws.mean(axis=0).ravel(),
            "hdi_low": low.ravel(),
            "hdi_high": high.ravel(),
            "realised_low": realised_low.ravel(),
            "realised_high": realised_high.ravel(),
        }
    )
    return table[list(MIGRATION_COLUMNS)]

"""The migration matrix: expected customers moving between segments, per posterior draw.

With p_earlier[s, i, a] the membership of customer i in segment a at posterior draw s given their
earlier data, and p_later[s, i, b] the same given their later data, the expected number of the
matched customers moving from a to b at draw s is::

    M[s, a, b] = sum_i p_earlier[s, i, a] * p_later[s, i, b]

(customer i's segments in the two periods drawn independently given theta^s). Its row sums are
the expected earlier segment sizes, sum_i p_earlier[s, i, a], and all of M[s] sums to the number
of customers. The table reports each cell's posterior mean and 94% HDI over the draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.assignments import HDI_PROB, hdi_nearest

MIGRATION_COLUMNS = (
    "from_segment", "from_name", "to_segment", "to_name", "expected", "hdi_low", "hdi_high",
)  # fmt: skip


def migration_draws(earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """(S, K, K) expected customers moving from segment a (axis 1) to b (axis 2), per draw.

    ``earlier`` and ``later`` are (S, N, K) memberships of the same N customers, in the same order,
    from the same posterior draws. Sums in float64 (float32 memberships drift over many customers).
    """
    return np.matmul(earlier.transpose(0, 2, 1), later, dtype=np.float64)


def migration_table(draws: np.ndarray, names: pd.Series) -> pd.DataFrame:
    """One row per (from, to) pair of (S, K, K) ``draws``: the posterior mean of the expected
    number of customers and its 94% HDI (:func:`analysis.assignments.hdi_nearest`), with the
    segment names; ``names`` maps segment -> name, in segment order."""
    low, high = hdi_nearest(draws, HDI_PROB)
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
        }
    )
    return table[list(MIGRATION_COLUMNS)]

"""The targeting rule evaluated on past campaigns: who a rule on the assignments reaches.

Per segment k, four fixed groups of customers, read off the assignment table
(:func:`analysis.inference.profiles.assignment_frame`, the rows of ``assignments.csv``):

- ``precise`` / ``broad``: customers with k as modal segment, by their ``confidence``;
- ``p >= 0.95`` / ``p >= 0.8``: customers whose posterior-mean membership probability in k
  (``p_<k>``) reaches the threshold: whom "target only customers above t" would have reached.

Per group and outcome: the customers reached with the outcome observed and the responders among
them are plain counts (the groups are fixed by the table, so no assignment is drawn); the
response rate is the Beta(1 + responders, 1 + non-responders) posterior, mean and 94% HDI
(empty, NaN, for a group that reaches nobody).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.inference.assignments import HDI_PROB, hdi_nearest

THRESHOLDS = (0.95, 0.8)
RATE_DRAWS = 4000  # Beta draws per group for the rate's HDI
TARGETING_COLUMNS = (
    "outcome", "segment", "name", "group", "customers", "responders", "rate", "rate_hdi_low",
    "rate_hdi_high",
)  # fmt: skip


def target_groups(assignments: pd.DataFrame, segment: int) -> dict[str, np.ndarray]:
    """Group name -> (N,) bool mask over the rows of ``assignments`` for ``segment``."""
    modal = assignments["segment"].to_numpy() == segment
    precise = assignments["confidence"].to_numpy() == "precise"
    membership = assignments[f"p_{segment}"].to_numpy()
    return {
        "precise": modal & precise,
        "broad": modal & ~precise,
        **{f"p >= {t:g}": membership >= t for t in THRESHOLDS},
    }


def targeting_table(
    assignments: pd.DataFrame,
    outcomes: np.ndarray,
    names: pd.Series,
    outcome_names: list[str],
    rng: np.random.Generator,
) -> pd.DataFrame:
    """One row per outcome, segment and group (:func:`target_groups`). ``outcomes`` is (N, J),
    0/1/NaN, aligned with the rows of ``assignments``; ``names`` maps segment -> name."""
    rows = []
    for j, outcome in enumerate(outcome_names):
        answered = ~np.isnan(outcomes[:, j])
        for segment, name in names.items():
            for group, mask in target_groups(assignments, segment).items():
                reached = mask & answered
                n, r = int(reached.sum()), int(np.nansum(outcomes[reached, j]))
                rates = rng.beta(1.0 + r, 1.0 + n - r, size=RATE_DRAWS) if n else np.full(1, np.nan)
                low, high = hdi_nearest(rates, HDI_PROB)
                rows.append((outcome, segment, name, group, n, r, rates.mean(), low, high))
    return pd.DataFrame(rows, columns=list(TARGETING_COLUMNS))

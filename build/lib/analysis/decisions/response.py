"""Campaign response rate per segment, with the assignment uncertainty carried through.

For posterior draw s, with membership p[s, i, k] = p(segment = k | x_i, theta^s) and outcome
y_ij in {0, 1} (NaN: customer i left out of outcome j)::

    z_i^s ~ Categorical(p[s, i, :])                         each customer's segment, drawn
    n_kj^s = #{i : z_i^s = k, y_ij observed}                customers of k with outcome j
    r_kj^s = #{i : z_i^s = k, y_ij = 1}                     responders among them
    rate_kj^s ~ Beta(1 + r_kj^s, 1 + n_kj^s - r_kj^s)       uniform prior, updated per draw
    population_j^s = sum_k n_kj^s rate_kj^s / sum_k n_kj^s  the customers' mean rate
    lift_kj^s = rate_kj^s / population_j^s

so a rate's interval holds both the binomial uncertainty given the counts and the uncertainty of
which customers are in the segment. The population rate is the count-weighted mean of the same
draw's segment rates (not a separate Beta draw), so a segment and the population it belongs to
move together and a large segment's lift stays near its own rate ratio.

A customer's segment is drawn from memberships given their spend only, not their response, so
where memberships are uncertain the rates are pulled toward the population rate (segments look
more alike than they are; ``tests/test_response.py`` shows it at membership 0.7). With mostly
``precise`` customers the pull is small; it is the known cost of drawing classes without the
outcome (Bray, Lanza & Tan 2015, Struct. Equ. Modeling 22:1-11).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.inference.assignments import HDI_PROB, hdi_nearest

RESPONSE_COLUMNS = (
    "outcome", "segment", "name", "customers", "responders", "rate", "rate_hdi_low",
    "rate_hdi_high", "lift", "lift_hdi_low", "lift_hdi_high",
)  # fmt: skip
POPULATION = "all"  # the segment label of a population row


def segment_draws(membership: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(S, B) int segment of each of B customers at each of S draws, drawn from (S, B, K)
    membership probabilities (float32 rows summing to 1 up to rounding)."""
    cumulative = np.cumsum(membership, axis=-1, dtype=np.float64)
    u = rng.random(membership.shape[:2]) * cumulative[..., -1]
    return np.minimum((u[..., None] >= cumulative).sum(axis=-1), membership.shape[-1] - 1)


def response_counts(
    segments: np.ndarray, outcomes: np.ndarray, n_segments: int
) -> tuple[np.ndarray, np.ndarray]:
    """(responders, observed), each (S, K, J) float64: per draw, segment and outcome, the
    customers of the segment with a 1, and with any answer, given (S, B) ``segments`` and (B, J)
    ``outcomes`` (0, 1 or NaN)."""
    member = (segments[..., None] == np.arange(n_segments)).astype(np.float64)  # (S, B, K)
    answered = ~np.isnan(outcomes)
    member_of = member.transpose(0, 2, 1)  # (S, K, B)
    responders = member_of @ np.where(answered, outcomes, 0.0)
    return responders, member_of @ answered.astype(np.float64)


def accumulate_counts(
    blocks: Iterable[tuple[slice, np.ndarray]],
    outcomes: np.ndarray,
    n_segments: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`response_counts` summed over blocks of customers: ``blocks`` yields (rows,
    membership (S, B, K)) for consecutive rows of the (N, J) ``outcomes``."""
    responders = observed = 0.0
    for rows, membership in blocks:
        segments = segment_draws(membership, rng)
        block_responders, block_observed = response_counts(segments, outcomes[rows], n_segments)
        responders = responders + block_responders
        observed = observed + block_observed
    return responders, observed


@dataclass(frozen=True)
class ResponseDraws:
    """Per-draw counts, rates (S, K, J) and population rates (S, J); see the module docstring."""

    responders: np.ndarray
    observed: np.ndarray
    rates: np.ndarray
    population: np.ndarray

    @property
    def lift(self) -> np.ndarray:
        """(S, K, J) rate / population rate."""
        return self.rates / self.population[:, None, :]


def rate_draws(
    responders: np.ndarray, observed: np.ndarray, rng: np.random.Generator
) -> ResponseDraws:
    """Beta(1 + r, 1 + n - r) rates of (S, K, J) counts, one draw per posterior draw, and the
    count-weighted population rate of each draw."""
    rates = rng.beta(1.0 + responders, 1.0 + observed - responders)
    population = (observed * rates).sum(axis=1) / observed.sum(axis=1)
    return ResponseDraws(responders, observed, rates, population)


def response_table(draws: ResponseDraws, names: pd.Series, outcomes: list[str]) -> pd.DataFrame:
    """One row per outcome and segment, then the outcome's population row (segment
    :data:`POPULATION`, lift 1): posterior means of the customers with the outcome observed and
    of the responders among them, the rate and the lift with their 94% HDIs. ``names`` maps
    segment -> name in segment order."""
    rate_low, rate_high = hdi_nearest(draws.rates, HDI_PROB)
    lift_low, lift_high = hdi_nearest(draws.lift, HDI_PROB)
    pop_low, pop_high = hdi_nearest(draws.population, HDI_PROB)
    rows = []
    for j, outcome in enumerate(outcomes):
        for position, (segment, name) in enumerate(names.items()):
            rows.append(
                (outcome, segment, name, draws.observed[:, position, j].mean(),
                 draws.responders[:, position, j].mean(), draws.rates[:, position, j].mean(),
                 rate_low[position, j], rate_high[position, j], draws.lift[:, position, j].mean(),
                 lift_low[position, j], lift_high[position, j])
            )  # fmt: skip
        rows.append(
            (outcome, POPULATION, "all customers", draws.observed[0, :, j].sum(),
             draws.responders[0, :, j].sum(), draws.population[:, j].mean(), pop_low[j],
             pop_high[j], 1.0, 1.0, 1.0)
        )  # fmt: skip
    return pd.DataFrame(rows, columns=list(RESPONSE_COLUMNS))

"""``segment response``: campaign response per segment of a saved fit, without resampling.

From the fit's relabelled posterior draws of the mode its assignments describe
(:func:`analysis.inference.fit.described_mode`, thinned as ``score --draws``) the memberships of its
own customers (its ``observed_data``: for a fit on a subsample, the subsample) are evaluated block
by block (:func:`analysis.inference.subsample.membership_blocks`), each customer's segment is drawn
per posterior draw, and the response rates follow (:mod:`analysis.decisions.response`). The
targeting rule is evaluated on the fit's assignment table (:mod:`analysis.decisions.targeting`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from analysis.data.outcomes import fitted_outcomes
from analysis.decisions.response import accumulate_counts, rate_draws, response_table
from analysis.decisions.score import thinned
from analysis.decisions.targeting import targeting_table
from analysis.inference.fit import described_mode
from analysis.inference.profiles import (
    PRECISE_THRESHOLD,
    assignment_table,
    fit_config,
    segment_profiles,
)
from analysis.inference.subsample import membership_blocks
from models import MIXTURES


def campaign_response(
    tree: xr.DataTree,
    outcomes: pd.DataFrame,
    seed: int = 0,
    draws: int | None = None,
    threshold: float = PRECISE_THRESHOLD,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(response table, targeting table) of the saved fit ``tree`` for the 0/1 ``outcomes``
    (customers, outcomes) frame indexed by customer ID
    (:func:`analysis.data.outcomes.load_outcomes`).

    ``seed`` seeds the segment and Beta draws; ``draws``: at most this many posterior samples
    (:func:`analysis.decisions.score.thinned`; None: all); ``threshold`` makes a customer
    ``precise``.
    """
    described = described_mode(tree)
    config = fit_config(tree)
    observed = described["observed_data"]["x"].transpose("customer", ...)
    y = fitted_outcomes(outcomes, observed["customer"].values)
    posterior = thinned(described["posterior"].to_dataset(), draws)
    mixture, options = MIXTURES[config["model"]], config["options"]
    blocks = (
        (rows, membership)
        for rows, membership, _ in membership_blocks(mixture, options, observed.values, posterior)
    )
    rng = np.random.default_rng(seed)
    segments = segment_profiles(described)[0].set_index("segment")
    names = segments["name"].reindex(posterior["segment"].values)  # the memberships' order
    responders, counted = accumulate_counts(blocks, y, len(names), rng)
    columns = list(outcomes.columns)
    response = response_table(rate_draws(responders, counted, rng), names, columns)
    assignments = assignment_table(described, segments["tier"], threshold)
    targets = fitted_outcomes(outcomes, assignments["customer_id"])
    return response, targeting_table(assignments, targets, names, columns, rng)

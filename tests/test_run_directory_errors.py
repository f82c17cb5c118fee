"""A damaged run directory: one line on stderr naming the file and the problem, exit code 2.

No sampling: the files the steps read back are written by hand (CSVs, and tiny fit files with
only the attrs the readers look at), so each check takes well under a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis.baseline import BASELINE_COLUMNS
from analysis.compare import COLUMNS
from analysis.fit import save_fit
from analysis.sweep import reusable
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


def write_fit(path: Path, k: int) -> None:
    """A small NetCDF DataTree with the configuration attr every fit has (no real draws)."""
    tree = xr.DataTree.from_dict(
        {"posterior": xr.Dataset({"w": (("chain", "draw"), np.ones((1, 999)))})}
    )
    tree.attrs["segment_config"] = json.dumps({"K": k})
    save_fit(tree, path)


def truncate(path: Path, size: int = 1000) -> None:
    """What ``head -c 1000 K2.nc > K2.nc`` leaves: the file's first bytes."""
    path.write_bytes(path.read_bytes()[:size])


@pytest.fixture
def truncated_k2(tmp_path) -> Path:
    """A run directory with a readable K1 and a K2 cut short at 1,000 bytes."""
    root = tmp_path / "run"
    (root / "fits").mkdir(parents=True)
    write_fit(root / "fits" / "K1.nc", 1)
    write_fit(root / "fits" / "K2.nc", 2)
    truncate(root / "fits" / "K2.nc")
    return root


UNREADABLE = "not a readable fit file: truncated or corrupt"


@pytest.mark.parametrize("step", ["compare", "report --k 1", "report --k 2", "report"])
def test_a_truncated_fit_file_is_one_line_naming_it(truncated_k2, capsys, step):
    before = listing(truncated_k2)
    name, *extra = step.split()
    code, _, err = run_main([name, "--run", str(truncated_k2), *extra], capsys)
    line = assert_one_line_error(code, err, f"{truncated_k2 / 'fits' / 'K2.nc'}: {UNREADABLE}")
    assert f"refit with segment fit --k 2 --out {truncated_k2}" in line
    assert listing(truncated_k2) == before


def test_fit_refuses_a_truncated_fit_outside_its_k_range_before_sampling(
    truncated_k2, marketing_raw, capsys
):
    """diagnostics.csv is rebuilt from every fit, so K2 would fail it after K1 was sampled."""
    data = truncated_k2.parent / "small.csv"
    marketing_raw.head(200)[["ID", "MntWines", "MntFruits"]].to_csv(data, index=False)
    argv = ["fit", "--dataset", "csv", "--data", str(data), "--features", "MntWines,MntFruits"]
    argv += ["--chains", "1", "--draws", "10", "--tune", "10"]  # should it sample after all
    code, _, err = run_main([*argv, "--k", "1", "--out", str(truncated_k2)], capsys)
    assert_one_line_error(code, err, f"{truncated_k2 / 'fits' / 'K2.nc'}: {UNREADABLE}")


def test_the_sweep_refits_a_truncated_fit_in_its_k_range_loudly(truncated_k2, capsys):
    path = truncated_k2 / "fits" / "K2.nc"
    assert not reusable(path, {"K": 2}, 2)
    err = capsys.readouterr().err
    assert f"[K=2] WARNING: {path} is not a readable fit file (truncated or corrupt)" in err
    assert reusable(truncated_k2 / "fits" / "K3.nc", {"K": 3}, 3) is False  # absent: quietly
    assert capsys.readouterr().err == ""

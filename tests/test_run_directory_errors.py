"""A damaged run directory: one line on stderr naming the file and the problem, exit code 2.

No sampling: the files the steps read back are written by hand (CSVs, and tiny fit files with
only the attrs the readers look at), so each check takes well under a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis.errors import InputError
from analysis.inference.fit import save_fit
from analysis.paths import RunPaths, run_lock
from analysis.selection import sweep
from analysis.selection.baseline import BASELINE_COLUMNS
from analysis.selection.compare import COLUMNS
from analysis.selection.sweep import reusable
from tests.conftest import REPO_ROOT
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


HOLD_LOCK = """
import sys
from pathlib import Path
from analysis.paths import RunPaths, run_lock
with run_lock(RunPaths(Path(sys.argv[1]))):
    print("locked", flush=True)
    sys.stdin.read()
"""


def baseline_argv(head: pd.DataFrame, root: Path) -> list[str]:
    data = root.parent / "small.csv"
    head[["ID", "MntWines", "MntFruits"]].to_csv(data, index=False)
    return [
        "baseline", "--dataset", "csv", "--data", str(data), "--features", "MntWines,MntFruits",
        "--k", "1-2", "--n-init", "1", "--seeds", "0", "--out", str(root),
    ]  # fmt: skip


def test_a_second_writer_of_a_run_directory_gets_one_line(tmp_path, capsys, marketing_raw):
    """Two segment fit runs into one --out used to overwrite each other's files silently; every
    step that writes takes the lock (baseline here: no sampling)."""
    root = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(root)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = run_main(baseline_argv(marketing_raw.head(200), root), capsys)
        assert_one_line_error(code, err, f"{root}: another segment process (PID {holder.pid})")
        assert not (root / "baseline.csv").exists()
    finally:
        holder.communicate("", timeout=60)
    assert not (root / ".segment.lock").exists()  # removed by its holder at exit


def test_the_lock_of_a_process_that_died_is_taken_over(tmp_path, capsys, marketing_raw):
    root = tmp_path / "run"
    root.mkdir()
    (root / ".segment.lock").write_text(f"{dead_pid()}\n")  # what a killed run leaves
    code, _, err = run_main(baseline_argv(marketing_raw.head(200), root), capsys)
    assert code == 0, err
    assert (root / "baseline.csv").is_file()
    assert not (root / ".segment.lock").exists()


def test_the_lock_is_re_entrant_within_a_process(tmp_path):
    """segment run holds it across its steps, and each step takes it again."""
    paths = RunPaths(tmp_path / "run")
    with run_lock(paths):
        with run_lock(paths):
            assert paths.lock_file.read_text() == f"{os.getpid()}\n"
        assert paths.lock_file.exists()  # still held by the outer one
    assert not paths.lock_file.exists()


def dead_pid() -> int:
    """The PID of a process that has ended."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    return int(finished.stdout)


def test_fit_removes_the_temporaries_of_dead_writers_before_sampling(
    tmp_path, capsys, marketing_raw, monkeypatch
):
    """A kill while a fit was being written left .K1.nc.PID.tmp in fits/ for good."""
    root = tmp_path / "run"
    (root / "fits").mkdir(parents=True)
    dead, live = dead_pid(), os.getpid()
    stale = [root / "fits" / f".K1.nc.{dead}.tmp", root / f".diagnostics.csv.{dead}.tmp"]
    kept = [root / "fits" / f".K2.nc.{live}.tmp", root / "fits" / ".notes.tmp"]
    for path in stale + kept:
        path.write_bytes(b"partial")
    seen = {}

    def sampling_stops_here(*args, **kwargs):
        seen["stale left"] = [path for path in stale if path.exists()]
        raise InputError("stopped before sampling")

    monkeypatch.setattr(sweep, "fit_sweep", sampling_stops_here)
    argv = baseline_argv(marketing_raw.head(200), root)
    argv = ["fit", *argv[1 : argv.index("--k")], "--k", "1", "--out", str(root)]
    code, _, err = run_main(argv, capsys)
    assert code == 2 and "stopped before sampling" in err
    assert seen["stale left"] == []
    for path in stale:
        assert f"segment: removed {path}, left by a writer killed mid-write" in err
    assert all(path.exists() for path in kept)  # a live writer's, and not atomic_path's

"""Bad input: one line on stderr naming the file/column/problem, exit code 2, no output left.

Most cases go through ``analysis.cli.main``; a few run the real entry point in a subprocess to
prove the exit code and the absence of a traceback end to end. Bad files are small edited copies
of the first rows of the marketing file, written to ``tmp_path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from analysis.data.datasets import MAX_DATA_BYTES
from analysis.workflow.fit_plan import warn_parameters_exceed_rows
from tests.conftest import REPO_ROOT

ROWS = 200  # enough rows for K <= 2 with full covariance on six columns (55 parameters)


@pytest.fixture(scope="module")
def head(marketing_raw) -> pd.DataFrame:
    """The first rows of the marketing file, untouched."""
    return marketing_raw.head(ROWS).copy()


def write_copy(
    head: pd.DataFrame, directory: Path, edit: Callable | None = None, sep: str = "\t"
) -> Path:
    """Write ``edit(copy of head)`` as a delimited file in ``directory``; return its path."""
    table = head.copy()
    if edit is not None:
        table = edit(table)
    path = directory / "marketing_copy.csv"
    table.to_csv(path, sep=sep, index=False)
    return path


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """Call the CLI in-process; argparse errors (SystemExit) count as return codes too."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    line = lines[0]
    assert line.startswith("segment")
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def baseline_argv(data: Path, out: Path, *extra: str, dataset: str = "marketing") -> list[str]:
    return [
        "baseline", "--dataset", dataset, "--data", str(data), "--n-init", "1", "--seeds", "0",
        "--k", "1-2", "--out", str(out), *extra,
    ]  # fmt: skip


def test_control_unedited_copy_runs(head, tmp_path, capsys):
    """The edited copies below fail because of the edit, not because of the copy."""
    path = write_copy(head, tmp_path)
    out = tmp_path / "run"
    code, _, _ = run_main(baseline_argv(path, out), capsys)
    assert code == 0
    assert (out / "baseline.csv").is_file()


def _set(column: str, row: int, value) -> Callable:
    def edit(table: pd.DataFrame) -> pd.DataFrame:
        table[column] = table[column].astype(object)
        table.loc[row, column] = value
        return table

    return edit


def _constant(column: str) -> Callable:
    def edit(table: pd.DataFrame) -> pd.DataFrame:
        table[column] = 5
        return table

    return edit


def _drop(column: str) -> Callable:
    return lambda table: table.drop(columns=[column])


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (_drop("MntFishProducts"), ["missing column(s) MntFishProducts"]),
        (
            _set("MntFruits", 7, "lots"),
            ["column MntFruits", "non-numeric value 'lots' (data row 8, customer"],
        ),
        (
            _set("MntGoldProds", 12, -4),
            ["column MntGoldProds", "negative value -4 (data row 13,", "--transform standardize"],
        ),
        (_constant("MntSweetProducts"), ["column MntSweetProducts", "constant column"]),
        (
            lambda table: table.head(20),
            ["EM cannot fit any K in --k 1-2", "27 parameters for 20 rows"],
        ),
    ],
    ids=["missing-column", "non-numeric", "negative", "constant", "too-few-rows"],
)
def test_bad_marketing_copy(head, tmp_path, capsys, edit, needles):
    path = write_copy(head, tmp_path, edit)
    out = tmp_path / "run"
    code, stdout, err = run_main(baseline_argv(path, out), capsys)
    assert_one_line_error(code, err, str(path), *needles)
    assert not out.exists()
    assert stdout == ""


def test_a_missing_spend_is_marginalized_with_a_note_or_refused_on_request(head, tmp_path, capsys):
    path = write_copy(head, tmp_path, _set("MntWines", 3, np.nan))
    argv = ["data", "--dataset", "marketing", "--data", str(path)]
    code, _, err = run_main(argv, capsys)
    assert code == 0, err
    assert "note: 1 missing values (MntWines 1) drop out of their customers' likelihood" in err
    out_dir = tmp_path / "run"
    code, _, err = run_main([*baseline_argv(path, out_dir), "--missing", "error"], capsys)
    assert_one_line_error(
        code, err, str(path), "column MntWines", "1 missing (NaN) values (first: data row 4,"
    )
    assert not out_dir.exists()


def test_error_names_the_customer(head, tmp_path, capsys):
    path = write_copy(head, tmp_path, _set("MntMeatProducts", 9, -1))
    code, _, err = run_main(baseline_argv(path, tmp_path / "run"), capsys)
    assert_one_line_error(code, err, f"(data row 10, customer {head.loc[9, 'ID']})")


def test_wrong_separator(head, tmp_path, capsys):
    path = write_copy(head.head(50), tmp_path, sep=",")
    out = tmp_path / "run"
    code, _, err = run_main(baseline_argv(path, out), capsys)
    assert_one_line_error(code, err, str(path), "found 1 column", "tab-separated")
    assert not out.exists()


def test_missing_file(tmp_path, capsys):
    path = tmp_path / "no_such_file.csv"
    out = tmp_path / "run"
    code, _, err = run_main(baseline_argv(path, out), capsys)
    assert_one_line_error(code, err, str(path), "file not found")
    assert not out.exists()


def test_directory_instead_of_file(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_main(baseline_argv(tmp_path, out), capsys)
    assert_one_line_error(code, err, str(tmp_path), "is a directory")
    assert not out.exists()


@pytest.mark.parametrize("dataset", ["marketing", "csv"])
def test_binary_garbage_file(tmp_path, capsys, dataset):
    path = tmp_path / "garbage.csv"
    path.write_bytes(np.random.default_rng(5).bytes(4096))
    out = tmp_path / "run"
    columns = ["--features", "a,b"] if dataset == "csv" else []
    argv = baseline_argv(path, out, *columns, dataset=dataset)
    code, _, err = run_main(argv, capsys)
    assert_one_line_error(code, err, str(path), "cannot read file")
    assert not out.exists()


def test_empty_file(tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text("")
    code, _, err = run_main(baseline_argv(path, tmp_path / "run"), capsys)
    assert_one_line_error(code, err, str(path), "file is empty")


def test_csv_missing_and_non_numeric_feature(head, tmp_path, capsys):
    path = write_copy(head, tmp_path, sep=";")
    argv = ["data", "--dataset", "csv", "--data", str(path), "--id-column", "ID"]
    code, _, err = run_main([*argv, "--features", "MntWines,Spend"], capsys)
    assert_one_line_error(code, err, str(path), "missing column(s) Spend")
    code, _, err = run_main([*argv, "--features", "MntWines,Education"], capsys)
    assert_one_line_error(code, err, str(path), "column Education", "non-numeric")


def test_csv_signed_values_are_standardized_unless_a_log_is_asked_for(head, tmp_path, capsys):
    """Centred (signed) measurements: the default transform becomes standardize, with a note
    naming the negative value; log-standardize is refused on one line that suggests the fix."""
    centred = head.assign(MntWines=head["MntWines"] - head["MntWines"].mean())
    path = write_copy(centred, tmp_path, sep=",")
    argv = ["data", "--dataset", "csv", "--data", str(path), "--features", "MntWines,MntFruits"]
    code, out, err = run_main(argv, capsys)
    assert code == 0
    assert "transform: standardize" in out
    assert "note: column MntWines: negative value" in err
    code, _, err = run_main([*argv, "--transform", "log-standardize"], capsys)
    assert_one_line_error(
        code, err, str(path), "column MntWines: negative value", "--transform standardize"
    )


def test_csv_duplicated_id(head, tmp_path, capsys):
    path = write_copy(head, tmp_path, _set("ID", 4, head.loc[0, "ID"]), sep=",")
    argv = ["data", "--dataset", "csv", "--data", str(path), "--id-column", "ID"]
    code, _, err = run_main([*argv, "--features", "MntWines"], capsys)
    assert_one_line_error(code, err, str(path), "column ID", f"duplicated ID {head.loc[0, 'ID']}")


@pytest.mark.parametrize("k", ["0-3", "5-2", "a", "1-", ""])
def test_malformed_k_range(marketing_csv, tmp_path, capsys, k):
    out = tmp_path / "run"
    argv = baseline_argv(marketing_csv, out)
    argv[argv.index("--k") + 1] = k
    code, _, err = run_main(argv, capsys)
    assert_one_line_error(code, err, "--k", "malformed K range")
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--seeds", "1,x", "--seeds: expected comma-separated integers"),
        ("--seeds", "-1", "--seeds: seeds must be >= 0"),
        ("--n-init", "0", "--n-init: must be >= 1"),
        ("--covariance-types", "full,banana", "--covariance-types: unknown 'banana'"),
        ("--transform", "one-hot", "--transform one-hot does not apply to continuous data"),
    ],
)
def test_bad_options(marketing_csv, tmp_path, capsys, option, value, needle):
    out = tmp_path / "run"
    argv = baseline_argv(marketing_csv, out)
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    code, _, err = run_main(argv, capsys)
    assert_one_line_error(code, err, needle)
    assert not out.exists()


def test_out_is_a_file(marketing_csv, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("not a directory")
    code, _, err = run_main(baseline_argv(marketing_csv, out), capsys)
    assert_one_line_error(code, err, f"--out {out}: exists and is not a directory")
    assert out.read_text() == "not a directory"


def test_marketing_without_data_path(tmp_path, capsys):
    code, _, err = run_main(["data", "--dataset", "marketing"], capsys)
    assert_one_line_error(code, err, "needs --data PATH")


def test_usage_error_is_one_line(capsys):
    code, _, err = run_main(["baseline", "--dataset", "nope", "--out", "x"], capsys)
    assert_one_line_error(code, err, "invalid choice: 'nope'")


def _subprocess(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("case", ["missing-file", "wrong-separator", "malformed-k"])
def test_entry_point_in_subprocess(head, marketing_csv, tmp_path, case):
    out = tmp_path / "run"
    if case == "missing-file":
        data, k, needle = tmp_path / "absent.csv", "1-2", "file not found"
    elif case == "wrong-separator":
        data, k, needle = write_copy(head.head(50), tmp_path, sep=","), "1-2", "found 1 column"
        assert data.is_file()
    else:
        data, k, needle = marketing_csv, "5-2", "malformed K range"
    argv = baseline_argv(data, out)
    argv[argv.index("--k") + 1] = k
    result = _subprocess(argv)
    line = assert_one_line_error(result.returncode, result.stderr, needle)
    if case != "malformed-k":
        assert str(data) in line
    assert result.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize(
    ("subsample", "needle"),
    [("2240", "--subsample 2240: "), ("0", "--subsample 0: ")],
)
def test_bad_subsample(marketing_csv, tmp_path, capsys, subsample, needle):
    """Subsample of every customer or none: one line, nothing written."""
    out = tmp_path / "run"
    argv = ["fit", "--dataset", "marketing", "--data", str(marketing_csv), "--k", "4"]
    code, _, err = run_main([*argv, "--subsample", subsample, "--out", str(out)], capsys)
    assert_one_line_error(code, err, needle)
    assert not out.exists()


def test_bayesian_fit_warns_but_does_not_refuse_more_parameters_than_rows(capsys):
    """178 rows x 13 features (the wine table's shape): K = 2..6 have 209..629 parameters."""
    warn_parameters_exceed_rows(178, 13, [1, 2, 3, 4, 5, 6], "full")
    err = capsys.readouterr().err.strip()
    assert err.startswith("warning: K = 2, 3, 4, 5, 6 have more parameters than the 178 rows")
    assert "(K=2: 209)" in err
    warn_parameters_exceed_rows(178, 13, [1], "full")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("rows", "features", "needle"),
    [
        (0, "MntWines", "0 data row(s) below the header"),
        (1, "MntWines", "1 data row(s) below the header"),
        (ROWS, "MntWines,MntFruits,MntWines", "--features: MntWines listed more than once"),
        (ROWS, "ID,MntWines", "--features: ID is the --id-column, not a feature"),
    ],
    ids=["header-only", "one-row", "feature-twice", "id-as-feature"],
)
def test_csv_shapes_and_feature_lists_that_cannot_work(
    head, tmp_path, capsys, rows, features, needle
):
    path = write_copy(head.head(rows), tmp_path, sep=",")
    argv = ["data", "--dataset", "csv", "--data", str(path), "--id-column", "ID"]
    code, out, err = run_main([*argv, "--features", features], capsys)
    assert_one_line_error(code, err, needle)
    assert out == ""


def test_negative_seed_is_refused_before_sampling(marketing_csv, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["fit", "--dataset", "marketing", "--data", str(marketing_csv), "--k", "1"]
    code, _, err = run_main([*argv, "--seed", "-1", "--out", str(out)], capsys)
    assert_one_line_error(code, err, "--seed must be >= 0, got -1")
    assert not out.exists()


def small_csv(head: pd.DataFrame, directory: Path) -> Path:
    """Three spend columns of the first rows, comma-separated, with the ID column."""
    path = directory / "small.csv"
    head[["ID", "MntWines", "MntFruits", "MntMeatProducts"]].to_csv(path, index=False)
    return path


def step_argv(step: str, data: Path, out: Path) -> list[str]:
    """A cheap command line of ``step`` (tiny sampling, should a check fail to stop it)."""
    argv = [step, "--dataset", "csv", "--data", str(data), "--id-column", "ID"]
    argv += ["--features", "MntWines,MntFruits", "--k", "1", "--out", str(out)]
    if step == "baseline":
        return [*argv, "--n-init", "1", "--seeds", "0"]
    tiny = ["--chains", "1", "--draws", "10", "--tune", "10", "--budget", "0"]
    return [*argv, *tiny] if step == "fit" else [*argv, *tiny, "--n-init", "1", "--seeds", "0"]


@pytest.mark.parametrize("step", ["baseline", "fit", "run"])
@pytest.mark.parametrize(
    ("where", "needle"),
    [
        ("file", "--out {out}: exists and is not a directory"),
        ("file/run", "--out {out}: {file} exists and is not a directory"),
        ("run-with-fits-file", "--out {out}: {out}/fits exists and is not a directory"),
    ],
)
def test_an_out_that_cannot_be_written_is_refused_before_any_work(
    head, tmp_path, capsys, step, where, needle
):
    data, file = small_csv(head, tmp_path), tmp_path / "file"
    file.write_text("taken")
    out = tmp_path / where
    if where == "run-with-fits-file":
        out.mkdir()
        (out / "fits").write_text("taken")
    code, stdout, err = run_main(step_argv(step, data, out), capsys)
    assert_one_line_error(code, err, needle.format(out=out, file=file))
    assert stdout == ""
    assert file.read_text() == "taken"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        {"small.csv", "file", where.split("/")[0]}
    )


def test_an_out_in_a_read_only_directory_is_refused_before_any_work(
    head, tmp_path, capsys, monkeypatch
):
    """As root a chmod'ed directory stays writable, so the permission is what os.access says."""
    data, locked = small_csv(head, tmp_path), tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode)
    )
    out = locked / "run"
    for step in ("baseline", "fit", "run"):
        code, _, err = run_main(step_argv(step, data, out), capsys)
        assert_one_line_error(code, err, f"--out {out}: {locked} is not writable")
    assert list(locked.iterdir()) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("dataset", ["marketing", "csv"])
def test_a_device_or_an_oversized_data_file_is_refused_at_once(tmp_path, capsys, dataset):
    """/dev/zero used to be parsed forever (18 GB of memory within 40 s)."""
    big = tmp_path / "big.csv"
    with big.open("wb") as handle:
        handle.truncate(MAX_DATA_BYTES + 1)  # sparse: takes no disk space
    for path, needle in (
        (Path("/dev/zero"), "not a regular file (a device, pipe or socket)"),
        (big, f"{MAX_DATA_BYTES + 1:,} bytes, more than the {MAX_DATA_BYTES:,}-byte (1 GiB) limit"),
    ):
        started = time.perf_counter()
        columns = ["--features", "a"] if dataset == "csv" else []
        argv = ["data", "--dataset", dataset, "--data", str(path), *columns]
        code, _, err = run_main(argv, capsys)
        assert_one_line_error(code, err, str(path), needle)
        assert time.perf_counter() - started < 5


@pytest.mark.parametrize("dataset", ["marketing", "csv"])
def test_a_feature_named_twice_in_the_header_is_one_line(head, tmp_path, capsys, dataset):
    """pandas reads the copy as MntWines.1: one of the two columns was used silently."""
    copy = head[["MntWines"]].assign(MntWines=1)
    path = write_copy(head, tmp_path, lambda table: pd.concat([table, copy], axis=1))
    assert path.read_text().splitlines()[0].split("\t").count("MntWines") == 2
    columns = ["--features", "MntWines,MntFruits"] if dataset == "csv" else []
    argv = ["data", "--dataset", dataset, "--data", str(path), *columns]
    code, out, err = run_main(argv, capsys)
    assert_one_line_error(code, err, f"{path}: column MntWines appears 2 times in the header")
    assert out == ""


def test_csv_categorical_columns_are_read_with_their_levels(head, tmp_path, capsys):
    """--categorical: levels from the data (numerals in numeric order), a missing answer kept
    as missing and named in the summary; refused under --missing error, one line."""
    table = head.assign(Kidhome=head["Kidhome"].astype(float))
    table.loc[3, "Kidhome"] = np.nan
    path = write_copy(table, tmp_path, sep=",")
    argv = ["data", "--dataset", "csv", "--data", str(path), "--id-column", "ID"]
    code, out, err = run_main([*argv, "--categorical", "Education,Kidhome"], capsys)
    assert code == 0, err
    assert "transform: one-hot" in out
    assert "missing: each missing value drops out of its customer's likelihood" in out
    kids = sorted(str(int(v)) for v in table["Kidhome"].dropna().unique())
    summary = {line.split()[0]: line.split() for line in out.splitlines() if line}
    assert summary["Kidhome"][1:3] == ["1", "0"]  # missing, unknown
    assert int(summary["Kidhome"][3]) == len(kids)
    code, _, err = run_main([*argv, "--categorical", "Kidhome", "--missing", "error"], capsys)
    assert_one_line_error(code, err, str(path), "column Kidhome: 1 missing values", "customer")


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--features", "MntWines", "--categorical", "MntWines"], "both list MntWines"),
        (["--categorical", "Education,Education"], "Education listed more than once"),
        (["--categorical", "ID"], "--categorical: ID is the --id-column"),
        (["--categorical", "MntWines"], "distinct values, more than the 50 levels"),
        (["--categorical", "Missing"], "missing column(s) Missing"),
    ],
    ids=["both", "twice", "id", "too-many-levels", "absent"],
)
def test_csv_categorical_columns_that_cannot_work(head, tmp_path, capsys, options, needle):
    path = write_copy(head, tmp_path, sep=",")
    argv = ["data", "--dataset", "csv", "--data", str(path), "--id-column", "ID", *options]
    code, out, err = run_main(argv, capsys)
    assert_one_line_error(code, err, needle)
    assert out == ""


def test_a_mixed_csv_table_goes_to_the_mixed_model_and_nothing_else(head, tmp_path, capsys):
    """--features and --categorical together: a mixed dataset (segment data lists both parts);
    a model of one kind, or --model mixed on one kind of columns, is one line and exit 2."""
    path = write_copy(head, tmp_path, sep=",")
    argv = ["--dataset", "csv", "--data", str(path), "--id-column", "ID"]
    mixed = [*argv, "--features", "MntWines,MntFruits", "--categorical", "Education"]
    code, out, err = run_main(["data", *mixed], capsys)
    assert code == 0, err
    assert "features: MntWines, MntFruits" in out and "categorical: Education" in out
    out_dir = tmp_path / "run"
    for model, needle in (("lca", "needs categorical features"), ("hurdle", "continuous")):
        code, _, err = run_main(["fit", *mixed, "--model", model, "--out", str(out_dir)], capsys)
        assert_one_line_error(code, err, f"--model {model}", needle, "mixed ones")
    code, _, err = run_main(
        ["fit", *argv, "--features", "MntWines", "--model", "mixed", "--out", str(out_dir)],
        capsys,
    )
    assert_one_line_error(code, err, "--model mixed needs continuous and categorical columns")
    assert not out_dir.exists()


def test_columns_are_chosen_only_for_a_csv_file(capsys):
    code, _, err = run_main(["data", "--dataset", "dunnhumby-spend", "--features", "a"], capsys)
    assert_one_line_error(code, err, "--features and --categorical choose columns of --dataset csv")

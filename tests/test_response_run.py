"""``segment response`` end to end on the shared small run (tests/small_run.py), and its report
section: outcomes from the marketing file's rows of the 200 fitted customers."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from analysis.cli import main
from analysis.paths import RunPaths
from analysis.reporting.report import render
from tests.small_run import ROWS


@pytest.fixture(scope="module")
def run(run, tmp_path_factory):
    """A copy of the shared run: the response files must not change what other tests read."""
    result = run
    copy = tmp_path_factory.mktemp("response-run") / "run"
    shutil.copytree(result.root, copy)
    return result.__class__(copy, result.figures_to, result.code, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def responded(run, tmp_path_factory, marketing_raw):
    outcomes = tmp_path_factory.mktemp("outcomes") / "outcomes.csv"
    marketing_raw.head(ROWS)[["ID", "Response", "AcceptedCmp1"]].to_csv(outcomes, index=False)
    argv = ["response", "--run", str(run.root), "--k", "2", "--data", str(outcomes),
            "--outcomes", "Response,AcceptedCmp1", "--id-column", "ID"]  # fmt: skip
    assert main(argv) == 0
    return pd.read_csv(RunPaths(run.root).response_csv)


def test_response_rows_count_every_customer(responded, marketing_raw):
    population = responded[responded["segment"] == "all"].set_index("outcome")
    assert (population["customers"] == ROWS).all()
    assert population.at["Response", "responders"] == marketing_raw.head(ROWS)["Response"].sum()
    segments = responded[responded["segment"] != "all"]
    sums = segments.groupby("outcome")[["customers", "responders"]].sum().loc[population.index]
    pd.testing.assert_frame_equal(sums, population[["customers", "responders"]], check_exact=False)
    assert (segments["rate_hdi_low"] <= segments["rate"]).all()
    assert (segments["rate"] <= segments["rate_hdi_high"]).all()


def test_report_shows_the_response_section(run, responded):
    html = render(RunPaths(run.root))
    assert '<section id="response">' in html
    assert 'data-source="response.csv"' in html and 'data-source="targeting.csv"' in html


def test_bad_outcome_file_is_one_line_exit_2(run, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,Response\n5524,1\n2174,yes\n")
    argv = ["response", "--run", str(run.root), "--k", "2", "--data", str(bad),
            "--outcomes", "Response", "--id-column", "ID"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "column Response" in err and "data row 2" in err
    assert main([*argv[:-4], "--id-column", "ID"]) == 2  # a csv fit needs --outcomes

"""``segment track``: the migration matrix against a hand computation, the drift signal, and the
command end to end on the shared small real run (``tests/small_run.py``, K = 2 hurdle fit)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from analysis.decisions.drift import drift_signal, feature_shifts
from analysis.decisions.migration import migration_draws, migration_table, realised_draws
from analysis.decisions.track import OUTPUT_FILES, matched_rows
from analysis.paths import RunPaths
from analysis.reporting.report import render
from tests.small_run import FEATURES

NAMES = pd.Series(["low", "high"], index=[0, 1])


def test_migration_matrix_is_the_hand_computation():
    earlier = np.array([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [1.0, 0.0]]], dtype=np.float32)
    later = np.array([[[0.8, 0.2], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]], dtype=np.float32)
    # draw 0: [1, 0]' [0.8, 0.2] + [0.5, 0.5]' [0, 1]; draw 1: [0, 1]' [1, 0] + [1, 0]' [1, 0]
    by_hand = np.array([[[0.8, 0.7], [0.0, 0.5]], [[1.0, 0.0], [1.0, 0.0]]])
    draws = migration_draws(earlier, later)
    np.testing.assert_allclose(draws, by_hand, rtol=1e-6)
    realised = realised_draws(earlier, later, np.random.default_rng(0))
    np.testing.assert_array_equal(realised[1], by_hand[1])  # memberships 0 or 1: no chance left
    assert realised[0].sum() == 2 and realised[0][1, 0] == 0  # no one can go high -> low there
    table = migration_table(draws, realised, NAMES)
    assert list(zip(table["from_name"], table["to_name"], strict=True)) == [
        ("low", "low"), ("low", "high"), ("high", "low"), ("high", "high"),
    ]  # fmt: skip
    np.testing.assert_allclose(table["expected"], [0.9, 0.35, 0.5, 0.25], rtol=1e-6)
    # two draws: the 94% HDI spans both of them
    np.testing.assert_allclose(table["hdi_low"], by_hand.min(axis=0).ravel(), rtol=1e-6)
    np.testing.assert_allclose(table["hdi_high"], by_hand.max(axis=0).ravel(), rtol=1e-6)
    np.testing.assert_array_equal(table["realised_low"], realised.min(axis=0).ravel())
    np.testing.assert_array_equal(table["realised_high"], realised.max(axis=0).ravel())


def test_migration_rows_sum_to_the_earlier_segment_sizes():
    rng = np.random.default_rng(0)
    earlier, later = (rng.dirichlet(np.ones(3), size=(40, 25)) for _ in range(2))  # (S, N, K)
    draws = migration_draws(earlier, later)
    np.testing.assert_allclose(draws.sum(axis=2), earlier.sum(axis=1))
    np.testing.assert_allclose(draws.sum(axis=(1, 2)), 25.0)


def test_matched_rows_leave_out_new_and_gone_customers():
    fit_rows, later_rows = matched_rows([10, 11, 12, 13], [13, 99, 11])
    np.testing.assert_array_equal(fit_rows, [3, 1])
    np.testing.assert_array_equal(later_rows, [0, 2])


def test_drift_signal_is_paired_and_recommends_below_two_se():
    fit = np.array([-3.0, -1.0, -5.0, -2.0])
    signal = drift_signal(fit - [0.5, 0.7, 0.6, 0.4], fit)
    assert signal.difference == pytest.approx(-0.55)
    assert signal.se == pytest.approx(np.std([0.5, 0.7, 0.6, 0.4], ddof=1) / 2)
    assert signal.refit
    assert not drift_signal(fit + 0.1, fit).refit


def test_feature_shifts_are_against_the_replicated_mean_in_fit_sd():
    fit_x = np.array([[0.0, 1.0], [2.0, 1.0], [np.nan, 4.0]])  # sd 1.414, 1.732
    replicated = np.stack([fit_x, fit_x + 0.2]).copy()
    replicated[np.isnan(replicated)] = 1.0  # replicates hold no missing values
    shifts = feature_shifts(fit_x, replicated, fit_x + np.array([0.0, 3.0]), ["a", "b"])
    assert list(shifts["feature"]) == ["b", "a"]  # largest shift first
    b = shifts.iloc[0]
    assert b["replicated_mean"] == pytest.approx(2.1)
    assert b["shift_sd"] == pytest.approx((5.0 - 2.1) / np.sqrt(3.0))


@pytest.fixture(scope="module")
def table(run) -> pd.DataFrame:
    return pd.read_csv(run.root.parent / "small.csv")


def track(run, table: pd.DataFrame, directory, *extra) -> int:
    """``segment track`` of ``table`` (written beside ``directory``) into ``directory``."""
    data = directory.with_name(f"{directory.name}.csv")
    table.to_csv(data, index=False)
    argv = ["track", "--run", str(run.root), "--data", str(data), "--id-column", "ID"]
    return main([*argv, "--k", "2", "--out", str(directory), *extra])


@pytest.fixture(scope="module")
def itself(run, table, tmp_path_factory):
    """The fitted table tracked against itself."""
    out = tmp_path_factory.mktemp("track") / "itself"
    assert track(run, table, out) == 0
    return out


def test_itself_rows_sum_to_the_fits_segment_sizes_and_no_drift(run, itself):
    migration = pd.read_csv(itself / "migration.csv")
    sizes = pd.read_csv(run.root / "assignments.csv")[["p_0", "p_1"]].sum().to_numpy()
    np.testing.assert_allclose(migration.groupby("from_segment")["expected"].sum(), sizes, 1e-4)
    # the same customers again: the re-estimated later sizes are the fit's, within its HDIs
    periods = pd.read_csv(itself / "sizes.csv")
    assert (periods["fit_weight_hdi_low"] <= periods["later_weight"]).all()
    assert (periods["later_weight"] <= periods["fit_weight_hdi_high"]).all()
    np.testing.assert_allclose(periods["earlier_customers"], sizes, rtol=1e-4)
    np.testing.assert_allclose(periods["later_customers"].sum(), 200, rtol=1e-6)
    summary = (itself / "drift.txt").read_text()
    assert "matched customers: 200" in summary and "new in the later table" in summary
    assert "no drift" in summary and "refit" not in summary


def test_precise_customers_stay_in_their_segment(run, table, tmp_path):
    assignments = pd.read_csv(run.root / "assignments.csv")
    precise = assignments.loc[assignments["confidence"] == "precise", "customer_id"]
    assert track(run, table[table["ID"].isin(precise)], tmp_path / "precise") == 0
    migration = pd.read_csv(tmp_path / "precise" / "migration.csv")
    moved = migration.loc[migration["from_segment"] != migration["to_segment"], "expected"]
    assert moved.sum() < 0.01 * len(precise)


def test_tripled_spend_recommends_a_refit(run, table, tmp_path, capsys):
    later = table.assign(**{f: table[f] * 3 for f in FEATURES}).iloc[10:]
    newcomers = table.head(4).assign(ID=table["ID"].head(4) + 10**6)
    assert track(run, pd.concat([later, newcomers]), tmp_path / "tripled") == 0
    printed = capsys.readouterr().out
    assert "refit recommended" in printed and "new in the later table (not in the fit" in printed
    summary = (tmp_path / "tripled" / "drift.txt").read_text()
    assert "matched customers: 190" in summary and "left out): 4" in summary
    assert "gone (in the fit, not in the later table): 10" in summary
    shifts = pd.read_csv(tmp_path / "tripled" / "drift.csv")
    assert (shifts["shift_sd"] > 0.3).all()  # log1p(3 x spend): every feature moved up
    assert shifts["feature"].iloc[0] in summary
    assert (tmp_path / "tripled" / "migration.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.drop(columns="MntFruits"), "missing column(s) MntFruits"),
        (lambda t: t.assign(MntMeatProducts=-1.0), "negative value -1"),
        (lambda t: t.assign(ID=t["ID"] + 10**6), "no customer of the later table is in the fit"),
    ],
)
def test_bad_data_is_one_line_and_no_output(run, table, tmp_path, capsys, edit, message):
    assert track(run, edit(table), tmp_path / "out") == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("segment: error:") and message in error
    assert not (tmp_path / "out").exists()


def test_out_is_checked_before_any_work(run, table, tmp_path, capsys):
    (tmp_path / "out").write_text("")
    assert track(run, table, tmp_path / "out", "--draws", "10") == 2
    assert "exists and is not a directory" in capsys.readouterr().err
    assert set(OUTPUT_FILES).isdisjoint(p.name for p in tmp_path.iterdir())


def test_without_out_track_and_score_write_into_the_run_and_the_report_shows_them(
    run, table, tmp_path
):
    """Without --out both steps write into the run directory (track/, scores.csv and
    scores_summary.csv), which the report's sections 'Migration and drift' and 'Scoring new
    customers' then show; a copy of the shared run, so other tests' files do not change."""
    paths = RunPaths(tmp_path / "run")
    shutil.copytree(run.root, paths.root)
    data = tmp_path / "later.csv"
    table.to_csv(data, index=False)
    argv = ["--run", str(paths.root), "--data", str(data), "--id-column", "ID", "--k", "2"]
    assert main(["track", *argv]) == 0
    assert {p.name for p in paths.track_dir.iterdir()} == set(OUTPUT_FILES)
    assert main(["score", *argv]) == 0
    summary = pd.read_csv(paths.scores_summary_csv).set_index("segment")
    scored = pd.read_csv(paths.scores_csv)
    assert summary.at["all", "customers"] == len(scored) == 200
    assert summary.at["all", "novel"] == scored["novel"].sum()
    assert summary.loc[["0", "1"], "customers"].sum() == 200
    html = render(paths)
    for section in ("scoring", "migration"):
        assert f'<section id="{section}">' in html
    for source in (
        "track/migration.csv",
        "track/sizes.csv",
        "track/drift.csv",
        "scores_summary.csv",
    ):
        assert f'data-source="{source}"' in html
    assert 'data-file="migration.png"' in html and "not found" not in html.split('id="scoring"')[1]

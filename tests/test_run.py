"""``segment run``: presets, option overrides, the four steps end to end, resuming.

The end-to-end checks use the shared small real run (``tests/small_run.py``); the preset and
command-line checks need no sampling.
"""

from __future__ import annotations

import argparse
import io
import shlex

import pytest

from analysis.cli import add_fit_options, build_parser, main, run_plan
from analysis.distributed import ClusterOptions
from analysis.workflow.pipeline import PRESETS, apply_preset, run_steps


def parse_run(*options: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", "--out", "runs/x", *options])


def step_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """The command line each step of ``segment run`` prints (without ``segment``)."""
    return {name: request.command() for name, request in run_plan(args).steps().items()}


def test_presets_fill_only_what_was_not_given():
    args = apply_preset(parse_run("--chains", "3", "--k", "2-3"))
    assert args.chains == 3 and args.k == "2-3"  # explicit options win
    assert args.draws == PRESETS["quick"]["draws"] and args.tune == PRESETS["quick"]["tune"]
    full = apply_preset(parse_run("--preset", "full"))
    assert (full.k, full.chains, full.draws, full.tune) == ("1-10", 4, 1000, 1000)
    assert parse_run().preset == "quick"  # make run: a result in minutes


def test_each_step_command_is_a_valid_segment_command():
    args = parse_run("--dataset", "marketing", "--data", "file.csv", "--seed", "5", "--n-init", "1")
    commands = step_commands(args)
    parser = build_parser()
    fit = parser.parse_args(commands["fit"])
    assert (fit.dataset, str(fit.data), fit.seed, fit.k) == ("marketing", "file.csv", 5, "1-4")
    assert (fit.chains, fit.draws, fit.tune, fit.budget) == (4, 500, 500, 4)
    baseline = parser.parse_args(commands["baseline"])
    assert (baseline.n_init, baseline.k, baseline.seeds) == (1, "1-10", "0,1,2")
    report = parser.parse_args(commands["report"])
    assert str(report.run) == "runs/x" and report.k is None
    assert commands["compare"] == ["compare", "--run", "runs/x", "--no-moment-match"]
    full = step_commands(parse_run("--preset", "full"))
    assert full["compare"] == ["compare", "--run", "runs/x"]
    forced = step_commands(parse_run("--moment-match"))
    assert forced["compare"] == ["compare", "--run", "runs/x"]


def test_every_fit_option_reaches_the_fit_step():
    given = {
        "model": "hurdle", "covariance": "diag", "chains": "3", "draws": "7", "tune": "9",
        "seed": "5", "sampler": "pymc", "backend": "numba", "adaptation": "diag",
        "subsample": "100", "budget": "1.5", "patience": "3",
    }  # fmt: skip
    flags = {"stop_at_empty": ("--no-stop-at-empty", "False")}  # on/off options
    options = argparse.ArgumentParser(add_help=False)
    add_fit_options(options)
    assert {action.dest for action in options._actions} == set(given) | set(flags)
    argv = [arg for name, value in given.items() for arg in (f"--{name}", value)]
    argv += [flag for flag, _ in flags.values()]
    fit = build_parser().parse_args(step_commands(parse_run(*argv))["fit"])
    expected = given | {name: value for name, (_, value) in flags.items()}
    assert {name: str(getattr(fit, name)) for name in expected} == expected


RUN_OPTIONS = {
    "csv": [
        "--dataset", "csv", "--data", "{data}", "--features", "MntWines, MntFruits",
        "--id-column", "ID", "--transform", "standardize", "--missing", "error",
        "--k", "1-3,5", "--model", "gmm", "--covariance", "diag", "--chains", "3", "--draws", "7",
        "--tune", "9", "--seed", "5", "--sampler", "pymc", "--backend", "numba",
        "--adaptation", "diag", "--subsample", "150", "--budget", "1.5", "--patience", "3",
        "--no-stop-at-empty", "--baseline-k", "2-4", "--covariance-types", "full,diag",
        "--n-init", "3", "--seeds", "4,7", "--kfold", "5", "--max-moment-match", "9",
        "--moment-match", "--report-k", "3", "--precise-threshold", "0.8",
    ],
    "categorical": [
        "--dataset", "dunnhumby-demographics", "--join", "age+income", "--join",
        "household_size+kids_count", "--preset", "full",
    ],
    "weeks": ["--weeks", "2-27", "--k", "2"],
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(RUN_OPTIONS))
def test_run_and_the_step_commands_give_the_same_settings(tmp_path, marketing_raw, case):
    """Each step of ``segment run`` gets the request that its printed command gives when typed
    as ``segment STEP ...``; for the csv table also the same fit configuration (no sampling)."""
    data = tmp_path / "small.csv"
    marketing_raw.head(200)[["ID", "MntWines", "MntFruits"]].to_csv(data, index=False)
    out = tmp_path / "run dir"  # a space: the printed line is quoted
    options = [option.format(data=data) for option in RUN_OPTIONS[case]]
    plan = run_plan(build_parser().parse_args(["run", *options, "--out", str(out)]))
    parser = build_parser()
    for name, request in plan.steps().items():
        typed = parser.parse_args(shlex.split(shlex.join(request.command())))
        assert typed.request(typed) == request, name
    assert plan.compare.run == plan.report.run == plan.baseline.out == out
    if case == "csv":
        assert plan.fit.ks == (1, 2, 3, 5) and plan.baseline.ks == (2, 3, 4)
        assert plan.fit.settings.chains == 3 and plan.fit.rules.budget_seconds == 90
        assert not plan.fit.rules.stop_at_empty and plan.compare.moment_matching
        typed = parser.parse_args(plan.fit.command())
        by_hand, by_run = typed.request(typed).plan(), plan.fit.plan()
        assert by_hand.spec.identity(2) == by_run.spec.identity(2)
        assert by_run.spec.options["covariance"] == "diag" and by_run.n_fit == 150
        assert not out.exists()  # planning writes nothing


def test_run_writes_every_step_output(run):
    root = run.root
    for name in ("baseline.csv", "diagnostics.csv", "profiles.csv", "assignments.csv",
                 "segments.csv", "report.html", "fits/K1.nc", "fits/K2.nc",
                 "figures/baseline.png", "figures/profiles.png"):  # fmt: skip
        assert (root / name).is_file(), name


def test_run_reports_progress_and_where_the_report_is(run):
    for step in ("[1/4] segment baseline", "[2/4] segment fit", "[4/4] segment report"):
        assert step in run.stderr, step
    assert f"report: {run.root / 'report.html'}" in run.stderr
    assert "preset quick" in run.stderr and "overridden: --k" in run.stderr


def test_run_publishes_the_main_figures(run):
    published = sorted(path.name for path in run.figures_to.glob("*.png"))
    for name in ("baseline_csv.png", "profiles_csv.png", "revenue_csv.png"):
        assert name in published


def test_second_run_reuses_the_fits(run, capsys, marketing_csv):
    """Same command again: no resampling (the fits' configuration matches)."""
    before = {path: path.stat().st_mtime_ns for path in (run.root / "fits").glob("K*.nc")}
    from tests.small_run import run_argv

    code = main(run_argv(run.root.parent / "small.csv", run.root, run.figures_to))
    err = capsys.readouterr().err
    assert code == 0
    assert err.count("already fitted") == 2
    after = {path: path.stat().st_mtime_ns for path in (run.root / "fits").glob("K*.nc")}
    assert before == after


def test_run_bad_input_is_one_line(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    code = main(["run", "--out", str(target)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "not a directory" in err


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--k", "3-1"], "--k: malformed K range '3-1'"),
        (["--chains", "0"], "--chains must be >= 1, got 0"),
        (["--patience", "-1"], "--patience must be >= 0"),
        (["--subsample", "500"], "--subsample 500: "),
        (["--kfold", "1"], "--kfold: need at least 2 folds"),
        (["--max-moment-match", "-1"], "--max-moment-match: must be >= 0"),
        (["--precise-threshold", "2"], "--precise-threshold: must be in (0, 1]"),
        (["--k", "1-2", "--report-k", "3"], "--report-k 3: not in --k 1-2"),
    ],
)
def test_run_checks_every_step_before_the_first_writes(
    tmp_path, capsys, marketing_raw, options, needle
):
    """A bad option of a later step (fit, compare, report) used to surface only after the
    baseline had written baseline.csv and figures/baseline.png."""
    data = tmp_path / "small.csv"
    marketing_raw.head(200)[["ID", "MntWines", "MntFruits"]].to_csv(data, index=False)
    out = tmp_path / "run"
    argv = ["run", "--dataset", "csv", "--data", str(data), "--features", "MntWines,MntFruits"]
    argv += ["--baseline-k", "1-2", "--n-init", "1", "--seeds", "0", "--draws", "10"]
    code = main([*argv, "--tune", "10", "--chains", "1", *options, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()


def test_the_printed_step_commands_carry_the_cluster_options(tmp_path):
    """With --workers, the fit and compare lines print it (they have parallel parts); baseline
    and report do not take it. The steps here do nothing (no sampling)."""
    args = build_parser().parse_args(["run", "--out", str(tmp_path / "r"), "--workers", "2"])
    plan = run_plan(args)
    progress = io.StringIO()
    run_steps(plan, dict.fromkeys(plan.steps(), lambda: None), progress, ClusterOptions(workers=2))
    lines = [line for line in progress.getvalue().splitlines() if "/4] segment " in line]
    assert [line.endswith("--workers 2") for line in lines] == [False, True, True, False]

"""Command line: ``segment <step>`` (also ``python -m analysis``).

Bad input (``InputError`` or a malformed option) prints one line on stderr and exits with 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

from analysis.data.datasets import DATASETS, MISSING_LEVEL, MISSING_POLICIES, Dataset, parse_weeks
from analysis.data.joins import parse_joins
from analysis.data.transforms import TRANSFORMS
from analysis.distributed import add_cluster_options, cluster_options, open_cluster
from analysis.errors import InputError
from analysis.inference import fit
from analysis.inference.profiles import PRECISE_THRESHOLD
from analysis.paths import (
    TRACK_DIR,
    TRACK_FILES,
    RunPaths,
    atomic_path,
    check_output_file,
    run_lock,
)
from analysis.selection import baseline, sweep
from analysis.selection.loo import MAX_MOMENT_MATCH
from analysis.workflow import pipeline
from analysis.workflow.fit_plan import (
    HURDLE_ZERO_SHARE,
    MODELS,
    announce,
    parse_k_range,
    sampler_settings,
    sweep_rules,
)
from analysis.workflow.pipeline import DEFAULT_PRESET, PRESETS, RunPlan, apply_preset, overridden
from analysis.workflow.steps import (
    DEFAULT_DATASET,
    BaselineRequest,
    CompareRequest,
    DataOptions,
    FitRequest,
    ReportRequest,
)
from models.gmm import COVARIANCES


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_int_list(text: str, option: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise InputError(f"{option}: expected comma-separated integers, got '{text}'") from None


def parse_names(text: str | None) -> tuple[str, ...] | None:
    """``"a, b"`` -> ("a", "b"): a comma-separated column list; None (not given) stays None."""
    return None if text is None else tuple(part.strip() for part in text.split(","))


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset", choices=DATASETS, default=DEFAULT_DATASET, help=f"(default: {DEFAULT_DATASET})"
    )
    group.add_argument("--data", type=Path, help="file path (marketing, csv)")
    group.add_argument("--features", help="comma-separated numeric feature columns (csv)")
    group.add_argument(
        "--categorical",
        help="comma-separated categorical columns (csv; levels read from the data, fitted with "
        "the latent class model, or with the mixed model together with --features)",
    )
    add_row_options(group)
    add_weeks_option(group, "default: the whole year")
    group.add_argument(
        "--join",
        action="append",
        metavar="A+B+C",
        help="categorical data: combine these variables into one whose levels are the "
        "combinations that occur (for near-functions of each other, which the local-dependence "
        "check flags); repeat for several groups",
    )
    group.add_argument(
        "--transform",
        choices=TRANSFORMS,
        help="feature transform (default: log-standardize for non-negative data such as spend, "
        "standardize when a feature has negative values, one-hot for categorical)",
    )


def add_row_options(group) -> None:
    """--missing and --id-column: how the rows of a data file are read (fit and score)."""
    group.add_argument(
        "--missing",
        choices=MISSING_POLICIES,
        default="marginalize",
        help="a missing value (csv): drop it out of that customer's likelihood (marginalize, "
        "default) or refuse the file (error)",
    )
    group.add_argument("--id-column", help="customer ID column (csv)")


def add_weeks_option(group, default: str) -> None:
    """--weeks: a period of the built-in Dunnhumby transactions (data and scoring options);
    ``default`` says what is read without it."""
    group.add_argument(
        "--weeks",
        metavar="A-B",
        help="only the transactions of weeks A to B, both included, of the data's weeks 1-53 "
        f"(dunnhumby-spend, dunnhumby-mixed; the households that shopped in them; {default})",
    )


def data_options(args: argparse.Namespace) -> DataOptions:
    """The data options of ``segment data``, ``baseline``, ``fit`` or ``run``, parsed
    (InputError for a malformed --weeks or --join)."""
    return DataOptions(
        dataset=args.dataset,
        data=args.data,
        features=parse_names(args.features or None),
        categorical=parse_names(args.categorical or None),
        id_column=args.id_column,
        weeks=parse_weeks(args.weeks) if args.weeks is not None else None,
        transform=args.transform,
        missing=args.missing,
        joins=tuple(parse_joins(args.join)),
    )


def command_data(args: argparse.Namespace) -> None:
    dataset, transform, notes = data_options(args).load()
    announce(notes)
    print(f"dataset: {dataset.name}  source: {dataset.source}")
    print(f"rows: {dataset.n_customers}  features: {', '.join(dataset.features.columns)}")
    if dataset.categories is not None:
        print(f"categorical: {', '.join(dataset.categories.columns)}")
    units = f"units: {dataset.unit}  " if dataset.unit else ""
    print(f"{units}transform: {transform.name} ({len(transform.columns)} model columns)")
    summary = dataset.summary()
    parts = [dataset.features.columns]
    if dataset.categories is not None:  # a mixed table: one summary per kind of column
        parts.append(dataset.categories.columns)
    for columns in parts:
        shown = summary.loc[columns].dropna(axis=1, how="all")
        counts = [c for c in ("missing", "unknown", "levels") if c in shown]
        shown[counts] = shown[counts].astype(int)
        print(shown.to_string(float_format=lambda v: f"{v:,.3f}"))
    answers = dataset.features if dataset.kind == "categorical" else dataset.categories
    if answers is not None and (answers == MISSING_LEVEL).any().any():
        print(
            f"unknown: customers with this column missing in the source, "
            f"kept as level '{MISSING_LEVEL}'"
        )
    if dataset.features.isna().any().any():
        print("missing: each missing value drops out of its customer's likelihood (--missing)")
    if len(dataset.profile.columns):
        missing = dataset.profile.isna().sum()
        print(
            "profile columns (missing): " + ", ".join(f"{c} ({missing[c]})" for c in missing.index)
        )


def command_step(args: argparse.Namespace) -> None:
    """``segment baseline``, ``fit``, ``compare`` or ``report``: the step's request
    (``args.request``, e.g. :func:`fit_request`) prepared, then run (on the cluster of
    ``--scheduler`` or ``--workers``, where the step has them)."""
    run_on_cluster(args, args.request(args).prepare)


def baseline_step_request(args: argparse.Namespace) -> BaselineRequest:
    """The request of ``segment baseline``."""
    return baseline_request(args, args.k, args.out)


def baseline_request(args: argparse.Namespace, k: str, out: Path) -> BaselineRequest:
    """The baseline step of ``segment baseline`` or ``run`` (its K range ``k``), parsed."""
    return BaselineRequest(
        data=data_options(args),
        ks=tuple(parse_k_range(k)),
        out=out,
        n_init=args.n_init,
        seeds=tuple(parse_int_list(args.seeds, "--seeds")),
        covariance_types=parse_names(args.covariance_types),
    )


def add_fit_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Bayesian fit")
    group.add_argument(
        "--model",
        choices=MODELS,
        help="mixture (default: hurdle for non-negative features with exact zeros in at least "
        f"{HURDLE_ZERO_SHARE:.0%}% of customers, such as spend; gmm for other continuous "
        "features; lca for categorical ones; for continuous and categorical columns together "
        "mixed-hurdle or mixed-gmm by the same rule, which 'mixed' also picks)",
    )
    group.add_argument("--covariance", choices=COVARIANCES, default="full")
    group.add_argument("--chains", type=int, default=4)
    group.add_argument("--draws", type=int, default=1000)
    group.add_argument("--tune", type=int, default=1000)
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--sampler", choices=fit.SAMPLERS, default="nutpie")
    group.add_argument(
        "--backend",
        choices=fit.BACKENDS,
        default="jax",
        help="nutpie's compiler: jax (default; compiles in seconds) or numba (slower to compile, "
        "faster gradients for small K; see bench.compile)",
    )
    group.add_argument(
        "--adaptation",
        choices=fit.ADAPTATIONS,
        default="low_rank",
        help="nutpie's mass matrix: low_rank (default; diagonal plus the draws' leading "
        "covariance directions) or diag",
    )
    group.add_argument(
        "--budget",
        type=float,
        metavar="MINUTES",
        help="wall time the sweep may use before it stops sampling slow fits longer (a slow "
        f"fit is refitted with {sweep.GROWTH}x the warm-up and draws while the next attempt "
        "is expected to end inside it; 0 or not given: no extension; segment run: the "
        "preset's)",
    )
    group.add_argument(
        "--patience",
        type=int,
        help=f"stop the sweep after this many K in a row that do not beat the best K by "
        f"{sweep.RULE_SE:g} dse (0: fit every K; default: {sweep.PATIENCE})",
    )
    group.add_argument(
        "--stop-at-empty",
        action=argparse.BooleanOptionalAction,
        help="stop the sweep after a fit with a nearly empty segment (default: on)",
    )
    group.add_argument(
        "--subsample",
        type=int,
        metavar="N",
        help="large data: sample the posterior on N random customers, then assign every "
        "customer and score the rest as held-out data (default: fit all customers)",
    )


def fit_request(args: argparse.Namespace) -> FitRequest:
    """The fit step of ``segment fit`` or ``run``, parsed, with its sampler settings and sweep
    rules checked (InputError)."""
    return FitRequest(
        data=data_options(args),
        ks=tuple(parse_k_range(args.k)),
        out=args.out,
        settings=sampler_settings(
            args.chains,
            args.draws,
            args.tune,
            args.seed,
            args.sampler,
            args.backend,
            args.adaptation,
        ),
        rules=sweep_rules(args.budget, args.patience, args.stop_at_empty is not False),
        model=args.model,
        covariance=args.covariance,
        subsample=args.subsample,
    )


def compare_request(args: argparse.Namespace) -> CompareRequest:
    """The request of ``segment compare``."""
    return CompareRequest(
        run=args.run,
        moment_matching=not args.no_moment_match,
        max_moment_match=args.max_moment_match,
        kfold=args.kfold,
    )


def report_request(args: argparse.Namespace) -> ReportRequest:
    """The request of ``segment report``."""
    return ReportRequest(args.run, args.k, args.precise_threshold)


def command_score(args: argparse.Namespace) -> None:
    run_on_cluster(args, lambda: prepare_score(args))


def run_on_cluster(args: argparse.Namespace, prepare: Callable[[], Callable[[], None]]) -> None:
    """Check the cluster options of ``args``, ``prepare`` the step (its checks, before any
    work), then run it on the cluster of ``--scheduler``/``--workers`` (in-process without)."""
    cluster = cluster_options(args)
    step = prepare()
    with open_cluster(cluster):
        step()


def prepare_score(args: argparse.Namespace) -> Callable[[], None]:
    """Check the options, the run directory, the scored fit's configuration and the new table of
    ``segment score`` (InputError), writing nothing; return the step itself, which loads the
    fit, assigns the customers and writes --out. Without --out it writes ``scores.csv`` and
    ``scores_summary.csv`` into the run directory (under its lock), which the report shows."""
    from analysis.decisions.score import score_dataset, score_summary, segment_names
    from analysis.inference.fit import described_mode, load_fit
    from analysis.reporting import report
    from analysis.reporting.report_outputs import write_csv

    report.check_threshold(args.precise_threshold)
    paths, k, how, dataset, out = scoring_inputs(
        args, check_output_file, lambda run: run.scores_csv
    )

    def step() -> None:
        with run_lock(paths) if args.out is None else contextlib.nullcontext():
            tree = load_fit(paths.fit(k))
            table = score_dataset(tree, dataset, args.precise_threshold, args.draws)
            with atomic_path(out) as temporary:
                table.to_csv(temporary, index=False)
            written = [out]
            if args.out is None:
                names = segment_names(described_mode(tree))
                write_csv(
                    score_summary(table, names, k, dataset.source, args.precise_threshold),
                    paths.scores_summary_csv,
                )
                written.append(paths.scores_summary_csv)
        precise = int((table["confidence"] == "precise").sum())
        print(
            f"scored {len(table):,} customers of {dataset.source} with the K = {k} fit (chosen "
            f"by {how}): {precise:,} precise, {int(table['novel'].sum()):,} novel"
        )
        print(f"wrote {' and '.join(map(str, written))}")
        if args.out is None:
            print(f"`segment report --run {paths.root}` shows them in the report")

    return step


def scoring_inputs(
    args: argparse.Namespace,
    check_out: Callable[[Path, str], None],
    default_out: Callable[[RunPaths], Path],
) -> tuple[RunPaths, int, str, Dataset, Path]:
    """What ``segment score`` and ``track`` check before any work, in this order: --draws and
    --weeks, the run directory, --out (``check_out``; without it, the run directory's
    ``default_out(paths)``, a path of the run directory), the fit chosen (--k or the
    comparison) and its configuration, the table of --data (or the weeks of the fit's built-in
    dataset) read and validated for it. Returns (run paths, K, how K was chosen, the table, the
    output path); InputError, one line, for the first problem."""
    from analysis.decisions.score import check_draws, load_customers
    from analysis.inference.fit import saved_attrs
    from analysis.reporting.report_outputs import reported_k

    check_draws(args.draws)
    weeks = parse_weeks(args.weeks) if args.weeks is not None else None
    paths = RunPaths(args.run)
    if not paths.root.is_dir():
        raise InputError(f"--run {paths.root}: not a directory")
    out = default_out(paths) if args.out is None else args.out
    check_out(out, "--out" if args.out is not None else "--run")
    k, how = reported_k(paths, args.k)
    config = saved_attrs(paths.fit(k))["config"]
    customers = load_customers(config, args.data, args.id_column, args.missing, weeks)
    return paths, k, how, customers, out


def command_track(args: argparse.Namespace) -> None:
    prepare_track(args)()


def prepare_track(args: argparse.Namespace) -> Callable[[], None]:
    """Check what ``segment track`` needs as ``segment score`` does (:func:`scoring_inputs`),
    writing nothing; return the step itself, which loads the fit, scores the later table, and
    writes the migration matrix and the drift signal into the directory --out (default: the run
    directory's ``track/``, under its lock, which the report shows)."""
    from analysis.decisions.score import model_scale
    from analysis.decisions.track import (
        OUTPUT_FILES,
        check_output_directory,
        summary_lines,
        track,
        write_tracking,
    )
    from analysis.inference.fit import load_fit

    paths, k, how, dataset, out = scoring_inputs(
        args, check_output_directory, lambda run: run.track_dir
    )

    def step() -> None:
        with run_lock(paths) if args.out is None else contextlib.nullcontext():
            tree = load_fit(paths.fit(k))
            x = model_scale(tree, dataset)
            tracking = track(tree, x, dataset.features.index.to_numpy(), args.draws)
            write_tracking(tracking, out, k, dataset.source)
        print(f"tracked {dataset.source} with the K = {k} fit (chosen by {how})")
        print("\n".join(summary_lines(tracking)))
        print(f"wrote {', '.join(OUTPUT_FILES)} in {out}")
        if args.out is None:
            print(f"`segment report --run {paths.root}` shows them in the report")

    return step


def command_response(args: argparse.Namespace) -> None:
    prepare_response(args)()


def prepare_response(args: argparse.Namespace) -> Callable[[], None]:
    """Check the run directory, the fit chosen (--k or the comparison) and the outcome file of
    ``segment response`` (InputError), writing nothing; return the step itself, which loads the
    fit and writes response.csv and targeting.csv into the run directory."""
    from analysis.data.outcomes import fit_outcomes
    from analysis.decisions.campaign import campaign_response
    from analysis.decisions.score import check_draws
    from analysis.inference.fit import load_fit, saved_attrs
    from analysis.reporting import report
    from analysis.reporting.report_outputs import reported_k, write_csv

    report.check_threshold(args.precise_threshold)
    check_draws(args.draws)
    paths = RunPaths(args.run)
    if not paths.root.is_dir():
        raise InputError(f"--run {paths.root}: not a directory")
    paths.check_writable("--run")
    k, how = reported_k(paths, args.k)
    config = saved_attrs(paths.fit(k))["config"]
    outcomes, source = fit_outcomes(config, args.data, args.outcomes, args.id_column)

    def step() -> None:
        with run_lock(paths):
            tree = load_fit(paths.fit(k))
            response, targeting = campaign_response(
                tree, outcomes, args.seed, args.draws, args.precise_threshold
            )
            write_csv(response.assign(K=k), paths.response_csv)
            write_csv(targeting.assign(K=k), paths.targeting_csv)
        print(f"response of {', '.join(outcomes.columns)} ({source}) by segment of the K = {k} "
              f"fit (chosen by {how})")  # fmt: skip
        print(f"wrote {paths.response_csv} and {paths.targeting_csv}")

    return step


def add_scoring_options(parser: argparse.ArgumentParser, data: str, out: str) -> None:
    """--run, --data or --weeks, the row options, --out and --draws of ``segment score`` and
    ``track``; ``data`` and ``out`` say what the table and the output are."""
    parser.add_argument("--run", type=Path, required=True, help="run directory with fits/K*.nc")
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        type=Path,
        help=f"{data}: a file with the fit's columns (for a marketing fit, the marketing "
        "file's layout); for a dunnhumby-spend or dunnhumby-mixed fit, --weeks instead",
    )
    add_row_options(group)
    add_weeks_option(group, "of the fit's own dataset, in place of --data")
    parser.add_argument("--out", type=Path, help=out)
    parser.add_argument(
        "--draws",
        type=int,
        help="use at most this many posterior draws, evenly thinned within each chain (large "
        "tables: time grows with customers x draws x segments; default: all, as "
        "assignments.csv)",
    )


def add_report_options(parser: argparse.ArgumentParser, k_option: str) -> None:
    group = parser.add_argument_group("report")
    group.add_argument(
        k_option,
        dest="k" if k_option == "--k" else "report_k",
        type=int,
        help="report this K instead of the one comparison.csv chose",
    )
    group.add_argument(
        "--precise-threshold",
        type=float,
        default=PRECISE_THRESHOLD,
        help="'precise' assignment when the lower 94%% HDI bound of the modal segment's "
        f"probability is >= this (default: {PRECISE_THRESHOLD})",
    )


def run_plan(args: argparse.Namespace) -> RunPlan:
    """The four steps of ``segment run``, parsed from its options with the preset filled in
    (:func:`analysis.workflow.pipeline.apply_preset`); InputError for a malformed or out-of-range
    option."""
    args = apply_preset(args)
    return RunPlan(
        baseline=baseline_request(args, args.baseline_k, args.out),
        fit=fit_request(args),
        compare=CompareRequest(
            run=args.out,
            moment_matching=args.moment_match,
            max_moment_match=(
                MAX_MOMENT_MATCH if args.max_moment_match is None else args.max_moment_match
            ),
            kfold=args.kfold,
        ),
        report=ReportRequest(args.out, args.report_k, args.precise_threshold),
        preset=args.preset,
        overridden=overridden(args),
        figures_to=args.figures_to,
    )


def command_run(args: argparse.Namespace) -> None:
    cluster = cluster_options(args)
    RunPaths(args.out).check_writable("--out")
    pipeline.run(run_plan(args), cluster=cluster)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="segment", description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True, parser_class=OneLineParser)

    data = steps.add_parser("data", help="summarise a dataset")
    add_dataset_options(data)
    data.set_defaults(handler=command_data)

    sweep = steps.add_parser("baseline", help="scikit-learn GMM + BIC/AIC/ICL over K")
    add_dataset_options(sweep)
    sweep.add_argument("--k", default="1-10", help="K range, e.g. 1-10 or 2,4,6 (default: 1-10)")
    sweep.add_argument(
        "--covariance-types",
        help="comma-separated, from " + ", ".join(baseline.COVARIANCE_TYPES) + " (default: full "
        "for continuous data, diag for one-hot dummies of categorical data)",
    )
    sweep.add_argument(
        "--n-init", type=int, default=10, help="EM starts per fit, best kept (default: 10)"
    )
    sweep.add_argument(
        "--seeds", default="0,1,2", help="comma-separated EM seeds, >= 0 (default: 0,1,2)"
    )
    sweep.add_argument(
        "--out",
        type=Path,
        required=True,
        help="run directory: writes OUT/baseline.csv and OUT/figures/baseline.png",
    )
    sweep.set_defaults(handler=command_step, request=baseline_step_request)

    fitting = steps.add_parser("fit", help="Bayesian mixture per K (PyMC + nutpie)")
    add_dataset_options(fitting)
    fitting.add_argument("--k", default="1-6", help="K range, e.g. 1-6 or 2,4,6")
    fitting.add_argument("--out", type=Path, required=True, help="run directory")
    add_fit_options(fitting)
    add_cluster_options(fitting)
    fitting.set_defaults(handler=command_step, request=fit_request)

    comparing = steps.add_parser(
        "compare", help="PSIS-LOO, WAIC and BIC per K in one table, and the choice of K"
    )
    comparing.add_argument(
        "--run",
        type=Path,
        required=True,
        help="run directory with fits/K*.nc (and baseline.csv, run here if absent)",
    )
    comparing.add_argument(
        "--kfold",
        type=int,
        metavar="FOLDS",
        help="exact K-fold CV (refits, slow) for fits whose Pareto k stay high after moment "
        "matching, e.g. 10 (default: off; such rows are marked unreliable)",
    )
    comparing.add_argument(
        "--max-moment-match",
        type=int,
        default=MAX_MOMENT_MATCH,
        help="moment-match at most this many high-k customers per fit "
        f"(default: {MAX_MOMENT_MATCH})",
    )
    comparing.add_argument(
        "--no-moment-match", action="store_true", help="skip moment matching (plain PSIS-LOO)"
    )
    add_cluster_options(comparing)
    comparing.set_defaults(handler=command_step, request=compare_request)

    reporting = steps.add_parser("report", help="profiles, assignments and report.html")
    reporting.add_argument("--run", type=Path, required=True, help="run directory")
    add_report_options(reporting, "--k")
    reporting.set_defaults(handler=command_step, request=report_request)

    scoring = steps.add_parser(
        "score", help="assign new customers with a saved fit's posterior (no resampling)"
    )
    add_scoring_options(
        scoring,
        "the new customers",
        "CSV file written (default: the run directory's scores.csv, with scores_summary.csv, "
        "which the report shows)",
    )
    add_report_options(scoring, "--k")
    add_cluster_options(scoring)
    scoring.set_defaults(handler=command_score)

    tracking = steps.add_parser(
        "track",
        help="a later period of the fit's customers: migration between segments and drift (no "
        "resampling)",
    )
    add_scoring_options(
        tracking,
        "the same customers in a later period (matched by ID)",
        f"directory written: {', '.join(TRACK_FILES)} (default: the run directory's "
        f"{TRACK_DIR}/, which the report shows)",
    )
    tracking.add_argument(
        "--k", type=int, help="track with this K instead of the one comparison.csv chose"
    )
    tracking.set_defaults(handler=command_track)

    responding = steps.add_parser(
        "response",
        help="campaign response rate per segment, assignment uncertainty propagated (no "
        "resampling); writes response.csv and targeting.csv into the run directory",
    )
    responding.add_argument("--run", type=Path, required=True, help="run directory")
    responding.add_argument(
        "--data", type=Path, help="file with the outcome columns (default: a marketing or csv "
        "fit's own data file; for a Dunnhumby fit, redemptions among the households each "
        "campaign reached)",
    )  # fmt: skip
    responding.add_argument(
        "--outcomes", help="comma-separated 0/1 outcome columns of --data (default for marketing: "
        "AcceptedCmp1-5, Response)",
    )  # fmt: skip
    responding.add_argument("--id-column", help="customer ID column of --data (marketing: ID)")
    responding.add_argument(
        "--draws", type=int, help="at most this many posterior draws (default: all)"
    )
    responding.add_argument("--seed", type=int, default=0, help="seed of the segment draws")
    add_report_options(responding, "--k")
    responding.set_defaults(handler=command_response)

    main_job = steps.add_parser(
        "run", help="the main job: baseline -> fit -> compare -> report into one directory"
    )
    main_job.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help="defaults for every option not given: "
        + "; ".join(
            f"{name}: " + ", ".join(f"{k}={v}" for k, v in preset.items())
            for name, preset in PRESETS.items()
        )
        + f" (default: {DEFAULT_PRESET})",
    )
    main_job.add_argument("--out", type=Path, required=True, help="run directory")
    main_job.add_argument(
        "--figures-to",
        type=Path,
        help="also copy the main figures here as NAME_DATASET.png (make run: figures/)",
    )
    add_dataset_options(main_job)
    main_job.add_argument("--k", help="K range of the Bayesian fits (preset)")
    baseline_group = main_job.add_argument_group("baseline")
    baseline_group.add_argument("--baseline-k", help="K range of the baseline sweep (preset)")
    baseline_group.add_argument("--covariance-types", help="as in segment baseline")
    baseline_group.add_argument("--n-init", type=int, help="EM starts per fit (preset)")
    baseline_group.add_argument("--seeds", help="comma-separated EM seeds (preset)")
    add_fit_options(main_job)
    main_job.set_defaults(chains=None, draws=None, tune=None)
    compare_group = main_job.add_argument_group("compare")
    compare_group.add_argument("--kfold", type=int, metavar="FOLDS", help="as in segment compare")
    compare_group.add_argument("--max-moment-match", type=int, help="as in segment compare")
    compare_group.add_argument(
        "--moment-match",
        action=argparse.BooleanOptionalAction,
        help="moment-match high Pareto k customers in segment compare (preset)",
    )
    add_report_options(main_job, "--report-k")
    add_cluster_options(main_job)
    main_job.set_defaults(handler=command_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except InputError as error:
        print(f"segment: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The four steps of ``segment run`` (baseline, fit, compare, report) as typed requests.

A request holds one step's settings as values (K as integers, the sampler settings and sweep
rules of :mod:`analysis.workflow.fit_plan`), never as option strings. ``segment STEP`` builds its
request from its command line (:mod:`analysis.cli`), ``segment run`` builds all four from its
own options and preset (:mod:`analysis.workflow.pipeline`), and both call the same methods:

- ``prepare()`` makes every check that needs the data or the run directory, writing nothing
  (:class:`~analysis.errors.InputError`, one line), and returns the step itself, which writes;
- ``command()`` is the equivalent ``segment STEP ...`` command line a user could type: it lists
  every setting that differs from that command's default. ``segment run`` prints it; nothing
  parses it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.data.datasets import Dataset, load_dataset
from analysis.data.joins import SEPARATOR, join_variables
from analysis.data.transforms import FittedTransform
from analysis.errors import InputError, check_choice
from analysis.inference import fit
from analysis.inference.profiles import PRECISE_THRESHOLD
from analysis.paths import RunPaths, run_lock
from analysis.reporting import report
from analysis.selection import baseline, sweep
from analysis.selection.compare import check_compare_options, compare_run
from analysis.selection.comparison_text import printable
from analysis.selection.decision import decision_lines
from analysis.selection.loo import MAX_MOMENT_MATCH
from analysis.workflow.fit_plan import (
    FitPlan,
    announce,
    fitted_transform,
    format_k_range,
    model_matrix,
    plan_fit,
    run_plan,
)

DEFAULT_DATASET = "dunnhumby-spend"
DEFAULT_MISSING = "marginalize"
# the fields of analysis.inference.fit.SamplerSettings, each the segment fit option of the same name
SAMPLER_OPTIONS = ("chains", "draws", "tune", "seed", "sampler", "backend", "adaptation")


def given_options(*options: tuple[str, object, object]) -> list[str]:
    """``[--option, value, ...]`` for each (option, value, default) whose value is set (not
    None) and not the command's default."""
    argv = []
    for option, value, default in options:
        if value is not None and value != default:
            argv += [option, str(value)]
    return argv


def joined(values: tuple | None, separator: str) -> str | None:
    """``values`` as option text (("a", "b") -> "a,b", (1, 26) -> "1-26"); None stays None."""
    return None if values is None else separator.join(map(str, values))


@dataclass(frozen=True)
class DataOptions:
    """Which table a step reads and how (the data options of ``segment data``, ``baseline``
    and ``fit``).

    Attributes
    ----------
    dataset : one of :data:`analysis.data.datasets.DATASETS`.
    data : the file of a file-based dataset (marketing, csv).
    features, categorical : the numeric and categorical columns of a csv file.
    id_column : the customer ID column of a csv file.
    weeks : (first, last) week of the Dunnhumby transactions, both included.
    transform : the feature transform; None: chosen from the data.
    missing : what a missing value does: ``marginalize`` or ``error``.
    joins : groups of categorical variables combined into one (``--join a+b``).
    """

    dataset: str = DEFAULT_DATASET
    data: Path | None = None
    features: tuple[str, ...] | None = None
    categorical: tuple[str, ...] | None = None
    id_column: str | None = None
    weeks: tuple[int, int] | None = None
    transform: str | None = None
    missing: str = DEFAULT_MISSING
    joins: tuple[tuple[str, ...], ...] = ()

    def load(
        self, categorical_transform: str = "one-hot"
    ) -> tuple[Dataset, FittedTransform, list[str]]:
        """Load and validate the dataset, then fit its transform
        (:func:`analysis.workflow.fit_plan.fitted_transform`, with ``categorical_transform`` the
        default for categorical data). Also returns the notes to print (:func:`announce`) once every
        option has been checked."""
        dataset = load_dataset(
            self.dataset,
            self.data,
            None if self.features is None else list(self.features),
            self.id_column,
            None if self.categorical is None else list(self.categorical),
            self.missing,
            weeks=self.weeks,
        )
        dataset = join_variables(dataset, list(self.joins))
        transform, notes = fitted_transform(dataset, self.transform, categorical_transform)
        return dataset, transform, notes

    def options(self) -> list[str]:
        """The data options of the command line, in the order ``segment --help`` lists them."""
        argv = [
            "--dataset",
            self.dataset,
            *given_options(
                ("--data", self.data, None),
                ("--features", joined(self.features, ","), None),
                ("--categorical", joined(self.categorical, ","), None),
                ("--id-column", self.id_column, None),
                ("--weeks", joined(self.weeks, "-"), None),
                ("--transform", self.transform, None),
                ("--missing", self.missing, DEFAULT_MISSING),
            ),
        ]
        for group in self.joins:
            argv += ["--join", SEPARATOR.join(group)]
        return argv


def default_covariance_type(transform: FittedTransform) -> str:
    """'diag' for one-hot dummies (full has too many parameters for 801 rows), else 'full'."""
    return "diag" if transform.name == "one-hot" else "full"


@dataclass(frozen=True)
class BaselineRequest:
    """``segment baseline``: scikit-learn GMMs for every K, covariance type and seed.

    Attributes
    ----------
    data : the table.
    ks : the K fitted, increasing.
    out : the run directory (``baseline.csv``, ``figures/baseline.png``).
    n_init : EM starts per fit, >= 1; the best is kept.
    seeds : EM seeds, >= 0.
    covariance_types : from :data:`analysis.selection.baseline.COVARIANCE_TYPES`; None:
        :func:`default_covariance_type`.
    """

    data: DataOptions
    ks: tuple[int, ...]
    out: Path
    n_init: int = 10
    seeds: tuple[int, ...] = (0, 1, 2)
    covariance_types: tuple[str, ...] | None = None

    def prepare(self) -> Callable[[], None]:
        """Check the settings, the run directory and the data (InputError), writing nothing;
        return the step: the sweep, which writes the run files."""
        if any(seed < 0 for seed in self.seeds):
            raise InputError(f"--seeds: seeds must be >= 0, got '{joined(self.seeds, ',')}'")
        if self.n_init < 1:
            raise InputError(f"--n-init: must be >= 1, got {self.n_init}")
        paths = RunPaths(self.out)
        paths.check_writable("--out")
        for covariance_type in self.covariance_types or ():
            check_choice("--covariance-types", covariance_type, baseline.COVARIANCE_TYPES)
        dataset, transform, notes = self.data.load()
        covariance_types = list(self.covariance_types or [default_covariance_type(transform)])
        complete = dataset.features.notna().all(axis=1).to_numpy(copy=True)
        if dataset.categories is not None:
            complete &= dataset.categories.notna().all(axis=1).to_numpy()
        if not complete.all():
            notes.append(
                f"baseline: {int((~complete).sum())} customers with missing values left out (EM "
                "cannot marginalize them; the Bayesian fit keeps every customer)"
            )
        x = model_matrix(dataset, transform, "one-hot", complete)[0]
        ks = list(self.ks)
        problems = [
            baseline.em_problem(len(x), x.shape[1], k, c) for c in covariance_types for k in ks
        ]
        if all(problems):
            raise InputError(
                f"{dataset.source}: EM cannot fit any K in --k {format_k_range(ks)} "
                f"(K={ks[0]}: {problems[0]})"
            )

        def step() -> None:
            with run_lock(paths):
                announce(notes)
                table = baseline.sweep(x, ks, covariance_types, self.n_init, list(self.seeds))
                skipped = table[table["skipped"] != ""].drop_duplicates(["covariance_type", "K"])
                for row in skipped.itertuples():
                    print(f"baseline: K={row.K} ({row.covariance_type}) skipped: {row.skipped}")
                title = (
                    f"scikit-learn GMM on {dataset.name} ({transform.name}, n_init={self.n_init})"
                )
                baseline.write_run_files(table, title, paths)
            print(baseline.best_k_by_seed(table).to_string(index=False))
            print(f"wrote {paths.baseline_csv} and {paths.figure('baseline')}")

        return step

    def command(self) -> list[str]:
        """The equivalent ``segment baseline`` command line (without ``segment``)."""
        types = None if self.covariance_types is None else ",".join(self.covariance_types)
        return [
            "baseline",
            *self.data.options(),
            "--k",
            format_k_range(self.ks),
            *given_options(
                ("--covariance-types", types, None),
                ("--n-init", self.n_init, BaselineRequest.n_init),
                ("--seeds", joined(self.seeds, ","), "0,1,2"),
            ),
            "--out",
            str(self.out),
        ]


@dataclass(frozen=True)
class FitRequest:
    """``segment fit``: the Bayesian mixture for every K of the sweep.

    Attributes
    ----------
    data : the table.
    ks : the K the sweep may fit, increasing.
    out : the run directory (``fits/K*.nc``, ``diagnostics.csv``).
    settings : the sampler settings, checked (:func:`analysis.workflow.fit_plan.sampler_settings`).
    rules : the sweep's stopping and budget rules, checked
        (:func:`analysis.workflow.fit_plan.sweep_rules`).
    model : one of :data:`analysis.workflow.fit_plan.MODELS`; None: chosen from the data.
    covariance : segment covariance of the continuous features (``full``, ``diag``).
    subsample : sample the posterior on this many random customers; None: all.
    """

    data: DataOptions
    ks: tuple[int, ...]
    out: Path
    settings: fit.SamplerSettings = field(default_factory=fit.SamplerSettings)
    rules: sweep.SweepRules = field(default_factory=sweep.SweepRules)
    model: str | None = None
    covariance: str = "full"
    subsample: int | None = None

    def plan(self) -> FitPlan:
        """Check the run directory, the data and the model (InputError), writing nothing;
        return what the sweep samples (:func:`analysis.workflow.fit_plan.plan_fit`)."""
        RunPaths(self.out).check_writable("--out")
        dataset, transform, notes = self.data.load(categorical_transform="indicators")
        return plan_fit(
            dataset,
            transform,
            notes,
            self.model,
            self.covariance,
            self.settings,
            self.subsample,
            self.data.joins,
        )

    def prepare(self) -> Callable[[], None]:
        """:meth:`plan`, and every saved fit the sweep keeps must be readable; return the step:
        the sweep, which samples and writes the fits."""
        plan, paths, ks = self.plan(), RunPaths(self.out), list(self.ks)
        sweep.check_saved_fits(paths, ks)

        def step() -> None:
            table = run_plan(plan, ks, paths, self.rules)
            shown = [c for c in table.columns if c != "reason"]
            print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            report_statuses(table, self.settings)
            print(f"wrote {paths.fits_dir}/K*.nc and {paths.diagnostics_csv}")

        return step

    def command(self) -> list[str]:
        """The equivalent ``segment fit`` command line (without ``segment``)."""
        settings, defaults = self.settings, fit.SamplerSettings()
        rules, budget = self.rules, self.rules.budget_seconds
        return [
            "fit",
            *self.data.options(),
            "--k",
            format_k_range(self.ks),
            *given_options(
                ("--model", self.model, None),
                ("--covariance", self.covariance, FitRequest.covariance),
                *(
                    (f"--{name}", getattr(settings, name), getattr(defaults, name))
                    for name in SAMPLER_OPTIONS
                ),
                ("--subsample", self.subsample, None),
                ("--budget", None if budget is None else f"{budget / 60:g}", None),
                ("--patience", rules.patience, sweep.PATIENCE),
            ),
            *([] if rules.stop_at_empty else ["--no-stop-at-empty"]),
            "--out",
            str(self.out),
        ]


def report_statuses(table: pd.DataFrame, settings: fit.SamplerSettings) -> None:
    """Every fit of the diagnostics ``table`` that did not pass, loudly, with its diagnosis, and
    what to do about it (sampled with ``settings``)."""
    for _, row in table[~table["status"].isin(("ok", "skipped"))].iterrows():
        print(
            f"segment fit: K = {row['K']} {row['status'].upper()}: {row['reason']}", file=sys.stderr
        )
    slow = [int(k) for k in table.loc[table["status"] == "slow", "K"]]
    if slow:
        print(
            f"segment fit: K = {', '.join(map(str, slow))} still slow after the budget; refit "
            f"only those K longer, e.g. --k {','.join(map(str, slow))} --tune "
            f"{2 * settings.tune} --draws {2 * settings.draws} (the other fits are kept), or give "
            "a larger --budget.",
            file=sys.stderr,
        )
    if (table["status"] == "divergent").any():
        print(
            "segment fit: divergent fits are never used to choose K; multimodal ones enter "
            "the comparison by their chain-stacked elpd.",
            file=sys.stderr,
        )


@dataclass(frozen=True)
class CompareRequest:
    """``segment compare``: PSIS-LOO, WAIC and BIC of every fit of a run directory, and K.

    Attributes
    ----------
    run : the run directory.
    moment_matching : moment-match the customers with a high Pareto k.
    max_moment_match : at most this many customers per fit, >= 0.
    kfold : exact K-fold with this many folds (>= 2) where Pareto k stay high; None: off.
    """

    run: Path
    moment_matching: bool = True
    max_moment_match: int = MAX_MOMENT_MATCH
    kfold: int | None = None

    def prepare(self) -> Callable[[], None]:
        """Check the settings and that the run directory can be written (InputError); return the
        step, which reads the fits and writes the comparison."""
        check_compare_options(self.kfold, self.max_moment_match)
        paths = RunPaths(self.run)
        paths.check_writable("--run")

        def step() -> None:
            with run_lock(paths, create=False):
                table = compare_run(
                    paths,
                    moment_matching=self.moment_matching,
                    max_moment_match=self.max_moment_match,
                    kfold_folds=self.kfold,
                )
            print(printable(table))
            print()
            print("\n".join(decision_lines(table)))
            print(f"wrote {paths.comparison_csv}, {paths.comparison_md} and {paths.figures_dir}/")

        return step

    def command(self) -> list[str]:
        """The equivalent ``segment compare`` command line (without ``segment``)."""
        return [
            "compare",
            "--run",
            str(self.run),
            *given_options(
                ("--kfold", self.kfold, None),
                ("--max-moment-match", self.max_moment_match, MAX_MOMENT_MATCH),
            ),
            *([] if self.moment_matching else ["--no-moment-match"]),
        ]


@dataclass(frozen=True)
class ReportRequest:
    """``segment report``: profiles, assignments, figures and ``report.html`` of one fit.

    Attributes
    ----------
    run : the run directory.
    k : the K reported; None: the one ``comparison.csv`` chose.
    precise_threshold : an assignment is precise when the lower 94% HDI bound of its modal
        segment's probability is at least this, in (0, 1].
    """

    run: Path
    k: int | None = None
    precise_threshold: float = PRECISE_THRESHOLD

    def prepare(self) -> Callable[[], None]:
        """Check the threshold (InputError); return the step, which reads the run directory and
        writes the report."""
        report.check_threshold(self.precise_threshold)

        def step() -> None:
            paths = RunPaths(self.run)
            with run_lock(paths, create=False):
                path = report.build_report(paths, self.k, self.precise_threshold)
            print(f"wrote {self.run}/profiles.csv, assignments.csv and the other report tables")
            print(f"report: {path}")

        return step

    def command(self) -> list[str]:
        """The equivalent ``segment report`` command line (without ``segment``)."""
        return [
            "report",
            "--run",
            str(self.run),
            *given_options(
                ("--k", self.k, None),
                ("--precise-threshold", self.precise_threshold, PRECISE_THRESHOLD),
            ),
        ]

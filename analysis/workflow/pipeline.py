"""``segment run``: the main job, baseline -> fit -> compare -> report, into one run directory.

A preset fills in every option the user did not give (:data:`PRESETS`); an explicit option always
wins. The command line builds one typed request per step (:class:`RunPlan`, in
:mod:`analysis.cli`), and each step runs the code of its own subcommand with it
(:mod:`analysis.workflow.steps`), so ``segment run`` and the four steps by hand give the same run
directory; the progress line of a step prints the equivalent command. Fits already saved with
the same configuration are reused (``segment fit`` resumes), so an interrupted run can be
restarted with the same command.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from analysis.distributed import IN_PROCESS, ClusterOptions, open_cluster
from analysis.errors import InputError
from analysis.paths import RunPaths, run_lock
from analysis.workflow.fit_plan import format_k_range
from analysis.workflow.steps import BaselineRequest, CompareRequest, FitRequest, ReportRequest

# quick: a first look (its time on dunnhumby-spend: bench/README.md, "Reference runs");
# full: the K range and sampling of the reported analyses.
PRESETS = {
    "quick": {
        "k": "1-4",
        "baseline_k": "1-10",
        "n_init": 2,
        "seeds": "0,1,2",
        "chains": 4,
        "draws": 500,
        "tune": 500,
        "budget": 4,  # minutes; slow fits are refitted with 2x the warm-up and draws inside it
        "moment_match": False,  # each moment-matched fit rebuilds and compiles its model
    },
    "full": {
        "k": "1-10",
        "baseline_k": "1-10",
        "n_init": 10,
        "seeds": "0,1,2",
        "chains": 4,
        "draws": 1000,
        "tune": 1000,
        "budget": 10,
        "moment_match": True,
    },
}
DEFAULT_PRESET = "quick"
# Figures copied by --figures-to (as <name>_<dataset>.png), the ones the README shows.
CANONICAL_FIGURES = (
    "baseline", "compare", "elpd_vs_bic", "profiles", "revenue", "assignment_uncertainty",
    "posterior_predictive",
)  # fmt: skip


def apply_preset(args: argparse.Namespace) -> argparse.Namespace:
    """Fill every option left at None from the preset; explicit options are kept. An explicit
    ``--k`` is also the baseline's K range unless ``--baseline-k`` is given."""
    filled = argparse.Namespace(**vars(args))
    if filled.k is not None and filled.baseline_k is None:
        filled.baseline_k = filled.k
    for option, value in PRESETS[args.preset].items():
        if getattr(filled, option, None) is None:
            setattr(filled, option, value)
    return filled


def overridden(args: argparse.Namespace) -> tuple[str, ...]:
    """The options of ``args`` (preset filled in) that differ from the preset's, as
    ``--name``."""
    preset = PRESETS[args.preset]
    return tuple("--" + o.replace("_", "-") for o in preset if getattr(args, o) != preset[o])


STEPS = ("baseline", "fit", "compare", "report")


@dataclass(frozen=True)
class RunPlan:
    """The four steps of ``segment run`` with the preset filled in (:func:`apply_preset`).

    Attributes
    ----------
    baseline, fit, compare, report : the steps' requests, into one run directory.
    preset : the preset's name (:data:`PRESETS`).
    overridden : the options given that differ from the preset's, e.g. ``("--k",)``.
    figures_to : where :func:`publish_figures` copies the main figures; None: nowhere.
    """

    baseline: BaselineRequest
    fit: FitRequest
    compare: CompareRequest
    report: ReportRequest
    preset: str = DEFAULT_PRESET
    overridden: tuple[str, ...] = ()
    figures_to: Path | None = None

    @property
    def out(self) -> Path:
        """The run directory."""
        return self.fit.out

    def steps(self) -> dict[str, BaselineRequest | FitRequest | CompareRequest | ReportRequest]:
        """The requests by step name, in the order they run (:data:`STEPS`)."""
        return {name: getattr(self, name) for name in STEPS}


def check_report_k(plan: RunPlan) -> None:
    """InputError unless the report's K (when given) is among the fit step's K or already
    fitted in the run directory, before anything runs."""
    k = plan.report.k
    if k is None:
        return
    fit_file = RunPaths(plan.out).fit(k)
    if k not in plan.fit.ks and not fit_file.exists():
        raise InputError(
            f"--report-k {k}: not in --k {format_k_range(plan.fit.ks)} and no {fit_file} yet; "
            "the report can only show a fitted K"
        )


def run(plan: RunPlan, progress=None, cluster: ClusterOptions = IN_PROCESS) -> Path:
    """Run baseline, fit, compare and report in order with progress lines; return the report path.

    Every step is prepared first (its settings, the data and the run directory checked:
    InputError, one line), so a bad setting of a later step stops the run before the first
    step writes anything. Each step is the code of its own command (:mod:`analysis.workflow.steps`),
    and its progress line shows that command. ``cluster``: where the parallel parts of the fit
    and compare steps run (:mod:`analysis.distributed`; one cluster serves every step).
    """
    progress = sys.stderr if progress is None else progress  # at call time: redirectable
    cluster.check()
    check_report_k(plan)
    prepared = {name: request.prepare() for name, request in plan.steps().items()}
    with run_lock(RunPaths(plan.out)):  # once for all steps (each takes it again, re-entrant)
        with open_cluster(cluster):
            return run_steps(plan, prepared, progress, cluster)


CLUSTER_STEPS = ("fit", "compare")  # the steps with parallel parts (analysis.distributed)


def run_steps(
    plan: RunPlan,
    prepared: dict[str, Callable[[], None]],
    progress,
    cluster: ClusterOptions = IN_PROCESS,
) -> Path:
    """Call the ``prepared`` steps in order with progress lines, each with its equivalent command
    (the cluster options on the steps that use them); return the report path."""
    fit, settings = plan.fit, plan.fit.settings
    baseline = plan.baseline
    print(
        f"segment run: preset {plan.preset} (K {format_k_range(fit.ks)}, {settings.chains} "
        f"chains x ({settings.tune} tune + {settings.draws} draws), baseline K "
        f"{format_k_range(baseline.ks)} n_init {baseline.n_init} seeds "
        f"{','.join(map(str, baseline.seeds))})"
        + (f"; overridden: {', '.join(plan.overridden)}" if plan.overridden else "")
        + f" -> {plan.out}",
        file=progress,
        flush=True,
    )
    started = time.perf_counter()
    for number, (name, request) in enumerate(plan.steps().items(), start=1):
        command = request.command() + (cluster.options() if name in CLUSTER_STEPS else [])
        print(f"[{number}/4] segment {shlex.join(command)}", file=progress, flush=True)
        step_started = time.perf_counter()
        prepared[name]()
        print(
            f"[{number}/4] {name} done in {time.perf_counter() - step_started:.0f} s "
            f"(total {time.perf_counter() - started:.0f} s)",
            file=progress,
            flush=True,
        )
    paths = RunPaths(plan.out)
    if plan.figures_to is not None:
        copied = publish_figures(paths, plan.figures_to, fit.data.dataset)
        print(f"copied {len(copied)} figures to {plan.figures_to}/", file=progress)
    print(
        f"segment run: finished in {time.perf_counter() - started:.0f} s; report: "
        f"{paths.report_html}",
        file=progress,
        flush=True,
    )
    return paths.report_html


def publish_figures(paths: RunPaths, target: Path, dataset: str) -> list[Path]:
    """Copy the :data:`CANONICAL_FIGURES` present in the run as ``target/<name>_<dataset>.png``."""
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in CANONICAL_FIGURES:
        source = paths.figure(name)
        if source.is_file():
            destination = target / f"{name}_{dataset}.png"
            shutil.copyfile(source, destination)
            copied.append(destination)
    return copied

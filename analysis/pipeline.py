"""``segment run``: the main job, baseline -> fit -> compare -> report, into one run directory.

A preset fills in every option the user did not give (:data:`PRESETS`); an explicit option always
wins. Each step is the same code as its own subcommand, called with the same options, so
``segment run`` and the four steps by hand give the same run directory. Fits already saved with
the same configuration are reused (``segment fit`` resumes), so an interrupted run can be
restarted with the same command.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from analysis.paths import RunPaths, run_lock

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


def _options(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    """``--name value`` for every attribute in ``names`` that is set (None means not given);
    a repeated option (a list, e.g. ``--join``) once per value."""
    argv = []
    for name in names:
        value = getattr(args, name, None)
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                argv += [f"--{name.replace('_', '-')}", str(item)]
    return argv


DATA_OPTIONS = (
    "dataset", "data", "features", "categorical", "id_column", "weeks", "transform", "missing",
    "join",
)  # fmt: skip
FIT_OPTIONS = (
    "model", "covariance", "chains", "draws", "tune", "seed", "sampler", "backend", "adaptation",
    "subsample", "budget", "patience",
)  # fmt: skip


def step_argv(args: argparse.Namespace) -> dict[str, list[str]]:
    """The command line of each step (``segment STEP ...``) equivalent to the run's options."""
    data = _options(args, DATA_OPTIONS)
    out = ["--out", str(args.out)]
    baseline = _options(args, ("covariance_types", "n_init", "seeds"))
    compare = _options(args, ("kfold", "max_moment_match"))
    if args.moment_match is False:
        compare.append("--no-moment-match")
    report = _options(args, ("precise_threshold",))
    if args.report_k is not None:
        report += ["--k", str(args.report_k)]
    fit = _options(args, FIT_OPTIONS)
    if args.stop_at_empty is not None:
        fit.append("--stop-at-empty" if args.stop_at_empty else "--no-stop-at-empty")
    return {
        "baseline": ["baseline", *data, "--k", args.baseline_k, *baseline, *out],
        "fit": ["fit", *data, "--k", args.k, *fit, *out],
        "compare": ["compare", "--run", str(args.out), *compare],
        "report": ["report", "--run", str(args.out), *report],
    }


STEPS = ("baseline", "fit", "compare", "report")


def prepare_steps(
    commands: dict[str, list[str]],
    parse: Callable[[list[str]], argparse.Namespace],
    available: set[str],
) -> dict[str, Callable[[], None]]:
    """Every available step parsed from its command line (:func:`step_argv`) and prepared: all
    options of all steps, the data and the run directory are checked (InputError) before the
    first step writes anything. Returns the steps to call, in order."""
    steps = {}
    for name in STEPS:
        if name in available:
            step = parse(commands[name])
            steps[name] = step.prepare(step)
    return steps


def run(
    args: argparse.Namespace,
    parse: Callable[[list[str]], argparse.Namespace],
    available: set[str],
    progress=None,
) -> Path:
    """Run baseline, fit, compare and report in order with progress lines; return the report path.

    Each step is parsed from its own command line by ``parse`` (the CLI parser), so it runs
    exactly as ``segment STEP ...`` would, and every step is prepared (its options checked)
    before the first one runs. A step missing from ``available`` (its module is not in this
    checkout) is skipped with a note.
    """
    progress = sys.stderr if progress is None else progress  # at call time: redirectable
    args = apply_preset(args)
    commands = step_argv(args)
    steps = prepare_steps(commands, parse, available)
    with run_lock(RunPaths(args.out)):  # once for all steps (each takes it again, re-entrant)
        return run_steps(args, commands, steps, progress)


def run_steps(
    args: argparse.Namespace,
    commands: dict[str, list[str]],
    steps: dict[str, Callable[[], None]],
    progress,
) -> Path:
    """Call the prepared ``steps`` in order with progress lines; return the report path."""
    preset = PRESETS[args.preset]
    given = [o for o in preset if getattr(args, o) != preset[o]]
    print(
        f"segment run: preset {args.preset} (K {args.k}, {args.chains} chains x "
        f"({args.tune} tune + {args.draws} draws), baseline K {args.baseline_k} "
        f"n_init {args.n_init} seeds {args.seeds})"
        + (f"; overridden: {', '.join('--' + o.replace('_', '-') for o in given)}" if given else "")
        + f" -> {args.out}",
        file=progress,
        flush=True,
    )
    started = time.perf_counter()
    for number, name in enumerate(STEPS, start=1):
        if name not in steps:
            print(f"[{number}/4] {name}: not available in this checkout, skipped", file=progress)
            continue
        print(f"[{number}/4] segment {' '.join(commands[name])}", file=progress, flush=True)
        step_started = time.perf_counter()
        steps[name]()
        print(
            f"[{number}/4] {name} done in {time.perf_counter() - step_started:.0f} s "
            f"(total {time.perf_counter() - started:.0f} s)",
            file=progress,
            flush=True,
        )
    paths = RunPaths(args.out)
    if args.figures_to is not None:
        copied = publish_figures(paths, args.figures_to, args.dataset)
        print(f"copied {len(copied)} figures to {args.figures_to}/", file=progress)
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

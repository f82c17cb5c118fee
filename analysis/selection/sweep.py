"""The K sweep of ``segment fit``: fit each K, sample ``slow`` ones longer within a time budget,
stop when larger K stop improving, and write ``diagnostics.csv``.

- **Adaptive length.** A fit whose status is ``slow`` (one mode, R-hat or ESS short) is refitted
  with twice the warm-up and twice the draws, as long as the next attempt is expected to end
  inside the budget (``SweepRules.budget_seconds``, the whole sweep's wall time; an attempt is
  expected to take twice the last one). Every attempt is recorded in the fit (``attempts``); the
  fit's ``seconds`` add up all of them, ``sampling_seconds`` is the last attempt's sampler.
- **Stopping rule.** K are fitted in increasing order. After each fit its elpd (PSIS-LOO, or the
  chain-stacked elpd of a multimodal fit) is compared with the best so far: when
  ``SweepRules.patience`` K in a row do not beat the best by more than ``RULE_SE`` x dse (paired
  SE), or a fit has a nearly empty segment (posterior mean weight below ``EMPTY_WEIGHT`` in the
  mode its assignments describe: a larger K would only add more), the larger K are not fitted.
  They are listed in ``skipped.json`` with the reason, and compare and the report show them.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from analysis.distributed import Cluster, current
from analysis.errors import InputError
from analysis.inference.diagnostics import COLUMNS
from analysis.inference.elpd import summed
from analysis.inference.fit import (
    FitSpec,
    add_population,
    fit_k,
    load_fit,
    save_fit,
    saved_attrs,
    saved_fit_matches,
)
from analysis.inference.modes import EMPTY_WEIGHT
from analysis.paths import RunPaths, atomic_path
from analysis.selection.decision import RULE_SE
from analysis.selection.loo import entry_elpd

PATIENCE = 2  # K in a row that do not beat the best by RULE_SE dse before the sweep stops
GROWTH = 2  # each further attempt of a slow fit has this many times the warm-up and draws


@dataclass(frozen=True)
class SweepRules:
    """``budget_seconds``: wall time the sweep may spend before it stops extending slow fits
    (None: never extend); ``patience``: see :data:`PATIENCE` (0: fit every K);
    ``stop_at_empty``: stop after a fit with a nearly empty segment."""

    budget_seconds: float | None = None
    patience: int = PATIENCE
    stop_at_empty: bool = True


def fit_with_attempts(
    spec: FitSpec,
    x,
    k: int,
    customers,
    features,
    deadline: float | None,
    assign_population: bool = True,
) -> xr.DataTree:
    """Fit K; while its status is ``slow`` and the next, GROWTH x longer attempt is expected to
    end before ``deadline`` (a ``time.perf_counter`` value; None: no extension), fit it again.
    The returned fit holds ``attempts`` (each attempt's settings, status and seconds) and
    ``request`` (the configuration asked for, which a resumed sweep matches) in its attrs.
    ``assign_population``: see :func:`analysis.inference.fit.fit_k`."""
    settings, attempts = spec.sampler, []
    while True:
        tree = fit_k(
            replace(spec, sampler=settings),
            x,
            k,
            customers,
            features,
            assign_population=assign_population,
        )
        diagnostics = json.loads(tree.attrs["segment_diagnostics"])
        attempts.append(
            {
                "tune": settings.tune,
                "draws": settings.draws,
                "status": diagnostics["status"],
                "reason": diagnostics["reason"],
                "seconds": diagnostics["seconds"],
            }
        )
        if diagnostics["status"] != "slow" or deadline is None:
            break
        expected = GROWTH * diagnostics["seconds"]
        if time.perf_counter() + expected > deadline:
            print(
                f"[K={k}] slow ({diagnostics['reason']}); not extended: the next attempt "
                f"(about {expected:.0f} s) would end past the --budget",
                file=sys.stderr,
            )
            break
        settings = replace(settings, tune=GROWTH * settings.tune, draws=GROWTH * settings.draws)
        print(
            f"[K={k}] slow ({diagnostics['reason']}); attempt {len(attempts) + 1}: "
            f"{settings.chains} chains x ({settings.tune} tune + {settings.draws} draws)",
            file=sys.stderr,
            flush=True,
        )
    diagnostics["attempts"] = len(attempts)
    diagnostics["seconds"] = sum(attempt["seconds"] for attempt in attempts)  # every attempt
    tree.attrs |= {
        "segment_diagnostics": json.dumps(diagnostics),
        "segment_attempts": json.dumps(attempts),
        "segment_request": json.dumps(spec.identity(k)),
    }
    return tree


def nearly_empty(diagnostics: dict) -> list[int]:
    """Segment positions whose mean weight is below EMPTY_WEIGHT in the described mode (the
    first listed: the only one, or the largest stacking weight)."""
    weights = np.asarray(diagnostics["modes"][0]["weights"])
    return [int(segment) for segment in np.flatnonzero(weights < EMPTY_WEIGHT)]


class StoppingRule:
    """Tracks the best elpd over the fitted K and says when the sweep should stop."""

    def __init__(self, rules: SweepRules):
        self.rules = rules
        self.best: tuple[int, np.ndarray] | None = None  # (K, pointwise elpd)
        self.behind: list[int] = []  # K since the best that did not beat it

    def update(self, k: int, tree: xr.DataTree, diagnostics: dict) -> str | None:
        """Take fit K; the reason to stop after it, or None."""
        empty = nearly_empty(diagnostics)
        if self.rules.stop_at_empty and empty:
            return f"K = {k} has a nearly empty segment (weight < {EMPTY_WEIGHT})"
        if not self.rules.patience:
            return None
        pointwise = np.asarray(entry_elpd(tree, diagnostics["status"])[0].elpd_i).ravel()
        if self.best is None:
            self.best = (k, pointwise)
            return None
        best_k, best = self.best
        difference, dse = summed(pointwise - best)
        if difference > RULE_SE * dse:
            self.best, self.behind = (k, pointwise), []
            return None
        self.behind.append(k)
        if len(self.behind) < self.rules.patience:
            return None
        listed = ", ".join(map(str, self.behind))
        return f"K = {listed} did not beat K = {best_k} by {RULE_SE:g} dse"


def fit_sweep(
    spec: FitSpec,
    x: np.ndarray,
    ks: list[int],
    customers,
    features,
    paths: RunPaths,
    rules: SweepRules | None = None,
) -> list[dict]:
    """Fit every K not already saved with the same configuration, in increasing order, until
    the stopping rule says stop; returns the diagnostics rows of the fitted K. Writes
    ``skipped.json`` (possibly empty)."""
    rules = rules or SweepRules()
    started = time.perf_counter()
    deadline = None if rules.budget_seconds is None else started + rules.budget_seconds
    stopping = StoppingRule(rules)
    rows, skipped = [], {}
    ks = sorted(ks)
    cluster = current()
    saved, tasks = {}, {}  # on a cluster: K -> reusable, K -> its fit's future
    if cluster is not None:
        saved = {k: reusable(paths.fit(k), spec.identity(k), k) for k in ks}
        unsaved = [k for k in ks if not saved[k]]
        tasks = submit_fits(cluster, spec, x, unsaved, customers, features, deadline)
    try:
        for position, k in enumerate(ks, start=1):
            path = paths.fit(k)
            reuse = saved[k] if k in saved else reusable(path, spec.identity(k), k)
            if reuse:
                print(f"[K={k}] ({position}/{len(ks)}) already fitted: {path}", file=sys.stderr)
                tree = load_fit(path)
            else:
                print(
                    f"[K={k}] ({position}/{len(ks)}) sampling {spec.sampler.chains} chains "
                    f"x ({spec.sampler.tune} tune + {spec.sampler.draws} draws)"
                    + (" on the cluster" if cluster is not None else ""),
                    file=sys.stderr,
                    flush=True,
                )
                if cluster is None:
                    tree = fit_with_attempts(spec, x, k, customers, features, deadline)
                else:
                    tree = tasks.pop(k).result()
                    if spec.subsample is not None:  # its blocks of customers go to the cluster
                        add_population(tree, spec, x, customers, k)
                save_fit(tree, path)
            diagnostics = saved_attrs(path)["diagnostics"]
            rows.append({"K": k} | diagnostics)
            print_status(k, diagnostics)
            if position == len(ks):  # nothing left to stop
                break
            reason = stopping.update(k, tree, diagnostics)
            if reason:
                rest = ks[position:]
                skipped = {str(later): reason for later in rest}
                print(
                    f"segment fit: stopping early: {reason}; not fitted: K = "
                    f"{', '.join(map(str, rest))} (fit them anyway with --patience 0 "
                    "--no-stop-at-empty)",
                    file=sys.stderr,
                )
                break
    finally:  # the K past the stop (or all, on an error): their tasks are cancelled
        for future in tasks.values():
            future.cancel()
    with atomic_path(paths.skipped_json) as temporary:
        temporary.write_text(json.dumps(skipped, indent=1))
    return rows


def submit_fits(
    cluster: Cluster, spec: FitSpec, x, ks: list[int], customers, features, deadline
) -> dict:
    """One task per K of ``ks`` on the cluster, all at once (:func:`fit_task`); K -> future.
    The data go to the workers once; ``deadline`` (``time.perf_counter``) is sent as wall-clock
    time, which the workers' clocks share."""
    if not ks:
        return {}
    data = cluster.scatter((np.asarray(x), np.asarray(customers), list(features)))
    wall = None if deadline is None else time.time() + (deadline - time.perf_counter())
    return {
        k: cluster.submit(fit_task, spec, data, k, wall, key=cluster.key(f"fit-K{k}")) for k in ks
    }


def fit_task(spec: FitSpec, data: tuple, k: int, deadline_wall: float | None) -> xr.DataTree:
    """The cluster task of one K: :func:`fit_with_attempts` without the population pass (the
    client sends that to the cluster in blocks of customers). Runs in a worker process."""
    x, customers, features = data
    deadline = None
    if deadline_wall is not None:
        deadline = time.perf_counter() + (deadline_wall - time.time())
    return fit_with_attempts(spec, x, k, customers, features, deadline, assign_population=False)


def reusable(path: Path, identity: dict, k: int) -> bool:
    """Whether the saved fit ``path`` of K can be reused (:func:`saved_fit_matches`); a file that
    cannot be read is refitted, with a loud line saying so."""
    try:
        return saved_fit_matches(path, identity)
    except InputError:
        print(
            f"[K={k}] WARNING: {path} is not a readable fit file (truncated or corrupt); "
            "fitting it again, the new fit replaces it",
            file=sys.stderr,
        )
        return False


def check_saved_fits(paths: RunPaths, ks: list[int]) -> None:
    """Before sampling: every saved fit outside ``ks`` must be readable, since diagnostics.csv is
    rebuilt from all of them (InputError naming the file; one inside ``ks`` is refitted)."""
    for path in sorted(set(paths.fit_files()) - {paths.fit(k) for k in ks}):
        saved_attrs(path)


def print_status(k: int, diagnostics: dict) -> None:
    """One progress line per fitted K, loud when it is not ok."""
    status = diagnostics["status"]
    loud = "" if status == "ok" else f"  <<< {status.upper()}: {diagnostics['reason']}"
    print(
        f"[K={k}] status {status}, max R-hat {diagnostics['max_rhat']:.3f}, min ESS "
        f"{min(diagnostics['min_ess_bulk'], diagnostics['min_ess_tail']):.0f}, "
        f"{diagnostics['divergences']} divergences, {diagnostics['seconds']:.0f} s"
        f" ({diagnostics.get('attempts', 1)} attempt(s)){loud}",
        file=sys.stderr,
    )


def skipped_ks(paths: RunPaths) -> dict[int, str]:
    """K -> why the stopping rule did not fit it (empty when nothing was skipped)."""
    if not paths.skipped_json.is_file():
        return {}
    return {int(k): reason for k, reason in json.loads(paths.skipped_json.read_text()).items()}


def diagnostics_table(paths: RunPaths) -> pd.DataFrame:
    """One row per saved fit of the run directory (its diagnostics, columns
    :data:`analysis.inference.diagnostics.COLUMNS`), plus a ``skipped`` row for each K the stopping
    rule did not fit; sorted by K. Reads the fits' attributes only."""
    rows = []
    for path in paths.fit_files():
        attrs = saved_attrs(path)
        rows.append({"K": attrs["config"]["K"]} | attrs["diagnostics"])
    fitted = {row["K"] for row in rows}
    rows += [
        {"K": k, "status": "skipped", "reason": f"not fitted: {reason}"}
        for k, reason in skipped_ks(paths).items()
        if k not in fitted
    ]
    table = pd.DataFrame(rows, columns=list(COLUMNS)).sort_values("K")
    counts = ["divergences", "n_modes", "attempts"]  # whole numbers, blank for skipped K
    table[counts] = table[counts].astype("Int64")
    return table


def write_diagnostics(paths: RunPaths) -> pd.DataFrame:
    """Rebuild ``diagnostics.csv`` from every saved fit in the run directory
    (:func:`diagnostics_table`); return the table."""
    table = diagnostics_table(paths)
    with atomic_path(paths.diagnostics_csv) as temporary:
        table.to_csv(temporary, index=False)
    return table

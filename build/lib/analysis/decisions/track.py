"""``segment track``: a saved fit's customers in a later period, migration between segments and
drift, without resampling.

The later table is read, validated and put on the fit's model scale as ``segment score`` does
(:mod:`analysis.decisions.score`). Customers are matched by ID: those only in the later table are
new and those only in the fit are gone; both are counted and left out. For the matched customers,
from the fit's relabelled posterior draws of the mode its assignments describe (thinned as ``score``
``--draws``):

- the migration matrix (:mod:`analysis.decisions.migration`) from the memberships given the fit's
  own data (its ``observed_data``: for a fit on a subsample, the subsample) to those given the later
  data;
- the drift signal and the features that moved (:mod:`analysis.decisions.drift`); the fit's own
  PSIS-LOO elpd uses all of its saved draws.

Both periods' memberships are evaluated block by block of customers side by side
(:func:`analysis.inference.subsample.membership_blocks`), so memory stays at two blocks of
memberships and one (S, K, K) matrix, whatever the number of customers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from analysis.decisions.drift import DriftSignal, drift_signal, drift_text, feature_shifts
from analysis.decisions.migration import migration_draws, migration_table, realised_draws
from analysis.decisions.score import thinned
from analysis.errors import InputError
from analysis.inference.elpd import psis_loo
from analysis.inference.fit import described_mode
from analysis.inference.profiles import fit_config, segment_profiles
from analysis.inference.subsample import membership_blocks
from analysis.paths import atomic_path, check_output_file
from analysis.plotting import save
from analysis.reporting.figures import migration_figure
from models import MIXTURES

OUTPUT_FILES = ("migration.csv", "migration.png", "drift.csv", "drift.txt")


@dataclass(frozen=True)
class Tracking:
    """What ``segment track`` writes: the migration table, the drift signal, the per-feature
    shifts and the customer counts (matched, new in the later table, gone from it)."""

    migration: pd.DataFrame
    signal: DriftSignal
    shifts: pd.DataFrame
    matched: int
    new: int
    gone: int

    @property
    def verdict(self) -> str:
        return drift_text(self.signal, self.shifts)


def matched_rows(fit_customers, later_customers) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, later rows) of the customers in both tables, in the later table's order."""
    position = pd.Index(fit_customers).get_indexer(pd.Index(later_customers))
    later = np.flatnonzero(position >= 0)
    return position[later], later


def track(
    tree: xr.DataTree,
    later_x: np.ndarray,
    later_customers,
    draws: int | None = None,
    seed: int = 0,
) -> Tracking:
    """Migration and drift of the saved fit ``tree``'s customers, given their later model-scale
    values ``later_x`` (N_later, D) with IDs ``later_customers`` (N_later,). ``draws``: at most
    this many posterior samples (:func:`analysis.decisions.score.thinned`; None: all). ``seed``
    seeds the segments drawn for the realised counts
    (:func:`analysis.decisions.migration.realised_draws`). InputError when no customer of the later
    table is in the fit."""
    described = described_mode(tree)
    config = fit_config(tree)
    observed = described["observed_data"]["x"].transpose("customer", ...)  # features or items
    fit_rows, later_rows = matched_rows(observed["customer"].values, later_customers)
    if not len(fit_rows):
        raise InputError("no customer of the later table is in the fit (matched by ID)")
    earlier_x, later_x = observed.values[fit_rows], later_x[later_rows]
    posterior = thinned(described["posterior"].to_dataset(), draws)
    mixture, options = MIXTURES[config["model"]], config["options"]
    n_segments = posterior.sizes["segment"]
    n_samples = posterior.sizes["chain"] * posterior.sizes["draw"]
    migration = np.zeros((n_samples, n_segments, n_segments))
    realised = np.zeros_like(migration)
    rng = np.random.default_rng(seed)
    lpd = []
    pairs = zip(
        membership_blocks(mixture, options, earlier_x, posterior),
        membership_blocks(mixture, options, later_x, posterior),
        strict=True,
    )
    for (rows, earlier, _), (_, later, loglik) in pairs:
        migration += migration_draws(earlier, later)
        realised += realised_draws(earlier, later, rng)
        lpd.append(logsumexp(loglik, axis=0) - np.log(n_samples))
        print(f"track: {rows.stop:,} of {len(fit_rows):,} customers", file=sys.stderr)
    matched = observed["customer"].values[fit_rows]
    fit_elpd = psis_loo(described, "x").elpd_i.sel(customer=matched).values
    replicated = described["posterior_predictive"]["x"].sel(customer=matched)
    replicated = replicated.stack(sample=("chain", "draw")).transpose("sample", "customer", ...)
    names = segment_profiles(described)[0].set_index("segment")["name"]
    features = observed[observed.dims[1]].values
    return Tracking(
        migration=migration_table(migration, realised, names),
        signal=drift_signal(np.concatenate(lpd), fit_elpd),
        shifts=feature_shifts(earlier_x, replicated.values, later_x, features),
        matched=len(fit_rows),
        new=len(later_customers) - len(fit_rows),
        gone=len(observed) - len(fit_rows),
    )


def check_output_directory(out: Path, option: str) -> None:
    """Before any work: InputError unless every file of :data:`OUTPUT_FILES` can be written in
    the directory ``out`` (made when written); ``option`` names the command-line option.
    Creates nothing."""
    if Path(out).exists() and not Path(out).is_dir():
        raise InputError(f"{option} {out}: exists and is not a directory")
    for name in OUTPUT_FILES:
        check_output_file(Path(out) / name, option)


def summary_lines(tracking: Tracking) -> list[str]:
    """The counts, the drift signal and the verdict, one fact a line (``drift.txt``)."""
    signal = tracking.signal
    return [
        f"matched customers: {tracking.matched:,}",
        f"new in the later table (not in the fit, left out): {tracking.new:,}",
        f"gone (in the fit, not in the later table): {tracking.gone:,}",
        f"later mean lpd per customer: {signal.later_lpd:.4f} nats (model scale)",
        f"fit mean elpd_loo per customer: {signal.fit_elpd_loo:.4f} nats (model scale)",
        f"difference (later - fit): {signal.difference:+.4f} nats, paired SE {signal.se:.4f}",
        tracking.verdict,
    ]


def write_tracking(tracking: Tracking, out: Path) -> None:
    """``migration.csv``, ``migration.png``, ``drift.csv`` (per-feature shifts) and
    ``drift.txt`` (:func:`summary_lines`) in ``out``, each written atomically."""
    out = Path(out)
    figure = migration_figure(tracking.migration, tracking.matched)
    with atomic_path(out / "migration.csv") as temporary:
        tracking.migration.to_csv(temporary, index=False)
    with atomic_path(out / "drift.csv") as temporary:
        tracking.shifts.to_csv(temporary, index=False)
    with atomic_path(out / "drift.txt") as temporary:
        temporary.write_text("\n".join(summary_lines(tracking)) + "\n")
    save(figure, out / "migration.png", tight=True)

"""``segment track``: a saved fit's customers in a later period, migration between segments and
drift, without resampling.

The later table is read, validated and put on the fit's model scale as ``segment score`` does
(:mod:`analysis.decisions.score`). Customers are matched by ID: those only in the later table are
new and those only in the fit are gone; both are counted and left out. For the matched customers,
from the fit's relabelled posterior draws of the mode its assignments describe (thinned as ``score``
``--draws``):

- the migration matrix (:mod:`analysis.decisions.migration`) from the memberships given the fit's
  own data (its ``observed_data``: for a fit on a subsample, the subsample) to those given the later
  data, with the later period's segment sizes re-estimated per draw
  (:mod:`analysis.decisions.later_weights`);
- both periods' segment sizes (``sizes.csv``);
- the drift signal and the features that moved (:mod:`analysis.decisions.drift`); the fit's own
  PSIS-LOO elpd uses all of its saved draws.

Both periods' memberships are evaluated for every matched customer at once, a block of draws at a
time (:func:`draw_blocks`), so memory stays at two blocks of memberships (the EM of the later
sizes holds a float64 copy of one) and the (S, K, K) matrices, whatever the number of customers.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from analysis.decisions.drift import REFIT_SE, DriftSignal, drift_signal, drift_text, feature_shifts
from analysis.decisions.later_weights import later_weights, reweighted
from analysis.decisions.migration import migration_draws, migration_table, realised_draws
from analysis.decisions.migration_figure import migration_figure
from analysis.decisions.score import segment_names, thinned
from analysis.errors import InputError
from analysis.inference.assignments import HDI_PROB, hdi_nearest
from analysis.inference.elpd import psis_loo
from analysis.inference.fit import described_mode
from analysis.inference.membership import (
    compile_memberships,
    memberships_and_loglik,
    stacked_parameters,
)
from analysis.inference.profiles import fit_config
from analysis.inference.subsample import BLOCK_ELEMENTS
from analysis.paths import TRACK_FILES, atomic_path, check_output_file
from analysis.plotting import save
from models import MIXTURES, Mixture

OUTPUT_FILES = TRACK_FILES
SIGNAL_COLUMNS = (
    "K", "later_data", "matched", "new", "gone", "later_lpd", "fit_elpd_loo", "difference", "se",
    "refit_se", "refit",
)  # fmt: skip


@dataclass(frozen=True)
class Tracking:
    """What ``segment track`` writes: the migration table, the segment sizes of both periods, the
    drift signal, the per-feature shifts and the customer counts (matched, new in the later
    table, gone from it)."""

    migration: pd.DataFrame
    sizes: pd.DataFrame
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


@dataclass(frozen=True)
class PeriodDraws:
    """Per posterior draw s of S: ``expected`` (S, K, K) and ``realised`` (S, K, K) migration
    counts (:mod:`analysis.decisions.migration`), the fit's ``weights`` (S, K) and the later
    period's re-estimated ``later_weights`` (S, K) (:mod:`analysis.decisions.later_weights`); and
    ``later_lpd`` (N,), each matched customer's later log predictive density under the fit
    (nats)."""

    expected: np.ndarray
    realised: np.ndarray
    weights: np.ndarray
    later_weights: np.ndarray
    later_lpd: np.ndarray


def draw_blocks(posterior: xr.Dataset, n_customers: int) -> Iterator[xr.Dataset]:
    """Consecutive blocks of ``posterior``'s draws, chain by chain (the order of
    ``stack(sample=("chain", "draw"))``), each small enough that the memberships of
    ``n_customers`` customers at its draws hold at most
    :data:`analysis.inference.subsample.BLOCK_ELEMENTS`."""
    per_block = max(1, BLOCK_ELEMENTS // (n_customers * posterior.sizes["segment"]))
    for chain in range(posterior.sizes["chain"]):
        for start in range(0, posterior.sizes["draw"], per_block):
            yield posterior.isel(chain=[chain], draw=slice(start, start + per_block))


def period_draws(
    mixture: Mixture,
    options: dict,
    earlier_x: np.ndarray,
    later_x: np.ndarray,
    posterior: xr.Dataset,
    rng: np.random.Generator,
) -> PeriodDraws:
    """Migration counts, segment sizes and later lpd of N customers from their earlier and later
    model-scale values ``earlier_x`` and ``later_x`` (N, D, same order) and a relabelled
    ``posterior`` of ``mixture`` with model ``options``; ``rng`` draws the realised counts.

    Earlier memberships are the fit's (its weights are the sizes of its own period). Later
    memberships are computed with the fit's component parameters and the later period's own
    weights, re-estimated per draw by EM (:mod:`analysis.decisions.later_weights`). The later lpd is
    the fit's predictive density, the fit's weights included: it asks how well the fit, as it is,
    predicts the later period (:mod:`analysis.decisions.drift`).

    Every customer is evaluated at once, a block of draws at a time (:func:`draw_blocks`): EM
    needs all customers of a draw together.
    """
    first = stacked_parameters(posterior.isel(draw=[0]), mixture.parameters)
    functions = [compile_memberships(mixture, options, x, first) for x in (earlier_x, later_x)]
    n_samples = posterior.sizes["chain"] * posterior.sizes["draw"]
    parts = {"expected": [], "realised": [], "weights": [], "later_weights": []}
    lpd = np.full(len(later_x), -np.inf)
    done = 0
    for block in draw_blocks(posterior, len(later_x)):
        earlier, _ = memberships_and_loglik(mixture, options, earlier_x, block, functions[0])
        later, loglik = memberships_and_loglik(mixture, options, later_x, block, functions[1])
        weights = stacked_parameters(block, ("weights",))[0].astype(np.float64)
        sizes = later_weights(later, weights)
        later = reweighted(later, weights, sizes)
        parts["expected"].append(migration_draws(earlier, later))
        parts["realised"].append(realised_draws(earlier, later, rng))
        parts["weights"].append(weights)
        parts["later_weights"].append(sizes)
        lpd = np.logaddexp(lpd, logsumexp(loglik, axis=0))
        done += len(weights)
        print(f"track: {done:,} of {n_samples:,} draws", file=sys.stderr)
    stacked = {name: np.concatenate(arrays) for name, arrays in parts.items()}
    return PeriodDraws(**stacked, later_lpd=lpd - np.log(n_samples))


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
    rng = np.random.default_rng(seed)
    periods = period_draws(mixture, options, earlier_x, later_x, posterior, rng)
    matched = observed["customer"].values[fit_rows]
    fit_elpd = psis_loo(described, "x").elpd_i.sel(customer=matched).values
    replicated = described["posterior_predictive"]["x"].sel(customer=matched)
    replicated = replicated.stack(sample=("chain", "draw")).transpose("sample", "customer", ...)
    names = segment_names(described)
    features = observed[observed.dims[1]].values
    return Tracking(
        migration=migration_table(periods.expected, periods.realised, names),
        sizes=size_table(periods, names),
        signal=drift_signal(periods.later_lpd, fit_elpd),
        shifts=feature_shifts(earlier_x, replicated.values, later_x, features),
        matched=len(fit_rows),
        new=len(later_customers) - len(fit_rows),
        gone=len(observed) - len(fit_rows),
    )


def size_table(periods: PeriodDraws, names: pd.Series) -> pd.DataFrame:
    """``sizes.csv``: per segment (``names``: segment -> name, in segment order) the fit's
    weight and the later period's re-estimated weight (posterior means, 94% HDIs), and the
    expected matched customers in it in each period (posterior means of the migration
    matrix's row and column sums)."""
    columns = {}
    for label, draws in (("fit_weight", periods.weights), ("later_weight", periods.later_weights)):
        low, high = hdi_nearest(draws, HDI_PROB)
        columns |= {label: draws.mean(axis=0), f"{label}_hdi_low": low, f"{label}_hdi_high": high}
    return pd.DataFrame(
        {
            "segment": names.index.to_numpy(),
            "name": names.to_numpy(),
            **columns,
            "earlier_customers": periods.expected.sum(axis=2).mean(axis=0),
            "later_customers": periods.expected.sum(axis=1).mean(axis=0),
        }
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


def signal_frame(tracking: Tracking, k: int, source: str) -> pd.DataFrame:
    """``drift_signal.csv``: one row with the fit's K, the later table (``source``), the customer
    counts, the drift signal (nats per customer, model scale), the SE bar of a refit
    (:data:`analysis.decisions.drift.REFIT_SE`) and whether it recommends one."""
    signal = tracking.signal
    row = {
        "K": k, "later_data": source, "matched": tracking.matched, "new": tracking.new,
        "gone": tracking.gone, "later_lpd": signal.later_lpd, "fit_elpd_loo": signal.fit_elpd_loo,
        "difference": signal.difference, "se": signal.se, "refit_se": REFIT_SE,
        "refit": signal.refit,
    }  # fmt: skip
    return pd.DataFrame([row], columns=list(SIGNAL_COLUMNS))


def write_tracking(tracking: Tracking, out: Path, k: int, source: str) -> None:
    """``migration.csv``, ``migration.png``, ``drift.csv`` (per-feature shifts),
    ``drift_signal.csv`` (:func:`signal_frame` of the K = ``k`` fit and the later table
    ``source``) and ``drift.txt`` (:func:`summary_lines`) in ``out``, each written atomically."""
    out = Path(out)
    figure = migration_figure(tracking.migration, tracking.matched)
    with atomic_path(out / "migration.csv") as temporary:
        tracking.migration.to_csv(temporary, index=False)
    with atomic_path(out / "sizes.csv") as temporary:
        tracking.sizes.to_csv(temporary, index=False)
    with atomic_path(out / "drift.csv") as temporary:
        tracking.shifts.to_csv(temporary, index=False)
    with atomic_path(out / "drift_signal.csv") as temporary:
        signal_frame(tracking, k, source).to_csv(temporary, index=False)
    with atomic_path(out / "drift.txt") as temporary:
        temporary.write_text("\n".join(summary_lines(tracking)) + "\n")
    save(figure, out / "migration.png", tight=True)

"""Time the large-data path (``--subsample``) at 100k customers, and measure what it costs.

``python -m bench.scale [--quick] [--n 100000] [--subsample 10000] [--k 4]``

Synthetic customers with known truth (``analysis.data.simulate.gaussian_mixture``, D = 6):

1. scale: one K, NUTS (nutpie, 4 x (1000 + 1000)) on ``--subsample`` random customers of
   ``--n``, then assignments with 94% HDIs and held-out log predictive density for all of them
   (``analysis.inference.subsample``). Wall time split into sampling (with compilation),
   post-processing and the population pass; peak RSS; diagnostics; ARI of the modal segments against
   the truth.
2. accuracy: at a size where full NUTS also runs (``--reference-n``, default 10,000), the same
   model fitted on all customers and on a subsample of the same ratio (n / N). Both fits are
   matched to the true segments (``scipy.optimize.linear_sum_assignment`` on the means), then
   compared: error of the posterior means of weights and means, 94% HDI width and how many
   truths the HDIs hold, modal-segment agreement and membership differences per customer, and
   the out-of-sample elpd per customer (full fit: PSIS-LOO; subsample fit: held-out lpd) beside
   the true model's log density.

Ratios printed: the scale run's wall time over scikit-learn ``GaussianMixture(n_init=10)`` on
the same 100k customers, and each accuracy fit's wall time over full NUTS's.

Writes ``bench/results/scale.csv`` and ``bench/results/scale_accuracy.csv``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from analysis.data.simulate import GaussianTruth, gaussian_mixture, match_to_truth, true_log_density
from analysis.inference.fit import FitSpec, SamplerSettings, fit_k, load_fit, save_fit, saved_attrs
from analysis.inference.subsample import customer_assignments, heldout_elpd
from bench.output import RESULTS, machine, peak_rss_mb, write_table
from bench.sweep import SKLEARN_N_INIT

WEIGHTS = (0.4, 0.3, 0.2, 0.1)  # of the synthetic segments
N_FEATURES = 6
SEPARATION = 3.0  # distance of each segment mean from the origin, in (within-segment) sd
SETTINGS = {
    "full": {"n": 100_000, "subsample": 10_000, "reference_n": 10_000,
             "chains": 4, "tune": 1000, "draws": 1000},
    "quick": {"n": 20_000, "subsample": 2_000, "reference_n": 4_000,
              "chains": 2, "tune": 300, "draws": 300},
}  # fmt: skip


def simulated(n: int, seed: int) -> GaussianTruth:
    return gaussian_mixture(n, WEIGHTS, N_FEATURES, separation=SEPARATION, seed=seed)


def fit_spec(sampler: SamplerSettings, subsample: int | None) -> FitSpec:
    return FitSpec(
        "simulated",
        "analysis.data.simulate",
        "gmm",
        {},
        {"covariance": "full"},
        {},
        sampler,
        subsample,
    )


def timed_fit(spec: FitSpec, truth: GaussianTruth, k: int, path: Path) -> dict:
    """Fit, save, and return wall times (s) of the whole fit and its sampling."""
    features = [f"x{d}" for d in range(truth.x.shape[1])]
    started = time.perf_counter()
    tree = fit_k(spec, truth.x, k, np.arange(len(truth.x)), features)
    seconds = time.perf_counter() - started
    save_fit(tree, path)
    diagnostics = saved_attrs(path)["diagnostics"]
    population_seconds = tree["population"].attrs["seconds"] if "population" in tree else 0.0
    return {
        "seconds": seconds,
        "sampling_seconds": diagnostics["seconds"],  # model build, compile and NUTS
        "population_seconds": population_seconds,
        "postprocess_seconds": seconds - diagnostics["seconds"] - population_seconds,
        "status": diagnostics["status"],
        "reason": diagnostics["reason"],
        "max_rhat": diagnostics["max_rhat"],
        "min_ess_bulk": diagnostics["min_ess_bulk"],
        "divergences": diagnostics["divergences"],
    }


def truth_order(posterior: xr.Dataset, truth: GaussianTruth) -> np.ndarray:
    """order[j] = fitted segment matched to true segment j (closest posterior-mean means)."""
    return match_to_truth(posterior["means"].mean(("chain", "draw")).values, truth.means)


def recovery(tree: xr.DataTree, truth: GaussianTruth) -> dict:
    """Posterior-mean error, 94% HDI width and coverage of weights and means, against truth."""
    posterior = tree["posterior"].to_dataset()
    order = truth_order(posterior, truth)
    row = {}
    for name, true in (("weights", truth.weights), ("means", truth.means)):
        draws = posterior[name].isel(segment=order)
        hdi = az.hdi(draws, prob=0.94)
        lower, upper = hdi.sel(ci_bound="lower").values, hdi.sel(ci_bound="upper").values
        estimate = draws.mean(("chain", "draw")).values
        row |= {
            f"{name}_max_error": float(np.abs(estimate - true).max()),
            f"{name}_mean_hdi_width": float((upper - lower).mean()),
            f"{name}_in_hdi": f"{int(((lower <= true) & (true <= upper)).sum())}/{true.size}",
        }
    return row


def membership_in_truth_order(tree: xr.DataTree, truth: GaussianTruth) -> np.ndarray:
    order = truth_order(tree["posterior"].to_dataset(), truth)
    return customer_assignments(tree)["membership_mean"].isel(segment=order).values


def accuracy(
    full: xr.DataTree, sub: xr.DataTree, truth: GaussianTruth, oracle: np.ndarray
) -> pd.DataFrame:
    """One row per fit (full NUTS, subsample NUTS): recovery, assignments and elpd per customer."""
    full_membership = membership_in_truth_order(full, truth)
    loo = az.loo(full, var_name="x")
    held_out = heldout_elpd(sub["population"].to_dataset())
    out_of_fit = ~sub["population"]["in_fit"].values
    rows = []
    for name, tree, elpd in (
        ("full NUTS", full, loo.elpd / len(truth.x)),
        ("subsample NUTS", sub, held_out["elpd_heldout"] / held_out["n_heldout"]),
    ):
        membership = membership_in_truth_order(tree, truth)
        modal = membership.argmax(axis=1)
        rows.append(
            {"fit": name}
            | recovery(tree, truth)
            | {
                "ari_vs_truth": adjusted_rand_score(truth.labels, modal),
                "modal_agrees_with_full": float((modal == full_membership.argmax(axis=1)).mean()),
                "mean_abs_membership_diff_vs_full": float(
                    np.abs(membership - full_membership).sum(axis=1).mean() / 2
                ),
                "share_modal_prob_above_0.95": float((membership.max(axis=1) > 0.95).mean()),
                "elpd_per_customer": elpd,
                "elpd_kind": "PSIS-LOO" if tree is full else "held-out lpd",
                "oracle_lpd_per_customer": float(
                    oracle.mean() if tree is full else oracle[out_of_fit].mean()
                ),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small settings for iteration")
    parser.add_argument("--n", type=int, help="customers of the scale run (default 100,000)")
    parser.add_argument("--subsample", type=int, help="customers NUTS sees (default 10,000)")
    parser.add_argument("--reference-n", type=int, help="customers of the accuracy comparison")
    parser.add_argument("--k", type=int, default=len(WEIGHTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-accuracy", action="store_true", help="time the scale run only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    settings = SETTINGS["quick" if args.quick else "full"] | {
        key: getattr(args, key)
        for key in ("n", "subsample", "reference_n")
        if getattr(args, key) is not None
    }
    sampler = SamplerSettings(settings["chains"], settings["draws"], settings["tune"], args.seed)
    ratio = settings["subsample"] / settings["n"]
    print(
        f"bench.scale: K={args.k}, {machine()}; settings {settings}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        truth = simulated(settings["n"], args.seed)
        print(
            f"[scale] {settings['n']:,} customers, NUTS on {settings['subsample']:,}",
            file=sys.stderr,
        )
        spec = fit_spec(sampler, settings["subsample"])
        row = {"N": settings["n"], "subsample": settings["subsample"], "K": args.k}
        row |= timed_fit(spec, truth, args.k, workdir / "scale.nc")
        tree = load_fit(workdir / "scale.nc")
        row["ari_vs_truth"] = adjusted_rand_score(
            truth.labels, customer_assignments(tree)["modal_segment"].values
        )
        row["peak_rss_mb"] = peak_rss_mb()
        row["file_mb"] = (workdir / "scale.nc").stat().st_size / 1e6
        print(f"[scale] scikit-learn GaussianMixture n_init={SKLEARN_N_INIT}", file=sys.stderr)
        started = time.perf_counter()
        em = GaussianMixture(args.k, n_init=SKLEARN_N_INIT, random_state=args.seed).fit(truth.x)
        row["sklearn_seconds"] = time.perf_counter() - started
        row["sklearn_ari_vs_truth"] = adjusted_rand_score(truth.labels, em.predict(truth.x))
        row["seconds_over_sklearn"] = row["seconds"] / row["sklearn_seconds"]
        write_table(pd.DataFrame([row]), args.out / "scale.csv")
        if args.skip_accuracy:
            return
        reference = simulated(settings["reference_n"], args.seed + 1)
        n_sub = max(args.k * (N_FEATURES + 2), round(ratio * settings["reference_n"]))
        print(f"[accuracy] full NUTS on {settings['reference_n']:,} customers", file=sys.stderr)
        full_times = timed_fit(fit_spec(sampler, None), reference, args.k, workdir / "full.nc")
        print(f"[accuracy] NUTS on a subsample of {n_sub:,}", file=sys.stderr)
        sub_times = timed_fit(fit_spec(sampler, n_sub), reference, args.k, workdir / "sub.nc")
        table = accuracy(
            load_fit(workdir / "full.nc"), load_fit(workdir / "sub.nc"), reference,
            true_log_density(reference),
        )  # fmt: skip
        for position, times in enumerate((full_times, sub_times)):
            for key in ("seconds", "status", "max_rhat", "min_ess_bulk"):
                table.loc[position, key] = times[key]
        table["seconds_over_full"] = table["seconds"] / table.loc[0, "seconds"]
        table.insert(1, "N", settings["reference_n"])
        table.insert(2, "n_fitted", [settings["reference_n"], n_sub])
        write_table(table, args.out / "scale_accuracy.csv", shown=table.T, index=True)
    print(f"wrote {args.out / 'scale.csv'} and {args.out / 'scale_accuracy.csv'}")


if __name__ == "__main__":
    main()

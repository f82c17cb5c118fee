"""The classic recipe: scikit-learn ``GaussianMixture`` swept over K, scored by BIC, AIC and ICL.

BIC = -2 log L + p log N and AIC = -2 log L + 2p as scikit-learn computes them;
ICL = BIC + 2 * sum_i sum_k -tau_ik log tau_ik (Biernacki, Celeux & Govaert 2000), i.e. BIC
penalised by the entropy of the soft assignments tau. Lower is better for all three.
"""

from __future__ import annotations

import sys
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from analysis.paths import RunPaths, atomic_path

COVARIANCE_TYPES = ("full", "diag", "tied", "spherical")
BASELINE_COLUMNS = (
    "K", "seed", "covariance_type", "n_init", "bic", "aic", "icl", "loglik", "n_params",
    "converged", "skipped",
)  # fmt: skip
SCORES = ("bic", "aic", "icl", "loglik")  # NaN in a skipped row
# The columns compare and the report read back from baseline.csv (older files lack `skipped`
# and `n_init`, which the report's refit of the BIC choice needs)
READ_BACK = tuple(c for c in BASELINE_COLUMNS if c not in ("skipped", "n_init"))


def n_parameters(k: int, d: int, covariance_type: str) -> int:
    """Free parameters of a K-component, D-dimensional GMM (as scikit-learn counts them)."""
    covariance = {
        "full": k * d * (d + 1) // 2,
        "diag": k * d,
        "tied": d * (d + 1) // 2,
        "spherical": k,
    }[covariance_type]
    return covariance + k * d + k - 1


def em_problem(n: int, d: int, k: int, covariance_type: str) -> str | None:
    """Why EM cannot fit K components to ``n`` rows (not more rows than parameters), or None.

    The Bayesian fits have no such limit: their priors keep every K's posterior proper.
    """
    needed = n_parameters(k, d, covariance_type)
    if n <= needed:
        return f"{needed} parameters for {n} rows"
    return None


def try_fit_gmm(
    x: np.ndarray, k: int, covariance_type: str, n_init: int, seed: int
) -> tuple[GaussianMixture | None, str | None]:
    """(model, None) from :func:`fit_gmm`, or (None, reason) when EM cannot fit K: too few rows
    (:func:`em_problem`) or a singular covariance (scikit-learn's ValueError)."""
    problem = em_problem(len(x), x.shape[1], k, covariance_type)
    if problem is not None:
        return None, problem
    try:
        return fit_gmm(x, k, covariance_type, n_init, seed), None
    except ValueError as error:  # "Fitting the mixture model failed because some components..."
        return None, f"EM failed: {str(error).splitlines()[0][:120]}"


def fit_gmm(x: np.ndarray, k: int, covariance_type: str, n_init: int, seed: int) -> GaussianMixture:
    """One EM fit; convergence warnings are recorded in ``converged_``, not printed.

    Runs single-threaded: on these small matrices the OpenMP (k-means initialisation) and OpenBLAS
    thread pools contend, and on a 2-core machine the marketing sweep (K=1..10, 4 seeds) took
    57 s with both pools at 2 threads and 10 s at 1 thread, with identical results.
    """
    model = GaussianMixture(
        n_components=k,
        covariance_type=covariance_type,
        n_init=n_init,
        random_state=seed,
        max_iter=500,
    )
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x)
    return model


def score_gmm(model: GaussianMixture, x: np.ndarray) -> dict:
    """BIC, AIC, ICL, total log-likelihood and parameter count of a fitted model on ``x``."""
    bic = float(model.bic(x))
    tau = model.predict_proba(x)
    entropy = float(-np.sum(tau * np.log(np.clip(tau, 1e-300, None))))
    return {
        "bic": bic,
        "aic": float(model.aic(x)),
        "icl": bic + 2.0 * entropy,
        "loglik": float(model.score(x) * len(x)),
        "n_params": int(model._n_parameters()),
        "converged": bool(model.converged_),
    }


def sweep(
    x: np.ndarray,
    ks: list[int],
    covariance_types: list[str],
    n_init: int,
    seeds: list[int],
    progress=sys.stderr,
) -> pd.DataFrame:
    """Fit every (covariance type, seed, K); one row each with the :data:`BASELINE_COLUMNS`.

    A K that EM cannot fit (:func:`try_fit_gmm`) gets NaN scores and its reason in ``skipped``.
    """
    rows = []
    total = len(ks) * len(covariance_types) * len(seeds)
    for covariance_type in covariance_types:
        for seed in seeds:
            for k in ks:
                model, problem = try_fit_gmm(x, k, covariance_type, n_init, seed)
                row = {"K": k, "seed": seed, "covariance_type": covariance_type, "n_init": n_init}
                if model is None:
                    row |= dict.fromkeys(SCORES, np.nan) | {
                        "n_params": n_parameters(k, x.shape[1], covariance_type),
                        "converged": False,
                        "skipped": problem,
                    }
                else:
                    row |= score_gmm(model, x) | {"skipped": ""}
                rows.append(row)
                if progress is not None:
                    print(
                        f"\rbaseline: {len(rows)}/{total} fits "
                        f"({covariance_type}, seed {seed}, K={k})",
                        end="",
                        file=progress,
                        flush=True,
                    )
    if progress is not None:
        print(file=progress)
    return pd.DataFrame(rows, columns=list(BASELINE_COLUMNS))


def best_k_by_seed(table: pd.DataFrame, criterion: str = "bic") -> pd.DataFrame:
    """Minimum-``criterion`` K per (covariance type, seed), over the K that were fitted."""
    fitted = table.dropna(subset=[criterion])
    best = fitted.loc[fitted.groupby(["covariance_type", "seed"])[criterion].idxmin()]
    return best[["covariance_type", "seed", "K", criterion]].reset_index(drop=True)


def plot_criteria(table: pd.DataFrame, title: str):
    """BIC, AIC and ICL against K: one line per (covariance type, seed), one panel per criterion.

    Each line's minimum is a star in the line's colour (nudged sideways so that stars at the same
    K do not hide each other). When the first K values dwarf the rest
    (the tail spans less than a quarter of the range), an inset zooms on K >= the third K so
    differences between seeds stay visible. One legend below the panels.
    """
    criteria = ("bic", "aic", "icl")
    ks = sorted(table["K"].unique())
    skipped = sorted(table.loc[table[criteria[0]].isna(), "K"].unique())
    table = table.dropna(subset=list(criteria))
    groups = [
        (f"{covariance_type}, seed {seed}", group.sort_values("K"))
        for (covariance_type, seed), group in table.groupby(["covariance_type", "seed"])
    ]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    thousands = mticker.FuncFormatter(lambda value, _: f"{value:,.0f}")
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.6), sharex=True)
    for axis, criterion in zip(axes, criteria, strict=True):
        tail = table[table["K"] >= ks[2]][criterion] if len(ks) >= 5 else None
        span = table[criterion].max() - table[criterion].min()
        zoom = tail is not None and span > 0 and (tail.max() - tail.min()) < span / 4
        inset = axis.inset_axes((0.42, 0.40, 0.55, 0.55)) if zoom else None
        for index, (label, group) in enumerate(groups):
            color = colors[index % len(colors)]
            for target in (axis, inset) if inset is not None else (axis,):
                shown = group if target is axis else group[group["K"] >= ks[2]]
                target.plot(shown["K"], shown[criterion], marker="o", ms=3, lw=1, color=color,
                            label=label if target is axis else None)  # fmt: skip
                best = group.loc[group[criterion].idxmin()]
                nudge = 0.12 * (index - (len(groups) - 1) / 2)  # stars at one K stay apart
                target.plot(best["K"] + nudge, best[criterion], marker="*", ms=13, color=color,
                            markeredgecolor="black", markeredgewidth=0.8, zorder=3)  # fmt: skip
        axis.set_title(f"{criterion.upper()} (lower is better)")
        axis.set_xlabel("K (components)")
        axis.set_xticks(ks)
        axis.yaxis.set_major_formatter(thousands)
        axis.grid(alpha=0.3)
        if inset is not None:
            inset.set_xticks(ks[2:])
            inset.tick_params(labelsize=7)
            inset.yaxis.set_major_formatter(thousands)
            inset.grid(alpha=0.3)
            inset.text(0.97, 0.95, f"zoom: K >= {ks[2]}", transform=inset.transAxes,
                       ha="right", va="top", fontsize=8)  # fmt: skip
    axes[0].set_ylabel("criterion value")
    handles, labels = axes[0].get_legend_handles_labels()
    star = plt.Line2D([], [], marker="*", ms=11, color="white", markerfacecolor="grey",
                      markeredgecolor="black", label="minimum of that line")  # fmt: skip
    figure.legend([*handles, star], [*labels, star.get_label()], loc="lower center",
                  ncol=min(len(labels) + 1, 6), fontsize=8, frameon=False)  # fmt: skip
    if skipped:
        title += f"\nEM cannot fit K = {', '.join(map(str, skipped))} (baseline.csv: skipped)"
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    return figure


def write_run_files(table: pd.DataFrame, title: str, paths: RunPaths) -> None:
    """``baseline.csv`` and ``figures/baseline.png`` in the run directory, both or neither."""
    figure = plot_criteria(table, title)
    with (
        atomic_path(paths.baseline_csv) as tmp_csv,
        atomic_path(paths.figure("baseline")) as tmp_png,
    ):
        table.to_csv(tmp_csv, index=False)
        figure.savefig(tmp_png, dpi=110, format="png")
    plt.close(figure)

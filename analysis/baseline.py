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
import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from analysis.errors import InputError

COVARIANCE_TYPES = ("full", "diag", "tied", "spherical")
BASELINE_COLUMNS = (
    "K", "seed", "covariance_type", "bic", "aic", "icl", "loglik", "n_params", "converged",
)  # fmt: skip


def n_parameters(k: int, d: int, covariance_type: str) -> int:
    """Free parameters of a K-component, D-dimensional GMM (as scikit-learn counts them)."""
    covariance = {
        "full": k * d * (d + 1) // 2,
        "diag": k * d,
        "tied": d * (d + 1) // 2,
        "spherical": k,
    }[covariance_type]
    return covariance + k * d + k - 1


def check_enough_rows(n: int, d: int, k_max: int, covariance_type: str, source: str) -> None:
    """Raise InputError when the data have fewer rows than the largest K's parameters."""
    needed = n_parameters(k_max, d, covariance_type)
    if n <= needed:
        raise InputError(
            f"{source}: K={k_max} with {covariance_type} covariance has {needed} parameters "
            f"but the data have only {n} rows; lower --k"
        )


def fit_gmm(x: np.ndarray, k: int, covariance_type: str, n_init: int, seed: int) -> GaussianMixture:
    """One EM fit; convergence warnings are recorded in ``converged_``, not printed."""
    model = GaussianMixture(
        n_components=k,
        covariance_type=covariance_type,
        n_init=n_init,
        random_state=seed,
        max_iter=500,
    )
    with warnings.catch_warnings():
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
    """Fit every (covariance type, seed, K); one row each with the :data:`BASELINE_COLUMNS`."""
    rows = []
    total = len(ks) * len(covariance_types) * len(seeds)
    for covariance_type in covariance_types:
        for seed in seeds:
            for k in ks:
                model = fit_gmm(x, k, covariance_type, n_init, seed)
                rows.append(
                    {"K": k, "seed": seed, "covariance_type": covariance_type} | score_gmm(model, x)
                )
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
    """Minimum-``criterion`` K per (covariance type, seed)."""
    best = table.loc[table.groupby(["covariance_type", "seed"])[criterion].idxmin()]
    return best[["covariance_type", "seed", "K", criterion]].reset_index(drop=True)


def plot_criteria(table: pd.DataFrame, title: str):
    """BIC, AIC and ICL against K: one line per seed, one panel per criterion."""
    criteria = ("bic", "aic", "icl")
    figure, axes = plt.subplots(1, 3, figsize=(13, 4), sharex=True)
    for axis, criterion in zip(axes, criteria, strict=True):
        for (covariance_type, seed), group in table.groupby(["covariance_type", "seed"]):
            group = group.sort_values("K")
            axis.plot(group["K"], group[criterion], marker="o", ms=3, lw=1,
                      label=f"{covariance_type}, seed {seed}")  # fmt: skip
            best = group.loc[group[criterion].idxmin()]
            axis.plot(best["K"], best[criterion], marker="*", ms=12, color="black")
        axis.set_title(f"{criterion.upper()} (lower is better; * = minimum)")
        axis.set_xlabel("K (components)")
        axis.set_xticks(sorted(table["K"].unique()))
    axes[0].set_ylabel("criterion")
    axes[-1].legend(fontsize=7, loc="upper right")
    figure.suptitle(title)
    figure.tight_layout()
    return figure

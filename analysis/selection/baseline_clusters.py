"""The chosen latent classes beside the seed analysis' recipe: one-hot GMM clusters at the BIC K.

The seed analysis segmented the households by fitting scikit-learn's ``GaussianMixture`` to the
one-hot dummies of their answers and taking the K of lowest BIC. ``segment baseline`` is that
recipe; this module takes its own answer and sets it beside the latent class fit the report
describes:

- :func:`bic_row`: the ``baseline.csv`` row of lowest BIC (its K, seed and EM starts);
- :func:`baseline_clusters`: that GMM refitted (the same matrix, K, covariance type, seed and
  ``n_init``, so the same EM run and BIC) and its hard clusters, numbered by size;
- :func:`cross_tabulation`: households by modal latent class and GMM cluster, each cluster
  described by the levels all its households share (:func:`shared_levels`);
- :func:`heldout_scores`: each side's held-out log score on the categorical measure of
  ``segment compare``: the latent classes' ``elpd_loo`` (``comparison.csv``), and the GMM clusters
  made latent classes scored by 10-fold CV (:func:`analysis.selection.yardstick.gmm_heldout`, the
  ``gmm_heldout_elpd`` of ``comparison.csv``, here at the baseline's own K);
- :func:`compare_with_baseline`: all of it for one latent class fit, or why it cannot be done.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from analysis.inference.elpd import summed
from analysis.inference.local_dependence import answer_codes
from analysis.inference.profiles import fit_config, item_levels
from analysis.selection import baseline
from analysis.selection.loo import entry_elpd
from analysis.selection.yardstick import (
    HELDOUT_FOLDS,
    HELDOUT_N_INIT,
    baseline_matrix,
    heldout_pointwise,
)

CROSSTAB_COLUMNS = (
    "segment", "name", "class_customers", "cluster", "cluster_levels", "cluster_customers",
    "customers",
)  # fmt: skip
SHARED_LEVELS = 3  # levels named per GMM cluster (those every household of it has)
SCORE_COLUMNS = (
    "side", "K", "K_chosen_by", "estimate", "elpd", "se", "customers", "elpd_diff", "dse",
)  # fmt: skip
LCA_SIDE = "latent classes (Bayesian LCA)"
GMM_SIDE = "one-hot GMM + BIC (the seed's recipe)"


def bic_row(table: pd.DataFrame, covariance_type: str) -> pd.Series:
    """The ``baseline.csv`` row of lowest BIC over every K and seed of ``covariance_type`` (the
    first covariance type in the table when it has none of that type, as
    :func:`analysis.selection.yardstick.baseline_per_k` does)."""
    available = table["covariance_type"].unique()
    chosen = covariance_type if covariance_type in available else available[0]
    rows = table[table["covariance_type"] == chosen].dropna(subset=["bic"])
    return rows.loc[rows["bic"].idxmin()]


def baseline_clusters(matrix: np.ndarray, row: pd.Series) -> tuple[np.ndarray, float]:
    """(clusters, BIC) of the baseline fit of ``baseline.csv`` row ``row`` refitted on ``matrix``.

    ``matrix`` (N, D) is the baseline's input (one-hot dummies); the fit uses the row's K,
    covariance type, seed and ``n_init``, so it is the EM run the row scores (its BIC shows it).
    Clusters (N,) are the modal components, renumbered 0, 1, ... by decreasing size (ties in
    scikit-learn's order); an empty component keeps its number after the others.
    """
    k = int(row["K"])
    model = baseline.fit_gmm(
        matrix, k, row["covariance_type"], int(row["n_init"]), int(row["seed"])
    )
    labels = model.predict(matrix)
    order = np.argsort(-np.bincount(labels, minlength=k), kind="stable")
    rank = np.empty(k, dtype=int)
    rank[order] = np.arange(k)
    return rank[labels], float(model.bic(matrix))


def shared_levels(indicators: np.ndarray, pairs: list[tuple[str, str]], members) -> str:
    """What a GMM cluster on dummies is: the levels every household of it has (the dummies
    on which its diagonal Gaussian spikes), rarest in the population first, at most
    :data:`SHARED_LEVELS`, as "variable level · ...".

    ``indicators`` (N, M) 0/1 of every level, ``pairs`` the (variable, level) of each column,
    ``members`` (N,) booleans of the cluster's households; "empty" or "no level shared by all"
    when there is nothing to name.
    """
    if not members.any():
        return "empty"
    shared = np.flatnonzero(indicators[members].min(axis=0) == 1)
    if not shared.size:
        return "no level shared by all"
    rarest = shared[np.argsort(indicators.mean(axis=0)[shared], kind="stable")]
    return " · ".join(f"{pairs[j][0]} {pairs[j][1]}" for j in rarest[:SHARED_LEVELS])


def cross_tabulation(
    classes: np.ndarray,
    names: pd.Series,
    clusters: np.ndarray,
    n_clusters: int,
    indicators: np.ndarray,
    pairs: list[tuple[str, str]],
) -> pd.DataFrame:
    """Households per (latent class, GMM cluster), every combination a row (zeros included).

    ``classes`` (N,) modal latent class per household, ``names`` class number -> name (every
    class of the fit, in order), ``clusters`` (N,) GMM cluster per household in
    0..``n_clusters`` - 1; ``indicators`` (N, M) and ``pairs`` describe each cluster
    (:func:`shared_levels`). Columns :data:`CROSSTAB_COLUMNS`: the class and cluster sizes
    beside the count of their households in common.
    """
    counts = pd.crosstab(
        pd.Categorical(classes, names.index),
        pd.Categorical(clusters, range(n_clusters)),
        dropna=False,
    )
    described = [shared_levels(indicators, pairs, clusters == c) for c in range(n_clusters)]
    rows = [
        (int(k), names[k], int(counts.loc[k].sum()), c, described[c], int(counts[c].sum()),
         int(counts.at[k, c]))
        for k in names.index
        for c in range(n_clusters)
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=list(CROSSTAB_COLUMNS))


def heldout_scores(
    lca: tuple[int, str, float, float],
    lca_pointwise: np.ndarray,
    matrix: np.ndarray,
    covariance_type: str,
    indicators: np.ndarray,
    n_levels: list[int],
    bic_k: int,
) -> pd.DataFrame:
    """Each side's held-out log score, on one measure: the log probability of each household's
    observed answers, summed over households (the elpd scale), with its SE, and the two sides
    compared household by household.

    ``lca``: the latent classes' (K, how K was chosen, elpd_loo, se_loo), as ``comparison.csv``
    has them (NaN when it has no row of that K); ``lca_pointwise`` (N,): their pointwise elpd
    (PSIS-LOO, or chain-stacked for a multimodal fit: :func:`analysis.selection.loo.entry_elpd`).
    The GMM side: :func:`analysis.selection.yardstick.heldout_pointwise` at ``bic_k`` on the
    baseline ``matrix`` (N, D) with ``covariance_type``: its clusters, fitted on 9 of 10 folds,
    made latent classes that score the households of the tenth from their ``indicators``
    (N, levels), ``n_levels`` per variable.

    Columns :data:`SCORE_COLUMNS`. ``elpd_diff`` and ``dse`` are as in ``az.compare``: 0 on the
    better side's row; on the other, the difference of the pointwise sums and its paired SE,
    sqrt(N) x the sd of the per-household differences.
    """
    gmm = heldout_pointwise(matrix, [bic_k], covariance_type, categories=(indicators, n_levels))
    gmm_elpd, gmm_se = summed(gmm[bic_k])
    difference, dse = summed(np.asarray(lca_pointwise, dtype=float).ravel() - gmm[bic_k])
    if np.isnan(difference):  # EM could not fit the baseline's K on some fold: no comparison
        lca_vs, gmm_vs = (np.nan, np.nan), (np.nan, np.nan)
    elif difference >= 0:
        lca_vs, gmm_vs = (0.0, 0.0), (-difference, dse)
    else:
        lca_vs, gmm_vs = (difference, dse), (0.0, 0.0)
    n = len(matrix)
    rows = [
        (LCA_SIDE, *lca[:2], "PSIS-LOO (elpd_loo, se_loo of comparison.csv)", *lca[2:], n,
         *lca_vs),
        (GMM_SIDE, bic_k, "lowest BIC in baseline.csv",
         f"{HELDOUT_FOLDS}-fold CV: the one-hot GMM (n_init {HELDOUT_N_INIT}) fitted on the "
         "other folds, its clusters made latent classes (as gmm_heldout_elpd of compare)",
         gmm_elpd, gmm_se, n, *gmm_vs),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


def compare_with_baseline(
    tree: xr.DataTree,
    assignments: pd.DataFrame,
    names: pd.Series,
    baseline_table: pd.DataFrame | None,
    comparison: pd.DataFrame | None,
    k: int,
    how: str,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str]:
    """(cross-tabulation, held-out scores, what was compared) for a latent class fit ``tree``.

    ``assignments``: the report's per-household table (``customer_id``, modal ``segment``);
    ``names``: class number -> name; ``baseline_table``: ``baseline.csv``; ``comparison``:
    ``comparison.csv`` (or None), whose row ``K == k`` gives the latent classes' score; ``how``:
    how the report chose that K. When the comparison cannot be made (no baseline, a baseline
    without ``n_init``, missing answers, a subsample fit) the tables are None and the text says
    why.
    """
    if baseline_table is None:
        return None, None, "not made: no baseline.csv (run segment baseline)"
    if "n_init" not in baseline_table:
        return None, None, "not made: baseline.csv has no n_init column (rerun segment baseline)"
    if "population" in tree:
        return None, None, "not made: the fit is on a subsample, the baseline on every customer"
    indicators = tree["observed_data"]["x"].transpose("customer", "item")
    config = fit_config(tree)
    n_levels = [len(levels) for levels in config["options"]["levels"].values()]
    answered = indicators.values
    if (answer_codes(answered, n_levels) < 0).any():
        return None, None, "not made: households with missing answers (EM cannot score them)"
    matrix, covariance_type = baseline_matrix(answered, config)
    row = bic_row(baseline_table, covariance_type)
    bic_k = int(row["K"])
    clusters, bic = baseline_clusters(matrix, row)
    modal = assignments.set_index("customer_id")["segment"].reindex(indicators["customer"].values)
    crosstab = cross_tabulation(
        modal.to_numpy(), names, clusters, bic_k, answered, item_levels(tree)
    )
    lca = (k, how, np.nan, np.nan)
    if comparison is not None and (comparison["K"] == k).any():
        chosen = comparison.loc[comparison["K"] == k].iloc[0]
        lca = (k, how, float(chosen["elpd_loo"]), float(chosen["se_loo"]))
    status = json.loads(tree.attrs["segment_diagnostics"])["status"]
    pointwise = np.asarray(entry_elpd(tree, status)[0].elpd_i).ravel()
    scores = heldout_scores(
        lca, pointwise, matrix, row["covariance_type"], answered, n_levels, bic_k
    )
    text = (
        f"GMM K = {bic_k} ({row['covariance_type']} covariance, seed {int(row['seed'])}, "
        f"n_init {int(row['n_init'])}): BIC {row['bic']:,.1f} in baseline.csv, {bic:,.1f} refitted"
    )
    if not np.isclose(bic, row["bic"], rtol=1e-9, atol=1e-6):
        text += "; they differ: baseline.csv is not of these data (rerun segment baseline)"
    return crosstab, scores, text

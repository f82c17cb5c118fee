"""The latent classes beside the baseline's BIC-K clusters on a constructed class fit (no sampling).

The households give three answer patterns (age, kids): A = (young, yes) x 40, B = (old, no) x 35,
C = (middle, no) x 25. On their one-hot dummies the diagonal GMM's lowest BIC is at K = 3, one
component per pattern, so the clusters by size are A = 0, B = 1, C = 2. The constructed fit's
modal classes are class 0 for 30 of A and 10 of C, class 1 for the other 10 of A, all of B and
15 of C, so the cross-tabulation is, by hand, class 0: [30, 0, 10], class 1: [10, 35, 15]; each
cluster is named by the levels all its households share, rarest in the population first (young
and yes are both 40%: item order).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.special import logsumexp
from sklearn.model_selection import KFold

from analysis.inference.assignments import summarize_memberships
from analysis.inference.profiles import assignment_table, fit_config, segment_profiles
from analysis.paths import RunPaths
from analysis.reporting.report import Source, section_versus_gmm
from analysis.selection import baseline
from analysis.selection.baseline_clusters import (
    CROSSTAB_COLUMNS,
    GMM_SIDE,
    LCA_SIDE,
    baseline_clusters,
    bic_row,
    compare_with_baseline,
    heldout_scores,
    shared_levels,
)
from analysis.selection.yardstick import HELDOUT_FOLDS, baseline_matrix
from tests.test_profiles import CHAINS, DRAWS, constructed_class_fit
from tests.test_report import Report

# items: age=young, age=middle, age=old, kids=no, kids=yes
PATTERNS = {"A": [1, 0, 0, 0, 1], "B": [0, 0, 1, 1, 0], "C": [0, 1, 0, 1, 0]}
SIZES = {"A": 40, "B": 35, "C": 25}
MODAL = np.array([0] * 30 + [1] * 10 + [1] * 35 + [0] * 10 + [1] * 15)  # rows in A, B, C order
CROSSTAB = [[30, 0, 10], [10, 35, 15]]  # by hand, from the docstring
CLUSTER_LEVELS = ["age young · kids yes", "age old · kids no", "age middle · kids no"]
LCA_SCORE = {"K": 2, "elpd_loo": -150.5, "se_loo": 7.25}
LCA_POINTWISE = np.linspace(-2.0, -1.0, sum(SIZES.values()))  # the classes' elpd per household


@pytest.fixture(scope="module")
def fit():
    """The constructed class fit (tests/test_profiles.py) with the three patterns as its data and
    memberships of 0.8 on each household's class in :data:`MODAL`."""
    tree = constructed_class_fit()
    answers = np.concatenate([np.tile(PATTERNS[p], (SIZES[p], 1)) for p in PATTERNS]).astype(float)
    n = len(answers)
    tree["observed_data"] = (
        tree["observed_data"].to_dataset().assign(x=(("customer", "item"), answers))
    )
    membership = np.where(np.arange(2) == MODAL[:, None], 0.8, 0.2)
    membership = np.broadcast_to(membership, (CHAINS * DRAWS, n, 2)).astype(np.float32)
    tree["assignments"] = summarize_memberships(membership, CHAINS, np.arange(n), np.arange(2))
    # nearly the same log-likelihood in every draw (spread 1e-8), so each household's PSIS-LOO
    # elpd is LCA_POINTWISE to about 1e-8
    jitter = np.random.default_rng(0).uniform(-1e-8, 1e-8, (CHAINS, DRAWS, n))
    log_lik = LCA_POINTWISE + jitter
    tree["log_likelihood"] = xr.Dataset(
        {"x": (("chain", "draw", "customer"), log_lik)},
        coords={"chain": np.arange(CHAINS), "draw": np.arange(DRAWS), "customer": np.arange(n)},
    )
    tree.attrs["segment_diagnostics"] = json.dumps({"status": "ok"})
    matrix, covariance_type = baseline_matrix(answers, fit_config(tree))
    table = baseline.sweep(matrix, [1, 2, 3, 4], [covariance_type], 2, [0, 1], progress=None)
    segments, _ = segment_profiles(tree)
    assignments = assignment_table(tree, segments.set_index("segment")["tier"])
    return tree, answers, matrix, table, segments, assignments


def hand_heldout(answers: np.ndarray) -> np.ndarray:
    """The 10-fold held-out log probability of the three-pattern households under hard clusters
    (one per pattern) made latent classes: per training fold, class weight n_c / n_train and per
    variable the level probability (count + 1) / (n_c + levels), the count n_c at the pattern's
    own level and 0 elsewhere. Returns (n,) natural logs."""
    blocks = [slice(0, 3), slice(3, 5)]
    patterns = np.array(list(PATTERNS.values()))
    kind = np.array([np.flatnonzero((patterns == row).all(axis=1))[0] for row in answers])
    pointwise = np.empty(len(answers))
    for train, test in KFold(HELDOUT_FOLDS, shuffle=True, random_state=0).split(answers):
        n_c = np.bincount(kind[train], minlength=3)
        for i in test:
            terms = np.log(n_c / len(train))
            for block in blocks:
                levels = block.stop - block.start
                counts = n_c[:, None] * patterns[:, block] + 1.0  # (cluster, level)
                terms = terms + np.log(counts[:, answers[i, block].argmax()] / (n_c + levels))
            pointwise[i] = logsumexp(terms)
    return pointwise


def summed_by_hand(pointwise: np.ndarray) -> tuple[float, float]:
    """(sum over households, sqrt(n) x sd)."""
    return pointwise.sum(), float(np.sqrt(len(pointwise)) * pointwise.std(ddof=1))


def test_the_bic_choice_is_refitted_to_its_own_run(fit):
    _, _, matrix, table, _, _ = fit
    row = bic_row(table, "diag")
    assert int(row["K"]) == 3  # three answer patterns
    clusters, bic = baseline_clusters(matrix, row)
    assert bic == pytest.approx(row["bic"], rel=1e-9)  # the same EM run as baseline.csv's row
    expected = np.repeat([0, 1, 2], list(SIZES.values()))  # clusters by size: A, B, C
    np.testing.assert_array_equal(clusters, expected)


def test_crosstab_and_heldout_scores_match_the_hand_computation(fit):
    tree, answers, _, table, segments, assignments = fit
    names = segments.set_index("segment")["name"]
    comparison = pd.DataFrame([LCA_SCORE, {"K": 3, "elpd_loo": -140.0, "se_loo": 6.0}])
    crosstab, scores, text = compare_with_baseline(
        tree, assignments, names, table, comparison, 2, "the comparison"
    )
    assert list(crosstab.columns) == list(CROSSTAB_COLUMNS)
    counts = crosstab.pivot(index="segment", columns="cluster", values="customers")
    assert counts.to_numpy().tolist() == CROSSTAB
    by_class = crosstab.groupby("segment")
    assert by_class["name"].first().tolist() == names.tolist()
    assert by_class["class_customers"].first().tolist() == [40, 60]
    by_cluster = crosstab.groupby("cluster")
    assert by_cluster["cluster_customers"].first().tolist() == list(SIZES.values())
    assert by_cluster["cluster_levels"].first().tolist() == CLUSTER_LEVELS
    scores = scores.set_index("side")
    assert scores.at[LCA_SIDE, "K"] == 2 and scores.at[GMM_SIDE, "K"] == 3
    assert scores.at[LCA_SIDE, "K_chosen_by"] == "the comparison"
    assert scores.at[LCA_SIDE, "elpd"] == LCA_SCORE["elpd_loo"]
    assert scores.at[LCA_SIDE, "se"] == LCA_SCORE["se_loo"]
    gmm_pointwise = hand_heldout(answers)
    elpd, se = summed_by_hand(gmm_pointwise)
    assert scores.at[GMM_SIDE, "elpd"] == pytest.approx(elpd, rel=1e-9)
    assert scores.at[GMM_SIDE, "se"] == pytest.approx(se, rel=1e-9)
    # household by household: the better side has 0, the other the paired difference and SE
    difference, dse = summed_by_hand(LCA_POINTWISE - gmm_pointwise)
    better, worse = (LCA_SIDE, GMM_SIDE) if difference > 0 else (GMM_SIDE, LCA_SIDE)
    assert scores.at[better, "elpd_diff"] == 0.0 and scores.at[better, "dse"] == 0.0
    assert scores.at[worse, "elpd_diff"] == pytest.approx(-abs(difference), rel=1e-6)
    assert scores.at[worse, "dse"] == pytest.approx(dse, rel=1e-6)
    assert "GMM K = 3" in text and "seed" in text and "n_init 2" in text
    assert "differ" not in text
    stale = table.assign(bic=table["bic"] + 5.0)  # a baseline.csv of other data
    assert (
        "they differ"
        in compare_with_baseline(tree, assignments, names, stale, comparison, 2, "the comparison")[
            2
        ]
    )


def test_a_cluster_without_shared_levels_says_so():
    indicators = np.array([[1, 0, 0, 1], [0, 1, 0, 1], [0, 1, 1, 0]])
    pairs = [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]
    assert shared_levels(indicators, pairs, np.array([True, True, False])) == "b y"
    assert shared_levels(indicators, pairs, np.array([True, False, True])) == (
        "no level shared by all"
    )
    assert shared_levels(indicators, pairs, np.zeros(3, bool)) == "empty"


def test_no_comparison_without_n_init_or_with_missing_answers(fit):
    tree, _, _, table, segments, assignments = fit
    names = segments.set_index("segment")["name"]
    old = table.drop(columns="n_init")
    crosstab, scores, text = compare_with_baseline(tree, assignments, names, old, None, 2, "-")
    assert crosstab is None and scores is None and "n_init" in text
    missing = tree.copy()
    answers = tree["observed_data"]["x"].values.copy()
    answers[0, 3:] = 0  # household 0 did not answer kids
    missing["observed_data"] = (
        missing["observed_data"].to_dataset().assign(x=(("customer", "item"), answers))
    )
    crosstab, _, text = compare_with_baseline(
        missing, assignments, names, table, None, 2, "the comparison"
    )
    assert crosstab is None and "missing answers" in text


def test_the_report_section_shows_both_tables_traced(fit, tmp_path):
    tree, _, _, table, segments, assignments = fit
    names = segments.set_index("segment")["name"]
    crosstab, scores, text = compare_with_baseline(
        tree, assignments, names, table, pd.DataFrame([LCA_SCORE]), 2, "the comparison"
    )
    crosstab.to_csv(tmp_path / "classes_vs_gmm.csv", index=False)
    scores.to_csv(tmp_path / "classes_vs_gmm_scores.csv", index=False)
    paths = RunPaths(tmp_path)
    src = {n: Source(paths, n) for n in ("classes_vs_gmm.csv", "classes_vs_gmm_scores.csv")}
    html = section_versus_gmm(src, lambda item: text)
    report = Report()
    report.feed(html)
    frames = {n: pd.read_csv(tmp_path / n) for n in src}
    for span in report.values:
        exact = frames[span["data-src"]].at[int(span["data-row"]), span["data-col"]]
        assert float(span["data-value"]) == float(exact)
    shown = [
        int(float(s["data-value"]))
        for s in report.values
        if s["data-src"] == "classes_vs_gmm.csv" and s["data-col"] == "customers"
    ]
    assert shown == [c for row in zip(*CROSSTAB, strict=True) for c in row]  # cluster by cluster
    scored = {s["data-col"] for s in report.values if s["data-src"] == "classes_vs_gmm_scores.csv"}
    assert {"elpd", "se", "K", "elpd_diff", "dse"} <= scored
    assert text.split(":")[0] in html
    assert all(f"{levels}</span>" in html for levels in CLUSTER_LEVELS)
    (tmp_path / "classes_vs_gmm.csv").unlink()
    src = {n: Source(paths, n) for n in src}
    assert "was not made: no baseline.csv" in section_versus_gmm(
        src, lambda item: "not made: no baseline.csv (run segment baseline)"
    )


@pytest.mark.parametrize("shift", [-5.0, 5.0])  # the classes' score below, then above the GMM's
def test_the_better_side_has_zero_difference_and_the_other_the_paired_one(fit, shift):
    _, answers, matrix, _, _, _ = fit
    gmm_pointwise = hand_heldout(answers)
    lca_pointwise = gmm_pointwise + shift + LCA_POINTWISE
    scores = heldout_scores(
        (2, "-", np.nan, np.nan), lca_pointwise, matrix, "diag", answers, [3, 2], 3
    ).set_index("side")
    difference, dse = summed_by_hand(lca_pointwise - gmm_pointwise)
    better, worse = (LCA_SIDE, GMM_SIDE) if shift > 0 else (GMM_SIDE, LCA_SIDE)
    assert scores.at[better, "elpd_diff"] == 0.0 and scores.at[better, "dse"] == 0.0
    assert scores.at[worse, "elpd_diff"] == pytest.approx(-abs(difference), rel=1e-9)
    assert scores.at[worse, "dse"] == pytest.approx(dse, rel=1e-9)

"""Profiles, tiers, names and the assignment table on constructed fits with known answers.

No sampling: each fit is a hand-built DataTree with the groups a saved fit has (posterior,
observed_data, assignments, the config attrs), so every expected value is worked out by hand
from the stated functional.
"""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis.data.transforms import FittedTransform
from analysis.inference.assignments import summarize_memberships
from analysis.inference.profiles import (
    CATEGORICAL_PROFILE_COLUMNS,
    CATEGORICAL_SEGMENT_COLUMNS,
    PROFILE_COLUMNS,
    SEGMENT_COLUMNS,
    Redundancy,
    assignment_table,
    class_names,
    continuous_profiles,
    cramers_v,
    item_levels,
    level_implication,
    mean_spend_draws,
    observed_spend,
    segment_counts,
    segment_names,
    segment_observed_mean,
    segment_profiles,
    segment_zero_share,
    short_feature_name,
    tier_of,
)

FEATURES = ["MntWines", "MntFruits"]
CHAINS, DRAWS = 2, 60


def constructed_fit(
    weights, means, scales, transform="log-standardize", correlation=0.0, n=90, seed=0
) -> xr.DataTree:
    """A fit with (K,) weights, (K, D) model-scale means and scales, jittered across draws."""
    rng = np.random.default_rng(seed)
    weights, means, scales = (np.asarray(a, dtype=float) for a in (weights, means, scales))
    k, d = means.shape
    shape = (CHAINS, DRAWS)
    w = rng.dirichlet(400 * weights, size=shape) if k > 1 else np.ones((*shape, 1))
    m = means + rng.normal(0, 0.02, (*shape, k, d))
    s = scales * np.exp(rng.normal(0, 0.02, (*shape, k, d)))
    corr = np.array([[1.0, 0.0], [correlation, np.sqrt(1 - correlation**2)]])
    chol = s[..., :, None] * corr  # diag(s) C: row norms of C are 1, so var = s^2
    coords = {"segment": np.arange(k), "feature": FEATURES, "feature_col": FEATURES}
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "segment"), w),
            "means": (("chain", "draw", "segment", "feature"), m),
            "scales": (("chain", "draw", "segment", "feature"), s),
            "chol": (("chain", "draw", "segment", "feature", "feature_col"), chol),
        },
        coords=coords,
    )
    customers = np.arange(1000, 1000 + n)
    observed = rng.normal(0, 1, (n, d))
    config = FittedTransform(transform, tuple(FEATURES), (3.0, 1.0), (1.5, 0.8)).to_config()
    membership = rng.dirichlet(np.full(k, 0.3), size=(CHAINS * DRAWS, n)).astype(np.float32)
    membership[:, :10] = np.eye(k, dtype=np.float32)[0]  # ten customers certain of segment 0
    tree = xr.DataTree.from_dict(
        {
            "posterior": posterior,
            "observed_data": xr.Dataset(
                {"x": (("customer", "feature"), observed)},
                coords={"customer": customers, "feature": FEATURES},
            ),
            "assignments": summarize_memberships(membership, CHAINS, customers, np.arange(k)),
        }
    )
    tree.attrs["segment_config"] = json.dumps(
        {"K": k, "dataset": "constructed", "model": "gmm", "transform": config}
    )
    return tree


@pytest.fixture(scope="module")
def three():
    """Segment 0 spends most on both, 1 is in the middle and wine-heavy, 2 spends little."""
    return constructed_fit(
        weights=[0.2, 0.3, 0.5],
        means=[[1.2, 1.5], [0.6, -0.4], [-1.4, -1.2]],
        scales=[[0.5, 0.4], [0.6, 0.5], [0.4, 0.6]],
        correlation=0.5,
    )


def test_mean_spend_is_the_lognormal_mean_per_draw(three):
    """E[spend] = exp(m' + v'/2) - 1, m' = m * scale + center, v' = var * scale^2 (log1p scale)."""
    spend = mean_spend_draws(three)
    posterior = three["posterior"]
    center, scale = np.array([3.0, 1.0]), np.array([1.5, 0.8])
    m = posterior["means"].values * scale + center
    variance = (posterior["chol"].values ** 2).sum(-1) * scale**2  # correlation does not matter
    np.testing.assert_allclose(variance, posterior["scales"].values ** 2 * scale**2)
    np.testing.assert_allclose(spend.values, np.expm1(m + variance / 2))
    assert spend.dims == ("chain", "draw", "segment", "feature")


def test_standardize_reports_the_back_scaled_mean():
    tree = constructed_fit([1.0], [[0.5, -0.5]], [[1.0, 1.0]], transform="standardize")
    spend = mean_spend_draws(tree)
    expected = tree["posterior"]["means"].values * np.array([1.5, 0.8]) + np.array([3.0, 1.0])
    np.testing.assert_allclose(spend.values, expected)


def test_segment_table_intervals_and_revenue_share(three):
    segments, profiles = continuous_profiles(three)
    assert list(segments.columns) == list(SEGMENT_COLUMNS)
    assert list(profiles.columns) == list(PROFILE_COLUMNS)
    assert len(profiles) == 3 * len(FEATURES)
    # Revenue share per draw, by hand, then its posterior mean and 94% HDI.
    spend = mean_spend_draws(three).sum("feature")
    weights = three["posterior"]["weights"]
    share = weights * spend / (weights * spend).sum("segment")
    np.testing.assert_allclose(segments["revenue_share"], share.mean(("chain", "draw")).values)
    hdi = az.hdi(share, prob=0.94)
    np.testing.assert_allclose(segments["revenue_share_hdi_low"], hdi.sel(ci_bound="lower"))
    np.testing.assert_allclose(segments["revenue_share_hdi_high"], hdi.sel(ci_bound="upper"))
    assert np.isclose(segments["revenue_share"].sum(), 1.0)
    # Revenue share = weight x spend ratio per draw, so their posterior means agree only on
    # average; the per-draw identity is checked through the ratio's definition.
    ratio = spend / (weights * spend).sum("segment")
    np.testing.assert_allclose(segments["spend_ratio"], ratio.mean(("chain", "draw")).values)
    for quantity in ("weight", "revenue_share", "total_spend", "spend_ratio"):
        assert (segments[f"{quantity}_hdi_low"] <= segments[quantity]).all()
        assert (segments[quantity] <= segments[f"{quantity}_hdi_high"]).all()
    assert (profiles["mean_spend_hdi_low"] <= profiles["mean_spend"]).all()
    assert (profiles["mean_spend"] <= profiles["mean_spend_hdi_high"]).all()


def test_tiers_follow_the_stated_rule(three):
    segments, _ = continuous_profiles(three)
    assert segments["tier"].tolist() == [tier_of(r) for r in segments["spend_ratio"]]
    assert segments["tier"].tolist() == ["premium", "mid", "low"]
    assert tier_of(1.5) == "premium" and tier_of(1.4999) == "mid"
    assert tier_of(0.5) == "low" and tier_of(0.5001) == "mid"


def test_names_come_from_the_profile(three):
    segments, profiles = continuous_profiles(three)
    names = segments.set_index("segment")["name"]
    index = profiles.pivot(index="segment", columns="feature", values="index")
    # Segment 1 over-indexes on wine (index above 1) and not on fruit.
    assert index.loc[1, "MntWines"] > 1 > index.loc[1, "MntFruits"]
    assert names[1] == "wines-led mid"
    assert names[2] == "low engagement"
    assert names[0].endswith("premium")


def test_one_segment_is_all_customers_with_ratio_one():
    tree = constructed_fit([1.0], [[0.0, 0.0]], [[1.0, 1.0]])
    segments, profiles = continuous_profiles(tree)
    assert segments["name"].tolist() == ["all customers"]
    assert segments["tier"].tolist() == ["mid"]
    np.testing.assert_allclose(segments[["weight", "revenue_share", "spend_ratio"]], 1.0)
    np.testing.assert_allclose(profiles["index"], 1.0)


def test_segment_names_rules():
    tiers = pd.Series({0: "premium", 1: "premium", 2: "mid", 3: "low", 4: "low"})
    index = pd.DataFrame(
        {
            "MntWines": [3.0, 2.5, 1.1, 0.2, 1.4],
            "MntFruits": [1.0, 2.0, 1.0, 0.3, 0.1],
            "MntMeatProducts": [2.0, 1.2, 1.2, 0.1, 0.2],
        }
    )
    names = segment_names(index, tiers)
    # 0 and 1 would both be "wines-led premium": the second lead tells them apart.
    assert names[0] == "wines+meat-led premium"
    assert names[1] == "wines+fruits-led premium"
    assert names[2] == "all-round mid"  # 1.2 / 1.0 < 1.5: no feature stands out
    assert names[3] == "low engagement"
    assert names[4] == "wines-led low"  # low overall but above the population on wine
    assert names.is_unique


def test_only_the_lowest_spender_is_low_engagement():
    tiers = pd.Series({0: "low", 1: "low", 2: "premium"})
    index = pd.DataFrame({"MntWines": [0.4, 0.1, 2.0], "MntFruits": [0.8, 0.2, 1.0]})
    names = segment_names(index, tiers)
    # segment 0 buys less of both than the population: its lead only tilts it
    assert names.tolist() == ["fruits-tilted low", "low engagement", "wines-led premium"]


def test_identical_profiles_get_numbered_names():
    tiers = pd.Series({0: "mid", 1: "mid"})
    index = pd.DataFrame({"MntWines": [2.0, 2.0], "MntFruits": [0.5, 0.5]})
    assert segment_names(index, tiers).tolist() == [
        "wines+fruits-led mid #0", "wines+fruits-led mid #1"
    ]  # fmt: skip


def test_short_feature_names():
    assert short_feature_name("MntWines") == "wines"
    assert short_feature_name("MntGoldProds") == "gold"
    assert short_feature_name("MntMeatProducts") == "meat"
    assert short_feature_name("DRUG GM") == "drug gm"
    assert short_feature_name("Mnt") == "mnt"


def test_assignment_table_columns_confidence_and_tiers(three):
    segments, _ = continuous_profiles(three)
    tiers = segments.set_index("segment")["tier"]
    table = assignment_table(three, tiers)
    assert list(table.columns[:7]) == [
        "customer_id", "segment", "probability", "probability_hdi_low", "probability_hdi_high",
        "confidence", "tier",
    ]  # fmt: skip
    assert list(table.columns[7:]) == ["p_0", "p_1", "p_2"]
    assignments = three["assignments"]
    assert table["customer_id"].tolist() == assignments["customer"].values.tolist()
    np.testing.assert_allclose(table[["p_0", "p_1", "p_2"]].sum(axis=1), 1.0, rtol=1e-5)
    expected = np.where(table["probability_hdi_low"] >= 0.95, "precise", "broad")
    assert (table["confidence"] == expected).all()
    assert (table.loc[:9, "confidence"] == "precise").all()  # the ten certain customers
    assert (table.loc[:9, "segment"] == 0).all()
    assert (table["tier"] == tiers.reindex(table["segment"]).to_numpy()).all()
    # The threshold is configurable: everyone is precise at a threshold of 0.
    relaxed = assignment_table(three, tiers, threshold=0.0)
    assert (relaxed["confidence"] == "precise").all()


def test_segment_counts_add_up(three):
    segments, _ = continuous_profiles(three)
    table = assignment_table(three, segments.set_index("segment")["tier"])
    counts = segment_counts(table, segments["segment"])
    assert counts["customers"].sum() == len(table)
    assert (counts["precise"] + counts["broad"] == counts["customers"]).all()
    assert np.isclose(counts["customer_share"].sum(), 1.0)


def constructed_class_fit(seed: int = 0) -> xr.DataTree:
    """A latent class fit: two classes over two variables (3 and 2 levels), known probabilities."""
    rng = np.random.default_rng(seed)
    levels = {"age": ["young", "middle", "old"], "kids": ["no", "yes"]}
    items = [f"{v}={level}" for v, lv in levels.items() for level in lv]
    truth = np.array([[0.7, 0.2, 0.1, 0.2, 0.8], [0.1, 0.3, 0.6, 0.9, 0.1]])
    shape = (CHAINS, DRAWS)
    probs = np.concatenate(
        [
            rng.dirichlet(300 * truth[k, :3], size=shape)[..., None, :] for k in range(2)
        ],  # age block per class
        axis=-2,
    )
    kids = np.concatenate(
        [rng.dirichlet(300 * truth[k, 3:], size=shape)[..., None, :] for k in range(2)], axis=-2
    )
    item_probs = np.concatenate([probs, kids], axis=-1)
    n = 100
    answers = np.zeros((n, 5))
    answers[np.arange(n), rng.integers(0, 3, n)] = 1
    answers[np.arange(n), 3 + (np.arange(n) < 30)] = 1  # 30% "yes"
    membership = rng.dirichlet(np.full(2, 0.3), size=(CHAINS * DRAWS, n)).astype(np.float32)
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset(
                {
                    "weights": (("chain", "draw", "segment"), rng.dirichlet([60, 40], size=shape)),
                    "item_probs": (("chain", "draw", "segment", "item"), item_probs),
                },
                coords={"segment": [0, 1], "item": items},
            ),
            "observed_data": xr.Dataset(
                {"x": (("customer", "item"), answers)},
                coords={"customer": np.arange(n), "item": items},
            ),
            "assignments": summarize_memberships(membership, CHAINS, np.arange(n), np.arange(2)),
        }
    )
    transform = FittedTransform(
        "indicators", tuple(items), (0.0,) * 5, (1.0,) * 5, tuple(map(tuple, levels.values()))
    )
    tree.attrs["segment_config"] = json.dumps(
        {
            "K": 2,
            "dataset": "constructed",
            "model": "lca",
            "transform": transform.to_config(),
            "options": {"levels": levels},
        }
    )
    return tree


def test_class_profiles_probabilities_lift_and_names():
    tree = constructed_class_fit()
    segments, profiles = segment_profiles(tree)
    assert list(profiles.columns) == list(CATEGORICAL_PROFILE_COLUMNS)
    assert list(segments.columns) == list(CATEGORICAL_SEGMENT_COLUMNS)
    assert len(profiles) == 2 * 5 and (segments["tier"] == "n/a").all()
    probs = tree["posterior"]["item_probs"]
    mean = probs.mean(("chain", "draw")).values.ravel()
    np.testing.assert_allclose(profiles["probability"], mean)
    hdi = az.hdi(probs, prob=0.94)
    np.testing.assert_allclose(
        profiles["probability_hdi_low"], hdi.sel(ci_bound="lower").values.ravel()
    )
    share = tree["observed_data"]["x"].mean("customer").values
    np.testing.assert_allclose(profiles["population_share"], np.tile(share, 2))
    np.testing.assert_allclose(profiles["lift"], mean / np.tile(share, 2))
    # Each variable's probabilities sum to 1 within a class.
    sums = profiles.groupby(["segment", "variable"])["probability"].sum()
    np.testing.assert_allclose(sums, 1.0)
    # Class 0: 80% have kids against 30% overall (lift about 2.7), 70% young (lift about 2).
    # Class 1: 60% old (lift about 1.8), 90% no kids against 70% (lift about 1.29). Kids is the
    # more distinctive variable (weighted TV about 0.38 against about 0.33 for age), so it leads.
    names = segments.set_index("segment")["name"]
    assert names[0] == "kids yes · age young"
    assert names[1] == "kids no · age old"
    table = assignment_table(tree, segments.set_index("segment")["tier"])
    assert (table["tier"] == "n/a").all()


def test_observed_segment_mean_is_the_membership_weighted_mean_of_the_data(three):
    """observed_kd = sum_i p_ik x_id / sum_i p_ik in original units, beside the model's mean."""
    spend = observed_spend(three)
    p = three["assignments"]["membership_mean"].transpose("customer", "segment").values
    observed = segment_observed_mean(three)
    np.testing.assert_allclose(observed.to_numpy(), p.T @ spend.to_numpy() / p.sum(axis=0)[:, None])
    _, profiles = continuous_profiles(three)
    table = profiles.set_index(["segment", "feature"])["observed_segment_mean"]
    assert table[(0, "MntWines")] == pytest.approx(observed.loc[0, "MntWines"])
    # It is the segments' own data: their weighted average is the population's observed mean.
    weights = p.sum(axis=0) / p.sum()
    np.testing.assert_allclose(weights @ observed.to_numpy(), spend.mean().to_numpy())
    assert profiles.groupby("feature")["observed_segment_mean"].nunique().min() == 3


def test_zero_share_is_membership_weighted_and_names_non_buyers(three):
    """zero_share_kd = sum_i p_ik [spend_id < 1] / sum_i p_ik, from the observed data."""
    share = segment_zero_share(three)
    spend = observed_spend(three).round(6)
    p = three["assignments"]["membership_mean"].transpose("customer", "segment").values
    zero = (spend.to_numpy() < 1).astype(float)
    np.testing.assert_allclose(share.to_numpy(), p.T @ zero / p.sum(axis=0)[:, None], rtol=1e-6)
    _, profiles = continuous_profiles(three)
    assert profiles["zero_share"].between(0, 1).all()
    assert profiles["zero_prob"].isna().all()  # a GMM has no zero probabilities (hurdle only)
    # A segment made of non-buyers of a feature is named after that, whatever its tier.
    tiers = pd.Series({0: "premium", 1: "low", 2: "low"})
    index = pd.DataFrame({"MntWines": [2.0, 0.5, 0.3], "MntMeatProducts": [2.0, 0.0, 0.4]})
    zeros = pd.DataFrame({"MntWines": [0.0, 0.05, 0.1], "MntMeatProducts": [0.0, 0.97, 0.2]})
    names = segment_names(index, tiers, zero_share=zeros)
    assert names.tolist() == ["all-round premium", "no meat (low)", "low engagement"]


def test_measurements_get_standardized_differences_not_revenue_or_tiers():
    """Signed data (standardize, values below 0): no totals, revenue shares or tiers; names
    from the standardized differences, which match a hand computation."""
    tree = constructed_fit(
        weights=[0.6, 0.4],
        means=[[-1.0, 0.1], [1.5, -0.2]],
        scales=[[0.5, 0.5], [0.5, 0.5]],
        transform="standardize",
    )  # observed values 3 + 1.5 z and 1 + 0.8 z: some are negative
    assert (observed_spend(tree).to_numpy() < 0).any()
    segments, profiles = continuous_profiles(tree)
    assert segments["revenue_share"].isna().all() and segments["spend_ratio"].isna().all()
    assert (segments["tier"] == "n/a").all()
    assert profiles["index"].isna().all() and profiles["zero_share"].isna().all()
    assert list(segments["name"]) == ["MntWines low", "MntWines high"]
    observed = observed_spend(tree)
    row = profiles[(profiles["segment"] == 1) & (profiles["feature"] == "MntWines")].iloc[0]
    expected = (row["mean_spend"] - row["implied_population_mean"]) / observed["MntWines"].std(
        ddof=0
    )
    assert np.isclose(row["std_difference"], expected)


def redundant_class_fit(seed: int = 1, n: int = 2000) -> xr.DataTree:
    """Three classes over four variables: ``region`` sets classes 0 and 1 apart strongly (90% in
    their own region), ``size`` and ``comp`` are copies of each other (one level of comp per
    level of size, in the data and in the posterior), and class 2, spread over the regions like
    everyone, is set apart by size 3 and by not owning."""
    rng = np.random.default_rng(seed)
    levels = {
        "region": ["north", "south", "west"],
        "size": ["1", "2", "3"],
        "comp": ["single", "couple", "family"],
        "own": ["yes", "no"],
    }
    weights = np.array([0.4, 0.35, 0.25])
    region = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.4, 0.35, 0.25]])
    size = np.array([[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.1, 0.3, 0.6]])
    own = np.array([[0.6, 0.4], [0.6, 0.4], [0.2, 0.8]])
    blocks = {"region": region, "size": size, "comp": size, "own": own}
    classes = rng.choice(3, size=n, p=weights)
    answers = []
    codes = {}
    for variable, probs in blocks.items():
        if variable == "comp":
            code = codes["size"]  # a copy: comp is a function of size
        else:
            code = np.array([rng.choice(probs.shape[1], p=probs[k]) for k in classes])
        codes[variable] = code
        answers.append(np.eye(probs.shape[1])[code])
    shape = (CHAINS, DRAWS)
    draws = {
        variable: np.stack([rng.dirichlet(300 * probs[k], size=shape) for k in range(3)], axis=-2)
        for variable, probs in blocks.items()
        if variable != "comp"
    }
    draws["comp"] = draws["size"]
    item_probs = np.concatenate([draws[v] for v in levels], axis=-1)
    items = [f"{v}={level}" for v, lv in levels.items() for level in lv]
    membership = rng.dirichlet(np.full(3, 0.3), size=(CHAINS * DRAWS, n)).astype(np.float32)
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset(
                {
                    "weights": (("chain", "draw", "segment"), rng.dirichlet(500 * weights, shape)),
                    "item_probs": (("chain", "draw", "segment", "item"), item_probs),
                },
                coords={"segment": [0, 1, 2], "item": items},
            ),
            "observed_data": xr.Dataset(
                {"x": (("customer", "item"), np.concatenate(answers, axis=1))},
                coords={"customer": np.arange(n), "item": items},
            ),
            "assignments": summarize_memberships(membership, CHAINS, np.arange(n), np.arange(3)),
        }
    )
    m = len(items)
    transform = FittedTransform(
        "indicators", tuple(items), (0.0,) * m, (1.0,) * m, tuple(map(tuple, levels.values()))
    )
    tree.attrs["segment_config"] = json.dumps(
        {
            "K": 3,
            "dataset": "constructed",
            "model": "lca",
            "transform": transform.to_config(),
            "options": {"levels": levels},
        }
    )
    return tree


@pytest.fixture(scope="module")
def redundant():
    return redundant_class_fit()


def test_names_lead_with_the_distinguishing_variable_and_skip_redundant_copies(redundant):
    segments, profiles = segment_profiles(redundant)
    ranks = profiles.drop_duplicates("variable").set_index("variable")
    # region distinguishes most; size and comp tie (identical draws), ahead of own
    assert ranks.sort_values("variable_rank").index.tolist() == ["region", "size", "comp", "own"]
    assert ranks.loc["region", "distinctiveness"] > ranks.loc["size", "distinctiveness"]
    assert ranks.loc["size", "distinctiveness"] == ranks.loc["comp", "distinctiveness"]
    assert ranks["distinctiveness"].between(0, 1).all()
    names = segments.set_index("segment")["name"]
    assert names[0] == "region north · size 1"
    assert names[1] == "region south · size 2"
    assert names[2] == "size 3 · own no"  # not "size 3 · comp family", its copy
    for name in names:
        assert not ("size" in name and "comp" in name)
    # Without the redundancy the copy would be the second part.
    pivot = profiles.assign(item=profiles["variable"] + "=" + profiles["level"])
    probability = pivot.pivot(index="segment", columns="item", values="probability")
    lift = pivot.pivot(index="segment", columns="item", values="lift")
    ranking = ranks.sort_values("variable_rank").index.tolist()
    assert class_names(lift, probability, ranking)[2] == "size 3 · comp family"


def test_redundancy_from_cramers_v_and_implication(redundant):
    pairs = item_levels(redundant)
    x = redundant["observed_data"]["x"].values
    v = cramers_v(x, pairs)
    assert np.isclose(v.loc["size", "comp"], 1.0) and np.isclose(v.loc["comp", "size"], 1.0)
    assert v.loc["region", "own"] < 0.3 and np.allclose(np.diag(v), 1.0)
    redundancy = Redundancy.of(x, pairs)
    assert redundancy.variables("size", "comp") and not redundancy.variables("region", "size")
    assert redundancy.items("size=3", "comp=family")
    assert not redundancy.items("region=north", "own=yes")
    # A level that implies another is redundant with it even when the variables are not.
    implies = x.copy()
    own = [i for i, (variable, _) in enumerate(pairs) if variable == "own"]
    north = implies[:, 0] == 1
    implies[np.ix_(north, own)] = [1.0, 0.0]  # every northerner owns
    assert Redundancy.of(implies, pairs).items("region=north", "own=yes")
    assert level_implication(implies, [f"{a}={b}" for a, b in pairs]).loc[
        "region=north", "own=yes"
    ] == pytest.approx(1.0)


def test_top_levels_per_class(redundant):
    _, profiles = segment_profiles(redundant)
    assert list(profiles.columns) == list(CATEGORICAL_PROFILE_COLUMNS)
    top = profiles[profiles["top_level"] > 0].sort_values(["segment", "top_level"])
    assert top.groupby("segment")["top_level"].apply(list).tolist() == [[1, 2, 3, 4]] * 3
    assert (profiles.loc[profiles["top_level"] == 0, "top_level"] == 0).all()
    # one level per variable per class
    assert not top.duplicated(["segment", "variable"]).any()
    # the name's parts come first
    first_two = (
        top[top["top_level"] <= 2]
        .groupby("segment")
        .apply(lambda t: " · ".join(t["variable"] + " " + t["level"]), include_groups=False)
    )
    assert first_two.tolist() == profiles.drop_duplicates("segment")["name"].tolist()
    # the redundant copy comes only after every other variable
    by_class = top.groupby("segment")["variable"].apply(list)
    assert by_class[0] == ["region", "size", "own", "comp"]
    assert by_class[2][:2] == ["size", "own"] and by_class[2][-1] == "comp"
    # probabilities with their 94% HDI, beside the population share
    assert (
        top[["probability_hdi_low", "probability_hdi_high", "population_share"]]
        .notna()
        .all(axis=None)
    )
    assert (top["probability_hdi_low"] <= top["probability"]).all()
    assert (top["probability"] <= top["probability_hdi_high"]).all()
    assert (top["probability_hdi_high"] - top["probability_hdi_low"] > 0).all()


def test_one_class_has_no_top_levels():
    tree = constructed_class_fit()
    tree["posterior"] = tree["posterior"].to_dataset().isel(segment=[0])
    segments, profiles = segment_profiles(tree)
    assert segments["name"].tolist() == ["all customers"]
    assert (profiles["top_level"] == 0).all()


def test_tied_names_are_numbered():
    probability = pd.DataFrame({"a=x": [0.9, 0.9], "a=y": [0.1, 0.1]})
    lift = probability / 0.5
    assert class_names(lift, probability, ["a"]).tolist() == ["a x #0", "a x #1"]

"""Segment profiles, value tiers, names and the customer assignment table, from one saved fit.

Everything here is a pure function of a saved fit (an ``xarray.DataTree`` from ``segment fit``):
nothing samples. Every interval is a 94% HDI over the posterior draws.

Continuous (Gaussian mixture) fits
----------------------------------
For posterior draw s, segment k and feature d, with m_kd the segment mean and v_kd the variance
(diagonal of L_k L_k^T) on the model scale:

- **mean spend** E[spend_kd] in original units: ``FittedTransform.original_mean(m, v)``. For
  ``log-standardize`` the segment is lognormal in 1 + spend, so this is the implied *mean* spend
  exp(m' + v'/2) - 1 (m', v' on the log1p scale), not the median or the back-transformed mean;
  for ``standardize`` it is the back-scaled mean. For a hurdle fit (``zero_prob`` pi_kd in the
  posterior) the Gaussian describes positive spend only, so E[spend_kd] = (1 - pi_kd) times that.
- **total spend** T_k = sum_d E[spend_kd].
- **revenue share** R_k = w_k T_k / sum_j w_j T_j: the expected share of all spend that comes from
  segment k (w_k = segment weight, the expected share of customers).
- **spend ratio** T_k / sum_j w_j T_j: total spend against the model-implied population mean
  total spend (so R_k = w_k x spend ratio_k, and a K = 1 fit has ratio 1).
- **index** of feature d: posterior mean E[spend_kd] / posterior mean of the model-implied
  population mean sum_j w_j E[spend_jd].
- **zero share** of feature d: share of the segment's customers (weighted by posterior-mean
  membership) who spent less than one unit on it, from the observed data.
- **zero probability** pi_kd (hurdle fits only, posterior mean and 94% HDI): the model's
  probability that a customer of segment k buys nothing of feature d. NaN for other models.

- **standardized difference** of feature d: (E[spend_kd] - implied population mean) / observed
  sd of the feature (population sd over customers): how far the segment sits from everyone, in
  the feature's own spread.

Measurements (a feature with a negative value: centred, signed or z-scored data) are not
amounts: totals, revenue shares, spend ratios, indices and value tiers are meaningless for
them and are left empty (tier "n/a"). Their segments are named by their largest standardized
differences, "f0 high · f2 low" (:func:`measurement_names`), or "near average".

The value tier is read off the posterior-mean spend ratio: ``premium`` if >= 1.5, ``low`` if
<= 0.5, ``mid`` otherwise (:data:`TIER_RULE`). The name is "<lead>-led <tier>", where the lead
feature is the one with the largest index ("<lead>-tilted <tier>" when even that index is
below 1: the segment buys less of everything than the population, least less of the lead);
"all-round <tier>" when the largest index is less than 1.5 times the smallest (no feature
stands out); "low engagement" for the lowest-spending
low-tier segment below the population on every feature (at most one). A segment in which at
least 90% of the customers did not buy a feature is "no <feature> (<tier>)": it is the spike of
zeros in that feature, not a spending pattern. A K = 1 fit is "all customers".

Categorical (latent class) fits
-------------------------------
Per class k, variable j and level l: the class's probability of that level (``item_probs``,
posterior mean and 94% HDI), the population share of the level (observed share of customers),
and the lift = posterior-mean probability / population share. No spend, so no revenue share and
no value tier (``tier`` is "n/a").

Variables are ranked by how much they distinguish the classes: the **distinctiveness** of
variable j is the weight-averaged total-variation distance between each class's level
distribution and the population's, D_j = sum_k w_k * 1/2 sum_l |p_kjl - s_jl| (w_k the
posterior-mean weight, p_kjl the posterior-mean class probability, s_jl the population share):
0 when every class answers like everyone, 1 when each class has levels no one else has.
A class's **distinctive level** of a variable is its level with the highest lift among those the
class has with probability >= :data:`NAME_MIN_PROBABILITY` and lift >= :data:`NAME_MIN_LIFT`
(a level that describes most of the class, above its population share), else none.

Two levels are **redundant** (:class:`Redundancy`) when Cramér's V of their variables' observed
two-way table (customers who answered both) exceeds :data:`REDUNDANT_CRAMERS_V` (near-functions
of each other, such as household size and number of children), or when one level nearly implies
the other: the observed P(b | a) or P(a | b) is at least :data:`REDUNDANT_IMPLICATION` (household
composition "2 Adults No Kids" implies no children).

The name is the class's distinctive levels of the (at most two) most distinctive variables that
have one, skipping a level redundant with the first part, e.g. "age 65+ · income Under
15K"; a repeated name takes the skipped redundant part when that tells it apart, and is numbered
(" #k") otherwise; "typical mix" when no variable has a distinctive level; "all customers" for
K = 1. The **top levels** (``top_level`` 1..:data:`TOP_LEVELS` in the profile table, 0 for the
other rows) are the name's parts, then, for the remaining variables in distinctiveness order, the
class's distinctive level or else its level furthest from the population share, skipping levels
redundant with one already shown while enough others remain.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from analysis.data.transforms import LOG_TRANSFORMS, FittedTransform
from analysis.inference.subsample import customer_assignments

HDI_PROB = 0.94
PREMIUM_RATIO = 1.5
LOW_RATIO = 0.5
ALL_ROUND_SPREAD = 1.5  # largest / smallest feature index below this: no lead feature
ZERO_THRESHOLD = (
    1.0  # "no spend" = less than one currency unit (as analysis.reporting.predictive_checks)
)
NON_BUYER_SHARE = 0.9  # a segment whose customers mostly did not buy a feature is named so
PRECISE_THRESHOLD = 0.95
NAME_MIN_PROBABILITY = 0.5  # a level that describes most of the class
NAME_MIN_LIFT = 1.25
REDUNDANT_CRAMERS_V = 0.7  # two variables this associated say the same thing: not both in a name
REDUNDANT_IMPLICATION = 0.9  # P(b | a) this high: level a says b already (No Kids -> 0 kids)
TOP_LEVELS = 4  # distinctive levels shown per class
NO_TIER = "n/a"
NAME_MIN_DIFFERENCE = 0.5  # sd from the population: a measurement that characterises a segment
TIER_RULE = (
    f"tier from the posterior-mean spend ratio (segment's implied mean total spend / model-implied "
    f"population mean total spend): premium if >= {PREMIUM_RATIO}, low if <= {LOW_RATIO}, "
    "else mid"
)
FUNCTIONAL = {
    "log-standardize": "implied mean spend per customer, exp(m + v/2) - 1 with m, v the segment's "
    "mean and variance of log1p(spend) (lognormal mean)",
    "standardize": "segment mean spend (model mean scaled back to original units)",
}
# per-segment quantities that need amounts (see holds_amounts); empty for measurements
AMOUNT_QUANTITIES = ("revenue_share", "total_spend", "spend_ratio")
SEGMENT_COLUMNS = (
    "segment", "name", "tier",
    "weight", "weight_hdi_low", "weight_hdi_high",
    "revenue_share", "revenue_share_hdi_low", "revenue_share_hdi_high",
    "total_spend", "total_spend_hdi_low", "total_spend_hdi_high",
    "spend_ratio", "spend_ratio_hdi_low", "spend_ratio_hdi_high",
)  # fmt: skip
FEATURE_COLUMNS = (
    "feature", "mean_spend", "mean_spend_hdi_low", "mean_spend_hdi_high",
    "observed_segment_mean", "implied_population_mean", "observed_mean", "index",
    "std_difference", "zero_share", "zero_prob", "zero_prob_hdi_low", "zero_prob_hdi_high",
)  # fmt: skip
PROFILE_COLUMNS = (*SEGMENT_COLUMNS[:3], *FEATURE_COLUMNS, *SEGMENT_COLUMNS[3:])
CATEGORICAL_SEGMENT_COLUMNS = SEGMENT_COLUMNS[:6]  # segment, name, tier, weight and its HDI
CATEGORICAL_PROFILE_COLUMNS = (
    "segment", "name", "variable", "level", "probability", "probability_hdi_low",
    "probability_hdi_high", "population_share", "lift", "distinctiveness", "variable_rank",
    "top_level", "weight", "weight_hdi_low", "weight_hdi_high",
)  # fmt: skip


def fit_config(tree: xr.DataTree) -> dict:
    """The ``segment_config`` JSON of a saved fit (K, dataset, model, transform, ...)."""
    return json.loads(tree.attrs["segment_config"])


def fit_transform_of(tree: xr.DataTree) -> FittedTransform:
    return FittedTransform.from_config(fit_config(tree)["transform"])


def summarize(draws: xr.DataArray, prob: float = HDI_PROB) -> xr.Dataset:
    """Posterior mean and ``prob`` HDI of (chain, draw, ...) draws: variables mean, low, high."""
    hdi = az.hdi(draws, prob=prob)
    return xr.Dataset(
        {
            "mean": draws.mean(("chain", "draw")),
            "low": hdi.sel(ci_bound="lower", drop=True),
            "high": hdi.sel(ci_bound="upper", drop=True),
        }
    )


def observed_spend(tree: xr.DataTree) -> pd.DataFrame:
    """(customers, features) observed data in original units (model scale mapped back)."""
    observed = tree["observed_data"]["x"]
    values = fit_transform_of(tree).to_original(observed.transpose("customer", "feature").values)
    return pd.DataFrame(
        values,
        index=pd.Index(observed["customer"].values, name="customer"),
        columns=[str(f) for f in observed["feature"].values],
    )


DRAW_DIMS = ("chain", "draw", "segment", "feature")


def mean_spend_draws(tree: xr.DataTree) -> xr.DataArray:
    """E[spend_kd] per draw in original units, (chain, draw, segment, feature)."""
    posterior = tree["posterior"]
    means = posterior["means"]
    variance = (posterior["chol"] ** 2).sum("feature_col")  # diag(L L^T), model scale
    values = fit_transform_of(tree).original_mean(
        means.transpose(*DRAW_DIMS).values,
        variance.transpose(*DRAW_DIMS).values,
    )
    if "zero_prob" in posterior:  # hurdle: the Gaussian is spend given a purchase
        values = values * (1 - posterior["zero_prob"].transpose(*DRAW_DIMS).values)
    return xr.DataArray(values, dims=DRAW_DIMS, coords=means.coords).drop_vars(
        [c for c in means.coords if c not in DRAW_DIMS]
    )


def revenue_share_draws(weights: xr.DataArray, total_spend: xr.DataArray) -> xr.DataArray:
    """R_k = w_k T_k / sum_j w_j T_j per draw, (chain, draw, segment)."""
    revenue = weights * total_spend
    return revenue / revenue.sum("segment")


def tier_of(ratio: float) -> str:
    """Value tier of a posterior-mean spend ratio (see :data:`TIER_RULE`)."""
    if ratio >= PREMIUM_RATIO:
        return "premium"
    if ratio <= LOW_RATIO:
        return "low"
    return "mid"


def short_feature_name(feature: str) -> str:
    """'MntWines' -> 'wines', 'MntGoldProds' -> 'gold', 'DRUG GM' -> 'drug gm'."""
    name = feature
    if name.startswith("Mnt") and len(name) > 3 and name[3].isupper():
        name = name[3:]
    for suffix in ("Products", "Prods"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    return name.lower()


def membership_weighted(tree: xr.DataTree, values: pd.DataFrame) -> pd.DataFrame:
    """(segment, feature) averages of per-customer ``values`` (customers, features), each customer
    weighted by its posterior-mean membership probability: sum_i p_ik v_id / sum_i p_ik, over the
    customers whose v_id is not missing."""
    membership = tree["assignments"]["membership_mean"].sel(customer=values.index.to_numpy())
    weights = membership.transpose("customer", "segment").values.astype(float)  # (N, K)
    present = values.notna().to_numpy()
    totals = weights.T @ np.where(present, values.to_numpy(dtype=float), 0.0)
    return pd.DataFrame(
        totals / (weights.T @ present.astype(float)),
        index=membership["segment"].values.astype(int),
        columns=values.columns,
    )


def segment_zero_share(tree: xr.DataTree) -> pd.DataFrame:
    """(segment, feature) share of a segment's customers who spent < 1 unit on the feature.

    Observed data, weighted by each customer's posterior-mean membership probability
    (:func:`membership_weighted` of the indicator spend < 1). A share near 1 means the segment is
    made of the customers who did not buy that feature at all (a spike of zeros, not a spending
    pattern).
    """
    spend = observed_spend(tree).round(6)
    return membership_weighted(tree, (spend < ZERO_THRESHOLD).astype(float).where(spend.notna()))


def segment_observed_mean(tree: xr.DataTree) -> pd.DataFrame:
    """(segment, feature) observed mean of the segment's customers in original units, each
    weighted by its posterior-mean membership probability (:func:`membership_weighted`): the
    data's side of the model-implied ``mean_spend``. The two differ where the segment's model
    misfits its customers (e.g. a Gaussian on log spend that misses the zeros)."""
    return membership_weighted(tree, observed_spend(tree))


def zero_probability(tree: xr.DataTree, features: list[str], segments) -> xr.Dataset:
    """Posterior mean and 94% HDI of a hurdle fit's pi_kd as (segment, feature) arrays; NaN
    arrays of that shape for a model without ``zero_prob``."""
    posterior = tree["posterior"]
    if "zero_prob" in posterior:
        summary = summarize(posterior["zero_prob"].sel(feature=features))
        return summary.transpose("segment", "feature")
    empty = np.full((len(segments), len(features)), np.nan)
    return xr.Dataset({name: (("segment", "feature"), empty) for name in ("mean", "low", "high")})


def segment_names(
    index: pd.DataFrame,
    tiers: pd.Series,
    spend_ratio: pd.Series | None = None,
    zero_share: pd.DataFrame | None = None,
) -> pd.Series:
    """Short descriptive names from (segment, feature) spend indices and per-segment tiers.

    "<lead>-led <tier>" with the lead feature = largest index (segment mean spend / population
    mean), "<lead>-tilted <tier>" when that index is below 1; "all-round <tier>" when the
    largest index is < :data:`ALL_ROUND_SPREAD` times the smallest; "low engagement" for the
    lowest-spending low-tier segment below the population on
    every feature (one segment at most, the lowest ``spend_ratio``, or mean index when it is not
    given; other low ones are named by their lead); two
    leads ("a+b-led mid") where one lead would repeat a name, then "#<segment>" as a last resort.
    Before all of these: "no <feature> (<tier>)" when at least :data:`NON_BUYER_SHARE` of the
    segment's customers did not buy the feature (``zero_share``), e.g. "no meat (low)".
    """
    if len(index) == 1:
        return pd.Series(["all customers"], index=index.index)
    ranked = {
        k: [short_feature_name(f) for f in row.sort_values(ascending=False).index]
        for k, row in index.iterrows()
    }

    def non_buyers(k) -> bool:
        return zero_share is not None and bool((zero_share.loc[k] >= NON_BUYER_SHARE).any())

    below_everywhere = [
        k for k in index.index if tiers[k] == "low" and index.loc[k].max() < 1 and not non_buyers(k)
    ]
    spend = spend_ratio if spend_ratio is not None else index.mean(axis=1)  # lowest spender
    lowest = min(below_everywhere, key=lambda k: spend[k], default=None)

    def name(k, leads: int) -> str:
        row = index.loc[k]
        if zero_share is not None and (zero_share.loc[k] >= NON_BUYER_SHARE).any():
            absent = zero_share.columns[zero_share.loc[k] >= NON_BUYER_SHARE]
            return f"no {'+'.join(short_feature_name(f) for f in absent)} ({tiers[k]})"
        if k == lowest:
            return "low engagement"
        if row.max() < ALL_ROUND_SPREAD * row.min() and leads == 1:
            return f"all-round {tiers[k]}"
        # "led" only by a feature the segment buys more of than the population does
        verb = "led" if row.max() >= 1 else "tilted"
        return f"{'+'.join(ranked[k][:leads])}-{verb} {tiers[k]}"

    names = pd.Series({k: name(k, 1) for k in index.index})
    repeated = names.duplicated(keep=False)
    names[repeated] = [name(k, 2) for k in names.index[repeated]]
    return numbered_duplicates(names)


def holds_amounts(tree: xr.DataTree) -> bool:
    """Whether a continuous fit's features are amounts (e.g. spend: a log transform, which needs
    values >= 0, or no observed value below 0), for which totals, revenue shares and value tiers
    mean something; measurements with negative values are described by standardized differences
    instead."""
    if fit_transform_of(tree).name in LOG_TRANSFORMS:
        return True
    return not bool((observed_spend(tree).to_numpy() < 0).any())


def measurement_names(difference: pd.DataFrame) -> pd.Series:
    """Names from (segment, feature) standardized differences: the (at most two) features
    furthest from the population, at least :data:`NAME_MIN_DIFFERENCE` sd away, as "f0 high ·
    f2 low"; "near average" when none is; "all customers" for one segment."""
    if len(difference) == 1:
        return pd.Series(["all customers"], index=difference.index)
    names = {}
    for k, row in difference.iterrows():
        far = row[row.abs() >= NAME_MIN_DIFFERENCE].abs().sort_values(ascending=False).index[:2]
        parts = [f"{feature} {'high' if row[feature] > 0 else 'low'}" for feature in far]
        names[k] = " · ".join(parts) or "near average"
    return numbered_duplicates(pd.Series(names))


def numbered_duplicates(names: pd.Series) -> pd.Series:
    """Names (indexed by segment) with " #<segment>" appended wherever a name repeats."""
    repeated = names.duplicated(keep=False)
    names = names.copy()
    names[repeated] = [f"{names[k]} #{k}" for k in names.index[repeated]]
    return names


def continuous_profiles(tree: xr.DataTree) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Profiles of a Gaussian-mixture fit.

    Returns
    -------
    segments : one row per segment, :data:`SEGMENT_COLUMNS` (spend in original units).
    profiles : one row per (segment, feature), :data:`PROFILE_COLUMNS`.
    """
    spend = mean_spend_draws(tree)
    weights = tree["posterior"]["weights"]
    total = spend.sum("feature")
    implied_population = (weights * spend).sum("segment")  # (chain, draw, feature)
    ratio = total / implied_population.sum("feature")
    per_segment = {
        "weight": summarize(weights),
        "revenue_share": summarize(revenue_share_draws(weights, total)),
        "total_spend": summarize(total),
        "spend_ratio": summarize(ratio),
    }
    segments = pd.DataFrame({"segment": spend["segment"].values.astype(int)})
    for quantity, summary in per_segment.items():
        segments[quantity] = summary["mean"].values
        segments[f"{quantity}_hdi_low"] = summary["low"].values
        segments[f"{quantity}_hdi_high"] = summary["high"].values
    amounts = holds_amounts(tree)
    if not amounts:
        amount_columns = [c for c in segments.columns if c.split("_hdi")[0] in AMOUNT_QUANTITIES]
        segments[amount_columns] = np.nan
    segments["tier"] = [tier_of(r) if amounts else NO_TIER for r in segments["spend_ratio"]]

    feature_summary = summarize(spend)
    features = [str(f) for f in spend["feature"].values]
    mean = pd.DataFrame(
        feature_summary["mean"].transpose("segment", "feature").values,
        index=segments["segment"],
        columns=features,
    )
    population_mean = implied_population.mean(("chain", "draw")).sel(feature=features).values
    observed = observed_spend(tree)[features]
    observed_mean = observed.mean().to_numpy()
    difference = (mean - population_mean) / observed.std(ddof=0).to_numpy()
    index = mean / population_mean
    by_segment = segments.set_index("segment")
    zero_share = segment_zero_share(tree)[features]
    observed_segment = segment_observed_mean(tree)[features]
    zero_prob = zero_probability(tree, features, segments["segment"])
    if amounts:
        names = segment_names(index, by_segment["tier"], by_segment["spend_ratio"], zero_share)
    else:
        names = measurement_names(difference)
        index = index * np.nan
        zero_share = zero_share * np.nan
    segments["name"] = names.reindex(segments["segment"]).to_numpy()
    segments = segments[list(SEGMENT_COLUMNS)]

    rows = []
    for position, k in enumerate(segments["segment"]):
        for j, feature in enumerate(features):
            rows.append(
                {
                    "segment": k,
                    "feature": feature,
                    "mean_spend": mean.loc[k, feature],
                    "mean_spend_hdi_low": float(feature_summary["low"].values[position, j]),
                    "mean_spend_hdi_high": float(feature_summary["high"].values[position, j]),
                    "observed_segment_mean": float(observed_segment.loc[k, feature]),
                    "implied_population_mean": float(population_mean[j]),
                    "observed_mean": float(observed_mean[j]),
                    "index": index.loc[k, feature],
                    "std_difference": difference.loc[k, feature],
                    "zero_share": float(zero_share.loc[k, feature]),
                    "zero_prob": float(zero_prob["mean"].values[position, j]),
                    "zero_prob_hdi_low": float(zero_prob["low"].values[position, j]),
                    "zero_prob_hdi_high": float(zero_prob["high"].values[position, j]),
                }
            )
    profiles = pd.DataFrame(rows).merge(segments, on="segment")
    return segments, profiles[list(PROFILE_COLUMNS)]


def is_categorical(tree: xr.DataTree) -> bool:
    """True for a latent class fit (class item probabilities instead of spend means)."""
    posterior = tree["posterior"].data_vars
    return "item_probs" in posterior and "means" not in posterior


def is_mixed(tree: xr.DataTree) -> bool:
    """True for a mixed fit (spend means and item probabilities, ``models.mixed``)."""
    return "n_continuous" in fit_config(tree)["options"]


# what each part of a mixed fit keeps: its columns' dim and the posterior variables
PART_DIMS = {"continuous": "feature", "categorical": "item"}


def part_view(tree: xr.DataTree, part: str) -> xr.DataTree:
    """A mixed fit seen as the fit of one of its parts: ``"continuous"`` (the GMM or hurdle
    mixture of the spend) or ``"categorical"`` (the latent class model of the answers).

    The data and replicated data ``x`` (customer, column) keep that part's columns, as dim
    ``feature`` or ``item``; the posterior keeps the weights and that part's parameters; the
    configuration names the part's model and options. Everything that describes a fit of that
    model (profiles, checks, summaries) then describes the part, with the shared weights.
    """
    config = fit_config(tree)
    options = dict(config["options"])
    n_continuous = options.pop("n_continuous")
    levels = options.pop("levels")
    if part == "continuous":
        columns = slice(0, n_continuous)
        config = config | {"model": config["model"].removeprefix("mixed-"), "options": options}
    else:
        columns = slice(n_continuous, None)
        config = config | {"model": "lca", "options": {"levels": levels}}
    dim = PART_DIMS[part]
    groups = {}
    for name, node in tree.children.items():
        data = node.to_dataset()
        if "x" in data and "column" in data["x"].dims:
            data = data.assign(x=data["x"].isel(column=columns).rename(column=dim))
            data = data.drop_vars("column", errors="ignore")
        if name in ("posterior", "chain_starts"):
            data = data[[v for v in data.data_vars if _in_part(data[v], part)]]
        groups[name] = data
    view = xr.DataTree.from_dict(groups)
    view.attrs = tree.attrs | {"segment_config": json.dumps(config)}
    return view


def _in_part(variable: xr.DataArray, part: str) -> bool:
    """Whether a posterior variable of a mixed fit belongs to ``part``'s view: the shared weights
    and that part's parameters (the continuous part's carry ``feature``; the categorical part's
    carry ``item`` or are its ``theta_<variable>``)."""
    categorical = "item" in variable.dims or str(variable.name).startswith("theta_")
    continuous = "feature" in variable.dims
    return "segment" in variable.dims and not (categorical if part == "continuous" else continuous)


def item_levels(tree: xr.DataTree) -> list[tuple[str, str]]:
    """(variable, level) of every ``item`` of a latent class fit, in item order."""
    levels = fit_config(tree)["options"]["levels"]
    pairs = [(str(v), str(level)) for v, lv in levels.items() for level in lv]
    items = [str(i) for i in tree["posterior"]["item"].values]
    if [f"{v}={level}" for v, level in pairs] != items:
        raise ValueError("the fit's levels option does not match its item coordinate")
    return pairs


def answered(indicators: xr.DataArray, pairs: list[tuple[str, str]]) -> xr.DataArray:
    """1 where the customer answered the item's variable (some level of it is 1), else 0; same
    dims as ``indicators`` (..., customer, item). A missing answer is an all-zero block."""
    variables = pd.Index([v for v, _ in pairs])
    codes = xr.DataArray(variables.factorize()[0], dims="item")
    per_variable = indicators.groupby(codes.rename("variable")).sum("item")
    return per_variable.sel(variable=codes).drop_vars("variable")


def level_shares(indicators: xr.DataArray, pairs: list[tuple[str, str]]) -> xr.DataArray:
    """Share of each level among the customers who answered its variable, (..., item)."""
    return indicators.sum("customer") / answered(indicators, pairs).sum("customer")


def variable_distinctiveness(
    probability: pd.DataFrame, share: pd.Series, weights: pd.Series
) -> pd.Series:
    """Per variable, sum_k w_k TV(class k's level distribution, the population's), highest first.

    ``probability`` is (segment, item) with items "variable=level", ``share`` the population
    share per item and ``weights`` the class weights per segment (normalised here)."""
    variables = pd.Index([item.split("=", 1)[0] for item in probability.columns])
    gap = (probability - share.reindex(probability.columns).to_numpy()).abs()
    distance = 0.5 * gap.T.groupby(variables.to_numpy(), sort=False).sum().T  # (segment, var)
    w = weights.reindex(probability.index).to_numpy(dtype=float)
    score = pd.Series(w @ distance.to_numpy() / w.sum(), index=distance.columns, dtype=float)
    order = np.argsort(-score.to_numpy(), kind="stable")  # ties keep the variables' order
    return score.iloc[order]


def cramers_v(indicators: np.ndarray, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """Cramér's V of every two variables' observed two-way table, from (customer, item) indicators
    (a missing answer is an all-zero block, so only customers who answered both count); 1 on the
    diagonal, NaN where a table has fewer than two non-empty rows or columns."""
    x = np.asarray(indicators, dtype=float)
    variables = list(dict.fromkeys(v for v, _ in pairs))
    columns = {v: [i for i, (w, _) in enumerate(pairs) if w == v] for v in variables}
    v_table = pd.DataFrame(np.nan, index=variables, columns=variables)
    for a in variables:
        v_table.loc[a, a] = 1.0
    for a, b in itertools.combinations(variables, 2):
        counts = x[:, columns[a]].T @ x[:, columns[b]]
        counts = counts[counts.sum(1) > 0][:, counts.sum(0) > 0]
        n = counts.sum()
        if min(counts.shape) < 2:
            continue
        expected = counts.sum(1, keepdims=True) * counts.sum(0, keepdims=True) / n
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        v_table.loc[a, b] = v_table.loc[b, a] = np.sqrt(chi2 / (n * (min(counts.shape) - 1)))
    return v_table


def level_implication(indicators: np.ndarray, items: list[str]) -> pd.DataFrame:
    """P(level b | level a) among the customers who answered both variables, from (customer,
    item) indicators: row a, column b (NaN where no customer has level a and answered b's
    variable)."""
    x = np.asarray(indicators, dtype=float)
    variables = [_variable(item) for item in items]
    answered_by = {
        v: x[:, [j for j, w in enumerate(variables) if w == v]].sum(1) for v in variables
    }
    answered_b = np.stack([answered_by[v] for v in variables], axis=1)  # (customer, item)
    both = x.T @ x  # customers with level a and level b
    with np.errstate(invalid="ignore", divide="ignore"):
        conditional = both / (x.T @ answered_b)
    return pd.DataFrame(conditional, index=items, columns=items)


@dataclass(frozen=True)
class Redundancy:
    """When two levels say the same thing: their variables' Cramér's V (:func:`cramers_v`) is
    above :data:`REDUNDANT_CRAMERS_V`, or one level nearly implies the other (P(b | a) or
    P(a | b) >= :data:`REDUNDANT_IMPLICATION`, :func:`level_implication`), observed."""

    cramers_v: pd.DataFrame
    implication: pd.DataFrame

    @classmethod
    def of(cls, indicators: np.ndarray, pairs: list[tuple[str, str]]) -> Redundancy:
        items = [f"{v}={level}" for v, level in pairs]
        return cls(cramers_v(indicators, pairs), level_implication(indicators, items))

    def variables(self, a: str, b: str) -> bool:
        """Whether variables ``a`` and ``b`` are near-functions of each other."""
        v = self.cramers_v
        value = v.loc[a, b] if a in v.index and b in v.columns else np.nan
        return bool(np.isfinite(value) and value > REDUNDANT_CRAMERS_V)

    def items(self, a: str, b: str) -> bool:
        """Whether items ``a`` and ``b`` ("variable=level") are redundant."""
        if self.variables(_variable(a), _variable(b)):
            return True
        p = self.implication
        if a not in p.index or b not in p.index:
            return False
        both = np.array([p.loc[a, b], p.loc[b, a]], dtype=float)
        return bool((np.nan_to_num(both) >= REDUNDANT_IMPLICATION).any())


def _redundant(a: str, b: str, redundancy: Redundancy | None) -> bool:
    return redundancy is not None and redundancy.items(a, b)


def _variable(item: str) -> str:
    return item.split("=", 1)[0]


def distinctive_levels(
    lift: pd.DataFrame, probability: pd.DataFrame
) -> dict[object, dict[str, str]]:
    """Per segment, {variable: item} of its distinctive level of each variable that has one: the
    highest lift among probability >= NAME_MIN_PROBABILITY and lift >= NAME_MIN_LIFT."""
    out = {}
    for k in lift.index:
        eligible = lift.loc[k][
            (probability.loc[k] >= NAME_MIN_PROBABILITY) & (lift.loc[k] >= NAME_MIN_LIFT)
        ]
        best: dict[str, str] = {}
        for item in eligible.sort_values(ascending=False, kind="stable").index:
            best.setdefault(item.split("=", 1)[0], item)
        out[k] = best
    return out


def _name_parts(
    best: dict[str, str], ranking: list[str], redundancy: Redundancy | None
) -> tuple[list[str], list[str]]:
    """The name's items (at most two; the second not redundant with the first) and the redundant
    items it skipped, in distinctiveness order."""
    ordered = [best[v] for v in ranking if v in best]
    if not ordered:
        return [], []
    skipped = [i for i in ordered[1:] if _redundant(ordered[0], i, redundancy)]
    kept = [i for i in ordered[1:] if i not in skipped]
    return [ordered[0], *kept[:1]], skipped


def _label(items: list[str]) -> str:
    return " · ".join(item.replace("=", " ", 1) for item in items) or "typical mix"


def class_names(
    lift: pd.DataFrame,
    probability: pd.DataFrame,
    ranking: list[str] | None = None,
    redundancy: Redundancy | None = None,
) -> pd.Series:
    """Names of latent classes from (segment, item) lift and probability tables (item = var=lvl).

    ``ranking`` lists the variables most distinctive first (:func:`variable_distinctiveness`;
    default: the items' order); ``redundancy`` says which levels are redundant
    (:class:`Redundancy`; default: none is). See the module docstring."""
    if len(lift) == 1:
        return pd.Series(["all customers"], index=lift.index)
    if ranking is None:
        ranking = list(dict.fromkeys(item.split("=", 1)[0] for item in lift.columns))
    best = distinctive_levels(lift, probability)
    parts = {k: _name_parts(best[k], ranking, redundancy) for k in lift.index}
    names = pd.Series({k: _label(parts[k][0]) for k in lift.index})
    for k in names.index[names.duplicated(keep=False)]:
        items, skipped = parts[k]
        if len(items) == 1 and skipped:  # a redundant second part may still tell it apart
            names[k] = _label([items[0], skipped[0]])
    return numbered_duplicates(names)


def top_levels(
    lift: pd.DataFrame,
    probability: pd.DataFrame,
    share: pd.Series,
    ranking: list[str],
    redundancy: Redundancy | None = None,
    n: int = TOP_LEVELS,
) -> dict[object, list[str]]:
    """Per segment, its (at most ``n``) top items, most distinctive first (module docstring)."""
    best = distinctive_levels(lift, probability)
    gaps = (probability - share.reindex(probability.columns).to_numpy()).abs()
    return {k: _class_top(best[k], gaps.loc[k], ranking, redundancy, n) for k in lift.index}


def _class_top(
    best: dict[str, str],
    gap: pd.Series,
    ranking: list[str],
    redundancy: Redundancy | None,
    n: int,
) -> list[str]:
    """One class's top items: its name's, then one per further variable (its distinctive level,
    else its level furthest from the population share), non-redundant variables first."""
    chosen, _ = _name_parts(best, ranking, redundancy)
    for allow_redundant in (False, True):
        for variable in ranking:
            if len(chosen) >= n or variable in {_variable(item) for item in chosen}:
                continue
            levels = [item for item in gap.index if _variable(item) == variable]
            item = best.get(variable, str(gap[levels].idxmax()))
            if allow_redundant or not any(_redundant(item, c, redundancy) for c in chosen):
                chosen.append(item)
    return chosen


def categorical_profiles(tree: xr.DataTree) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Profiles of a latent class fit.

    Returns
    -------
    segments : one row per class, :data:`CATEGORICAL_SEGMENT_COLUMNS` (tier is "n/a").
    profiles : one row per (class, variable, level), :data:`CATEGORICAL_PROFILE_COLUMNS`, in item
        order; ``distinctiveness`` and ``variable_rank`` (1 = most distinctive) are the
        variable's, ``top_level`` the level's place among the class's top levels (0: not one).
    """
    posterior = tree["posterior"]
    pairs = item_levels(tree)
    items = [f"{v}={level}" for v, level in pairs]
    weight = summarize(posterior["weights"])
    probability = summarize(posterior["item_probs"])
    indicators = tree["observed_data"]["x"]
    share = level_shares(indicators, pairs).values
    segment_ids = posterior["segment"].values.astype(int)
    mean = pd.DataFrame(
        probability["mean"].transpose("segment", "item").values, index=segment_ids, columns=items
    )
    lift = mean / share
    shares = pd.Series(share, index=items)
    distinct = variable_distinctiveness(
        mean, shares, pd.Series(weight["mean"].values, index=segment_ids)
    )
    ranking = list(distinct.index)
    redundancy = Redundancy.of(indicators.transpose("customer", "item").values, pairs)
    top = top_levels(lift, mean, shares, ranking, redundancy) if len(segment_ids) > 1 else {}
    segments = pd.DataFrame(
        {
            "segment": segment_ids,
            "name": class_names(lift, mean, ranking, redundancy).reindex(segment_ids).to_numpy(),
            "tier": NO_TIER,
            "weight": weight["mean"].values,
            "weight_hdi_low": weight["low"].values,
            "weight_hdi_high": weight["high"].values,
        }
    )
    low = probability["low"].transpose("segment", "item").values
    high = probability["high"].transpose("segment", "item").values
    rows = []
    for position, k in enumerate(segment_ids):
        chosen = top.get(k, [])
        for j, (variable, level) in enumerate(pairs):
            item = items[j]
            rows.append(
                {
                    "segment": k,
                    "variable": variable,
                    "level": level,
                    "probability": mean.iat[position, j],
                    "probability_hdi_low": float(low[position, j]),
                    "probability_hdi_high": float(high[position, j]),
                    "population_share": float(share[j]),
                    "lift": lift.iat[position, j],
                    "distinctiveness": float(distinct[variable]),
                    "variable_rank": ranking.index(variable) + 1,
                    "top_level": chosen.index(item) + 1 if item in chosen else 0,
                }
            )
    profiles = pd.DataFrame(rows).merge(segments.drop(columns="tier"), on="segment")
    return segments, profiles[list(CATEGORICAL_PROFILE_COLUMNS)]


def segment_profiles(tree: xr.DataTree) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-segment and per-(segment, feature or level) profile tables for the fit's model; for
    a mixed fit those of its continuous part, with names that add the answer that sets each
    segment apart most (:func:`mixed_names`)."""
    if is_categorical(tree):
        return categorical_profiles(tree)
    if is_mixed(tree):
        segments, profiles = continuous_profiles(part_view(tree, "continuous"))
        names = mixed_names(segments, level_profiles(tree))
        segments["name"] = names.reindex(segments["segment"]).to_numpy()
        profiles["name"] = names.reindex(profiles["segment"]).to_numpy()
        return segments, profiles
    return continuous_profiles(tree)


def level_profiles(tree: xr.DataTree) -> pd.DataFrame:
    """A mixed fit's answers per segment: :func:`categorical_profiles` of its categorical part,
    one row per (segment, variable, level)."""
    return categorical_profiles(part_view(tree, "categorical"))[1]


def mixed_names(segments: pd.DataFrame, levels: pd.DataFrame) -> pd.Series:
    """Segment names of a mixed fit: the continuous part's name, then the answer with the
    largest lift among those at least :data:`NAME_MIN_PROBABILITY` likely and
    :data:`NAME_MIN_LIFT` times the population share (as in :func:`class_names`)."""
    names = {}
    for row in segments.itertuples():
        base = str(row.name).split(" #")[0]
        answers = levels[(levels["segment"] == row.segment)
                         & (levels["probability"] >= NAME_MIN_PROBABILITY)
                         & (levels["lift"] >= NAME_MIN_LIFT)]  # fmt: skip
        if len(segments) > 1 and len(answers):
            top = answers.loc[answers["lift"].idxmax()]
            base = f"{base} · {top['variable']} {top['level']}"
        names[row.segment] = base
    return numbered_duplicates(pd.Series(names))


def assignment_table(
    tree: xr.DataTree, tiers: pd.Series, threshold: float = PRECISE_THRESHOLD
) -> pd.DataFrame:
    """One row per customer of the fit (:func:`assignment_frame` of its assignments). A fit on a
    subsample (``analysis.inference.subsample``) gives every customer of the population a row, and
    ``fitted`` says which were in the subsample.
    """
    return assignment_frame(customer_assignments(tree), tiers, threshold)


def assignment_frame(
    assignments: xr.Dataset, tiers: pd.Series, threshold: float = PRECISE_THRESHOLD
) -> pd.DataFrame:
    """One row per customer: modal segment, its membership probability (mean, 94% HDI), tier.

    ``assignments`` holds :func:`analysis.inference.assignments.summarize_memberships` variables
    over (customer, segment), and optionally ``in_fit`` (customer,), which becomes ``fitted``.
    ``confidence`` is ``precise`` when the lower 94% HDI bound of the modal segment's membership
    probability is >= ``threshold``, else ``broad``. ``p_<segment>`` columns hold the posterior mean
    membership probability of every segment. ``tiers`` maps segment -> tier.
    """
    segment = assignments["modal_segment"].values.astype(int)
    low = assignments["modal_probability_hdi_lower"].values.astype(float)
    table = pd.DataFrame(
        {
            "customer_id": assignments["customer"].values,
            "segment": segment,
            "probability": assignments["modal_probability"].values.astype(float),
            "probability_hdi_low": low,
            "probability_hdi_high": assignments["modal_probability_hdi_upper"].values.astype(float),
            "confidence": np.where(low >= threshold, "precise", "broad"),
            "tier": tiers.reindex(segment).to_numpy(),
        }
    )
    if "in_fit" in assignments:
        table["fitted"] = assignments["in_fit"].values.astype(bool)
    membership = assignments["membership_mean"].transpose("customer", "segment")
    for position, k in enumerate(membership["segment"].values):
        table[f"p_{int(k)}"] = membership.values[:, position].astype(float)
    return table


def segment_counts(assignments: pd.DataFrame, segments: pd.Series) -> pd.DataFrame:
    """Per segment: customers with it as modal segment, their share, and precise/broad counts."""
    grouped = assignments.groupby("segment")
    counts = pd.DataFrame(
        {
            "customers": grouped.size(),
            "precise": grouped["confidence"].apply(lambda c: int((c == "precise").sum())),
        }
    ).reindex(segments, fill_value=0)
    counts["customer_share"] = counts["customers"] / len(assignments)
    counts["broad"] = counts["customers"] - counts["precise"]
    counts.index.name = "segment"
    return counts.reset_index()[["segment", "customers", "customer_share", "precise", "broad"]]

"""``segment score``: assign new customers with a saved fit's posterior, without resampling.

The new table is read and validated by the loaders a fit uses (:mod:`analysis.data.datasets`), with
the fit's own feature columns, and mapped to the model scale with the fit's own transform
constants (:class:`~analysis.data.transforms.FittedTransform`, never refitted on the new file). The
fit's relabelled posterior draws of the mode its assignments describe
(:func:`analysis.inference.fit.described_mode`) then give every customer, as for the fitted ones
(:func:`analysis.inference.subsample.population`):

- the posterior mean and 94% HDI of the membership probability of each segment;
- the modal segment with its probability (mean, 94% HDI), ``precise``/``broad`` and its tier
  (:func:`analysis.inference.profiles.assignment_frame`, the code that writes ``assignments.csv``);
- the log predictive density ``lpd_i = log mean_s p(x_i | theta^s)`` (nats, model scale: no
  Jacobian of the transform, so comparable between customers of one fit only);
- ``novel``: ``lpd_i`` below the :data:`NOVEL_PERCENTILE` th percentile of the fitted customers'
  own ``lpd`` ("fits no segment").

Scoring the fitted customers themselves gives their rows of ``assignments.csv`` again.

Time grows with customers x draws x segments (``bench.score``). ``draws`` thins the posterior
evenly within each chain for large tables; the intervals and ``lpd`` then carry the Monte Carlo
error of fewer draws, and the novelty threshold is taken from the same draws.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from analysis.data.datasets import WEEKLY_DATASETS, Dataset, first_negative, load_dataset
from analysis.data.joins import SEPARATOR, join_variables
from analysis.data.transforms import indicators_of
from analysis.decisions.response import POPULATION
from analysis.errors import InputError
from analysis.inference.fit import described_mode
from analysis.inference.profiles import (
    PRECISE_THRESHOLD,
    assignment_frame,
    fit_config,
    fit_transform_of,
    holds_amounts,
    is_categorical,
    is_mixed,
    part_view,
    segment_profiles,
)
from analysis.inference.subsample import population
from models import MIXTURES

NOVEL_PERCENTILE = 1.0  # percent of the fitted customers' lpd below which a customer is novel
SUMMARY_COLUMNS = (
    "K", "data", "precise_threshold", "segment", "segment_name", "customers", "precise", "broad",
    "novel",
)  # fmt: skip


def fit_columns(config: dict) -> tuple[list[str], list[str]]:
    """(numeric, categorical) input columns a fit with configuration ``config`` was fitted on:
    the transform's columns of a continuous fit, the levels' columns of a latent class fit,
    both for a mixed fit. A joint variable of the fit's ``--join`` groups (``a+b``) stands for
    its members' columns (``a``, ``b``), which a new table holds."""
    kind = MIXTURES[config["model"]].data_kind
    members = {SEPARATOR.join(group): list(group) for group in fit_joins(config)}
    levels = [m for name in config["options"].get("levels", {}) for m in members.get(name, [name])]
    if kind == "categorical":
        return [], levels
    return list(config["transform"]["columns"]), levels if kind == "mixed" else []


def fit_joins(config: dict) -> list[tuple[str, ...]]:
    """The ``--join`` groups of a fit's configuration (none for a fit without them)."""
    return [tuple(group) for group in config.get("joins", ())]


def joined_like_fit(dataset: Dataset, config: dict) -> Dataset:
    """A new table with the fit's ``--join`` groups made into their joint variables, as the
    fitted data were (:func:`analysis.data.joins.join_variables`); a combination of levels the
    fit never saw is refused later, as an unseen level is (:func:`model_scale`)."""
    return join_variables(dataset, fit_joins(config))


def load_customers(
    config: dict,
    path,
    id_column: str | None = None,
    missing: str = "marginalize",
    weeks: tuple[int, int] | None = None,
) -> Dataset:
    """The new customers of ``path`` for the fit ``config``, validated as a fit's data are
    (:func:`analysis.data.datasets.load_dataset`, ``fitting=False``): the marketing file's own
    layout for a marketing fit, else a delimited file with the fit's columns and ``id_column``.
    ``weeks`` (first, last) in place of ``path``: those weeks of the fit's own built-in dataset (a
    fit of one of :data:`~analysis.data.datasets.WEEKLY_DATASETS`, e.g. the later half of the year
    for a fit of the first). The fit's ``--join`` groups are joined (:func:`joined_like_fit`).
    InputError, one line, for a missing column or a bad value, and for neither or both of
    ``path`` and ``weeks``."""
    weekly = config["dataset"] in WEEKLY_DATASETS
    if weeks is not None:
        if path is not None:
            raise InputError("give --data FILE or --weeks A-B, not both")
        if not weekly:
            raise InputError(
                f"--weeks: the fit is of dataset '{config['dataset']}'; --weeks reads a period "
                f"of a {' or '.join(WEEKLY_DATASETS)} fit's own data (give --data FILE)"
            )
        return joined_like_fit(load_dataset(config["dataset"], fitting=False, weeks=weeks), config)
    if path is None:
        alternative = " (or --weeks A-B: a period of the fit's own dataset)" if weekly else ""
        raise InputError(f"--data FILE is needed{alternative}")
    if config["dataset"] in ("marketing", "marketing-mixed"):
        dataset = load_dataset(config["dataset"], path, missing=missing, fitting=False)
    else:
        features, categorical = fit_columns(config)
        dataset = load_dataset(
            "csv", path, features, id_column, categorical, missing, fitting=False
        )
    return joined_like_fit(dataset, config)


def check_draws(draws: int | None) -> None:
    """InputError unless ``draws`` (use at most this many posterior draws) is None or >= 1."""
    if draws is not None and draws < 1:
        raise InputError(f"--draws must be >= 1, got {draws}")


def model_scale(tree: xr.DataTree, dataset: Dataset) -> np.ndarray:
    """(N, D) model-scale values of the new customers with the fit's transform constants.

    InputError when the table cannot be put on the fit's scale: a level of a categorical column
    that the fit never saw, or a negative value where the fit's features are amounts.
    """
    transform = fit_transform_of(tree)
    levels = fit_config(tree)["options"].get("levels", {})
    answers = dataset.features if is_categorical(tree) else dataset.categories
    for column, known in levels.items():
        new = sorted(set(answers[column].dropna()) - set(known))
        if new:
            raise InputError(
                f"{dataset.source}: column {column}: level(s) {', '.join(new)} not in the "
                f"fit (its levels: {', '.join(known)})"
            )
    if is_categorical(tree):
        return transform.apply(dataset.features)
    if holds_amounts(part_view(tree, "continuous") if is_mixed(tree) else tree):
        negative = first_negative(dataset)
        if negative:
            raise InputError(f"{dataset.source}: {negative}; the fit's features are amounts (>= 0)")
    x = transform.apply(dataset.features)
    if not is_mixed(tree):
        return x
    return np.concatenate([x, indicators_of(levels).apply(answers)], axis=1)


def fitted_lpd(log_likelihood: xr.Dataset) -> np.ndarray:
    """(N_fit,) log predictive density (nats) of the fitted customers, from a fit's pointwise
    ``log_likelihood`` group (chain, draw, customer)."""
    loglik = log_likelihood["x"].stack(sample=("chain", "draw"))
    values = loglik.transpose("customer", "sample").values
    return logsumexp(values, axis=1) - np.log(values.shape[1])


def thinned(dataset: xr.Dataset, draws: int | None) -> xr.Dataset:
    """About ``draws`` posterior samples of (chain, draw, ...) ``dataset``: each chain's draws at
    one even step (rounded up); all of them when ``draws`` is None or not fewer than they are."""
    n_chains, n_draws = dataset.sizes["chain"], dataset.sizes["draw"]
    if draws is None or draws >= n_chains * n_draws:
        return dataset
    step = math.ceil(n_chains * n_draws / draws)
    return dataset.isel(draw=slice(None, None, step))


def score_customers(
    tree: xr.DataTree,
    x: np.ndarray,
    customers,
    threshold: float = PRECISE_THRESHOLD,
    draws: int | None = None,
) -> pd.DataFrame:
    """One row per customer of model-scale ``x`` (N, D), from the saved fit ``tree``.

    Columns: those of ``assignments.csv`` (:func:`analysis.inference.profiles.assignment_frame`;
    segment, probability with its 94% HDI, confidence at ``threshold``, tier, ``p_<k>``), then
    ``segment_name``, ``p_<k>_hdi_low``/``p_<k>_hdi_high`` (94% HDI of each segment's membership
    probability), ``lpd`` (nats, model scale) and ``novel``. ``draws``: at most this many posterior
    samples (:func:`thinned`; None: all, as ``assignments.csv`` was made).
    """
    described = described_mode(tree)
    config = fit_config(tree)
    posterior = thinned(described["posterior"].to_dataset(), draws)
    outside = np.zeros(len(x), dtype=bool)
    mixture = MIXTURES[config["model"]]
    customers = np.asarray(customers)
    scored = population(mixture, config["options"], x, customers, outside, posterior, "score: ")
    segments = segment_profiles(described)[0].set_index("segment")
    table = assignment_frame(scored.drop_vars("in_fit"), segments["tier"], threshold)
    names = segments["name"].reindex(table["segment"]).to_numpy()
    table.insert(table.columns.get_loc("tier") + 1, "segment_name", names)
    for k in scored["segment"].values:
        membership = scored.sel(segment=k)
        table[f"p_{int(k)}_hdi_low"] = membership["membership_hdi_lower"].values.astype(float)
        table[f"p_{int(k)}_hdi_high"] = membership["membership_hdi_upper"].values.astype(float)
    table["lpd"] = scored["lpd"].values
    fitted = fitted_lpd(thinned(described["log_likelihood"].to_dataset(), draws))
    table["novel"] = table["lpd"] < np.percentile(fitted, NOVEL_PERCENTILE)
    return table


def score_dataset(
    tree: xr.DataTree,
    dataset: Dataset,
    threshold: float = PRECISE_THRESHOLD,
    draws: int | None = None,
) -> pd.DataFrame:
    """:func:`score_customers` of the customers of a validated table (:func:`load_customers`),
    put on the fit's scale (:func:`model_scale`); one row per customer, in the table's order."""
    x = model_scale(tree, dataset)
    return score_customers(tree, x, dataset.features.index.to_numpy(), threshold, draws)


def segment_names(described: xr.DataTree) -> pd.Series:
    """Segment -> name (the profiles' names), in segment order, of a fit's described mode
    (:func:`analysis.inference.fit.described_mode`)."""
    return segment_profiles(described)[0].set_index("segment")["name"]


def score_summary(
    table: pd.DataFrame, names: pd.Series, k: int, source: str, threshold: float
) -> pd.DataFrame:
    """``scores_summary.csv``: per segment of the fit (``names``: segment -> name, in segment
    order), the customers of a :func:`score_customers` ``table`` with it as modal segment, how
    many of them are ``precise``/``broad`` (at ``threshold``) and how many ``novel``; then a row
    :data:`analysis.decisions.response.POPULATION` ("all customers") over every customer. ``k``,
    ``source`` (the scored table) and ``threshold`` are on every row."""
    columns = ["customers", "precise", "broad", "novel"]
    counts = table.assign(
        customers=1,
        precise=table["confidence"] == "precise",
        broad=table["confidence"] == "broad",
    )
    by_segment = counts.groupby("segment")[columns].sum().reindex(names.index, fill_value=0)
    summary = by_segment.reset_index(names="segment").astype({"segment": str})
    summary.insert(1, "segment_name", names.to_numpy())
    total = pd.DataFrame(
        [{"segment": POPULATION, "segment_name": "all customers", **counts[columns].sum()}]
    )
    summary = pd.concat([summary, total], ignore_index=True).assign(
        K=k, data=source, precise_threshold=threshold
    )
    return summary.astype({c: int for c in columns})[list(SUMMARY_COLUMNS)]

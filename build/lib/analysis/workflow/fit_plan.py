"""``segment fit`` without its command line: from a validated dataset and the fit options to the
sweep over K in a run directory.

The CLI (:class:`analysis.workflow.steps.FitRequest`) and the Python API
(:class:`analysis.api.Segmentation`) call these functions, so a table fitted either way gets the
same checks, transform, model and fits:

- :func:`parse_k_range`, :func:`sampler_settings` and :func:`sweep_rules` check the options;
- :func:`fitted_transform` chooses and fits the transform of a dataset;
- :func:`plan_fit` chooses the model and builds the model matrix and the
  :class:`~analysis.inference.fit.FitSpec` (a :class:`FitPlan`);
- :func:`run_plan` samples the plan's K into a run directory and writes ``diagnostics.csv``.

Bad input raises :class:`~analysis.errors.InputError` (one line) before any sampling.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import pandas as pd

from analysis.data.datasets import Dataset, first_negative
from analysis.data.transforms import (
    CATEGORICAL_TRANSFORMS,
    LOG_TRANSFORMS,
    TRANSFORMS,
    FittedTransform,
    fit_transform,
)
from analysis.errors import InputError, check_choice
from analysis.inference import fit
from analysis.paths import RunPaths, run_lock
from analysis.selection import baseline, sweep
from models import MIXTURES
from models.gmm import COVARIANCES

HURDLE_ZERO_SHARE = 0.01  # exact zeros in this share of customers make the hurdle the default
MODELS = (*sorted(MIXTURES), "mixed")  # --model: a mixture, or "mixed" (its part by the data)


def parse_k_range(text: str) -> list[int]:
    """``"1-10"`` -> [1..10], ``"2,4,6"`` -> [2, 4, 6], ``"3"`` -> [3]; raises InputError."""
    ks: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise InputError(f"--k: malformed K range '{text}' (use e.g. 1-10 or 2,4,6)")
        low, high = int(match[1]), int(match[2] or match[1])
        if low < 1 or high < low:
            raise InputError(f"--k: malformed K range '{text}' (K >= 1, low <= high)")
        ks.update(range(low, high + 1))
    return sorted(ks)


def format_k_range(ks) -> str:
    """[1, 2, 3, 5] -> ``"1-3,5"``: the ``--k`` text of the increasing integers ``ks`` (the
    inverse of :func:`parse_k_range`)."""
    runs: list[list[int]] = []
    for k in ks:
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def check_integer(option: str, value, minimum: int) -> None:
    """InputError unless ``value`` is an integer >= ``minimum``; ``option`` names it."""
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise InputError(f"{option} must be an integer, got {value!r}")
    if value < minimum:
        raise InputError(f"{option} must be >= {minimum}, got {value}")


def sampler_settings(
    chains: int,
    draws: int,
    tune: int,
    seed: int,
    sampler: str = "nutpie",
    backend: str = "jax",
    adaptation: str = "low_rank",
) -> fit.SamplerSettings:
    """The sampler settings, each checked: at least one chain, draw and warm-up draw, a seed
    >= 0, and a sampler, backend and adaptation of :data:`analysis.inference.fit.SAMPLERS`,
    :data:`~analysis.inference.fit.BACKENDS` and :data:`~analysis.inference.fit.ADAPTATIONS`."""
    for option, value in (("--chains", chains), ("--draws", draws), ("--tune", tune)):
        check_integer(option, value, 1)
    check_integer("--seed", seed, 0)
    check_choice("--sampler", sampler, fit.SAMPLERS)
    check_choice("--backend", backend, fit.BACKENDS)
    check_choice("--adaptation", adaptation, fit.ADAPTATIONS)
    return fit.SamplerSettings(chains, draws, tune, seed, sampler, backend, adaptation)


def sweep_rules(
    budget: float | None, patience: int | None, stop_at_empty: bool
) -> sweep.SweepRules:
    """The sweep's rules, checked: ``budget`` in minutes (None or 0: no extension), ``patience``
    (None: :data:`analysis.selection.sweep.PATIENCE`; 0: fit every K), ``stop_at_empty``."""
    if budget is not None and not (isinstance(budget, Real) and budget >= 0):
        raise InputError(f"--budget must be >= 0 minutes, got {budget}")
    patience = sweep.PATIENCE if patience is None else patience
    check_integer("--patience", patience, 0)
    return sweep.SweepRules(
        budget_seconds=60 * budget if budget else None,
        patience=patience,
        stop_at_empty=stop_at_empty,
    )


def fitted_transform(
    dataset: Dataset, name: str | None, categorical_transform: str = "one-hot"
) -> tuple[FittedTransform, list[str]]:
    """The transform ``name`` (None: :func:`default_transform`) fitted on the dataset's
    features, and the notes to print (:func:`announce`) once every option has been checked,
    e.g. which transform a signed table got by default.

    Categorical data default to ``categorical_transform``: drop-first ``one-hot`` dummies for the
    baseline, ``indicators`` of every level for the latent class model (``segment fit``).
    InputError for a transform that does not apply to the data.
    """
    if name is not None:
        check_choice("--transform", name, TRANSFORMS)
    negative = first_negative(dataset) if dataset.kind != "categorical" else None
    chosen = name or default_transform(dataset, negative, categorical_transform)
    if (chosen in CATEGORICAL_TRANSFORMS) != (dataset.kind == "categorical"):
        part = " (it applies to the continuous columns)" if dataset.kind == "mixed" else ""
        raise InputError(f"--transform {chosen} does not apply to {dataset.kind} data{part}")
    if chosen in LOG_TRANSFORMS and negative:
        raise InputError(
            f"{dataset.source}: {negative}; --transform {chosen} takes log1p and needs values "
            ">= 0 (signed data: --transform standardize or none)"
        )
    notes = [f"note: {negative}; using --transform {chosen}"] if name is None and negative else []
    missing = dataset.features.isna().sum()
    if dataset.categories is not None:
        missing = pd.concat([missing, dataset.categories.isna().sum()])
    if missing.any():
        notes.append(
            f"note: {int(missing.sum())} missing values ("
            + ", ".join(f"{column} {count}" for column, count in missing[missing > 0].items())
            + ") drop out of their customers' likelihood (--missing error refuses them)"
        )
    return fit_transform(chosen, dataset.features), notes


def default_transform(dataset: Dataset, negative: str | None, categorical_transform: str) -> str:
    """The transform used when none is given: ``categorical_transform`` for categorical data;
    log-standardize for spend, and for a csv file unless ``negative`` names a negative value
    in it (then standardize). A built-in spend table with a negative value is an error."""
    if dataset.kind == "categorical":
        return categorical_transform
    return "standardize" if negative and dataset.name == "csv" else "log-standardize"


def model_matrix(
    dataset: Dataset, transform: FittedTransform, categorical_transform: str, rows=slice(None)
) -> tuple[np.ndarray, list[str], FittedTransform | None]:
    """The (N, D) model-scale matrix of the dataset's ``rows``, its column names, and for mixed
    data the categorical columns' fitted ``categorical_transform`` (``indicators`` for the
    mixed model, ``one-hot`` for the baseline), whose columns follow the D continuous ones."""
    x = transform.apply(dataset.features[rows])
    if dataset.kind != "mixed":
        return x, list(transform.columns), None
    answers = fit_transform(categorical_transform, dataset.categories)
    x = np.concatenate([x, answers.apply(dataset.categories[rows])], axis=1)
    return x, [*transform.columns, *answers.columns], answers


def announce(notes: list[str]) -> None:
    """Print the notes on stderr: after validation, so that an error stays one line."""
    for note in notes:
        print(note, file=sys.stderr)


def chosen_model(model: str | None, dataset: Dataset, notes: list[str]) -> str:
    """``--model`` (one of :data:`MODELS`), with ``mixed`` resolved to the mixed model whose
    continuous part :func:`default_model` would choose; :func:`default_model` when not given."""
    if model is not None:
        check_choice("--model", model, MODELS)
    if model == "mixed":
        if dataset.kind != "mixed":
            raise InputError(
                f"{dataset.source}: --model mixed needs continuous and categorical columns, "
                f"{dataset.name} has {dataset.kind} ones only"
            )
        return default_model(dataset, notes)
    return model or default_model(dataset, notes)


def default_model(dataset: Dataset, notes: list[str]) -> str:
    """The mixture fitted when --model is not given; a hurdle default adds its reason to
    ``notes``.

    Categorical data: the latent class model; mixed data: the mixed model whose continuous part
    the rule for continuous data chooses. Non-negative data with exact zeros in at least
    :data:`HURDLE_ZERO_SHARE` of the customers of some feature (spend): the hurdle mixture, which
    gives a zero spend its own probability; a Gaussian mixture gives exact values none, and its
    components spike on the tied zeros (models/README.md, "Hurdle mixture for spend").
    Otherwise the GMM.
    """
    if dataset.kind == "categorical":
        return "lca"
    prefix = "mixed-" if dataset.kind == "mixed" else ""
    zero_share = (dataset.features == 0).mean()
    non_negative = not (dataset.features < 0).to_numpy().any()
    if non_negative and zero_share.max() >= HURDLE_ZERO_SHARE:
        notes.append(
            f"model: {prefix}hurdle (default: {zero_share.idxmax()} is exactly 0 for "
            f"{zero_share.max():.1%} of customers; --model {prefix}gmm for the Gaussian mixture)"
        )
        return f"{prefix}hurdle"
    return f"{prefix}gmm"


def warn_parameters_exceed_rows(n: int, d: int, ks: list[int], covariance: str) -> None:
    """One stderr line for the K whose segment parameters outnumber the ``n`` fitted rows: the
    priors keep their posteriors proper, but the data say little about each parameter."""
    over = [k for k in ks if baseline.em_problem(n, d, k, covariance) is not None]
    if over:
        print(
            f"warning: K = {', '.join(map(str, over))} have more parameters than the {n} rows "
            f"(K={over[0]}: {baseline.n_parameters(over[0], d, covariance)}); the priors keep "
            "their posteriors proper, expect wide intervals",
            file=sys.stderr,
        )


def check_subsample(subsample: int | None, n_customers: int, source: str) -> int:
    """The number of customers the posterior is fitted on; InputError unless 1 <= N < rows."""
    if subsample is None:
        return n_customers
    if not (isinstance(subsample, Integral) and 1 <= subsample < n_customers):
        raise InputError(
            f"--subsample {subsample}: {source} has {n_customers} customers; give 1 <= N < "
            f"{n_customers}, or leave --subsample out to fit them all"
        )
    return subsample


@dataclass(frozen=True)
class FitPlan:
    """What the sweep samples, checked (:func:`plan_fit`).

    Attributes
    ----------
    spec : the fits' configuration except K.
    x : (N, D) model-scale matrix of every customer (a mixed fit's indicators after its
        continuous columns).
    columns : names of the D model columns.
    customers : (N,) customer IDs.
    n_fit : customers the posterior is sampled on (N, or the subsample's size).
    notes : lines printed before sampling (:func:`announce`): the defaults chosen, missing values.
    """

    spec: fit.FitSpec
    x: np.ndarray
    columns: list[str]
    customers: np.ndarray
    n_fit: int
    notes: list[str]


def plan_fit(
    dataset: Dataset,
    transform: FittedTransform,
    notes: list[str],
    model: str | None,
    covariance: str,
    settings: fit.SamplerSettings,
    subsample: int | None = None,
    joins: tuple[tuple[str, ...], ...] = (),
) -> FitPlan:
    """The fits of ``dataset`` with its ``transform`` (:func:`fitted_transform`, which gave
    ``notes``): the model (:func:`chosen_model`), the model matrix, the subsample size and the
    :class:`~analysis.inference.fit.FitSpec`. ``joins``: the ``--join`` groups the dataset was made
    with.

    InputError for a model that does not fit the data's kind, a latent class model without
    indicators, a covariance not in ``models.gmm.COVARIANCES`` and a bad subsample size.
    """
    notes = list(notes)
    model = chosen_model(model, dataset, notes)
    mixture = MIXTURES[model]
    if mixture.data_kind != dataset.kind:
        raise InputError(
            f"{dataset.source}: --model {model} needs {mixture.data_kind} features, "
            f"{dataset.name} has {dataset.kind} ones"
        )
    if dataset.kind == "categorical" and transform.name != "indicators":
        raise InputError(f"--transform {transform.name}: --model {model} needs indicators")
    check_choice("--covariance", covariance, COVARIANCES)
    x, columns, answers = model_matrix(dataset, transform, "indicators")
    n_fit = check_subsample(subsample, len(x), dataset.source)
    categorical = [] if answers is None else [answers, list(dataset.categories.columns)]
    options = mixture.data_options(transform, list(dataset.features.columns), *categorical)
    if mixture.data_kind != "categorical":
        options = {"covariance": covariance} | options
    spec = fit.FitSpec(
        dataset=dataset.name,
        source=dataset.source,
        model=model,
        transform=transform.to_config(),
        options=options,
        sampler=settings,
        subsample=subsample,
        joins=joins,
    )
    customers = dataset.features.index.to_numpy()
    return FitPlan(spec, x, columns, customers, n_fit, notes)


def run_plan(
    plan: FitPlan, ks: list[int], paths: RunPaths, rules: sweep.SweepRules
) -> pd.DataFrame:
    """Fit the plan's K into the run directory (:func:`analysis.selection.sweep.fit_sweep`: saved
    fits of the same configuration are reused), holding its lock; print the notes first. Returns the
    diagnostics table it writes (``diagnostics.csv``, one row per K)."""
    with run_lock(paths):
        announce(plan.notes)
        spec = plan.spec
        if spec.mixture.data_kind != "categorical":
            d = len(spec.transform["columns"])
            warn_parameters_exceed_rows(plan.n_fit, d, ks, spec.options["covariance"])
        sweep.fit_sweep(spec, plan.x, ks, plan.customers, plan.columns, paths, rules)
        return sweep.write_diagnostics(paths)

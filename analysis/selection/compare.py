"""Choose K from one table: PSIS-LOO and WAIC with standard errors beside the BIC baseline.

For every saved fit ``DIR/fits/K{k}.nc`` (read from disk, never resampled):

- PSIS-LOO from the pointwise log-likelihood (the label-summed marginal log density per
  customer) with ArviZ: ``elpd_loo``, its SE, ``p_loo``, and the Pareto-k counts:
  ``pareto_k_bad`` customers above ArviZ's threshold good_k (0.7 from S >= 2,200 draws),
  ``pareto_k_very_bad`` the part of them above 1, ``pareto_k_good`` the rest.
- Customers with k > good_k are handled, never ignored. First ``az.loo_moment_match``
  (Paananen et al. 2021): the model is rebuilt from the fit's saved configuration and observed
  data, and only evaluated (log posterior density and one customer's log-likelihood at affinely
  moved unconstrained draws), never sampled; the rebuilt model's log density must reproduce the
  sampler's ``lp`` for every draw, or moment matching is refused. Mixture importance sampling
  LOO (``az.loo(mixture=True)``) does not apply: it needs draws from a different (mixture)
  posterior, which a saved fit does not hold. What moment matching cannot fix is refitted by
  exact K-fold CV (``az.loo_kfold`` around :func:`analysis.inference.fit.fit_k`) when asked for
  (``kfold_folds``; it samples K x folds times, so it is opt-in), and otherwise stays in the
  table as ``loo_reliable = False`` with the count of customers left above the threshold.
  Fits that failed diagnostics are neither moment-matched nor refitted (never chosen anyway);
  their high k are only counted. ``loo_method`` says which estimate each row uses.
- WAIC with its SE (:mod:`analysis.selection.waic`).
- ``az.compare`` for ``elpd_diff`` and ``dse`` against the best fit that passed diagnostics,
  and stacking / Bayesian-bootstrap pseudo-BMA weights over those fits.
- The scikit-learn baseline per K (``DIR/baseline.csv``, run here with the default settings if
  absent): best over seeds of BIC, AIC and ICL, and the spread of BIC over seeds; and the
  baseline on the elpd yardstick: for continuous data the 10-fold held-out log density of the
  EM-fitted GMM on the same matrix; for categorical data the held-out log probability of each
  household's categories under the one-hot GMM's clusters made latent classes (its density on
  0/1 dummies is not a probability of categories).

The decision rule (:func:`choose_k`): among fits whose diagnostics are ``ok``, the smallest K
whose ``elpd_diff`` is within 2 x ``dse`` of the best (``elpd_diff >= -2 dse``): parsimony under
the uncertainty of the comparison. Fits whose diagnostics failed are listed but never chosen and
get no weight. The BIC choice (smallest best-over-seeds BIC among the same K values) is shown
beside it and a disagreement is spelled out in ``comparison.md``.

This module assembles the table (:func:`compare_fits`) and writes the outputs
(:func:`write_comparison`); the parts live in ``analysis.selection.loo``
(per fit: PSIS-LOO, moment matching, K-fold, WAIC), ``analysis.selection.yardstick`` (the
scikit-learn baseline: BIC per K and held-out scores), ``analysis.selection.decision`` (the rule and
the sentences that explain it), ``analysis.selection.comparison_text`` (terminal and markdown
tables) and ``analysis.selection.comparison_figures``.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, replace

import arviz as az
import numpy as np
import pandas as pd

from analysis.data.datasets import FRAME_SOURCE
from analysis.errors import InputError
from analysis.inference.diagnostics import CHOOSABLE
from analysis.inference.elpd import summed
from analysis.inference.fit import SamplerSettings, load_fit, sampling_description, saved_attrs
from analysis.inference.subsample import lpd_outside_fit
from analysis.paths import RunPaths, atomic_path
from analysis.plotting import save as save_figure
from analysis.selection import baseline
from analysis.selection.comparison_figures import (
    COMPARE_DPI,
    plot_compare_figure,
    plot_elpd_and_bic,
    plot_khat_figure,
)
from analysis.selection.comparison_text import write_markdown
from analysis.selection.decision import RULE_SE, bic_choice, choose_k
from analysis.selection.loo import (
    MAX_MOMENT_MATCH,
    FitEstimate,
    estimate_fit,
    khat_bands,
    log_likelihood_name,
    observed_data,
)
from analysis.selection.sweep import skipped_ks
from analysis.selection.yardstick import (
    HELDOUT_LABEL,
    HELDOUT_MEANING,
    baseline_matrix,
    baseline_per_k,
    default_baseline_title,
    ensure_baseline,
    gmm_heldout,
    heldout_kind,
    read_baseline,
)
from models import MIXTURES

# The columns the issue fixes: every comparison.csv has them, and the report reads them back.
CORE_COLUMNS = (
    "K", "elpd_loo", "se_loo", "p_loo", "elpd_diff", "dse", "weight", "pareto_k_bad",
    "elpd_waic", "se_waic", "bic", "aic", "icl", "bic_spread", "status", "chosen",
)  # fmt: skip
COLUMNS = (
    *CORE_COLUMNS, "weight_pbma", "within_rule", "bic_chosen", "loo_method", "loo_reliable",
    "pareto_k_remaining", "pareto_k_good", "pareto_k_very_bad", "k_threshold", "elpd_psis",
    "p_waic", "waic_p_over_0_4", "gmm_heldout_elpd", "gmm_heldout_se", "heldout_diff",
    "heldout_dse", "bic_seeds", "elpd_outside", "se_outside", "n_outside", "outside_diff",
    "outside_dse", "diagnostics_reason", "loo_note", "settle", "settle_seconds", "extend",
)  # fmt: skip
DATA_FILE_DATASETS = ("marketing", "csv")  # datasets read from --data


def fit_command(config: dict, root, ks: str, tune: int, draws: int) -> str:
    """The ``segment fit`` command line that fits ``ks`` (e.g. "4" or "5-6") on the data,
    transform and model of the saved fit ``config``, with its chains and the given warm-up and
    draws, into the run directory ``root``; for a fit of a DataFrame (``analysis.Segmentation``),
    the Python call that does it."""
    sampler, transform = config["sampler"], config["transform"]
    joins = ["+".join(group) for group in config.get("joins", ())]
    if str(config["source"]).startswith(FRAME_SOURCE):  # fitted from Python: the call, not a CLI
        join = f"join={joins!r}, " if joins else ""
        return (
            f"Segmentation(model={config['model']!r}, k={ks!r}, chains={sampler['chains']}, "
            f"tune={tune}, draws={draws}, transform={transform['name']!r})"
            f".fit(customers, {join}out={str(root)!r}), customers being the DataFrame fitted "
            f"({config['source']})"
        )
    data = f" --data {config['source']}" if config["dataset"] in DATA_FILE_DATASETS else ""
    if config["dataset"] == "csv":
        data += f" --features {','.join(transform['columns'])}"
    data += "".join(f" --join {name}" for name in joins)
    return (
        f"segment fit --dataset {config['dataset']}{data} --transform {transform['name']} "
        f"--model {config['model']} --k {ks} --chains {sampler['chains']} "
        f"--tune {tune} --draws {draws} --out {root}"
    )


def settle_command(config: dict, status: str, root) -> str:
    """The ``segment fit`` command that refits one unusable K with twice the warm-up and draws
    (what settles a ``slow`` fit; a ``divergent`` one may need another model), or "" for a fit
    the rule can use."""
    if status in CHOOSABLE:
        return ""
    sampler = config["sampler"]
    command = fit_command(config, root, str(config["K"]), 2 * sampler["tune"], 2 * sampler["draws"])
    if status == "divergent":
        command += " (divergences that a longer warm-up does not remove are the model's geometry)"
    return command


def extend_command(config: dict, root) -> str:
    """The ``segment fit`` command that fits the next two K after the saved fit ``config`` (the
    largest K fitted) with the same settings: what tells whether a larger K fits better."""
    sampler, k = config["sampler"], config["K"]
    return fit_command(config, root, f"{k + 1}-{k + 2}", sampler["tune"], sampler["draws"])


def model_name(estimate: FitEstimate) -> str:
    return f"K={estimate.k}" + ("" if estimate.status == "ok" else f" ({estimate.status})")


def _compare(elpds: dict, **kwargs) -> tuple[pd.DataFrame, list[str]]:
    """``az.compare`` on raw numbers, its warnings returned as text."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = az.compare(elpds, round_to="none", **kwargs)
    return table, sorted({str(w.message) for w in caught})


def loo_table(estimates: list[FitEstimate]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Per-K LOO/WAIC columns, the raw ``az.compare`` table (for the plot) and its warnings.

    ``elpd_diff`` and ``dse`` are against the best fit whose diagnostics are ok (the best of all
    fits when none is). Weights (stacking; Bayesian-bootstrap pseudo-BMA) are over the ok fits
    only; failed fits get NaN.
    """
    by_name = {model_name(e): e for e in estimates}
    elpds = {name: e.used for name, e in by_name.items()}
    ok_names = [name for name, e in by_name.items() if e.status in CHOOSABLE]
    pool = ok_names or list(by_name)
    reference = max(pool, key=lambda name: by_name[name].used.elpd)
    notes: list[str] = []
    if len(elpds) > 1:
        compared, caught = _compare(elpds, reference=reference)
        notes += caught
    else:
        compared = pd.DataFrame({"elpd_diff": [0.0], "dse": [0.0]}, index=list(elpds))
    weights = pd.Series(np.nan, index=list(by_name))
    weights_pbma = pd.Series(np.nan, index=list(by_name))
    if len(ok_names) > 1:
        subset = {name: elpds[name] for name in ok_names}
        stacking, caught = _compare(subset, method="stacking")
        pbma, caught_pbma = _compare(subset, method="BB-pseudo-BMA")
        notes += caught + caught_pbma
        weights[ok_names] = stacking.loc[ok_names, "weight"]
        weights_pbma[ok_names] = pbma.loc[ok_names, "weight"]
    elif ok_names:
        weights[ok_names] = weights_pbma[ok_names] = 1.0
    rows = []
    for name, e in by_name.items():
        used, psis = e.used, e.psis
        rows.append(
            {
                "K": e.k,
                "elpd_loo": float(used.elpd),
                "se_loo": float(used.se),
                "p_loo": float(used.p),
                "elpd_diff": float(compared.loc[name, "elpd_diff"]),
                "dse": float(compared.loc[name, "dse"]),
                "weight": float(weights[name]),
                "weight_pbma": float(weights_pbma[name]),
                **khat_bands(psis.pareto_k.values, psis.good_k),
                "k_threshold": float(psis.good_k),
                "pareto_k_remaining": e.remaining,
                "loo_method": e.method,
                "loo_reliable": e.remaining == 0,
                "elpd_psis": float(psis.elpd),
                "elpd_waic": e.waic.elpd,
                "se_waic": e.waic.se,
                "p_waic": e.waic.p,
                "waic_p_over_0_4": e.waic.n_p_over_warn,
                "status": e.status,
                "diagnostics_reason": e.reason,
                "loo_note": e.note,
            }
        )
    ordered = compared.loc[[reference] + [n for n in compared.index if n != reference]]
    return pd.DataFrame(rows).sort_values("K").reset_index(drop=True), ordered, notes


def outside_table(outside: dict[int, np.ndarray], ks: list[int], chosen: int | None):
    """Per K: held-out elpd of the customers outside a subsample fit
    (``analysis.inference.subsample``), its SE, count, and the paired difference (and its SE) to the
    chosen K. NaN without a subsample.
    """
    rows = []
    for k in ks:
        lpd = outside.get(k)
        row = {"K": k, "elpd_outside": np.nan, "se_outside": np.nan, "n_outside": np.nan}
        row |= {"outside_diff": np.nan, "outside_dse": np.nan}
        if lpd is not None:
            row["elpd_outside"], row["se_outside"] = summed(lpd)
            row["n_outside"] = len(lpd)
            if chosen in outside:  # the same customers at every K: a paired difference
                row["outside_diff"], row["outside_dse"] = summed(lpd - outside[chosen])
        rows.append(row)
    return pd.DataFrame(rows)


def _consistent(configs: list[dict], customers: list[np.ndarray], paths: RunPaths) -> None:
    keys = ("dataset", "model", "transform")
    first = configs[0]
    for config, ids in zip(configs[1:], customers[1:], strict=True):
        differing = [key for key in keys if config.get(key) != first.get(key)]
        if differing or not np.array_equal(ids, customers[0]):
            what = ", ".join(differing) or "customers"
            raise InputError(
                f"{paths.fits_dir}: K={config['K']} and K={first['K']} differ in {what}; "
                "compare needs fits of one model on one data set"
            )


def check_compare_options(kfold_folds: int | None, max_moment_match: int) -> None:
    """Before any work: InputError for fewer than 2 K-fold folds or a negative moment-matching
    cap."""
    if kfold_folds is not None and kfold_folds < 2:
        raise InputError(f"--kfold: need at least 2 folds, got {kfold_folds}")
    if max_moment_match < 0:
        raise InputError(f"--max-moment-match: must be >= 0, got {max_moment_match}")


@dataclass(frozen=True)
class Comparison:
    """The fits of a run directory compared (:func:`compare_fits`); nothing written yet.

    Attributes
    ----------
    table : one row per K, sorted by K, columns :data:`COLUMNS` (boolean ``chosen``); its
        ``attrs["skipped"]`` maps the K the sweep did not fit to the reason.
    compared : ``az.compare``'s table, the reference fit first (the ArviZ comparison plot).
    chosen_estimate : the chosen fit's LOO estimate (its Pareto k figure), None when no K is
        chosen.
    title, model, heldout_kind : the figures' title, the fits' model and the baseline yardstick
        (:data:`analysis.selection.yardstick.HELDOUT_LABEL`).
    context, notes : what ``comparison.md`` says besides the table.
    new_baseline : the default baseline, run because the directory had no ``baseline.csv``
        (:func:`write_comparison` saves it); None when it was read.
    baseline_title : the baseline figure's title.
    """

    table: pd.DataFrame
    compared: pd.DataFrame
    chosen_estimate: FitEstimate | None
    title: str
    model: str
    heldout_kind: str
    context: dict
    notes: list[str]
    new_baseline: pd.DataFrame | None
    baseline_title: str


def with_commands(table: pd.DataFrame, saved: list[dict], root) -> pd.DataFrame:
    """``table`` with the ``settle``, ``settle_seconds`` and ``extend`` columns of fits saved in
    the run directory ``root``; ``saved``: their attributes (:func:`saved_attrs`)."""
    by_k = {attrs["config"]["K"]: attrs for attrs in saved}
    table = table.copy()
    table["settle"] = [
        settle_command(by_k[k]["config"], status, root)
        for k, status in zip(table["K"], table["status"], strict=True)
    ]
    # the settle command doubles warm-up and draws: about twice the fit's own seconds
    table["settle_seconds"] = [
        2.0 * by_k[k]["diagnostics"]["seconds"] if command else np.nan
        for k, command in zip(table["K"], table["settle"], strict=True)
    ]
    table["extend"] = [
        extend_command(by_k[k]["config"], root) if k == max(by_k) else "" for k in table["K"]
    ]
    return table


def moved(comparison: Comparison, paths: RunPaths) -> Comparison:
    """``comparison`` as if computed in ``paths``, which holds the same fits (copied there by
    :meth:`analysis.Segmentation.save`): its commands and description name ``paths.root``."""
    saved = [saved_attrs(path) for path in paths.fit_files()]
    table = with_commands(comparison.table, saved, paths.root)
    context = {**comparison.context, "run_dir": str(paths.root)}
    return replace(comparison, table=table, context=context)


def compare_run(paths: RunPaths, **options) -> pd.DataFrame:
    """Compare every fit in ``paths.fits_dir`` (:func:`compare_fits`, which takes the keyword
    ``options``) and write comparison.csv/.md and the figures (:func:`write_comparison`).
    Returns the table."""
    comparison = compare_fits(paths, **options)
    write_comparison(comparison, paths)
    return comparison.table


def compare_fits(
    paths: RunPaths,
    *,
    moment_matching: bool = True,
    max_moment_match: int = MAX_MOMENT_MATCH,
    kfold_folds: int | None = None,
    kfold_settings: SamplerSettings | None = None,
    heldout: bool = True,
    progress=sys.stderr,
) -> Comparison:
    """Compare every fit in ``paths.fits_dir``, reading the run directory and writing nothing.

    ``baseline.csv`` is read when present, else the default baseline is run on the fits' data
    (:attr:`Comparison.new_baseline`). ``progress``: a text stream for progress lines, or None.
    Raises InputError when the directory has no fits or the fits are not comparable.
    """
    files = paths.fit_files()
    if not files:
        raise InputError(f"{paths.fits_dir}: no fits (K*.nc); run segment fit --out {paths.root}")
    # a damaged baseline.csv or fit file is an error before any LOO work
    saved_baseline = read_baseline(paths)
    saved = {path: saved_attrs(path) for path in files}
    estimates, configs, customers, outside_lpd = [], [], [], {}
    x = None
    for path, attrs in saved.items():
        tree = load_fit(path)
        var_name = log_likelihood_name(tree)
        observed = observed_data(tree, var_name)
        configs.append(attrs["config"])
        customers.append(observed[observed.dims[0]].values)
        _consistent(configs, customers, paths)
        if x is None:
            x = observed.values
        estimates.append(
            estimate_fit(
                tree,
                attrs,
                moment_matching=moment_matching,
                max_moment_match=max_moment_match,
                kfold_folds=kfold_folds,
                kfold_settings=kfold_settings,
                progress=progress,
            )
        )
        if "population" in tree:
            outside_lpd[attrs["config"]["K"]] = lpd_outside_fit(tree["population"].to_dataset())
        del tree
    estimates.sort(key=lambda e: e.k)
    config = min(configs, key=lambda c: c["K"])
    ks = [e.k for e in estimates]
    table, compared, notes = loo_table(estimates)

    baseline_table, covariance_type, ran = ensure_baseline(
        paths, saved_baseline, x, ks, config, progress
    )
    per_k = baseline_per_k(baseline_table, covariance_type)
    table = table.merge(per_k, on="K", how="left")
    data_kind = MIXTURES[config["model"]].data_kind
    kind = heldout_kind(config["model"])
    if heldout and data_kind == "mixed":
        heldout = False
        notes.append(f"gmm_heldout_elpd: {HELDOUT_MEANING['mixed']}")
        print(f"compare: {notes[-1]}", file=progress)
    if heldout and np.isnan(x).any():
        heldout = False
        notes.append(
            "gmm_heldout_elpd: not computed; the data have missing values, which scikit-learn's "
            "EM cannot score (the Bayesian fits marginalize them)"
        )
        print(f"compare: {notes[-1]}", file=progress)
    if heldout:
        matrix, _ = baseline_matrix(x, config)
        pointwise = {e.k: e.used.elpd_i.values for e in estimates}
        categories = None
        if data_kind == "categorical":
            categories = (x, [len(levels) for levels in config["transform"]["levels"]])
        heldout_table = gmm_heldout(
            matrix,
            ks,
            covariance_type,
            elpd_i=pointwise,
            categories=categories,
            zero_values=config["options"].get("zero_values"),
        )
        table = table.merge(heldout_table, on="K", how="left")
    else:
        for column in ("gmm_heldout_elpd", "gmm_heldout_se", "heldout_diff", "heldout_dse"):
            table[column] = np.nan

    chosen = choose_k(table)
    bic_k = bic_choice(table)
    table["within_rule"] = table["status"].isin(CHOOSABLE) & (
        table["elpd_diff"] >= -RULE_SE * table["dse"]
    )
    table["chosen"] = table["K"] == chosen
    table["bic_chosen"] = table["K"] == bic_k
    table = table.merge(outside_table(outside_lpd, ks, chosen), on="K", how="left")
    table = with_commands(table, list(saved.values()), paths.root)[list(COLUMNS)]
    table.attrs["skipped"] = {k: r for k, r in skipped_ks(paths).items() if k not in ks}

    transform = config["transform"].get("name", "model scale")
    title = f"{config['dataset']} ({transform}, {config['model']})"
    baseline_source = (
        "run here with the defaults because baseline.csv was absent"
        if ran
        else "read from baseline.csv"
    )
    outside = per_k[~per_k["K"].isin(ks)]
    if not outside.empty and per_k.loc[per_k["bic"].idxmin(), "K"] not in ks:
        lowest = per_k.loc[per_k["bic"].idxmin()]
        baseline_source += (
            f"; over all of its K ({int(per_k['K'].min())}-{int(per_k['K'].max())}) the lowest "
            f"BIC is at K={int(lowest['K'])} ({lowest['bic']:,.0f}), outside the fitted range"
        )
    context = {
        "title": title,
        "heldout": heldout,
        "heldout_kind": kind,
        "run_dir": str(paths.root),
        "description": (
            f"{len(ks)} fits (K = {', '.join(map(str, ks))}), "
            f"{len(x):,} customers x {x.shape[1]} features"
            + (
                f" (a random subsample; {len(next(iter(outside_lpd.values()))):,} more "
                "customers outside it are scored as held-out data: elpd_outside)"
                if outside_lpd
                else ""
            )
            + f", {sampling_description(configs)}. "
            f"Baseline: scikit-learn GaussianMixture, {per_k.attrs['covariance_type']} "
            f"covariance, {baseline_source}."
        ),
    }
    chosen_estimate = next((e for e in estimates if e.k == chosen), None)
    return Comparison(
        table=table,
        compared=compared,
        chosen_estimate=chosen_estimate,
        title=title,
        model=config["model"],
        heldout_kind=kind,
        context=context,
        notes=notes,
        new_baseline=baseline_table if ran else None,
        baseline_title=default_baseline_title(config),
    )


def write_comparison(comparison: Comparison, paths: RunPaths) -> None:
    """Write ``comparison.csv`` and ``.md``, the comparison figures and, when the comparison ran
    it, the default baseline (``baseline.csv`` and its figure) into the run directory."""
    table, title = comparison.table, comparison.title
    chosen, bic_k = choose_k(table), bic_choice(table)
    if comparison.new_baseline is not None:
        baseline.write_run_files(comparison.new_baseline, comparison.baseline_title, paths)
    figures = {
        "ArviZ comparison plot": "compare",
        "elpd and BIC against K": "elpd_vs_bic",
    }
    save_figure(
        plot_compare_figure(comparison.compared, title),
        paths.figure("compare"),
        COMPARE_DPI,
        tight=True,
    )
    save_figure(
        plot_elpd_and_bic(
            table,
            chosen,
            bic_k,
            title,
            comparison.model.upper(),
            HELDOUT_LABEL[comparison.heldout_kind],
        ),
        paths.figure("elpd_vs_bic"),
        COMPARE_DPI,
        tight=True,
    )
    estimate = comparison.chosen_estimate
    if estimate is not None:
        save_figure(
            plot_khat_figure(estimate.psis, chosen, title, estimate.method),
            paths.figure("khat"),
            COMPARE_DPI,
            tight=True,
        )
        figures[f"Pareto k of the chosen fit (K={chosen}), plain PSIS"] = "khat"
    with atomic_path(paths.comparison_csv) as temporary:
        table.to_csv(temporary, index=False)
    write_markdown(paths.comparison_md, table, comparison.context, comparison.notes, figures)

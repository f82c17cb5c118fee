"""``segment report``, stage 1: the tables and figures of a run directory's chosen fit.

:func:`write_outputs` reads the chosen fit (and, for the split tables, the modal assignments of
every fitted K) and writes the tables (:data:`TABLES`) and the figures (``figures/*.png``) that
``analysis.reporting.report`` then renders into ``report.html``.
"""

from __future__ import annotations

import itertools
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from analysis import plotting
from analysis.errors import InputError
from analysis.inference.fit import (
    adaptation_of,
    backend_of,
    described_mode,
    load_fit,
    sampling_description,
    sampling_settings,
    saved_attrs,
)
from analysis.inference.profiles import (
    FUNCTIONAL,
    HDI_PROB,
    PRECISE_THRESHOLD,
    TIER_RULE,
    assignment_table,
    fit_config,
    fit_transform_of,
    holds_amounts,
    is_categorical,
    is_mixed,
    level_profiles,
    observed_spend,
    part_view,
    segment_counts,
    segment_profiles,
)
from analysis.paths import RunPaths, atomic_path, read_step_csv
from analysis.reporting import figures
from analysis.selection.baseline import READ_BACK
from analysis.selection.compare import CORE_COLUMNS
from analysis.selection.decision import RULE_SE
from models import MIXTURES

# Tables the report step writes beside profiles.csv and assignments.csv (names in the run dir).
DATA_SUMMARY = "data_summary.csv"
SEGMENTS = "segments.csv"
SPLITS = "splits.csv"
SETTINGS = "settings.csv"
ZERO_SHARE = "zero_share.csv"
LEVEL_SHARES = "level_shares.csv"
MODES = "modes.csv"
LEVEL_PROFILES = "level_profiles.csv"  # a mixed fit's answers per segment
ANSWER_SUMMARY = "answer_summary.csv"  # a mixed fit's categorical columns
LOCAL_DEPENDENCE = "local_dependence.csv"  # per pair of variables (latent class fits)
LOCAL_DEPENDENCE_CELLS = "local_dependence_cells.csv"  # per pair and level combination
CLASSES_VS_GMM = "classes_vs_gmm.csv"  # latent classes x the baseline's BIC-K clusters
CLASSES_VS_GMM_SCORES = "classes_vs_gmm_scores.csv"  # each side's held-out log score
PARAMETER_SUMMARY = "parameter_summary.csv"  # az.summary of the segment-level parameters
TABLES = (
    "profiles.csv", "assignments.csv", DATA_SUMMARY, SEGMENTS, SPLITS, SETTINGS, ZERO_SHARE,
    LEVEL_SHARES, MODES, LEVEL_PROFILES, ANSWER_SUMMARY, LOCAL_DEPENDENCE, LOCAL_DEPENDENCE_CELLS,
    CLASSES_VS_GMM, CLASSES_VS_GMM_SCORES, PARAMETER_SUMMARY,
)  # fmt: skip
# The segment-level parameters parameter_summary.csv describes, those of the model's posterior
# (the hurdle's zero probabilities too, which its diagnostics judge; a latent class fit has
# weights only here, its level probabilities are profiles.csv).
SUMMARY_PARAMETERS = ("weights", "means", "scales", "zero_prob")
SUMMARY_COLUMNS = (
    "parameter", "variable", "segment", "feature", "mean", "sd", "hdi_low", "hdi_high",
    "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat",
)  # fmt: skip
# Figures the report writes; baseline.png comes from `segment baseline`, COMPARE_FIGURES from
# `segment compare` (shown when present).
REPORT_FIGURES = (
    "trace", "rank", "energy", "posterior_predictive", "prior_predictive",
    "profiles", "revenue", "assignment_uncertainty", "level_profiles", "local_dependence",
)  # fmt: skip
COMPARE_FIGURES = ("compare", "elpd_vs_bic", "khat")
# The earlier steps' CSVs the report reads: the columns it uses, and the step that writes them.
STEP_CSVS = {
    "baseline.csv": (READ_BACK, "segment baseline --out"),
    "comparison.csv": (CORE_COLUMNS, "segment compare --run"),
    "diagnostics.csv": (("K", "status", "reason"), "segment fit --out"),
}
# Units of the built-in datasets (a fit stores the dataset name, not its unit).
UNITS = {
    "marketing": "MNT, 2 years",
    "marketing-mixed": "MNT, 2 years",
    "dunnhumby-spend": "USD, 1 year",
    "dunnhumby-mixed": "USD, 1 year",
}


def is_true(value) -> bool:
    """A CSV cell read as a boolean (True, 1, yes)."""
    return str(value).strip().lower() in ("true", "1", "yes")


def read_step_output(paths: RunPaths, name: str) -> pd.DataFrame:
    """One of the :data:`STEP_CSVS` of the run directory (it exists), checked: InputError naming
    the file and its missing columns."""
    columns, step = STEP_CSVS[name]
    return read_step_csv(paths.root / name, columns, f"{step} {paths.root}")


def check_step_outputs(paths: RunPaths) -> None:
    """Read every :data:`STEP_CSVS` file present, so a damaged one is an error before the report
    writes anything."""
    for name in STEP_CSVS:
        if (paths.root / name).is_file():
            read_step_output(paths, name)


def reported_k(
    paths: RunPaths, k: int | None, comparison: pd.DataFrame | None = None
) -> tuple[int, str]:
    """The K to report and how it was chosen: ``k`` when given, else the ``comparison``
    table's chosen K (None: read from ``comparison.csv``); InputError when there is none."""
    fitted = fitted_ks(paths)
    if not fitted:
        raise InputError(f"{paths.fits_dir}: no fits found; run `segment fit --out {paths.root}`")
    if k is not None:
        if k not in fitted:
            raise InputError(
                f"--k {k}: no fit {paths.fit(k)} (fitted: {', '.join(map(str, fitted))})"
            )
        return k, "the --k option"
    how = "the comparison"
    if comparison is None:
        if not paths.comparison_csv.is_file():
            raise InputError(
                f"{paths.comparison_csv}: not found; run `segment compare --run {paths.root}` "
                "first or pass --k"
            )
        comparison, how = read_step_output(paths, "comparison.csv"), "comparison.csv"
    chosen = comparison.loc[comparison["chosen"].map(is_true), "K"]
    if len(chosen) > 1:
        raise InputError(f"{paths.comparison_csv}: {len(chosen)} rows with chosen == True")
    if len(chosen) == 0:
        return fallback_k(comparison, paths), FALLBACK
    chosen_k = int(chosen.iloc[0])
    if chosen_k not in fitted:
        raise InputError(f"{paths.comparison_csv}: chosen K = {chosen_k} has no fit file")
    return chosen_k, how


FALLBACK = "fallback: no fit passed its diagnostics, the comparison rule applied to all fits"


def fallback_k(comparison: pd.DataFrame, paths: RunPaths) -> int:
    """When no fit passed its diagnostics, the K the comparison rule picks among all fits.

    The smallest K whose elpd_loo is within RULE_SE x (SE of the difference) of the highest
    elpd_loo, the differences taken from ``comparison.csv`` when they are relative to that fit,
    else the SE of elpd_loo itself. The report marks the result as provisional.
    """
    table = comparison.dropna(subset=["elpd_loo"])
    if table.empty:
        raise InputError(f"{paths.comparison_csv}: no K chosen and no elpd_loo to fall back on")
    best = table.loc[table["elpd_loo"].idxmax()]
    difference = table["elpd_loo"] - best["elpd_loo"]
    relative = np.isclose(best.get("elpd_diff", np.nan), 0.0)
    spread = table["dse"] if relative and "dse" in table else table["se_loo"]
    within = table[difference >= -RULE_SE * spread.fillna(0.0)]
    k = int(within["K"].min())
    print(
        f"segment report: no fit passed its diagnostics; reporting K = {k} PROVISIONALLY "
        f"({FALLBACK}). Sample longer (e.g. --preset full) for a K you can rely on.",
        file=sys.stderr,
    )
    return k


def fitted_configs(paths: RunPaths) -> list[dict]:
    """The configuration of every fit in the run directory, sorted by K; InputError naming a
    fit file that cannot be read."""
    configs = [saved_attrs(path)["config"] for path in paths.fit_files()]
    return sorted(configs, key=lambda config: int(config["K"]))


def fitted_ks(paths: RunPaths) -> list[int]:
    """K of every fit in the run directory, sorted."""
    return [int(config["K"]) for config in fitted_configs(paths)]


def data_summary(tree: xr.DataTree) -> pd.DataFrame:
    """Per feature (and the total): customers with a value, exact-zero share, mean, median,
    max (units); missing values are left out (the total sums each customer's observed ones)."""
    spend = observed_spend(tree).round(6)  # the round trip through the transform is not exact
    spend["total"] = spend.sum(axis=1)
    present = spend.notna().sum()
    return pd.DataFrame(
        {
            "feature": spend.columns,
            "customers": present.to_numpy(),
            "zero_share": ((spend == 0).sum() / present).to_numpy(),
            "mean": spend.mean().to_numpy(),
            "median": spend.median().to_numpy(),
            "max": spend.max().to_numpy(),
        }
    )


def categorical_summary(tree: xr.DataTree) -> pd.DataFrame:
    """Per (variable, level) of a latent class fit: customers at that level and their share."""
    from analysis.inference.profiles import item_levels, level_shares

    indicators = tree["observed_data"]["x"]
    pairs = item_levels(tree)
    return pd.DataFrame(
        {
            "variable": [v for v, _ in pairs],
            "level": [level for _, level in pairs],
            "customers": indicators.sum("customer").values.round().astype(int),
            "share": level_shares(indicators, pairs).values,
        }
    )


def level_share_table(tree: xr.DataTree) -> pd.DataFrame:
    """Posterior predictive check of a latent class fit: per level, observed share of customers
    and the replicated share (mean and 94% HDI over posterior predictive data sets)."""
    import arviz as az

    from analysis.inference.profiles import answered, item_levels, level_shares

    pairs = item_levels(tree)
    observed_x = tree["observed_data"]["x"]
    observed = level_shares(observed_x, pairs)
    # replicated answers count only where the customer answered: the same customers per level
    replicated = (tree["posterior_predictive"]["x"] * answered(observed_x, pairs)).sum(
        "customer"
    ) / answered(observed_x, pairs).sum("customer")
    hdi = az.hdi(replicated, prob=HDI_PROB)
    table = pd.DataFrame(
        {
            "variable": [v for v, _ in pairs],
            "level": [level for _, level in pairs],
            "observed": observed.values,
            "replicated_mean": replicated.mean(("chain", "draw")).values,
            "replicated_hdi_low": hdi.sel(ci_bound="lower").values,
            "replicated_hdi_high": hdi.sel(ci_bound="upper").values,
        }
    )
    table["inside_hdi"] = table["observed"].between(
        table["replicated_hdi_low"], table["replicated_hdi_high"]
    )
    return table


def modal_segments_and_names(path: Path) -> tuple[pd.Series, dict[int, str]]:
    """Modal segment per customer and segment names of a saved fit, without loading all draws."""
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        modal = tree["assignments"]["modal_segment"].load()
        segments, _ = segment_profiles(tree)
    names = dict(zip(segments["segment"].astype(int), segments["name"], strict=True))
    return pd.Series(modal.values.astype(int), index=modal["customer"].values), names


def split_table(paths: RunPaths, ks: list[int]) -> pd.DataFrame:
    """Customers per (segment at K, segment at the next fitted K) for consecutive fitted K.

    Every combination is a row (zeros included). Columns K_from, segment_from, name_from, K_to,
    segment_to, name_to, customers; names as :func:`~analysis.inference.profiles.segment_names`
    gives them for that K's fit.
    """
    fitted = {k: modal_segments_and_names(paths.fit(k)) for k in ks}
    rows = []
    for k_from, k_to in itertools.pairwise(ks):
        (modal_from, names_from), (modal_to, names_to) = fitted[k_from], fitted[k_to]
        joined = pd.concat({"a": modal_from, "b": modal_to}, axis=1, join="inner")
        counts = joined.value_counts()
        for a in range(k_from):
            for b in range(k_to):
                rows.append(
                    {"K_from": k_from, "segment_from": a, "name_from": names_from.get(a, ""),
                     "K_to": k_to, "segment_to": b, "name_to": names_to.get(b, ""),
                     "customers": int(counts.get((a, b), 0))}
                )  # fmt: skip
    columns = ["K_from", "segment_from", "name_from", "K_to", "segment_to", "name_to", "customers"]
    return pd.DataFrame(rows, columns=columns)


def join_suggestion(pairs: pd.DataFrame, config: dict, root) -> str:
    """The command that refits with the joins the local-dependence check suggests
    (:func:`analysis.data.joins.suggested_joins`), keeping the fit's other joins, or "" when it
    suggests none. A csv fit's own column options cannot be read back from the fit, so for it
    the text names only the options to add."""
    from analysis.data.joins import join_options, suggested_joins
    from analysis.selection.compare import DATA_FILE_DATASETS

    suggested = suggested_joins(pairs, list(config["options"]["levels"]))
    if not suggested:
        return ""
    joined = {member for group in suggested for member in group}
    kept = [tuple(g) for g in config.get("joins", ()) if not set(g) & joined]
    options = join_options(kept + suggested)
    if config["dataset"] == "csv" and config.get("joins"):
        return f"rerun with {options} in place of this run's --join options"
    if config["dataset"] == "csv":
        return f"rerun with {options} added to this run's options"
    data = f" --data {config['source']}" if config["dataset"] in DATA_FILE_DATASETS else ""
    return f"segment run --dataset {config['dataset']}{data} {options} --out {root}-joined"


def settings_table(tree: xr.DataTree, chosen: int, how: str, configs, threshold: float):
    """(item, value) rows: what was fitted and how the report was made. The sampler rows are the
    chosen fit's; ``configs`` (every fit's configuration, :func:`fitted_configs`) add a "sampling
    by K" row when the fits were not all sampled alike."""
    config = fit_config(tree)
    provenance = json.loads(tree.attrs.get("segment_provenance", "{}"))
    transform = config["transform"]["name"]
    categorical = is_categorical(tree)
    kind = "categorical" if categorical else ("mixed" if is_mixed(tree) else "continuous")
    if kind == "mixed":
        tree = part_view(tree, "continuous")  # the rows on values and units are its spend's
    if categorical:
        values = "categories"
    elif holds_amounts(tree):
        values = "amounts"
    else:
        values = "measurements (negative values: no totals)"
    rows = {
        "dataset": config["dataset"],
        "source": config["source"],
        "data kind": kind,
        "values": values,
        "customers": tree["observed_data"].sizes["customer"],
        "unit": "categories" if categorical else UNITS.get(config["dataset"], "input units"),
        "categorical columns": ", ".join(config["options"].get("levels", {})) or "none",
        "model": config["model"],
        "transform": transform,
        "joined variables": ", ".join("+".join(g) for g in config.get("joins", ())) or "none",
        "options": json.dumps(config.get("options", {})),
        "priors": json.dumps(config.get("priors", {})),
        "K fitted": ", ".join(str(c["K"]) for c in configs),
        "diagnosed": ", ".join(MIXTURES[config["model"]].diagnosed),
        "K reported": chosen,
        "K chosen by": how,
        "chains": config["sampler"]["chains"],
        "tune": config["sampler"]["tune"],
        "draws": config["sampler"]["draws"],
        "seed": config["sampler"]["seed"],
        "sampler": config["sampler"]["sampler"],
        "backend": backend_of(config["sampler"]),
        "mass matrix": adaptation_of(config["sampler"]),
        "sampling by K": sampling_description(configs),
        "interval": f"{HDI_PROB:.0%} HDI (highest density interval) over posterior draws",
        "spend functional": "n/a" if categorical else FUNCTIONAL.get(transform, "model units"),
        "tier rule": TIER_RULE if not categorical and holds_amounts(tree) else "n/a (no amounts)",
        "precise threshold": threshold,
        "fit git commit": provenance.get("git_commit", "unknown"),
        "fit packages": json.dumps(provenance.get("versions", {})),
        "report written": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if len(sampling_settings(configs)) == 1:  # one setting for all K: the rows above say it
        del rows["sampling by K"]
    return pd.DataFrame({"item": list(rows), "value": list(rows.values())})


def parameter_summary(tree: xr.DataTree) -> pd.DataFrame:
    """ArviZ's summary (``az.summary``) of the fit's :data:`SUMMARY_PARAMETERS`.

    Parameters
    ----------
    tree : a fit (for a multimodal fit, the mode described:
    :func:`analysis.inference.fit.described_mode`).

    Returns
    -------
    pandas.DataFrame
        One row per element of each parameter (K weights; K x D means and scales, on the model
        scale, and zero probabilities), columns :data:`SUMMARY_COLUMNS`: ``parameter`` (e.g.
        ``means[1, Wines]``), its ``variable``, ``segment`` and ``feature`` (empty for a
        weight), posterior ``mean`` and ``sd``, the 94% HDI (``hdi_low``, ``hdi_high``), the
        Monte Carlo standard errors of the mean and sd, bulk and tail ESS and rank-normalized
        split R-hat; unrounded.
    """
    posterior = tree["posterior"]
    parts = []
    for name in (n for n in SUMMARY_PARAMETERS if n in posterior.data_vars):
        stats = az.summary(
            tree, var_names=[name], fmt="xarray", ci_kind="hdi", ci_prob=HDI_PROB, round_to="none"
        )[name]
        part = stats.to_series().unstack("summary").rename_axis(columns=None).reset_index()
        bound = f"hdi{int(HDI_PROB * 100)}"  # az.summary's column names
        part = part.rename(columns={f"{bound}_lb": "hdi_low", f"{bound}_ub": "hdi_high"})
        dims = [dim for dim in stats.dims if dim != "summary"]  # segment, then feature
        label = part[dims].astype(str).agg(", ".join, axis=1)
        part = part.assign(variable=name, parameter=name + "[" + label + "]")
        if "feature" not in part:
            part["feature"] = ""
        parts.append(part)
    return pd.concat(parts, ignore_index=True)[list(SUMMARY_COLUMNS)]


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)


def mode_table(modes: list[dict]) -> pd.DataFrame:
    """One row per mode of a multimodal fit (largest stacking weight first): its chains, stacking
    weight, mean log posterior density and mean weight of each segment."""
    return pd.DataFrame(
        [
            {
                "chains": ", ".join(map(str, mode["chains"])),
                "stacking_weight": mode["stacking_weight"],
                "mean_lp": mode["mean_lp"],
            }
            | {f"weight[{k}]": weight for k, weight in enumerate(mode["weights"])}
            for mode in modes
        ]
    )


def baseline_comparison(
    paths: RunPaths, tree: xr.DataTree, assignments, segments, chosen: int, how: str
) -> tuple[dict[str, pd.DataFrame], str]:
    """The latent class fit ``tree`` of K = ``chosen`` (chosen by ``how``) beside the baseline's
    BIC-K clusters (:func:`analysis.selection.baseline_clusters.compare_with_baseline`, from
    ``baseline.csv`` and ``comparison.csv``): ({:data:`CLASSES_VS_GMM`: ...,
    :data:`CLASSES_VS_GMM_SCORES`: ...} or {} when it cannot be made, the settings text that
    says what was compared or why not)."""
    from analysis.selection.baseline_clusters import compare_with_baseline

    steps = {
        name: read_step_output(paths, name) if (paths.root / name).is_file() else None
        for name in ("baseline.csv", "comparison.csv")
    }
    names = segments.set_index("segment")["name"]
    crosstab, scores, text = compare_with_baseline(
        tree, assignments, names, steps["baseline.csv"], steps["comparison.csv"], chosen, how
    )
    if crosstab is None:
        return {}, text
    return {CLASSES_VS_GMM: crosstab, CLASSES_VS_GMM_SCORES: scores}, text


def write_outputs(
    paths: RunPaths, chosen: int, how: str, threshold: float = PRECISE_THRESHOLD, progress=None
) -> None:
    """Write every table in :data:`TABLES` and the report figures for the chosen K."""

    def say(message: str) -> None:
        if progress is not None:
            print(f"report: {message}", file=progress, flush=True)

    say(f"loading {paths.fit(chosen)}")
    every_chain = load_fit(paths.fit(chosen))
    tree = described_mode(every_chain)  # a multimodal fit: its mode of largest stacking weight
    configs = fitted_configs(paths)
    ks = [int(config["K"]) for config in configs]
    segments, profiles = segment_profiles(tree)
    assignments = assignment_table(tree, segments.set_index("segment")["tier"], threshold)
    segments = segments.merge(segment_counts(assignments, segments["segment"]), on="segment")
    categorical = is_categorical(tree)
    mixed = is_mixed(tree)
    # a mixed fit: its spend is described as a continuous fit, its answers as a latent class fit
    spend_tree = part_view(tree, "continuous") if mixed else tree
    answer_tree = part_view(tree, "categorical") if mixed else tree
    tables = {
        "profiles.csv": profiles,
        "assignments.csv": assignments,
        SEGMENTS: segments,
        DATA_SUMMARY: categorical_summary(tree) if categorical else data_summary(spend_tree),
        SPLITS: split_table(paths, ks),
        SETTINGS: settings_table(tree, chosen, how, configs, threshold),
        PARAMETER_SUMMARY: parameter_summary(tree),
    }
    modes = saved_attrs(paths.fit(chosen))["diagnostics"]["modes"]
    if "stacking_weight" in modes[0]:  # a multimodal fit
        tables[MODES] = mode_table(modes)
    if categorical or mixed:
        from analysis.inference.local_dependence import local_dependence

        tables[LEVEL_SHARES] = level_share_table(answer_tree)
        tables[LOCAL_DEPENDENCE], tables[LOCAL_DEPENDENCE_CELLS] = local_dependence(answer_tree)
        suggestion = join_suggestion(tables[LOCAL_DEPENDENCE], fit_config(tree), paths.root)
        row = pd.DataFrame({"item": ["suggested joins"], "value": [suggestion or "none"]})
        tables[SETTINGS] = pd.concat([tables[SETTINGS], row], ignore_index=True)
    if categorical:
        compared, text = baseline_comparison(paths, tree, assignments, segments, chosen, how)
        tables |= compared
        row = pd.DataFrame({"item": ["baseline clusters"], "value": [text]})
        tables[SETTINGS] = pd.concat([tables[SETTINGS], row], ignore_index=True)
    if mixed:
        names = segments.set_index("segment")["name"]
        answers = level_profiles(tree)
        tables[LEVEL_PROFILES] = answers.assign(name=names.reindex(answers["segment"]).to_numpy())
        tables[ANSWER_SUMMARY] = categorical_summary(answer_tree)
    if not categorical and holds_amounts(spend_tree):  # no zero spend share for measurements
        from analysis.reporting.predictive_checks import zero_share_table

        tables[ZERO_SHARE] = zero_share_table(spend_tree, fit_transform_of(tree)).reset_index()
    for name in TABLES:  # a table this kind of fit does not have must not linger from before
        if name not in tables:
            (paths.root / name).unlink(missing_ok=True)
    for name, frame in tables.items():
        write_csv(frame, paths.root / name)
    say("tables written: " + ", ".join(tables))

    config = fit_config(tree)
    paths.figures_dir.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FIGURES:
        paths.figure(name).unlink(missing_ok=True)
    if LOCAL_DEPENDENCE in tables:
        figure = figures.local_dependence_figure(
            tables[LOCAL_DEPENDENCE], list(config["options"]["levels"])
        )
        plotting.save(figure, paths.figure("local_dependence"))
    if categorical:
        plotting.save(figures.class_profiles_figure(profiles), paths.figure("profiles"))
    else:
        unit = UNITS.get(config["dataset"], "input units")
        log = config["transform"]["name"] == "log-standardize"
        amounts = holds_amounts(spend_tree)
        functional = "implied mean spend" if log else ("mean spend" if amounts else "mean")
        figure = figures.profiles_figure(profiles, unit, functional, amounts)
        plotting.save(figure, paths.figure("profiles"))
        if amounts:
            plotting.save(figures.revenue_figure(segments), paths.figure("revenue"))
    if mixed:
        figure = figures.class_profiles_figure(tables[LEVEL_PROFILES], "segment")
        plotting.save(figure, paths.figure("level_profiles"))
    names = segments.set_index("segment")["name"]
    plotting.save(
        figures.uncertainty_figure(assignments, names, threshold),
        paths.figure("assignment_uncertainty"),
    )
    say("profile and assignment figures written")
    diagnosed = [v for v in MIXTURES[config["model"]].diagnosed if v in tree["posterior"]]
    with atomic_path(paths.figure("trace")) as trace, atomic_path(paths.figure("rank")) as rank:
        figures.trace_rank_figures(every_chain["posterior"], diagnosed, trace, rank)
    with atomic_path(paths.figure("energy")) as energy:
        figures.energy_figure(every_chain["sample_stats"], energy)
    say("trace, rank and energy figures written")
    if not categorical:
        from analysis.reporting.predictive_checks import predictive_figure

        for group in ("posterior_predictive", "prior_predictive"):
            if group in tree.children:
                plotting.save(predictive_figure(spend_tree, group), paths.figure(group))
        say("predictive check figures written")

"""Report figures: profiles, revenue concentration, assignment uncertainty and MCMC diagnostics.

The profile, revenue and uncertainty figures are drawn from the CSV tables the report writes
(``profiles.csv``, ``segments.csv``, ``assignments.csv``), so a figure shows exactly the numbers
in its table. The MCMC figures (trace, rank, energy) are ArviZ 1.x ``PlotCollection`` objects on
the matplotlib backend, saved with ``PlotCollection.savefig``. Every interval drawn is a 94% HDI.
"""

from __future__ import annotations

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import xarray as xr

from analysis.inference.diagnostics import convergence
from analysis.inference.local_dependence import FLAG_BELOW
from analysis.paths import atomic_path
from analysis.plotting import DPI, segment_label

N_WORST = 8  # parameters shown in the trace and rank plots


def spend_axis(axis, low: float, high: float) -> None:
    """Symmetric-log x axis for spend: linear below 1 unit (so a segment at 0 stays visible),
    logarithmic above; ticks at 1-2-5 steps over two decades or less, else at powers of 10."""
    axis.set_xscale("symlog", linthresh=1.0, linscale=0.25)
    high = max(high, 1.0)
    decades = np.arange(0, int(np.ceil(np.log10(high))) + 1)
    steps = (1, 2, 5) if np.log10(high / max(low, 1.0)) <= 2 else (1,)
    ticks = [s * 10.0**d for d in decades for s in steps]
    ticks = [t for t in ticks if max(low, 1.0) / 2.5 <= t <= high * 2.5]
    if low < 1:  # 0 joins the ticks; 1 and 2 would crowd it once the axis spans decades
        ticks = [0.0, *(t for t in ticks if t >= 5 or high < 50)]
    axis.set_xticks(ticks)
    axis.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:,.6g}"))
    axis.xaxis.set_minor_locator(mticker.NullLocator())
    axis.set_xlim(left=0 if low < 1 else low / 1.5, right=high * 1.5)


def finish_panels(figure, axes, n_used: int, title: str, tight: bool = True):
    """Hide the grid's unused panels, add the title, lay out; returns the figure."""
    for axis in list(axes.flat)[n_used:]:
        axis.set_visible(False)
    figure.suptitle(title, fontsize=10)
    if tight:
        figure.tight_layout()
    return figure


def profiles_figure(profiles: pd.DataFrame, unit: str, functional: str, amounts: bool = True):
    """Forest plot: per feature (panel) and segment (row) mean spend with its 94% HDI.

    ``profiles`` has the columns of ``profiles.csv``. Dashed line: the model-implied population
    mean. For ``amounts`` (spend) the last panel is total spend and the x axis is logarithmic
    above 1, so small segments' intervals stay visible; measurements (negative values) get a
    linear axis and no total.
    """
    features = list(dict.fromkeys(profiles["feature"]))
    segments = profiles.drop_duplicates("segment").sort_values("segment")
    labels = [
        segment_label(s, n) for s, n in zip(segments["segment"], segments["name"], strict=True)
    ]
    panels = [*features, "total"] if amounts else features
    columns = min(4, len(panels))
    rows = int(np.ceil(len(panels) / columns))
    height = max(2.0, 0.32 * len(segments) + 1.2)
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.6 * columns + 1.2, height * rows), squeeze=False, sharey=True
    )
    y = np.arange(len(segments))[::-1]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, panel in zip(axes.flat, panels, strict=False):
        if panel == "total":
            table = segments
            mean, low, high = "total_spend", "total_spend_hdi_low", "total_spend_hdi_high"
            reference = float((segments["weight"] * segments["total_spend"]).sum())
            title = "total (sum of features)"
        else:
            table = profiles[profiles["feature"] == panel].sort_values("segment")
            mean, low, high = "mean_spend", "mean_spend_hdi_low", "mean_spend_hdi_high"
            reference = float(table["implied_population_mean"].iloc[0])
            title = panel
        for row, (_, values) in enumerate(table.iterrows()):
            color = colors[row % len(colors)]
            axis.plot([values[low], values[high]], [y[row]] * 2, color=color, lw=2.2)
            axis.plot(values[mean], y[row], "o", color=color, ms=5)
        axis.axvline(reference, color="grey", ls="--", lw=1)
        if amounts:
            spend_axis(axis, float(table[low].min()), float(table[high].max()))
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3, axis="x")
        axis.tick_params(labelsize=8)
    for axis in axes[:, 0]:
        axis.set_yticks(y, labels, fontsize=9)
    return finish_panels(
        figure,
        axes,
        len(panels),
        f"Segment profiles: {functional} ({unit}), posterior mean and 94% HDI; "
        "dashed = model-implied population mean" + ("; log scale above 1" if amounts else ""),
    )


def class_profiles_figure(profiles: pd.DataFrame, label: str = "class"):
    """Latent classes: per variable (panel) and level (row), each class's probability of the level
    with its 94% HDI (one colour per class), and the population share (grey cross).

    ``profiles`` has the columns of a categorical ``profiles.csv``; ``label`` names what a row
    of colour is ("class", or "segment" for a mixed fit's answers).
    """
    variables = list(dict.fromkeys(profiles["variable"]))
    segments = profiles.drop_duplicates("segment").sort_values("segment")
    n_classes = len(segments)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    columns = min(3, len(variables))
    rows = int(np.ceil(len(variables) / columns))
    n_levels = profiles.groupby("variable", sort=False)["level"].nunique().reindex(variables)
    row_levels = [int(n_levels.iloc[r * columns : (r + 1) * columns].max()) for r in range(rows)]
    per_level = 0.12 * max(n_classes, 2) + 0.1
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(5.0 * columns, sum(per_level * n + 0.9 for n in row_levels) + 0.8),
        squeeze=False,
        gridspec_kw={"height_ratios": [per_level * n + 0.9 for n in row_levels]},
        layout="constrained",
    )
    offsets = (np.arange(n_classes) - (n_classes - 1) / 2) * min(0.8 / n_classes, 0.2)
    for axis, variable in zip(axes.flat, variables, strict=False):
        block = profiles[profiles["variable"] == variable]
        levels = list(dict.fromkeys(block["level"]))
        y = np.arange(len(levels))[::-1]
        for position, (_, segment) in enumerate(segments.iterrows()):
            rows_k = block[block["segment"] == segment["segment"]].set_index("level").loc[levels]
            color = colors[position % len(colors)]
            level_y = y - offsets[position]
            axis.hlines(level_y, rows_k["probability_hdi_low"], rows_k["probability_hdi_high"],
                        color=color, lw=2)  # fmt: skip
            axis.plot(rows_k["probability"], level_y, "o", color=color, ms=4,
                      label=segment_label(segment["segment"], segment["name"]))  # fmt: skip
        shares = block.drop_duplicates("level").set_index("level").loc[levels, "population_share"]
        axis.plot(shares, y, "x", color="grey", ms=7, mew=1.5, label="population share")
        axis.set_yticks(y, levels, fontsize=8)
        axis.set_xlim(0, 1)
        axis.set_title(variable, fontsize=10)
        axis.grid(alpha=0.3, axis="x")
        axis.tick_params(axis="x", labelsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3),
                  fontsize=9, frameon=False)  # fmt: skip
    return finish_panels(
        figure,
        axes,
        len(variables),
        f"{'Latent classes' if label == 'class' else 'Answers per segment'}: probability of "
        f"each level per {label}, posterior mean and 94% HDI",
        tight=False,  # the figure uses a constrained layout for the legend outside
    )


def local_dependence_figure(pairs: pd.DataFrame, variables: list[str]):
    """Pairs heatmap of the local-dependence check (lower triangle, one cell per pair).

    ``pairs`` has the columns of ``local_dependence.csv``; ``variables`` gives the axis order.
    Colour: observed / replicated Pearson chi-square (``chi2_ratio``, log scale, 1 = as the model
    replicates it); label: the ratio and the posterior predictive p-value; a flagged pair is
    starred and outlined.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    n = len(variables)
    ratio = np.full((n - 1, n - 1), np.nan)
    size = (max(1.1 * n + 2.5, 8.0), max(0.9 * n + 1.5, 5.0))
    figure, axis = plt.subplots(figsize=size, layout="constrained")
    cells = []
    for _, pair in pairs.iterrows():
        row, column = variables.index(pair["variable_b"]) - 1, variables.index(pair["variable_a"])
        ratio[row, column] = pair["chi2_ratio"]
        cells.append((row, column, pair))
    norm = LogNorm(vmin=1, vmax=max(10.0, np.nanmax(ratio)), clip=True)
    image = axis.imshow(np.ma.masked_invalid(ratio), cmap="Reds", norm=norm)
    for row, column, pair in cells:
        star = "*" if pair["flagged"] else ""
        dark = norm(pair["chi2_ratio"]) > 0.6
        p = f"p={pair['p_value']:.2f}" if pair["p_value"] else f"p<{1 / pair['draws']:.2g}"
        axis.text(column, row, f"{pair['chi2_ratio']:.1f}x{star}\n{p}",
                  ha="center", va="center", fontsize=8, color="white" if dark else "black",
                  fontweight="bold" if star else "normal")  # fmt: skip
        if pair["flagged"]:
            axis.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, lw=2))
    labels = [v.replace("+", "+\n") for v in variables]  # a joint variable a+b+c, one per line
    axis.set_xticks(range(n - 1), labels[:-1], rotation=35, ha="right", fontsize=9)
    axis.set_yticks(range(n - 1), labels[1:], fontsize=9)
    axis.spines[:].set_visible(False)
    bar = figure.colorbar(image, ax=axis, shrink=0.8, label="observed / replicated chi-square")
    bar.set_ticks([t for t in (1, 2, 5, 10, 20, 50, 100, 200) if t <= norm.vmax])
    bar.ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    bar.ax.yaxis.set_minor_formatter(mticker.NullFormatter())
    axis.set_title(
        "Local dependence: Pearson chi-square of each two-way table, observed / replicated\n"
        f"(* outlined: posterior predictive p < {FLAG_BELOW}: the classes do not reproduce it)",
        fontsize=10,
    )
    return figure


def revenue_figure(segments: pd.DataFrame):
    """Share of customers (segment weight) beside share of revenue per segment, 94% HDIs."""
    segments = segments.sort_values("segment")
    labels = [
        segment_label(s, n) for s, n in zip(segments["segment"], segments["name"], strict=True)
    ]
    y = np.arange(len(segments))[::-1]
    figure, axis = plt.subplots(figsize=(8.5, max(2.4, 0.55 * len(segments) + 1.2)))
    for offset, (quantity, label, color) in enumerate(
        (("weight", "share of customers (weight)", "C0"),
         ("revenue_share", "share of revenue", "C3"))
    ):  # fmt: skip
        values = segments[quantity].to_numpy()
        errors = np.vstack(
            [
                values - segments[f"{quantity}_hdi_low"].to_numpy(),
                segments[f"{quantity}_hdi_high"].to_numpy() - values,
            ]
        )
        axis.barh(
            y + 0.2 - 0.4 * offset,
            values,
            height=0.38,
            color=color,
            alpha=0.8,
            xerr=errors,
            capsize=3,
            label=label,
        )
    axis.set_yticks(y, labels, fontsize=9)
    axis.set_xlabel("share (posterior mean, bars: 94% HDI)")
    axis.xaxis.set_major_formatter(mticker.PercentFormatter(1.0))
    axis.grid(alpha=0.3, axis="x")
    axis.legend(loc="lower right", fontsize=8)
    axis.set_title("Revenue concentration by segment", fontsize=10)
    figure.tight_layout()
    return figure


def uncertainty_figure(assignments: pd.DataFrame, names: pd.Series, threshold: float):
    """Histograms of the modal segment's membership probability: posterior mean, lower HDI bound.

    Stacked by modal segment; the dotted line is the ``precise`` threshold on the lower bound.
    """
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True)
    bins = np.linspace(0, 1, 41)
    segments = sorted(assignments["segment"].unique())
    for axis, column, title in (
        (axes[0], "probability", "membership probability of the modal segment (posterior mean)"),
        (axes[1], "probability_hdi_low", "lower bound of its 94% HDI"),
    ):
        stacks = [assignments.loc[assignments["segment"] == k, column] for k in segments]
        axis.hist(
            stacks,
            bins=bins,
            stacked=True,
            label=[segment_label(k, names.get(k, "")) for k in segments],
        )
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("probability")
        axis.grid(alpha=0.3)
    axes[1].axvline(threshold, color="black", ls=":", lw=1.5)
    precise = int((assignments["probability_hdi_low"] >= threshold).sum())
    axes[1].text(
        threshold - 0.01,
        0.97,
        f"precise (>= {threshold:g}) →",
        transform=axes[1].get_xaxis_transform(),
        ha="right",
        va="top",
        fontsize=8,
    )
    axes[0].set_ylabel("customers")
    axes[0].legend(fontsize=8, loc="upper left")
    figure.suptitle(
        f"Assignment uncertainty: {precise} of {len(assignments)} customers precise", fontsize=10
    )
    figure.tight_layout()
    return figure


def worst_parameters(posterior: xr.DataTree | xr.Dataset, variables, n: int = N_WORST):
    """The ``n`` scalar parameters with the highest R-hat as a flat Dataset (chain, draw).

    Variables are named like ``means[2]`` + newline + ``MntWines`` (segment, then the other
    coordinates one per line) so the panels say which element they show; "/" is shown as the
    division slash.
    """
    posterior = posterior.to_dataset() if isinstance(posterior, xr.DataTree) else posterior
    rhat = convergence(posterior[list(variables)], "rhat")
    candidates = []
    for name in variables:
        series = rhat[name].to_series() if rhat[name].ndim else pd.Series([float(rhat[name])])
        for key, value in series.items():
            candidates.append((float(value), name, key if isinstance(key, tuple) else (key,)))
    candidates.sort(key=lambda c: -np.nan_to_num(c[0], nan=np.inf))
    chosen = {}
    for _, name, key in candidates[:n]:
        variable = posterior[name]
        dims = [d for d in variable.dims if d not in ("chain", "draw")]
        selection = dict(zip(dims, key, strict=True)) if dims else {}
        # "means[1]" over "MntWines": long level names stay inside their panel; a DataTree
        # variable name may not hold "/" (a level "N/A", a joint level "2 / 2 Adults Kids / 1")
        label = f"{name}[{key[0]}]" + "".join(f"\n{v}" for v in key[1:]) if dims else name
        label = label.replace("/", "\N{DIVISION SLASH}")
        chosen[label] = variable.sel(selection).drop_vars(list(selection), errors="ignore")
    return xr.Dataset(chosen)


def _save_collection(collection, path, dpi: int = DPI) -> None:
    """An ArviZ PlotCollection as PNG, written atomically (``analysis.paths.atomic_path``)."""
    with atomic_path(path) as temporary:
        collection.savefig(temporary, dpi=dpi, format="png")
    plt.close("all")


def trace_rank_figures(posterior, variables, trace_path, rank_path) -> list[str]:
    """ArviZ trace and rank plots of the :data:`N_WORST` parameters with the highest R-hat."""
    flat = worst_parameters(posterior, variables)
    tree = xr.DataTree.from_dict({"posterior": flat})
    rows = int(np.ceil(len(flat.data_vars) / 4))
    figure_kwargs = {"figsize": (13, 2.6 * rows + 0.4), "layout": "constrained"}
    title = {"title": {"size": 9}}
    trace = az.plot_trace(
        tree, backend="matplotlib", figure_kwargs=dict(figure_kwargs), visuals=dict(title)
    )
    _save_collection(trace, trace_path)
    rank = az.plot_rank(
        tree, backend="matplotlib", figure_kwargs=dict(figure_kwargs), visuals=dict(title)
    )
    _save_collection(rank, rank_path)
    return list(flat.data_vars)


def energy_figure(sample_stats, path) -> None:
    """ArviZ energy plot (marginal vs transition energy, with E-BFMI per chain)."""
    sample_stats = (
        sample_stats.to_dataset() if isinstance(sample_stats, xr.DataTree) else sample_stats
    )
    tree = xr.DataTree.from_dict({"sample_stats": sample_stats[["energy"]]})
    collection = az.plot_energy(
        tree, backend="matplotlib", figure_kwargs={"figsize": (7, 3.2), "layout": "constrained"}
    )
    _save_collection(collection, path)

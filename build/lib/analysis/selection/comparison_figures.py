"""The comparison figures: ArviZ's compare and Pareto-k plots, and elpd and BIC against K."""

from __future__ import annotations

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.inference.diagnostics import CHOOSABLE
from analysis.selection.yardstick import HELDOUT_LABEL

COMPARE_DPI = 110


def plot_compare_figure(compared: pd.DataFrame, title: str):
    """ArviZ's comparison plot (elpd_diff ± dse against the best ok fit) as a matplotlib figure."""
    plot = az.plot_compare(compared, backend="matplotlib")
    figure = plot.get_viz("figure")
    axis = figure.axes[0]
    axis.set_title(f"{title}\nelpd_loo difference from the best fit that passed diagnostics "
                   "(± 1 dse; higher is better)", fontsize=10)  # fmt: skip
    return figure


def plot_khat_figure(psis, k: int, title: str, method: str = "psis"):
    """ArviZ's Pareto-k plot of one fit's plain PSIS-LOO (before moment matching or K-fold).

    Lines at 0, the threshold and 1, the count of customers in each band on the right, and the
    customer ID beside every point above the threshold.
    """
    plot = az.plot_khat(
        psis,
        threshold=psis.good_k,
        bin_format="{count}",
        visuals={"hlines": {}, "bin_text": {}, "khat": {"alpha": 0.5}},
        figure_kwargs={"figsize": (10, 4.5)},
        backend="matplotlib",
    )
    figure = plot.get_viz("figure")
    axis = figure.axes[0]
    axis.set_title(
        f"{title}, K={k}: plain PSIS-LOO Pareto k per customer "
        f"(the table's estimate: {method})\n"
        f"(labels: customer ID above k = {psis.good_k:.2f}; numbers on the right: customers "
        "per band)",
        fontsize=10,
    )
    axis.set_xlabel("customer (data order)")
    # room left of the first customer, so a label centred on it clears the y tick labels
    axis.set_xlim(left=-0.04 * psis.pareto_k.size)
    return figure


def _draw_elpd(
    axis, table: pd.DataFrame, model: str, heldout_label: str, labels: bool = True
) -> None:
    """elpd_loo ± SE (ok fits joined, failed ones as grey crosses), WAIC, GMM held-out."""
    ks = table["K"].to_numpy()
    ok = table["status"].isin(CHOOSABLE).to_numpy()
    unreliable = ~table["loo_reliable"].astype(bool).to_numpy()

    def label(text):
        return text if labels else None

    elpd = table["elpd_loo"].to_numpy()
    axis.plot(ks, np.where(ok, elpd, np.nan), "-", color="C0")  # joins consecutive ok K only
    axis.errorbar(ks[ok], elpd[ok], yerr=table["se_loo"][ok], fmt="o", ms=5,
                  capsize=3, color="C0",
                  label=label(f"Bayesian {model}: elpd_loo ± 1 SE"))  # fmt: skip
    if (~ok).any():
        axis.errorbar(ks[~ok], table["elpd_loo"][~ok], yerr=table["se_loo"][~ok], fmt="x",
                      ms=8, capsize=3, color="grey",
                      label=label("fit failed diagnostics (never chosen)"))  # fmt: skip
    axis.plot(ks + 0.12, table["elpd_waic"], "s", ms=4, mfc="none", color="C2",
              label=label("elpd_waic"))  # fmt: skip
    if table["gmm_heldout_elpd"].notna().any():
        axis.errorbar(ks - 0.12, table["gmm_heldout_elpd"], yerr=table["gmm_heldout_se"],
                      fmt="^--", ms=5, capsize=3, color="C1",
                      label=label(f"{heldout_label} ± 1 SE"),
                      )  # fmt: skip
    if unreliable.any():
        axis.plot(ks[unreliable], table["elpd_loo"][unreliable], "o", ms=12, mfc="none",
                  color="red", label=label("elpd_loo unreliable (Pareto k)"))  # fmt: skip


def _draw_bic(axis, table: pd.DataFrame, labels: bool = True) -> None:
    known = table.dropna(subset=["bic"])
    if known.empty:
        return
    spread = known["bic_spread"].to_numpy()
    axis.errorbar(known["K"], known["bic"], yerr=[np.zeros_like(spread), spread], fmt="o-",
                  ms=5, capsize=3, color="C3",
                  label="scikit-learn GMM: best BIC over seeds (bar up to the worst seed)"
                  if labels else None)  # fmt: skip


def _zoom(axis, table: pd.DataFrame, columns: list[str], draw, where) -> None:
    """An inset on K >= the third K when the first K values dwarf the rest (< 1/4 of the span)."""
    ks = sorted(table["K"])
    if len(ks) < 5:
        return
    values = table[columns].to_numpy(dtype=float)
    tail = table[table["K"] >= ks[2]][columns].to_numpy(dtype=float)
    span, tail_span = np.nanmax(values) - np.nanmin(values), np.nanmax(tail) - np.nanmin(tail)
    if not (span > 0 and tail_span < span / 4):
        return
    inset = axis.inset_axes(where)
    draw(inset, table[table["K"] >= ks[2]])
    inset.set_xticks(ks[2:])
    inset.tick_params(labelsize=7)
    inset.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    inset.grid(alpha=0.3)
    inset.set_title(f"zoom: K >= {ks[2]}", fontsize=8)


def plot_elpd_and_bic(
    table: pd.DataFrame,
    chosen: int | None,
    bic_k: int | None,
    title: str,
    model: str = "GMM",
    heldout_label: str = HELDOUT_LABEL["continuous"],
):
    """Left: elpd_loo ± SE (and WAIC, GMM held-out) against K. Right: BIC against K.

    When the first K values dwarf the rest, each panel gets an inset on K >= the third K. The
    legends sit under the panels so they never hide a point.
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.6))
    ks = table["K"].to_numpy()
    _draw_elpd(left, table, model, heldout_label)
    if chosen is not None:
        left.axvline(chosen, color="C0", lw=1, ls=":", label=f"chosen by the LOO rule: K={chosen}")
    _zoom(left, table, ["elpd_loo", "gmm_heldout_elpd"],
          lambda axis, part: _draw_elpd(axis, part, model, heldout_label, labels=False),
          (0.45, 0.08, 0.52, 0.5))  # fmt: skip
    left.set_title(
        "elpd (higher is better)\nbars: ± 1 SE of each elpd; K are compared by elpd_diff ± dse "
        "(compare.png), which is much smaller",
        fontsize=10,
    )
    left.set_ylabel("log density summed over customers")
    if bic_k is not None:
        right.axvline(bic_k, color="C3", lw=1, ls=":", label=f"BIC choice: K={bic_k}")
    _draw_bic(right, table)
    _zoom(right, table, ["bic"], lambda axis, part: _draw_bic(axis, part, labels=False),
          (0.45, 0.42, 0.52, 0.5))  # fmt: skip
    right.set_title("BIC (lower is better)")
    thousands = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:,.0f}")
    for axis in (left, right):
        axis.set_xlabel("K (segments)")
        axis.set_xticks(ks)
        axis.yaxis.set_major_formatter(thousands)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
                    frameon=False)  # fmt: skip
    figure.suptitle(title)
    figure.tight_layout()
    return figure

"""The comparison table as text: aligned columns for the terminal and ``comparison.md``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.inference.diagnostics import CHOOSABLE
from analysis.paths import atomic_path
from analysis.selection.decision import decision_lines
from analysis.selection.waic import P_WAIC_I_WARN
from analysis.selection.yardstick import HELDOUT_MEANING

OUTSIDE_COLUMNS = ("elpd_outside", "se_outside", "n_outside", "outside_diff", "outside_dse")


def shown_columns(table: pd.DataFrame, columns) -> list[str]:
    """``columns`` present in ``table``, without :data:`OUTSIDE_COLUMNS` when no fit was on a
    subsample (all NaN): what the printed, markdown and HTML comparison tables show."""
    return [
        c
        for c in columns
        if c in table.columns and not (c in OUTSIDE_COLUMNS and table[c].isna().all())
    ]


def _fmt(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:,.{digits}f}"
    return str(value)


PRINTED_COLUMNS = (
    "K", "status", "elpd_loo", "se_loo", "p_loo", "elpd_diff", "dse", "weight", "loo_method",
    "pareto_k_bad", "pareto_k_remaining", "elpd_waic", "se_waic", "gmm_heldout_elpd",
    "elpd_outside", "bic",
    "bic_spread", "chosen", "bic_chosen",
)  # fmt: skip


def printable(table: pd.DataFrame) -> str:
    """The main columns as aligned text for the terminal."""
    shown = table[shown_columns(table, PRINTED_COLUMNS)].copy()
    for column in ("chosen", "bic_chosen"):
        shown[column] = shown[column].map({True: "<==", False: ""})
    digits = {"weight": 3, "bic": 0, "bic_spread": 0}
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            places = digits.get(column, 1)
            shown[column] = shown[column].map(
                lambda v, p=places: "-" if np.isnan(v) else f"{v:,.{p}f}"
            )
    return shown.to_string(index=False)


MARKDOWN_COLUMNS = (
    ("K", 0), ("status", 0), ("chosen", 0), ("elpd_loo", 1), ("se_loo", 1), ("p_loo", 1),
    ("elpd_diff", 1), ("dse", 1), ("weight", 3), ("weight_pbma", 3), ("loo_method", 0),
    ("pareto_k_bad", 0), ("pareto_k_very_bad", 0), ("pareto_k_remaining", 0), ("elpd_waic", 1),
    ("se_waic", 1), ("gmm_heldout_elpd", 1), ("heldout_diff", 1), ("heldout_dse", 1),
    ("elpd_outside", 1), ("se_outside", 1), ("outside_diff", 1), ("outside_dse", 1),
    ("bic", 0), ("aic", 0), ("icl", 0),
    ("bic_spread", 0), ("bic_chosen", 0),
)  # fmt: skip


def markdown_table(table: pd.DataFrame, columns=MARKDOWN_COLUMNS) -> str:
    shown = shown_columns(table, [c for c, _ in columns])
    present = [(c, d) for c, d in columns if c in shown]
    header = "| " + " | ".join(c for c, _ in present) + " |"
    rule = "|" + "|".join("---" if c in ("status", "loo_method") else "---:" for c, _ in present)
    lines = [header, rule + "|"]
    for _, row in table.iterrows():
        cells = []
        for column, digits in present:
            value = row[column]
            if column in ("chosen", "bic_chosen"):
                cells.append("**yes**" if value else "")
            elif digits == 0 and isinstance(value, (float, np.floating)) and not np.isnan(value):
                cells.append(f"{value:,.0f}")
            else:
                cells.append(_fmt(value, digits))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(path, table, context: dict, notes: list[str], figures: dict) -> None:
    rule_lines = decision_lines(table)
    thresholds = ", ".join(f"{t:.2f}" for t in sorted(table["k_threshold"].unique()))
    failed = table[table["status"] != "ok"]  # stacked fits too: their modes are listed
    handled = table[table["loo_method"] != "psis"]
    flagged = table[table["loo_note"].astype(str) != ""]
    lines = [
        f"# Choosing K: {context['title']}",
        "",
        f"Run directory `{context['run_dir']}`: {context['description']}",
        "",
        "## Decision",
        "",
        *[f"- {line}" for line in rule_lines],
        "",
        "## Comparison table",
        "",
        markdown_table(table),
        "",
        "elpd values are natural-log predictive densities summed over customers on the model "
        "scale (higher is better); SE and dse are standard errors (normal approximation, ±1 SE). "
        "elpd_diff and dse are against the best fit that passed diagnostics. weight: stacking; "
        "weight_pbma: Bayesian-bootstrap pseudo-BMA; both over the fits that passed diagnostics. "
        "pareto_k_bad counts customers whose plain PSIS Pareto k is above the threshold "
        f"(k_threshold: {thresholds}), pareto_k_very_bad those of them above 1; "
        "pareto_k_remaining counts those still above the threshold in the estimate used "
        "(loo_method; 0 means that estimate is reliable). bic, aic, icl: best (lowest) over EM "
        "seeds; bic_spread: max - min BIC over seeds. "
        "gmm_heldout_elpd: "
        + (
            f"{HELDOUT_MEANING[context['heldout_kind']]}; heldout_diff = elpd_loo - "
            "gmm_heldout_elpd (positive: the Bayesian fit predicts held-out customers better) "
            "with its paired SE heldout_dse."
            if context["heldout"]
            else "not computed."
        ),
        "",
        "## Pareto k and the LOO estimate each row uses",
        "",
    ]
    if handled.empty and flagged.empty:
        lines.append(
            "Every fit's PSIS-LOO has all Pareto k at or below the threshold: plain PSIS-LOO."
        )
    for _, row in table.iterrows():
        if row["loo_method"] == "psis" and not row["loo_note"]:
            continue
        lines.append(
            f"- K={int(row['K'])}: {int(row['pareto_k_bad'])} "
            f"customer(s) above k = {row['k_threshold']:.2f} in plain PSIS "
            f"(elpd_psis {row['elpd_psis']:,.1f}); estimate used: {row['loo_method']} "
            f"(elpd_loo {row['elpd_loo']:,.1f}); "
            + ("reliable" if row["loo_reliable"] else "**UNRELIABLE**")
            + (f"; {row['loo_note']}" if row["loo_note"] else "")
            + "."
        )
    lines += ["", "## Fits that did not pass diagnostics", ""]
    if failed.empty:
        lines.append("None: every fit passed (R-hat, ESS, divergences, E-BFMI).")
    for _, row in failed.iterrows():
        use = (
            "compared by its chain-stacked elpd"
            if row["status"] in CHOOSABLE
            else "listed, never chosen"
        )
        lines.append(f"- K={int(row['K'])} ({row['status']}): {row['diagnostics_reason']} ({use}).")
    waic_warned = table[table["waic_p_over_0_4"] > 0]
    lines += ["", "## WAIC", ""]
    lines.append(
        "elpd_waic = lppd - p_waic with SE = sqrt(n) x sd of the pointwise values "
        "(analysis/selection/waic.py). "
        + (
            "Customers with p_waic_i > 0.4, where WAIC is known to be unreliable: "
            + ", ".join(
                f"K={int(r['K'])}: {int(r['waic_p_over_0_4'])}" for _, r in waic_warned.iterrows()
            )
            + ". PSIS-LOO is the criterion used for the decision."
            if not waic_warned.empty
            else f"No customer has p_waic_i > {P_WAIC_I_WARN}."
        )
    )
    if notes:
        lines += ["", "## Warnings from ArviZ", ""] + [f"- {note}" for note in notes]
    lines += ["", "## Figures", ""]
    for caption, name in figures.items():
        lines.append(f"![{caption}](figures/{name}.png)")
        lines.append("")
    with atomic_path(path) as temporary:
        temporary.write_text("\n".join(lines).rstrip() + "\n")

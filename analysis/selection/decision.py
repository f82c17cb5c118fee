"""The rule that chooses K from the comparison table, and the sentences that explain the choice.

Among the entries the rule may use (status ``ok``, or ``stacked``: a multimodal fit by its
chain-stacked elpd), the smallest K whose ``elpd_diff`` is within :data:`RULE_SE` x ``dse`` of
the best; the BIC choice is shown beside it. A fit the rule may not use (``slow``, ``divergent``)
that is more than RULE_SE x dse better than the chosen K is reported loudly, with the command
that would settle it (the table's ``settle`` column).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.inference.diagnostics import CHOOSABLE
from analysis.selection.yardstick import HELDOUT_FOLDS

RULE_SE = 2.0  # elpd_diff within RULE_SE x dse of the best fit


def choose_k(table: pd.DataFrame, rule_se: float = RULE_SE) -> int | None:
    """The smallest CHOOSABLE K whose ``elpd_diff >= -rule_se * dse``; None when there is none.

    ``elpd_diff`` and ``dse`` must be relative to the best CHOOSABLE fit (elpd_diff 0 there).
    """
    ok = table[table["status"].isin(CHOOSABLE)]
    if ok.empty:
        return None
    best = ok.loc[ok["elpd_loo"].idxmax()]
    if not np.isclose(best["elpd_diff"], 0.0):
        raise ValueError(f"elpd_diff must be relative to the best ok fit (K={best['K']})")
    within = ok[ok["elpd_diff"] >= -rule_se * ok["dse"]]
    return int(within["K"].min())


def bic_choice(table: pd.DataFrame) -> int | None:
    """K with the lowest best-over-seeds BIC among the table's K (None without baseline)."""
    known = table.dropna(subset=["bic"])
    return None if known.empty else int(known.loc[known["bic"].idxmin(), "K"])


def _ratio(row) -> str:
    return "-" if row["dse"] == 0 else f"{row['elpd_diff'] / row['dse']:.1f}"


def decision_lines(table: pd.DataFrame, rule_se: float = RULE_SE) -> list[str]:
    """The rule, the choice with the numbers that drove it, the BIC choice, and any disagreement."""
    chosen = choose_k(table, rule_se)
    by_k = table.set_index("K")
    lines = [
        f"Rule: among fits that passed diagnostics (ok, or multimodal with their chains stacked), "
        f"the smallest K whose elpd_loo is within "
        f"{rule_se:g} x dse of the best (elpd_diff >= -{rule_se:g} dse)."
    ]
    if chosen is None:
        lines.append("No K chosen: no fit passed its diagnostics or could be stacked.")
    else:
        ok = table[table["status"].isin(CHOOSABLE)]
        best = ok.loc[ok["elpd_loo"].idxmax()]
        c = by_k.loc[chosen]
        lines.append(
            f"Best elpd_loo among ok fits: K={int(best['K'])}, "
            f"{best['elpd_loo']:,.1f} (SE {best['se_loo']:,.1f})."
        )
        if chosen == int(best["K"]):
            lines.append(f"Chosen K={chosen}: the best fit itself; every smaller ok K is below.")
        else:
            lines.append(
                f"Chosen K={chosen}: elpd_diff {c['elpd_diff']:,.1f}, dse {c['dse']:,.1f} "
                f"({_ratio(c)} dse), inside the {rule_se:g} dse band."
            )
        if chosen == int(table["K"].max()) and not table.attrs.get("skipped"):
            extend = table.loc[table["K"] == chosen, "extend"] if "extend" in table else ()
            command = str(extend.iloc[0]) if len(extend) and isinstance(extend.iloc[0], str) else ""
            lines.append(
                f"Caution: K={chosen} is the largest K fitted; a larger K may fit better still: "
                "fit it before relying on this choice"
                + (f" ({command}, then segment compare again)." if command else ".")
            )
        smaller = ok[ok["K"] < chosen]
        if not smaller.empty:
            lines.append(
                "Rejected smaller K: "
                + "; ".join(
                    f"K={int(r['K'])} elpd_diff {r['elpd_diff']:,.1f} ({_ratio(r)} dse)"
                    for _, r in smaller.iterrows()
                )
                + "."
            )
        if not bool(c["loo_reliable"]):
            lines.append(
                f"Caution: K={chosen} keeps {int(c['pareto_k_remaining'])} customer(s) with "
                f"Pareto k above {c['k_threshold']:.2f}; its elpd_loo is not reliable."
            )
    failed = table[~table["status"].isin(CHOOSABLE)]
    if not failed.empty:
        lines.append(
            "Never chosen (diagnostics failed): "
            + ", ".join(f"K={r['K']} ({r['status']})" for _, r in failed.iterrows())
            + "."
        )
    lines += better_unusable(table, chosen, rule_se)
    skipped = table.attrs.get("skipped", {})
    if skipped:
        lines.append(
            "Not fitted (the sweep's stopping rule): "
            + "; ".join(f"K={k}: {reason}" for k, reason in sorted(skipped.items()))
            + "."
        )
    unreliable = table[~table["loo_reliable"].astype(bool)]
    if not unreliable.empty:
        lines.append(
            "Unreliable elpd_loo (customers with Pareto k above the threshold in the estimate "
            "used): "
            + ", ".join(
                f"K={int(r['K'])} ({int(r['pareto_k_remaining'])})"
                for _, r in unreliable.iterrows()
            )
            + "."
        )
    bic_k = bic_choice(table)
    if bic_k is None:
        lines.append("BIC choice: no baseline rows for these K.")
        return lines
    b = by_k.loc[bic_k]
    lines.append(
        f"BIC choice (lowest best-over-seeds BIC among these K): K={bic_k}, BIC {b['bic']:,.0f} "
        f"(spread over seeds {b['bic_spread']:,.0f})."
    )
    if chosen is not None and bic_k != chosen:
        lines.append(disagreement(by_k, chosen, bic_k, rule_se))
    elif chosen is not None:
        lines.append(f"BIC agrees: K={chosen}.")
    heldout = table.dropna(subset=["gmm_heldout_elpd"]) if "gmm_heldout_elpd" in table else None
    if heldout is not None and not heldout.empty:
        h = heldout.loc[heldout["gmm_heldout_elpd"].idxmax()]
        lines.append(
            f"Same yardstick: the baseline's {HELDOUT_FOLDS}-fold held-out log score "
            "(gmm_heldout_elpd) is highest "
            f"at K={int(h['K'])} ({h['gmm_heldout_elpd']:,.1f}, SE {h['gmm_heldout_se']:,.1f})"
            + (
                f"; at the chosen K={chosen} it is {by_k.loc[chosen, 'gmm_heldout_elpd']:,.1f} "
                f"against the Bayesian elpd_loo {by_k.loc[chosen, 'elpd_loo']:,.1f}: "
                f"difference (Bayesian - EM) {by_k.loc[chosen, 'heldout_diff']:,.1f}, paired SE "
                f"{by_k.loc[chosen, 'heldout_dse']:,.1f}."
                if chosen is not None and "heldout_diff" in by_k
                else "."
            )
        )
    outside = table.dropna(subset=["elpd_outside"]) if "elpd_outside" in table else None
    if outside is not None and not outside.empty:
        o = outside.loc[outside["elpd_outside"].idxmax()]
        lines.append(
            f"Customers outside the fitted subsample ({int(o['n_outside']):,}, never seen by "
            f"the posterior): held-out elpd highest at K={int(o['K'])} "
            f"({o['elpd_outside']:,.1f}, SE {o['se_outside']:,.1f})"
            + (
                f"; difference to the chosen K={chosen}: {o['outside_diff']:,.1f}, "
                f"paired SE {o['outside_dse']:,.1f}."
                if chosen is not None and not np.isnan(o["outside_diff"])
                else "."
            )
        )
    return lines


def duration(seconds: float) -> str:
    """``"40 s"`` under 90 s, else whole minutes, ``"11 min"``."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def better_unusable(table: pd.DataFrame, chosen: int | None, rule_se: float) -> list[str]:
    """A loud line for every fit the rule may not use whose elpd_loo is more than ``rule_se``
    x its dse (against the best usable fit) above the chosen K's, with the command that would
    settle it (``settle`` column)."""
    if chosen is None:
        return []
    by_k = table.set_index("K")
    c = by_k.loc[chosen]
    lines = []
    for _, row in table[~table["status"].isin(CHOOSABLE)].iterrows():
        gain = row["elpd_diff"] - c["elpd_diff"]
        if gain > rule_se * row["dse"]:
            settle = row.get("settle", "")
            seconds = row.get("settle_seconds", np.nan)
            estimate = f" (about {duration(seconds)})" if pd.notna(seconds) else ""
            lines.append(
                f"WARNING: K={int(row['K'])} ({row['status']}) is {gain:,.1f} elpd better than "
                f"the chosen K={chosen} (dse {row['dse']:,.1f} against the best usable fit), but "
                "its diagnostics failed, so the rule could not use it: the choice may be "
                "made by the failure, not by the data."
                + (f" To settle it{estimate}: {settle}" if settle else "")
            )
    return lines


def disagreement(by_k: pd.DataFrame, chosen: int, bic_k: int, rule_se: float) -> str:
    """One sentence on why the LOO rule and BIC pick different K, with the numbers."""
    c, b = by_k.loc[chosen], by_k.loc[bic_k]
    text = (
        f"Disagreement: the LOO rule picks K={chosen}, BIC picks K={bic_k}. BIC at K={chosen} is "
        f"{c['bic'] - b['bic']:,.0f} higher than at K={bic_k} (BIC spread over seeds at K={bic_k}: "
        f"{b['bic_spread']:,.0f}). "
    )
    predictive = f"elpd_diff {b['elpd_diff']:,.1f}, {_ratio(b)} dse"
    if b["status"] not in CHOOSABLE:
        return text + (
            f"The Bayesian fit at K={bic_k} failed its diagnostics ({b['diagnostics_reason']}), so "
            f"the rule cannot use it; its elpd_loo ({predictive}) is not trustworthy as it stands."
        )
    if bic_k > chosen and b["elpd_diff"] >= -rule_se * b["dse"]:
        return text + (
            f"On held-out prediction K={bic_k} is within {rule_se:g} dse of the best "
            f"({predictive}): the extra segments BIC rewards are not a clear predictive gain, "
            f"and the rule keeps the smaller K."
        )
    if bic_k > chosen:
        return text + (
            f"K={bic_k} predicts held-out customers worse ({predictive}): the extra segments "
            "BIC rewards do not carry over to new customers."
        )
    return text + (
        f"K={bic_k} is {rule_se:g}+ dse below the best on held-out prediction ({predictive}): LOO "
        "finds the extra segments worth their parameters where BIC's penalty does not."
    )

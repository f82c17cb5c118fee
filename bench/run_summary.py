"""The README's summary of a run directory, in Markdown, read from the run's own files.

    python -m bench.run_summary runs/main [--wall SECONDS] [--commit REV] [--fresh-clone]

Prints the per-K diagnostics (status, attempts, seconds), the comparison (elpd_loo with its SE,
elpd_diff and dse, the chosen K), the warnings ``segment compare`` gave, and the reported
segments with their 94% HDIs. Nothing is typed by hand: paste the output into bench/README.md,
between the run's ``<!-- BEGIN run_summary ... -->`` and ``<!-- END run_summary ... -->`` lines.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from analysis.selection.decision import RULE_SE, better_unusable


def interval(row: pd.Series, name: str, digits: int = 3) -> str:
    return (
        f"{row[name]:.{digits}f} [{row[f'{name}_hdi_low']:.{digits}f}, "
        f"{row[f'{name}_hdi_high']:.{digits}f}]"
    )


def summary(run: Path, wall: float | None, commit: str | None, fresh_clone: bool = False) -> str:
    settings = pd.read_csv(run / "settings.csv").set_index("item")["value"]
    diagnostics = pd.read_csv(run / "diagnostics.csv")
    comparison = pd.read_csv(run / "comparison.csv")
    segments = pd.read_csv(run / "segments.csv")
    chosen = int(settings["K reported"])
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d}"
        + ((" on a fresh clone" if fresh_clone else "") + f" at {commit}" if commit else "")
        + f": `{settings['dataset']}`, model `{settings['model']}`, {settings['chains']} chains "
        f"x ({settings['tune']} + {settings['draws']}), backend {settings['backend']}"
        + (f"; {int(wall // 60)} min {wall % 60:.0f} s in all" if wall else "")
        + f"; the fits' own seconds sum to {diagnostics['seconds'].sum():.0f} s.",
        "",
        "| K | status | attempts | seconds | max R-hat | min bulk ESS | elpd_loo (SE) "
        "| elpd_diff (dse) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    merged = diagnostics.merge(comparison, on="K", how="left", suffixes=("", "_compared"))
    for _, row in merged.iterrows():
        mark = " **reported**" if int(row["K"]) == chosen else ""
        status = row["status"]
        if status == "skipped":  # not fitted: the sweep's stopping rule
            reason = str(row["reason"]).removeprefix("not fitted: ")
            lines.append(f"| {int(row['K'])} | skipped ({reason}) | | | | | | |")
            continue
        if row["status_compared"] != status:  # e.g. multimodal, compared by its stacked chains
            status += f" ({row['status_compared']})"
        lines.append(
            f"| {int(row['K'])}{mark} | {status} | {int(row['attempts'])} | "
            f"{row['seconds']:.0f} | {row['max_rhat']:.3f} | {row['min_ess_bulk']:.0f} | "
            f"{row['elpd_loo']:,.1f} ({row['se_loo']:.1f}) | "
            f"{row['elpd_diff']:,.1f} ({row['dse']:.1f}) |"
        )
    warnings = better_unusable(comparison, chosen, RULE_SE)
    lines += ["", *(f"- {w}" for w in warnings)] if warnings else []
    lines += [
        "",
        "| segment | share of customers (94% HDI) | share of revenue (94% HDI) | tier "
        "| customers (modal) | precise |",
        "|---|---|---|---|---|---|",
    ]
    for _, row in segments.iterrows():
        has_revenue = pd.notna(row.get("revenue_share"))  # latent classes have no revenue
        revenue = interval(row, "revenue_share") if has_revenue else "n/a"
        tier = row["tier"] if pd.notna(row["tier"]) else "n/a"
        lines.append(
            f"| {row['name']} | {interval(row, 'weight')} | {revenue} | {tier} | "
            f"{int(row['customers']):,} | {int(row['precise']):,} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--wall", type=float, help="measured wall time of the run, seconds")
    parser.add_argument("--commit", help="the commit the run was made at")
    parser.add_argument("--fresh-clone", action="store_true", help="the run was on a fresh clone")
    args = parser.parse_args()
    print(summary(args.run, args.wall, args.commit, args.fresh_clone))


if __name__ == "__main__":
    main()

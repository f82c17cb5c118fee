"""bench/README's summary of a ``segment track`` output, in Markdown, read from its own files.

    python -m bench.track_summary runs/h1/track

Prints the migration matrix (expected customers, 94% HDI of the realised count), both periods'
segment weights, the drift signal with its SE and verdict, and the features that moved most.
Nothing is typed by hand: paste the output into bench/README.md between the
``<!-- BEGIN track_summary ... -->`` and ``<!-- END track_summary ... -->`` lines.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from analysis.decisions.drift import MOVED_FEATURES


def label(segment, name) -> str:
    return f"{int(segment)} {name}"


def summary(track: Path) -> str:
    migration = pd.read_csv(track / "migration.csv")
    sizes = pd.read_csv(track / "sizes.csv")
    shifts = pd.read_csv(track / "drift.csv")
    signal = pd.read_csv(track / "drift_signal.csv").iloc[0]
    later = migration.drop_duplicates("to_segment").sort_values("to_segment")
    lines = [
        f"K = {signal['K']} fit, later table `{signal['later_data']}`: {signal['matched']:,} "
        f"customers matched, {signal['new']:,} new (left out), {signal['gone']:,} gone.",
        "",
        "| earlier \\ later | "
        + " | ".join(label(r.to_segment, r.to_name) for r in later.itertuples())
        + " |",
        "|---" * (len(later) + 1) + "|",
    ]
    for segment, row in migration.groupby("from_segment", sort=True):
        cells = row.sort_values("to_segment")
        lines.append(
            f"| {label(segment, cells['from_name'].iloc[0])} | "
            + " | ".join(
                f"{c.expected:,.1f} [{c.realised_low:,.0f}, {c.realised_high:,.0f}]"
                for c in cells.itertuples()
            )
            + " |"
        )
    lines += [
        "",
        "Expected customers, 94% HDI of the realised count in brackets.",
        "",
        "| segment | fit weight | later weight | earlier customers | later customers |",
        "|---|---|---|---|---|",
    ]
    for r in sizes.itertuples():
        lines.append(
            f"| {label(r.segment, r.name)} | {r.fit_weight:.3f} [{r.fit_weight_hdi_low:.3f}, "
            f"{r.fit_weight_hdi_high:.3f}] | {r.later_weight:.3f} [{r.later_weight_hdi_low:.3f}, "
            f"{r.later_weight_hdi_high:.3f}] | {r.earlier_customers:,.1f} | "
            f"{r.later_customers:,.1f} |"
        )
    verdict = "refit recommended" if str(signal["refit"]) == "True" else "no drift"
    moved = ", ".join(
        f"{r.feature} {r.shift_sd:+.2f} sd" for r in shifts.head(MOVED_FEATURES).itertuples()
    )
    lines += [
        "",
        f"Drift: later mean lpd {signal['later_lpd']:.3f} nats per customer against the fit's "
        f"mean elpd_loo {signal['fit_elpd_loo']:.3f}: difference {signal['difference']:+.3f} "
        f"(paired SE {signal['se']:.3f}); {verdict} (bar: {signal['refit_se']:g} SE). Features "
        f"that moved most (later mean vs the fit's replicated mean, model scale): {moved}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("track", type=Path, help="a segment track output directory")
    print(summary(parser.parse_args(argv).track))


if __name__ == "__main__":
    main()

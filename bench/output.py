"""What every bench script shares: where results go, the machine line, peak memory, tables."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pandas as pd

RESULTS = Path.cwd() / "bench" / "results"  # under the working directory (the checkout's root)
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared/data/marketing_campaign.csv"


def machine() -> str:
    """CPU count and 1-minute load average, printed before timings so they can be judged."""
    return f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size so far, MB (Linux reports KB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def write_table(
    table: pd.DataFrame, path: Path, shown: pd.DataFrame | None = None, index: bool = False
) -> None:
    """Write ``table`` to the CSV ``path`` and print ``shown`` (default: the table itself), its
    row labels only with ``index``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    shown = table if shown is None else shown
    with pd.option_context("display.width", 250, "display.max_columns", None):
        print(shown.to_string(index=index, float_format=lambda v: f"{v:,.3f}", na_rep="-"))

"""One small real run of ``segment run`` shared by the report and run tests (built once).

200 customers and three spend columns from the marketing file, K = 1, 2, two chains of 150 draws:
real sampling, real files, a couple of minutes on two cores. The fits are far too short to pass
the diagnostics, so the report is asked for K = 2 explicitly (``--report-k``); the report then
shows them as failed, which is what it must do.
"""

from __future__ import annotations

import contextlib
import functools
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.cli import main

FEATURES = ("MntWines", "MntFruits", "MntMeatProducts")
ROWS = 200


@dataclass(frozen=True)
class SmallRun:
    root: Path
    figures_to: Path
    code: int
    stdout: str
    stderr: str


def run_argv(data: Path, out: Path, figures_to: Path) -> list[str]:
    return [
        "run", "--dataset", "csv", "--data", str(data), "--features", ",".join(FEATURES),
        "--id-column", "ID", "--k", "1-2", "--chains", "2", "--draws", "150", "--tune", "150",
        "--baseline-k", "1-3", "--n-init", "1", "--seeds", "0", "--no-moment-match",
        "--budget", "0", "--report-k", "2",
        "--out", str(out), "--figures-to", str(figures_to),
    ]  # fmt: skip


@functools.cache
def small_run(base: Path, marketing_csv: Path) -> SmallRun:
    """Run once per test session into ``base`` (a session temporary directory)."""
    base.mkdir(parents=True, exist_ok=True)
    table = pd.read_csv(marketing_csv, sep="\t").head(ROWS)
    data = base / "small.csv"
    table[["ID", *FEATURES, "Income"]].to_csv(data, index=False)
    out, figures_to = base / "run", base / "published"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(run_argv(data, out, figures_to))
    return SmallRun(out, figures_to, code, stdout.getvalue(), stderr.getvalue())

"""The migration matrix drawn: earlier segment down, later segment across, each cell the expected
customers with the 94% HDI of the realised count (``migration.csv``,
:func:`analysis.decisions.migration.migration_table`)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from analysis.plotting import segment_label


def migration_figure(migration: pd.DataFrame, matched: int):
    """Heatmap of ``migration.csv`` rows (:func:`analysis.decisions.migration.migration_table`):
    earlier segment down, later segment across, each cell the expected customers with the 94% HDI of
    the realised count (parameter and assignment uncertainty)."""
    expected = migration.pivot(index="from_segment", columns="to_segment", values="expected")
    cells = migration.set_index(["from_segment", "to_segment"])
    names = migration.drop_duplicates("from_segment").set_index("from_segment")["from_name"]
    labels = [segment_label(k, names[k]) for k in expected.index]
    size = 1.6 + 1.3 * len(labels)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    image = axis.imshow(expected.values, cmap="Blues", vmin=0)
    darkest = expected.values.max()
    for row, origin in enumerate(expected.index):
        for column, destination in enumerate(expected.columns):
            cell = cells.loc[(origin, destination)]
            axis.text(
                column,
                row,
                f"{cell['expected']:,.1f}\n[{cell['realised_low']:,.0f}, "
                f"{cell['realised_high']:,.0f}]",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if cell["expected"] > 0.6 * darkest else "black",
            )
    axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("later segment")
    axis.set_ylabel("earlier segment (the fit)")
    axis.set_title(
        f"Customers moving between segments ({matched:,} matched)\n"
        "expected, and 94% HDI of the realised count"
    )
    figure.colorbar(image, ax=axis, shrink=0.8, label="expected customers")
    return figure

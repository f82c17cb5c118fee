"""Writing matplotlib figures: PNG at one resolution, atomically, closed after saving. Shared by
the report's figures, the comparison figures and the migration figure; the segment labels
they share."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from analysis.paths import atomic_path

DPI = 90


def save(figure, path, dpi: int = DPI, tight: bool = False) -> None:
    """A matplotlib figure as PNG, written atomically (``analysis.paths.atomic_path``), then
    closed. ``tight`` crops to the drawn content (``bbox_inches="tight"``)."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format="png", bbox_inches="tight" if tight else None)
    plt.close(figure)


def segment_label(segment: int, name: str) -> str:
    """An axis or legend label for a segment: "3: all-round premium"."""
    return f"{segment}: {name}"

"""The sum of pointwise log scores and its standard error, one rule for every elpd we report."""

from __future__ import annotations

import numpy as np


def summed(pointwise) -> tuple[float, float]:
    """(sum, SE) of per-customer values (n,): SE = sqrt(n) x their sd (ddof 1), as ArviZ's LOO
    SE and ``dse``; 0.0 for a single value. Differences of paired scores give ``dse``."""
    values = np.asarray(pointwise, dtype=float).ravel()
    se = float(np.sqrt(len(values) * np.var(values, ddof=1))) if len(values) > 1 else 0.0
    return float(values.sum()), se

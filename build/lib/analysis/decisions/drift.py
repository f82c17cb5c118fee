"""The drift signal: does a saved fit predict a later period of its customers worse than its own?

For each customer in both periods, ``d_i = lpd_later_i - elpd_loo_i``: the later data's log
predictive density under the fit's posterior (which never saw them) against the fit's own PSIS-LOO
pointwise elpd (the same customer's earlier data, left out). Both are nats on the fit's model
scale, so they are comparable (one transform with fixed constants, no Jacobian in either). The
difference is paired over customers: a customer's density level (heavy spenders have lower density
on every scale) is common to both periods, so the SE of the mean difference, sd(d) / sqrt(n), is
far smaller than for two independent means, and still honest because the customers are
exchangeable. A mean difference below -:data:`REFIT_SE` SE recommends a refit.

Which features moved: per feature, the later observed mean of the matched customers against the
fit's replicated mean (posterior predictive, the model's expectation for the same customers), in
units of the fit's observed sd per customer, model scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.inference.assignments import HDI_PROB, hdi_nearest
from analysis.inference.elpd import summed

REFIT_SE = 2.0  # a later period worse by more than this many SE recommends a refit
MOVED_FEATURES = 3  # features named in a refit recommendation
SHIFT_COLUMNS = (
    "feature", "fit_mean", "replicated_mean", "replicated_hdi_low", "replicated_hdi_high",
    "later_mean", "fit_sd", "shift_sd",
)  # fmt: skip


@dataclass(frozen=True)
class DriftSignal:
    """Mean per customer (nats) of the later lpd and of the fit's elpd_loo over ``n`` matched
    customers, their paired difference (later - fit) and its SE."""

    n: int
    later_lpd: float
    fit_elpd_loo: float
    difference: float
    se: float

    @property
    def refit(self) -> bool:
        return self.difference < -REFIT_SE * self.se


def drift_signal(later_lpd: np.ndarray, fit_elpd_loo: np.ndarray) -> DriftSignal:
    """Paired comparison of (n,) later lpd and (n,) fit elpd_loo of the same customers (nats)."""
    total, se = summed(later_lpd - fit_elpd_loo)
    n = len(later_lpd)
    means = float(np.mean(later_lpd)), float(np.mean(fit_elpd_loo))
    return DriftSignal(n, *means, total / n, se / n)


def feature_shifts(
    fit_x: np.ndarray, replicated: np.ndarray, later_x: np.ndarray, features
) -> pd.DataFrame:
    """Per feature (model scale): the fit's observed mean, its replicated mean with 94% HDI, the
    later observed mean, the fit's observed sd per customer and ``shift_sd`` = (later mean -
    replicated mean) / fit sd; sorted by the size of the shift, largest first.

    ``fit_x`` and ``later_x`` are (N, D) values of the same N customers (NaN: missing, left out
    of the means); ``replicated`` is (R, N, D) posterior predictive replicates of ``fit_x``.
    """
    replicated_means = replicated.mean(axis=1, dtype=np.float64)  # (R, D)
    low, high = hdi_nearest(replicated_means, HDI_PROB)
    fit_sd = np.nanstd(fit_x, axis=0, ddof=1)
    table = pd.DataFrame(
        {
            "feature": list(features),
            "fit_mean": np.nanmean(fit_x, axis=0),
            "replicated_mean": replicated_means.mean(axis=0),
            "replicated_hdi_low": low,
            "replicated_hdi_high": high,
            "later_mean": np.nanmean(later_x, axis=0),
            "fit_sd": fit_sd,
        }
    )
    table["shift_sd"] = (table["later_mean"] - table["replicated_mean"]) / fit_sd
    order = table["shift_sd"].abs().sort_values(ascending=False, kind="stable").index
    return table.loc[order, list(SHIFT_COLUMNS)].reset_index(drop=True)


def drift_text(signal: DriftSignal, shifts: pd.DataFrame) -> str:
    """The verdict, one line: a refit recommendation naming the features that moved most, or
    that the later period is predicted as well as the fit's own customers."""
    measured = (
        f"later lpd - fit elpd_loo = {signal.difference:+.3f} nats per customer "
        f"(paired SE {signal.se:.3f}, {signal.n:,} customers)"
    )
    if not signal.refit:
        return f"no drift: {measured}"
    moved = ", ".join(
        f"{row.feature} {row.shift_sd:+.2f} sd" for row in shifts.head(MOVED_FEATURES).itertuples()
    )
    return (
        f"refit recommended: {measured}, worse by more than {REFIT_SE:g} SE; features that moved "
        f"most (later mean vs the fit's replicated mean, model scale): {moved}"
    )

"""Convergence diagnostics of one relabelled fit, computed with ArviZ, and the pass/fail rule.

A fit is ``ok`` only if, over the mixture's diagnosed variables (e.g. weights, means, scales),
max R-hat <= 1.01, min bulk and tail ESS >= 400, there are no divergences and every chain's
E-BFMI >= 0.3. Anything else is ``failed`` with the reasons spelled out.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import xarray as xr

MAX_RHAT = 1.01
MIN_ESS = 400
MIN_BFMI = 0.3
COLUMNS = (
    "K",
    "status",
    "reason",
    "max_rhat",
    "min_ess_bulk",
    "min_ess_tail",
    "divergences",
    "min_bfmi",
    "seconds",
    "sampling_seconds",
)


def _extreme(dataset: xr.Dataset, reduce) -> float:
    values = np.concatenate([np.ravel(v.values) for v in dataset.data_vars.values()])
    values = values[np.isfinite(values)]
    return float(reduce(values)) if len(values) else float("nan")


def diagnose(posterior: xr.Dataset, sample_stats: xr.Dataset, variables: tuple[str, ...]) -> dict:
    """Diagnostics dict (the :data:`COLUMNS` minus K and timings) of a relabelled posterior."""
    diagnosed = posterior[list(variables)]
    max_rhat = _extreme(az.rhat(diagnosed), np.max)
    min_ess_bulk = _extreme(az.ess(diagnosed, method="bulk"), np.min)
    min_ess_tail = _extreme(az.ess(diagnosed, method="tail"), np.min)
    divergences = int(sample_stats["diverging"].sum())
    min_bfmi = float(np.min(az.bfmi(sample_stats, var_names="energy")["energy"].values))
    reasons = []
    if not max_rhat <= MAX_RHAT:
        reasons.append(f"R-hat {max_rhat:.3f} > {MAX_RHAT}")
    if not min(min_ess_bulk, min_ess_tail) >= MIN_ESS:
        reasons.append(f"ESS bulk/tail {min_ess_bulk:.0f}/{min_ess_tail:.0f} < {MIN_ESS}")
    if divergences:
        reasons.append(f"{divergences} divergent transitions")
    if not min_bfmi >= MIN_BFMI:
        reasons.append(f"E-BFMI {min_bfmi:.2f} < {MIN_BFMI}")
    return {
        "status": "failed" if reasons else "ok",
        "reason": "; ".join(reasons),
        "max_rhat": max_rhat,
        "min_ess_bulk": min_ess_bulk,
        "min_ess_tail": min_ess_tail,
        "divergences": divergences,
        "min_bfmi": min_bfmi,
    }


def unmixed_ks(table) -> list[int]:
    """K of the failed fits in a diagnostics table (:data:`COLUMNS`) whose only failures are
    R-hat and ESS: no divergences and E-BFMI fine, so the chains have not mixed yet (a longer
    warm-up or more draws are the things to try) rather than met a geometry NUTS cannot
    handle."""
    unmixed = (
        (table["status"] != "ok") & (table["divergences"] == 0) & (table["min_bfmi"] >= MIN_BFMI)
    )
    return [int(k) for k in table.loc[unmixed, "K"]]

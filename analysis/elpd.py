"""The sum of pointwise log scores and its standard error, one rule for every elpd we report,
and plain PSIS-LOO of a fit."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import xarray as xr


def summed(pointwise) -> tuple[float, float]:
    """(sum, SE) of per-customer values (n,): SE = sqrt(n) x their sd (ddof 1), as ArviZ's LOO
    SE and ``dse``; 0.0 for a single value. Differences of paired scores give ``dse``."""
    values = np.asarray(pointwise, dtype=float).ravel()
    se = float(np.sqrt(len(values) * np.var(values, ddof=1))) if len(values) > 1 else 0.0
    return float(values.sum()), se


def psis_loo(tree: xr.DataTree, var_name: str):
    """Pointwise PSIS-LOO; ArviZ's high-k warning is dropped because the caller handles k."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        return az.loo(tree, pointwise=True, var_name=var_name)

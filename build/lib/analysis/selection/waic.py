"""WAIC from a fit's pointwise log-likelihood (ArviZ 1.x no longer ships it).

For customer i and posterior draws s = 1..S of log p(y_i | theta_s) (Vehtari, Gelman & Gabry 2017,
Stat. Comput. 27:1413-1432, eqs. 3-5 and 22-23)::

    lppd_i       = log( (1/S) sum_s p(y_i | theta_s) )          (computed with logsumexp)
    p_waic_i     = Var_s[ log p(y_i | theta_s) ]                 (sample variance, ddof = 1)
    elpd_waic_i  = lppd_i - p_waic_i
    elpd_waic    = sum_i elpd_waic_i,   p_waic = sum_i p_waic_i
    se           = sqrt(n * Var_i[elpd_waic_i])                  (ddof = 1, as ArviZ's LOO SE)

On the deviance scale WAIC = -2 elpd_waic. Customers with p_waic_i > 0.4 are counted: above
that, WAIC is known to be unreliable and PSIS-LOO is preferred (same paper, section 2.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.special import logsumexp

from analysis.inference.elpd import summed

SAMPLE_DIMS = ("chain", "draw")
P_WAIC_I_WARN = 0.4


@dataclass(frozen=True)
class Waic:
    """elpd_waic, se, p_waic (natural log, summed over n customers), pointwise (n,) values."""

    elpd: float
    se: float
    p: float
    n_data_points: int
    n_samples: int
    n_p_over_warn: int
    elpd_i: np.ndarray
    p_i: np.ndarray


def waic(log_likelihood: xr.DataArray | xr.DataTree, var_name: str | None = None) -> Waic:
    """WAIC of a pointwise log-likelihood with dims (chain, draw, <one observation dim>).

    ``log_likelihood`` is the DataArray itself or a DataTree with a ``log_likelihood`` group
    (``var_name`` picks the variable; optional when the group holds exactly one).
    """
    if isinstance(log_likelihood, xr.DataTree):
        group = log_likelihood["log_likelihood"].to_dataset()
        if var_name is None:
            if len(group.data_vars) != 1:
                raise ValueError(f"log_likelihood has {list(group.data_vars)}: pass var_name")
            var_name = next(iter(group.data_vars))
        log_likelihood = group[var_name]
    observation_dims = [d for d in log_likelihood.dims if d not in SAMPLE_DIMS]
    values = (
        log_likelihood.stack(__sample__=SAMPLE_DIMS)
        .stack(__obs__=observation_dims)
        .transpose("__sample__", "__obs__")
        .values
    )
    n_samples, n_data_points = values.shape
    lppd_i = logsumexp(values, axis=0) - np.log(n_samples)
    p_i = np.var(values, axis=0, ddof=1)
    elpd_i = lppd_i - p_i
    elpd, se = summed(elpd_i)
    return Waic(
        elpd=elpd,
        se=se,
        p=float(p_i.sum()),
        n_data_points=n_data_points,
        n_samples=n_samples,
        n_p_over_warn=int((p_i > P_WAIC_I_WARN).sum()),
        elpd_i=elpd_i,
        p_i=p_i,
    )

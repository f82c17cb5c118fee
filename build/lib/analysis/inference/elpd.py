"""The sum of pointwise log scores and its standard error, one rule for every elpd we report,
and plain PSIS-LOO of a fit."""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from dataclasses import replace

import arviz as az
import numpy as np
import xarray as xr
from scipy.special import logsumexp

# ArviZ's Pareto fit needs at least 5 distinct tail values per customer; it raises for the whole
# fit otherwise, so a customer whose 5 largest importance ratios tie is scored apart
FLAT_TAIL_ERRORS = ("All tail values are the same", "n_draws_tail must be at least 5")
MIN_TAIL = 5
# LOO results kept by psis_loo: each holds its (customers x samples) log weights, 40 MB at
# 2,000 draws x 2,469 customers; four cover the quick preset's K range
KEPT_LOO = 4
_kept_loo: OrderedDict[tuple, object] = OrderedDict()


def summed(pointwise) -> tuple[float, float]:
    """(sum, SE) of per-customer values (n,): SE = sqrt(n) x their sd (ddof 1), as ArviZ's LOO
    SE and ``dse``; 0.0 for a single value. Differences of paired scores give ``dse``."""
    values = np.asarray(pointwise, dtype=float).ravel()
    se = float(np.sqrt(len(values) * np.var(values, ddof=1))) if len(values) > 1 else 0.0
    return float(values.sum()), se


def psis_loo(tree: xr.DataTree, var_name: str):
    """Pointwise PSIS-LOO; ArviZ's high-k warning is dropped because the caller handles k.

    When ArviZ cannot fit a customer's tail (its largest importance ratios tie, e.g. a chain
    that stood still), the customers whose :data:`MIN_TAIL` largest ratios tie get plain
    importance-sampling LOO with Pareto k = inf, which marks the estimate unreliable (and offers
    K-fold), as ArviZ's own moment matching does; the rest get PSIS-LOO.

    A result is kept for the process (:data:`KEPT_LOO`), keyed by the log-likelihood's
    contents: ``segment run`` asks for each fit's LOO in the fit step (the stopping rule) and
    again in compare, and one costs about 4 s at 2,000 draws x 2,469 customers. Callers must not
    change the result in place (``dataclasses.replace`` makes a changed copy).
    """
    log_lik = tree["log_likelihood"][var_name]
    values = np.ascontiguousarray(log_lik.transpose("chain", "draw", ...).values)
    key = (
        var_name,
        values.shape,
        hashlib.blake2b(values.tobytes(), digest_size=16).hexdigest(),
    )
    if key in _kept_loo:
        _kept_loo.move_to_end(key)
        return _kept_loo[key]
    try:
        result = _loo(tree, var_name)
    except ValueError as error:
        if not any(message in str(error) for message in FLAT_TAIL_ERRORS):
            raise
        result = loo_with_flat_tails(tree, var_name)
    _kept_loo[key] = result
    if len(_kept_loo) > KEPT_LOO:
        _kept_loo.popitem(last=False)
    return result


def _loo(tree: xr.DataTree, var_name: str):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        return az.loo(tree, pointwise=True, var_name=var_name)


def flat_tails(log_lik: xr.DataArray) -> np.ndarray:
    """(N,) True for customers whose :data:`MIN_TAIL` largest importance ratios 1 / p(y_i |
    theta_s) are equal. ``log_lik`` is (chain, draw, customer)."""
    ratios = -log_lik.transpose("chain", "draw", ...).values.reshape(-1, log_lik.shape[-1])
    top = np.sort(ratios, axis=0)[-MIN_TAIL:]  # (MIN_TAIL, N)
    return (top.max(axis=0) - top.min(axis=0)) < np.finfo(float).tiny


def loo_with_flat_tails(tree: xr.DataTree, var_name: str):
    """PSIS-LOO for the customers ArviZ can smooth, plain IS-LOO (k = inf) for the others."""
    log_lik = tree["log_likelihood"][var_name]
    customer = log_lik.dims[-1]
    flat = flat_tails(log_lik)
    smoothable = tree.copy()
    smoothable["log_likelihood"] = tree["log_likelihood"].to_dataset().isel({customer: ~flat})
    result = _loo(smoothable, var_name)
    draws = log_lik.isel({customer: flat}).transpose("chain", "draw", ...).values
    draws = draws.reshape(-1, draws.shape[-1])  # (samples, n_flat)
    raw_elpd = np.log(len(draws)) - logsumexp(-draws, axis=0)  # (n_flat,)
    raw_lppd = logsumexp(draws, axis=0) - np.log(len(draws))
    template = log_lik.isel(chain=0, draw=0, drop=True)  # (customer,) with its coords
    elpd_i, pareto_k = (
        template.copy(data=np.empty(flat.size)),
        template.copy(data=np.empty(flat.size)),
    )
    elpd_i[~flat], elpd_i[flat] = result.elpd_i.values.ravel(), raw_elpd
    pareto_k[~flat], pareto_k[flat] = result.pareto_k.values.ravel(), np.inf
    elpd, se = summed(elpd_i.values)
    return replace(
        result,
        elpd=elpd,
        se=se,
        p=float(result.p + (raw_lppd - raw_elpd).sum()),
        n_data_points=int(log_lik.sizes[customer]),
        warning=True,
        elpd_i=elpd_i,
        pareto_k=pareto_k,
        log_weights=None,
    )

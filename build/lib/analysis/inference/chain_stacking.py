"""Stacking over chains for fits whose chains settle in different modes.

Yao, Vehtari & Gelman (2022), "Stacking for non-mixing Bayesian computations", JMLR 23(79):
PSIS-LOO is computed on each chain alone, the chains get stacking weights (the maximiser of
sum_i log sum_c w_c exp(elpd_loo_{c,i}) on the simplex, found by ArviZ's model-stacking
optimiser) and the stacked pointwise elpd_i = log sum_c w_c exp(elpd_loo_{c,i}) is the fit's
elpd. All elpd values are natural-log predictive densities.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import arviz as az
import numpy as np
import xarray as xr
from arviz_stats.utils import ELPDData, ELPDDataLOO
from scipy.special import logsumexp

from analysis.inference.elpd import psis_loo, summed

NEGLIGIBLE_WEIGHT = 1e-3  # chains at or below this weight add nothing to the stacked Pareto k


@dataclass(frozen=True, eq=False)
class ChainStack:
    """Per-chain PSIS-LOO of one fit and its stacking over chains (C chains, N customers).

    Attributes
    ----------
    chains : np.ndarray, shape (C,)
        The ``chain`` coordinate values, in the tree's order; every (C,) array follows it.
    weights : np.ndarray, shape (C,)
        Stacking weights, non-negative and summing to 1.
    chain_elpd, chain_se, chain_p : np.ndarray, shape (C,)
        Each chain's elpd_loo, its SE and p_loo.
    chain_pointwise : np.ndarray, shape (C, N)
        Each chain's pointwise elpd_loo.
    pareto_k : np.ndarray, shape (C, N)
        Each chain's Pareto k.
    good_k : float
        ArviZ's Pareto k threshold for one chain's number of draws.
    n_samples : int
        Draws over all chains.
    pointwise : np.ndarray, shape (N,)
        Stacked pointwise elpd, log sum_c w_c exp(chain_pointwise[c]).
    elpd, se : float
        Sum of ``pointwise`` and its SE, sqrt(N) x sd (ddof 1)
        (:func:`analysis.inference.elpd.summed`).
    notes : tuple of str
        Warnings ArviZ raised while finding the weights (caught, not re-raised).
    """

    chains: np.ndarray
    weights: np.ndarray
    chain_elpd: np.ndarray
    chain_se: np.ndarray
    chain_p: np.ndarray
    chain_pointwise: np.ndarray
    pareto_k: np.ndarray
    good_k: float
    n_samples: int
    pointwise: np.ndarray
    elpd: float
    se: float
    notes: tuple[str, ...]

    def mode_weights(self, groups: list[list[int]]) -> np.ndarray:
        """Summed stacking weight of each group of chain positions (0-based), shape (G,)."""
        return np.array([self.weights[np.asarray(group, dtype=int)].sum() for group in groups])


def _stacking_weights(names: list[str], results: list[ELPDDataLOO]) -> tuple[np.ndarray, list]:
    """(weights in the order of ``names``, caught warnings) from ``arviz.compare``'s stacking.

    Each customer's elpd is shifted by its maximum over chains: the maximiser is unchanged, but
    ArviZ exponentiates elpd_i unshifted, and a customer below about -745 in every chain would
    underflow to log(0) and leave the weights at their uniform starting value.
    """
    top = np.max([result.elpd_i.values for result in results], axis=0)
    shifted = {
        name: replace(result, elpd_i=result.elpd_i - top, log_weights=None)
        for name, result in zip(names, results, strict=True)
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = az.compare(shifted, method="stacking", round_to="none")
    weights = np.clip(table.loc[names, "weight"].to_numpy(dtype=float), 0.0, None)
    return weights / weights.sum(), caught


def stack_chains(tree: xr.DataTree, var_name: str) -> ChainStack:
    """PSIS-LOO of each chain of ``tree`` alone, and the chains' stacking weights.

    Parameters
    ----------
    tree : xarray.DataTree
        With groups ``posterior`` and ``log_likelihood``; ``log_likelihood[var_name]`` has dims
        (chain, draw, customer), the customer dim named anything.
    var_name : str
        The log-likelihood variable.

    Returns
    -------
    ChainStack
    """
    log_lik = tree["log_likelihood"][var_name]
    if log_lik.ndim != 3 or log_lik.dims[:2] != ("chain", "draw"):
        raise ValueError(f"{var_name} must have dims (chain, draw, customer), not {log_lik.dims}")
    posterior = tree["posterior"].to_dataset()
    results = [
        psis_loo(
            xr.DataTree.from_dict(
                {
                    "posterior": posterior.isel(chain=[c]),
                    "log_likelihood": log_lik.isel(chain=[c]).to_dataset(name=var_name),
                }
            ),
            var_name,
        )
        for c in range(log_lik.sizes["chain"])
    ]
    chains = log_lik["chain"].values
    weights, caught = _stacking_weights([f"chain {c}" for c in chains], results)
    chain_pointwise = np.stack([result.elpd_i.values for result in results])
    pointwise = logsumexp(chain_pointwise, axis=0, b=weights[:, None])
    elpd, se = summed(pointwise)
    return ChainStack(
        chains=chains,
        weights=weights,
        chain_elpd=np.array([result.elpd for result in results]),
        chain_se=np.array([result.se for result in results]),
        chain_p=np.array([result.p for result in results]),
        chain_pointwise=chain_pointwise,
        pareto_k=np.stack([result.pareto_k.values for result in results]),
        good_k=results[0].good_k,  # every chain has the same number of draws
        n_samples=sum(result.n_samples for result in results),
        pointwise=pointwise,
        elpd=elpd,
        se=se,
        notes=tuple(str(warning.message) for warning in caught),
    )


def stacked_elpd_data(stack: ChainStack, template: ELPDData) -> ELPDDataLOO:
    """The stacked estimate as an ArviZ PSIS-LOO result, for ``arviz.compare`` and its readers.

    Parameters
    ----------
    stack : ChainStack
    template : ELPDData
        A pointwise result on the same N customers (e.g. ``arviz.loo`` of the whole fit); its
        ``elpd_i`` gives the dims and coordinates.

    Returns
    -------
    ELPDDataLOO
        ``elpd``, ``se`` and ``elpd_i`` (N,) are the stacked ones, ``p`` the weighted sum of the
        chains' p_loo and ``pareto_k`` (N,) the maximum over chains of weight above
        ``NEGLIGIBLE_WEIGHT``; ``good_k`` is one chain's threshold.
    """
    pareto_k = stack.pareto_k[stack.weights > NEGLIGIBLE_WEIGHT].max(axis=0)
    return ELPDDataLOO(
        elpd=stack.elpd,
        se=stack.se,
        p=float(stack.weights @ stack.chain_p),
        n_samples=stack.n_samples,
        n_data_points=len(stack.pointwise),
        scale="log",
        warning=bool(np.any(pareto_k > stack.good_k)),
        good_k=stack.good_k,
        elpd_i=template.elpd_i.copy(data=stack.pointwise),
        pareto_k=template.elpd_i.copy(data=pareto_k),
    )

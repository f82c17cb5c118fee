"""Local-dependence check of a latent class fit: posterior predictive checks of two-way tables.

The latent class model assumes the variables are independent within a class, so the two-way table
of variables a and b that it implies is the mixture of outer products

    E_s[a, b] = N_ab * sum_k w_k theta_ka (x) theta_kb                 (posterior draw s)

with N_ab the customers who answered both (a missing answer is an all-zero indicator block:
under missing at random the model-implied table of those who answered both is the same mixture).
Variables that nearly determine each other within a class (household size, composition and number
of children) break this, and the classes are then spent on reproducing their cross-tabulation.

The discrepancy of a pair is the Pearson chi-square of its table against the model-implied one,
X2(y, theta_s) = sum_cells (O - E_s)^2 / E_s, computed for the observed table and for a table
replicated from the same draw (class labels and answers drawn given w_s, theta_s, for the same
customers and the same answered variables). Its posterior predictive p-value is
P(X2(y_rep, theta) >= X2(y, theta) | y) (Gelman, Meng & Stern 1996), estimated over
:data:`DRAWS` evenly spaced posterior draws. It is the Bayesian counterpart of the bivariate
residuals of LCA software (Vermunt & Magidson, Latent GOLD): there the chi-square is set against
its reference distribution at the ML estimate, here against its replicated distribution, which
accounts for the parameter uncertainty and for sparse cells without asymptotics.

A pair is flagged when p < :data:`FLAG_BELOW`. Posterior predictive p-values are conservative
(concentrated near 0.5 under the model, Meng 1994), so a nominal 0.05 errs towards not flagging;
a pair the model cannot reproduce gets p = 0 with an observed chi-square many times the replicated
one (``chi2_ratio``), which is the number to read for how far it is off.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from analysis.inference.profiles import HDI_PROB, cramers_v, fit_config, item_levels
from models.lca import sample_households

DRAWS = 200  # posterior draws the check replicates data from (p-values in steps of 1/DRAWS)
FLAG_BELOW = 0.05  # a pair whose posterior predictive p-value is below this is flagged
CHUNK = 25  # draws replicated at once: memory is CHUNK x N x M doubles
PAIR_COLUMNS = (
    "variable_a", "variable_b", "customers", "cells", "draws", "chi2_observed",
    "chi2_replicated", "chi2_ratio", "p_value", "flagged", "cramers_v",
)  # fmt: skip


def answer_codes(indicators: np.ndarray, n_levels: Sequence[int]) -> np.ndarray:
    """Level index per variable from indicators (..., N, M): (..., N, J) ints, -1 if missing."""
    starts = np.cumsum([0, *n_levels[:-1]])
    blocks = np.split(np.asarray(indicators), starts[1:], axis=-1)
    return np.stack(
        [np.where(b.any(axis=-1), b.argmax(axis=-1), -1) for b in blocks], axis=-1
    ).astype(np.int64)


def pair_counts(a: np.ndarray, b: np.ndarray, n_a: int, n_b: int) -> np.ndarray:
    """Two-way tables of level codes ``a``, ``b`` (..., N) (-1: missing, not counted).

    Returns (..., n_a, n_b) counts of the customers who answered both.
    """
    batch = a.shape[:-1]
    both = (a >= 0) & (b >= 0)
    cell = np.where(both, a * n_b + b, 0)
    offset = np.arange(int(np.prod(batch))).reshape(*batch, 1) * (n_a * n_b)
    counts = np.bincount((cell + offset)[both], minlength=offset.size * n_a * n_b)
    return counts.reshape(*batch, n_a, n_b).astype(float)


def expected_table(weights, theta_a, theta_b, customers: int) -> np.ndarray:
    """Model-implied table N_ab sum_k w_k theta_ka (x) theta_kb: (S, L_a, L_b) counts.

    ``weights`` (S, K); ``theta_a`` (S, K, L_a) and ``theta_b`` (S, K, L_b) level probabilities.
    """
    return customers * np.einsum("sk,ska,skb->sab", weights, theta_a, theta_b)


def pearson(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Pearson chi-square sum (O - E)^2 / E over the last two (cell) axes: (...,)."""
    return ((observed - expected) ** 2 / expected).sum(axis=(-2, -1))


def replicated_codes(weights, item_probs, n_levels, n_customers, rng) -> np.ndarray:
    """Answers drawn from each draw's mixture: (S, N, J) level codes, CHUNK draws at a time."""
    codes = []
    for start in range(0, len(weights), CHUNK):
        w, p = weights[start : start + CHUNK], item_probs[start : start + CHUNK]
        batch = (len(w), n_customers)
        _, indicators = sample_households(w[:, None], p[:, None], n_levels, rng, batch)
        codes.append(answer_codes(indicators, n_levels))
    return np.concatenate(codes)


def pair_check(table, tables, expected, levels_a, levels_b) -> tuple[dict, pd.DataFrame]:
    """One pair: its row of the pairs table (without names) and its cells.

    ``table`` (L_a, L_b) observed counts, ``tables`` (S, L_a, L_b) replicated ones and
    ``expected`` (S, L_a, L_b) the model-implied tables of the same draws.
    """
    chi2_observed = pearson(table, expected)
    chi2_replicated = pearson(tables, expected)
    row = {
        "customers": int(table.sum()),
        "cells": table.size,
        "draws": len(tables),
        "chi2_observed": chi2_observed.mean(),
        "chi2_replicated": chi2_replicated.mean(),
        "chi2_ratio": chi2_observed.mean() / chi2_replicated.mean(),
        "p_value": (chi2_replicated >= chi2_observed).mean(),
    }
    draws = xr.DataArray(tables.reshape(1, len(tables), -1), dims=("chain", "draw", "cell"))
    hdi = az.hdi(draws, prob=HDI_PROB)
    level_a, level_b = np.meshgrid(levels_a, levels_b, indexing="ij")
    cells = pd.DataFrame(
        {
            "level_a": level_a.ravel(),
            "level_b": level_b.ravel(),
            "observed": table.ravel(),
            "expected": expected.mean(axis=0).ravel(),
            "replicated_mean": tables.mean(axis=0).ravel(),
            "replicated_hdi_low": hdi.sel(ci_bound="lower").values,
            "replicated_hdi_high": hdi.sel(ci_bound="upper").values,
        }
    )
    return row, cells


def pair_checks(
    x: np.ndarray,
    weights: np.ndarray,
    item_probs: np.ndarray,
    levels: dict[str, Sequence[str]],
    *,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The local-dependence check for indicators ``x`` (N, M) and posterior draws.

    Parameters
    ----------
    x : (N, M) 0/1 indicators, one block per variable of ``levels`` (all zero: missing).
    weights : (S, K) class weights per draw; item_probs : (S, K, M) level probabilities.
    levels : each variable's level labels, in column order.
    seed : seed of the replicated answers.

    Returns
    -------
    pairs : one row per pair of variables (:data:`PAIR_COLUMNS`), most discrepant first:
        customers who answered both, cells (L_a L_b), posterior draws used, posterior means of
        the observed and replicated chi-square, their ratio, the posterior predictive p-value,
        ``flagged`` (p below :data:`FLAG_BELOW`) and the observed table's Cramér's V
        (:func:`analysis.inference.profiles.cramers_v`: how nearly one variable determines the
        other).
    cells : one row per pair and level combination (variable_a, level_a, variable_b,
        level_b): observed count, model-implied expected count (posterior mean), replicated
        count (mean and 94% HDI over draws).
    """
    variables, n_levels = list(levels), [len(lv) for lv in levels.values()]
    blocks = np.split(np.arange(sum(n_levels)), np.cumsum(n_levels)[:-1])  # item columns
    observed = answer_codes(x, n_levels)
    rng = np.random.default_rng(seed)
    replicated = replicated_codes(weights, item_probs, n_levels, len(x), rng)
    replicated = np.where(observed >= 0, replicated, -1)  # the same customers answer the same
    association = cramers_v(x, [(v, level) for v, lv in levels.items() for level in lv])
    rows, cell_frames = [], []
    for i, j in itertools.combinations(range(len(variables)), 2):
        a, b = variables[i], variables[j]
        table = pair_counts(observed[:, i], observed[:, j], n_levels[i], n_levels[j])
        tables = pair_counts(replicated[..., i], replicated[..., j], n_levels[i], n_levels[j])
        theta_a, theta_b = item_probs[..., blocks[i]], item_probs[..., blocks[j]]
        expected = expected_table(weights, theta_a, theta_b, int(table.sum()))
        row, cells = pair_check(table, tables, expected, levels[a], levels[b])
        rows.append({"variable_a": a, "variable_b": b} | row | {"cramers_v": association.at[a, b]})
        cell_frames.append(cells.assign(variable_a=a, variable_b=b))
    pairs = pd.DataFrame(rows)
    pairs.insert(len(pairs.columns) - 1, "flagged", pairs["p_value"] < FLAG_BELOW)
    pairs = pairs.sort_values(["p_value", "chi2_ratio"], ascending=[True, False], kind="stable")
    cell_columns = ["variable_a", "level_a", "variable_b", "level_b"]
    cells = pd.concat(cell_frames, ignore_index=True)
    cells = cells[cell_columns + [c for c in cells.columns if c not in cell_columns]]
    return pairs.reset_index(drop=True), cells


def evenly_spaced(posterior: xr.DataArray, n: int) -> np.ndarray:
    """``n`` evenly spaced draws (all when fewer) of (chain, draw, ...): (n, ...) array."""
    stacked = posterior.stack(sample=("chain", "draw")).transpose("sample", ...).values
    picks = np.unique(np.linspace(0, len(stacked) - 1, min(n, len(stacked))).round().astype(int))
    return stacked[picks]


def local_dependence(tree: xr.DataTree, draws: int = DRAWS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`pair_checks` of a saved latent class fit, on ``draws`` evenly spaced posterior
    draws, seeded with the fit's sampler seed (the same tables every time the report runs)."""
    pairs = item_levels(tree)
    levels = {v: [level for u, level in pairs if u == v] for v, _ in pairs}
    posterior = tree["posterior"]
    return pair_checks(
        tree["observed_data"]["x"].transpose("customer", "item").values,
        evenly_spaced(posterior["weights"].transpose("chain", "draw", "segment"), draws),
        evenly_spaced(posterior["item_probs"].transpose("chain", "draw", "segment", "item"), draws),
        levels,
        seed=int(fit_config(tree)["sampler"]["seed"]),
    )

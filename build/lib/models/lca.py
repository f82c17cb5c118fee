"""Latent class analysis (LCA): a finite mixture of independent categorical distributions.

Model, for household i answering J categorical variables (variable j has L_j levels), classes
k = 1..K (Goodman 1974; Garrett & Zeger 2000; poLCA, Linzer & Lewis 2011)::

    w               ~ Dirichlet(alpha * 1_K)                       class weights
    theta_kj        ~ Dirichlet(beta * 1_{L_j})                    per class k and variable j
    p(x_i | theta)  = sum_k w_k prod_j theta_kj[x_ij]              labels marginalized

Data layout
-----------
The model sees the full indicator matrix y (N, M) of the ``indicators`` transform: one 0/1 column
per (variable, level), nothing dropped, M = sum_j L_j, one 1 per variable in every row
(``age=19-24``, ..., ``kids_count=3+``; 39 columns for ``dunnhumby-demographics``), or none
where the answer is missing. The item
probabilities live on the same flat axis, ``item_probs`` (K, M), dims (segment, item), so

    log w_k + log p(x_i | k) = log w_k + sum_m y_im log item_probs_km

is one (N, M) x (M, K) product for all households and classes (:func:`segment_log_joint`).
This is the "one-hot (N, J, L_max) times log theta (K, J, L_max)" contraction with the padding
removed: every column is a real level, so no mask is needed and no impossible level exists.

Parameterisation
----------------
One ``pm.Dirichlet`` per variable, ``theta_<variable>`` with dims (segment, level_<variable>)
whose coordinate values are the level labels, concatenated into the deterministic
``item_probs``. This is exactly the stated prior, sampled through PyMC's simplex transform with
L_j - 1 free coordinates per class and variable: the unconstrained dimension is
(K - 1) + K * sum_j (L_j - 1), the model's parameter count. The alternative of one Dirichlet over a
padded (J, L_max) array with the padded concentrations pushed towards zero is not this model (a
Dirichlet's marginal on the real levels is Dirichlet(beta) only if the padded concentrations are
exactly zero, which is outside its support) and leaves near-flat directions for the sampler.

Levels
------
Every variable is nominal: ordered bands (age, income, household size, kids) get one free
probability per band, no order is imposed. Missing answers are handled in one of two ways,
chosen by the data:

- as their own level: ``dunnhumby-demographics`` turns NaN into the level ``Unknown``
  (data/README.md), so "did not answer" can characterise a class;
- marginalized (a csv file with ``--missing marginalize``): the variable's block of indicators is
  all zero, so it adds nothing to sum_m y_im log item_probs_km, the product over that customer's
  answered variables only. This is the exact marginal likelihood under missing at random.

Priors (:data:`DEFAULT_PRIORS`, overridable with :func:`merged_priors`)
-----------------------------------------------------------------------
- ``weights_concentration`` alpha = 1: uniform over the K-simplex of class weights.
- ``item_concentration`` beta = 1: uniform over each simplex of level probabilities, i.e. one
  pseudo-count per level and class, weak against 801 households. Below 1 (Jeffreys' 0.5) the
  density is unbounded on the faces of the simplex, so sparse levels (income ``200-249K``: 5
  households) pull probabilities to the boundary where the simplex transform's coordinates run
  off and NUTS struggles; above 1 every class is shrunk towards uniform answers, which blurs
  the classes. With K above what the data support, a class that empties returns to this prior.

Mixed data (design note, not implemented)
-----------------------------------------
Spend features could join as a continuous block under local independence given the class:
log p(x_i | k) = [categorical block, as here] + [Gaussian block on the log-standardized spend,
``models.gmm.segment_log_joint`` minus its log w_k]. The value matrix would be the column-wise
concatenation [indicators | spend] with the split given by the ``levels`` option (the first
sum_j L_j columns are indicators), ``PARAMETERS`` would become (weights, item_probs, means, chol),
and the random function would draw both blocks given one class label. Nothing in the pipeline
would change: it only sees ``segment_log_joint`` and the parameter names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import partial

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.special import logsumexp

from models.priors import merge_priors

DEFAULT_PRIORS = {"weights_concentration": 1.0, "item_concentration": 1.0}
PARAMETERS = ("weights", "item_probs")  # what segment_log_joint needs, in order
DIAGNOSED = ("weights", "item_probs")  # convergence is judged on these
EM_PSEUDO_COUNT = 0.5  # per level and class in the EM start, keeps it inside every simplex


# Default priors with a user's overrides; unknown keys are an error.
merged_priors = partial(merge_priors, DEFAULT_PRIORS, model="LCA")


def data_options(transform, columns: list[str]) -> dict:
    """``levels``: each input column's levels, in the order of the ``indicators`` transform."""
    return {"levels": {c: list(lv) for c, lv in zip(columns, transform.levels, strict=True)}}


def variable_name(variable: str) -> str:
    """``theta_<variable>``, with characters other than letters, digits and ``_`` as ``_``."""
    return "theta_" + re.sub(r"\W", "_", str(variable))


def level_dim(variable: str) -> str:
    """Dim name of a variable's levels: ``level_<variable>`` (same sanitizing)."""
    return "level_" + re.sub(r"\W", "_", str(variable))


def segment_log_joint(value, weights, item_probs):
    """log w_k + log p(y_i | segment k) for every household and class.

    Parameters
    ----------
    value : (N, M) 0/1 indicators, one column per (variable, level), one 1 per variable.
    weights : (..., K) class weights; item_probs : (..., K, M) level probabilities, each
        variable's block summing to 1. Leading ``...`` dims (e.g. posterior draws) broadcast.

    Returns
    -------
    (..., N, K) tensor of log probabilities (natural log) of the observed level combination
    jointly with the class.
    """
    return pt.log(weights)[..., None, :] + log_items(value, item_probs)


def log_items(value, item_probs):
    """log p(y_i | class k) = sum_m y_im log item_probs_km, (..., N, K), for indicators ``value``
    (N, M) and ``item_probs`` (..., K, M); a missing answer (an all-zero block) adds nothing."""
    return pt.einsum("nm,...km->...nk", value, pt.log(item_probs))


def mixture_logp(value, weights, item_probs):
    """Marginal log probability per household, (N,): logsumexp over classes."""
    return pt.logsumexp(segment_log_joint(value, weights, item_probs), axis=-1)


def draw_answers(labels, item_probs, n_levels: Sequence[int], rng) -> np.ndarray:
    """One answer per variable given class ``labels`` (*batch,): indicators (*batch, M), from
    ``item_probs`` (..., K, M) broadcast against the batch."""
    batch = labels.shape
    n_classes, n_items = np.shape(item_probs)[-2:]
    item_probs = np.broadcast_to(item_probs, (*batch, n_classes, n_items))
    chosen = np.take_along_axis(item_probs, labels[..., None, None], axis=-2)[..., 0, :]
    indicators = np.zeros((*batch, n_items))
    start = 0
    for n in n_levels:
        block = chosen[..., start : start + n]
        cumulative = np.cumsum(block / block.sum(axis=-1, keepdims=True), axis=-1)
        level = np.minimum((rng.random(batch)[..., None] > cumulative).sum(-1), n - 1)
        np.put_along_axis(indicators[..., start : start + n], level[..., None], 1.0, axis=-1)
        start += n
    return indicators


def sample_households(weights, item_probs, n_levels: Sequence[int], rng, batch: tuple):
    """Draw classes and answers: labels (*batch,) and indicators (*batch, M).

    ``weights`` (..., K) and ``item_probs`` (..., K, M) broadcast against ``batch``.
    """
    n_classes = np.shape(item_probs)[-2]
    weights = np.broadcast_to(weights, (*batch, n_classes))
    cumulative = np.cumsum(weights / weights.sum(axis=-1, keepdims=True), axis=-1)
    labels = np.minimum((rng.random(batch)[..., None] > cumulative).sum(-1), n_classes - 1)
    return labels, draw_answers(labels, item_probs, n_levels, rng)


def mixture_random(weights, item_probs, rng=None, size=None, *, n_levels: Sequence[int]):
    """Draw households from the mixture: (*size, M) indicators (posterior predictive)."""
    batch = (
        tuple(size)
        if size is not None
        else np.broadcast_shapes(np.shape(weights)[:-1], np.shape(item_probs)[:-2])
    )
    return sample_households(weights, item_probs, n_levels, rng, batch)[1]


def _check_levels(x: np.ndarray, levels: Mapping[str, Sequence[str]]) -> list[int]:
    """Level counts per variable; raises ValueError if ``x`` is not a valid indicator matrix."""
    n_levels = [len(lv) for lv in levels.values()]
    if sum(n_levels) != x.shape[1]:
        raise ValueError(f"levels describe {sum(n_levels)} indicator columns, x has {x.shape[1]}")
    if any(n < 2 for n in n_levels):
        raise ValueError("every variable needs at least 2 levels")
    names = [variable_name(v) for v in levels]
    if len(set(names)) != len(names):
        raise ValueError(f"variable names collide once sanitized: {names}")
    blocks = np.add.reduceat(x, np.cumsum([0, *n_levels[:-1]]), axis=1)
    if not (np.isin(x, (0, 1)).all() and np.all(blocks <= 1)):
        raise ValueError("x must be 0/1 indicators with at most one 1 per variable and row")
    return n_levels


def declare_item_probs(k: int, levels: Mapping[str, Sequence[str]], prior: dict):
    """The classes' level probabilities, declared in the active model: one Dirichlet per
    variable, ``theta_<variable>`` (segment, level_<variable>), and their concatenation, the
    deterministic ``item_probs`` (segment, item). The model's coords must hold those dims."""
    thetas = [
        pm.Dirichlet(
            variable_name(v),
            a=np.full((k, len(lv)), prior["item_concentration"]),
            dims=("segment", level_dim(v)),
        )
        for v, lv in levels.items()
    ]
    return pm.Deterministic("item_probs", pt.concatenate(thetas, axis=-1), dims=("segment", "item"))


def level_coords(levels: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """The ``level_<variable>`` coords of :func:`declare_item_probs`."""
    return {level_dim(v): list(map(str, lv)) for v, lv in levels.items()}


def build_lca(
    x: np.ndarray,
    k: int,
    *,
    customers,
    features,
    levels: Mapping[str, Sequence[str]],
    priors: dict | None = None,
) -> pm.Model:
    """Build the K-class latent class model for indicators ``x`` (N, M).

    ``levels`` maps each variable, in column order, to its level labels; ``features`` (M,) names
    the ``item`` dim (``variable=level``) and ``customers`` (N,) the ``customer`` dim.
    """
    prior = merged_priors(priors)
    x = np.asarray(x, dtype=float)
    n_levels = _check_levels(x, levels)
    coords = {
        "segment": np.arange(k),
        "item": list(features),
        "customer": list(customers),
    } | level_coords(levels)
    with pm.Model(coords=coords) as model:
        x_data = pm.Data("x_data", x, dims=("customer", "item"))
        weights = pm.Dirichlet(
            "weights", a=np.full(k, prior["weights_concentration"]), dims="segment"
        )
        item_probs = declare_item_probs(k, levels, prior)
        pm.CustomDist(
            "x",
            weights,
            item_probs,
            logp=mixture_logp,
            random=partial(mixture_random, n_levels=tuple(n_levels)),
            signature="(k),(k,m)->(m)",
            observed=x_data,
            dims=("customer", "item"),
        )
    return model


def item_probabilities(
    x: np.ndarray, membership: np.ndarray, n_levels: Sequence[int], pseudo_count: float
) -> np.ndarray:
    """The M-step for the level probabilities: (K, M) from indicators ``x`` (N, M) and
    memberships (N, K), ``pseudo_count`` added to every expected count, each variable's block
    normalized."""
    counts = membership.T @ x + pseudo_count  # (K, M)
    starts = np.cumsum([0, *n_levels[:-1]])
    return counts / np.repeat(np.add.reduceat(counts, starts, axis=1), n_levels, axis=1)


def theta_point(item_probs: np.ndarray, levels: Mapping[str, Sequence[str]]) -> dict:
    """``item_probs`` (K, M) split into the sampler's variables ``theta_<variable>`` (K, L_j)."""
    point, start = {}, 0
    for variable, lv in levels.items():
        point[variable_name(variable)] = item_probs[:, start : start + len(lv)]
        start += len(lv)
    return point


def em(
    x: np.ndarray,
    k: int,
    n_levels: Sequence[int],
    *,
    seed: int = 0,
    n_init: int = 5,
    max_iter: int = 500,
    tol: float = 1e-8,
    pseudo_count: float = EM_PSEUDO_COUNT,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Penalized EM for the LCA: (weights (K,), item_probs (K, M), log-likelihood), best start.

    ``pseudo_count`` is added to every expected count (a Dirichlet(1 + pseudo_count) MAP), so no
    probability is exactly 0 or 1. Starts from random memberships (Dirichlet(1) per household).
    """
    x = np.asarray(x, dtype=float)
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_init):
        membership = rng.dirichlet(np.ones(k), size=len(x))
        previous = -np.inf
        for _ in range(max_iter):
            item_probs = item_probabilities(x, membership, n_levels, pseudo_count)
            weights = (membership.sum(0) + pseudo_count) / (len(x) + k * pseudo_count)
            log_joint = np.log(weights) + x @ np.log(item_probs).T
            loglik = logsumexp(log_joint, axis=1)
            membership = np.exp(log_joint - loglik[:, None])
            if loglik.sum() - previous < tol * abs(previous):
                break
            previous = loglik.sum()
        if best is None or loglik.sum() > best[2]:
            best = (weights, item_probs, float(loglik.sum()))
    return best


def initial_point(
    x: np.ndarray,
    k: int,
    *,
    levels: Mapping[str, Sequence[str]],
    priors: dict | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A starting point for every chain: an EM solution, classes ordered by weight (largest first).

    As for the GMM, one labelling for all chains keeps them in one of the K! symmetric modes and
    the post-hoc relabelling removes any switch during sampling. ``priors`` is accepted for the
    common calling convention; the start does not depend on it.
    """
    merged_priors(priors)
    n_levels = _check_levels(np.asarray(x, dtype=float), levels)
    weights, item_probs, _ = em(x, k, n_levels, seed=seed)
    order = np.argsort(-weights, kind="stable")
    return {"weights": weights[order]} | theta_point(item_probs[order], levels)

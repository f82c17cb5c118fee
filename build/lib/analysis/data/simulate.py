"""Synthetic customers with known truth, for parameter-recovery tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import multivariate_normal


@dataclass(frozen=True)
class GaussianTruth:
    """x (N, D) model-scale data; labels (N,); weights (K,); means (K, D); covariances (K, D, D)."""

    x: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


def gaussian_mixture(
    n: int = 600,
    weights=(0.5, 0.3, 0.2),
    n_features: int = 3,
    separation: float = 4.0,
    seed: int = 0,
) -> GaussianTruth:
    """Well-separated Gaussian segments with random correlated covariances (sd 0.5 to 1).

    Means sit at distance ``separation`` from the origin along orthogonal directions (random
    directions when K > D), so segments are identifiable; the data are not standardized.
    """
    rng = np.random.default_rng(seed)
    weights = np.asarray(weights, dtype=float)
    k = len(weights)
    if k <= n_features:
        directions = np.linalg.qr(rng.normal(size=(n_features, n_features)))[0][:k]
    else:
        directions = rng.normal(size=(k, n_features))
    means = separation * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    covariances = np.empty((k, n_features, n_features))
    for segment in range(k):
        factor = rng.normal(scale=0.4, size=(n_features, n_features))
        spread = factor @ factor.T + np.eye(n_features)
        correlation = spread / np.sqrt(np.outer(np.diag(spread), np.diag(spread)))
        scales = rng.uniform(0.5, 1.0, n_features)
        covariances[segment] = correlation * np.outer(scales, scales)
    labels = rng.choice(k, size=n, p=weights)
    noise = rng.standard_normal((n, n_features))
    chols = np.linalg.cholesky(covariances)
    x = means[labels] + np.einsum("nde,ne->nd", chols[labels], noise)
    return GaussianTruth(x, labels, weights, means, covariances)


def match_to_truth(fitted_means: np.ndarray, true_means: np.ndarray) -> np.ndarray:
    """Index of the fitted segment matched to each true segment (K,): the assignment of least
    total distance between means (``scipy.optimize.linear_sum_assignment``), label-invariant."""
    cost = np.linalg.norm(fitted_means[:, None, :] - true_means[None, :, :], axis=-1)
    fitted, true = linear_sum_assignment(cost)
    return fitted[np.argsort(true)]


def true_log_density(truth: GaussianTruth) -> np.ndarray:
    """log p(x_i) (N,) under the true weights, means and covariances, nats."""
    densities = [
        w * multivariate_normal(m, c).pdf(truth.x)
        for w, m, c in zip(truth.weights, truth.means, truth.covariances, strict=True)
    ]
    return np.log(np.sum(densities, axis=0))


@dataclass(frozen=True)
class HurdleTruth:
    """A Gaussian mixture with zero spends: ``x`` (N, D) has ``zero_values`` (D,) where the
    segment's Bernoulli(zero_prob (K, D)) said "no purchase"; ``gaussian`` holds the rest."""

    x: np.ndarray
    gaussian: GaussianTruth
    zero_prob: np.ndarray
    zero_values: np.ndarray


def hurdle_mixture(zero_prob, zero_values, n: int = 600, seed: int = 0, **gaussian) -> HurdleTruth:
    """:func:`gaussian_mixture` (K = len(zero_prob) segments), then per customer and feature a
    zero with the segment's probability. ``zero_values`` should lie below every Gaussian value
    that matters (e.g. 4 sd below the lowest mean), as a zero spend lies below positive ones."""
    zero_prob = np.asarray(zero_prob, dtype=float)
    k, n_features = zero_prob.shape
    weights = gaussian.pop("weights", np.full(k, 1.0 / k))
    truth = gaussian_mixture(n, weights, n_features, seed=seed, **gaussian)
    rng = np.random.default_rng(seed + 1)
    is_zero = rng.random((n, n_features)) < zero_prob[truth.labels]
    x = np.where(is_zero, np.asarray(zero_values, dtype=float), truth.x)
    return HurdleTruth(x, truth, zero_prob, np.asarray(zero_values, dtype=float))


@dataclass(frozen=True)
class LatentClassTruth:
    """Answers of a latent class model with one dependent pair of variables.

    ``codes`` (N, J) level index per household and variable; ``labels`` (N,) true classes;
    ``weights`` (K,); ``item_probs``: per variable (K, L_j) level probabilities (for the copy,
    its marginal per class); ``copy`` = (source, copy, share): within every class, variable
    ``copy`` repeats ``source``'s level for ``share`` of the households and is uniform otherwise.
    """

    codes: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    item_probs: list[np.ndarray]
    copy: tuple[int, int, float]

    def pair_profile(self) -> np.ndarray:
        """(K, L, L) true probability of each (source level, copy level) per class: the profile
        of the two variables joined into one, theta_ks(a) (share [a = b] + (1 - share) / L)."""
        source, _, share = self.copy
        theta = self.item_probs[source]  # (K, L)
        n = theta.shape[1]
        given_source = share * np.eye(n) + (1 - share) / n  # (L, L): P(copy = b | source = a)
        return theta[:, :, None] * given_source[None]


def latent_classes_with_copy(
    item_probs: list[np.ndarray],
    weights,
    copy: tuple[int, int, float],
    n: int = 400,
    seed: int = 0,
) -> LatentClassTruth:
    """Households from independent categoricals within classes (``item_probs``: per variable
    (K, L_j), ``weights`` (K,)), except that variable ``copy[1]`` is a near-copy of ``copy[0]``
    (:class:`LatentClassTruth`); the copy's own entry of ``item_probs`` is replaced by its
    implied marginal per class."""
    source, target, share = copy
    rng = np.random.default_rng(seed)
    weights = np.asarray(weights, dtype=float)
    labels = rng.choice(len(weights), size=n, p=weights)
    codes = np.stack(
        [
            (rng.random(n)[:, None] > probs[labels].cumsum(axis=1)).sum(axis=1)
            for probs in item_probs
        ],
        axis=1,
    )
    n_levels = item_probs[source].shape[1]
    repeat = rng.random(n) < share
    codes[:, target] = np.where(repeat, codes[:, source], rng.integers(n_levels, size=n))
    probs = list(item_probs)
    probs[target] = share * item_probs[source] + (1 - share) / n_levels
    return LatentClassTruth(codes, labels, weights, probs, (source, target, share))

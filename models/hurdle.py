"""Hurdle Gaussian mixture: a point mass at zero spend per segment and feature, a Gaussian above.

Model, for customer i with model-scale features x_i (D,), segments k = 1..K, and z_id = 1 when
customer i spent nothing on feature d (x_id is the model-scale location of a zero spend,
``zero_values[d]``), o_i = the features with positive spend::

    w, mu_k, Sigma_k   as in models.gmm (same priors, nugget and LKJ)
    pi_kd              ~ Beta(a, b)                      P(spend on d is zero | segment k)
    p(x_i | k)         = prod_d pi_kd^z_id (1 - pi_kd)^(1 - z_id)
                         * MvNormal(x_i[o_i] | mu_k[o_i], Sigma_k[o_i, o_i])
    p(x_i | theta)     = sum_k w_k p(x_i | k)

The density is with respect to a point mass at each feature's zero times Lebesgue measure on the
positive coordinates. The Gaussian part is the marginal of the full D-dimensional segment Gaussian
over the customer's positive coordinates, so "who buys" (pi) and "how much, given bought" (mu,
Sigma) are separate parameters, and no component can gain density by sitting on the 17-19% tied
zeros in fruits, fish and sweets (the failure of the plain GMM, models/gmm.py). On the log1p scale
the Gaussian also gives a little mass to spends between 0 and 1, which integer spend never takes:
the same approximation a continuous model of whole-unit spend always makes.

Computation: the marginal over o_i is a Gaussian with covariance Sigma_k[o_i, o_i], factored once
per zero pattern seen in the data and segment (20 patterns among the 2,240 marketing customers,
:func:`segment_log_joint`). The observed data enter the model as a constant, not ``pm.Data``: the
pattern table is fixed when the graph is built.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.tensor.variable import TensorConstant
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture

from models import gmm
from models.priors import merge_priors

DEFAULT_PRIORS = gmm.DEFAULT_PRIORS | {"zero_prob_a": 1.0, "zero_prob_b": 1.0}
PARAMETERS = ("weights", "means", "chol", "zero_prob")  # what segment_log_joint needs, in order
DIAGNOSED = ("weights", "means", "scales", "zero_prob")  # convergence is judged on these
ZERO_TOLERANCE = 1e-9  # model-scale distance within which a value is a zero spend
EM_ITERATIONS = 50  # hurdle EM rounds for the chains' starting point


# Default priors with a user's overrides; unknown keys are an error.
merged_priors = partial(merge_priors, DEFAULT_PRIORS, model="hurdle GMM")


def data_options(transform, columns: list[str]) -> dict:
    """``zero_values``: where a zero spend lies on the model scale (``FittedTransform``)."""
    return {"zero_values": list(transform.model_zero())}


def zero_mask(x: np.ndarray, zero_values) -> np.ndarray:
    """(N, D) True where ``x`` is a zero spend (at its feature's ``zero_values`` location)."""
    return x <= np.asarray(zero_values) + ZERO_TOLERANCE


def pattern_codes(is_zero: np.ndarray) -> np.ndarray:
    """(N,) one integer per zero pattern: bit d is set when feature d is zero."""
    return is_zero @ (2 ** np.arange(is_zero.shape[1]))


def constant_value(value) -> np.ndarray:
    """The numbers of a data tensor known when the graph is built (numpy or a TensorConstant)."""
    if isinstance(value, TensorConstant):
        return value.data
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(
        "the hurdle likelihood reads the zero patterns when its graph is built, so its "
        f"value must be data (numpy or a constant), got {type(value).__name__}"
    )


def segment_log_joint(value, weights, means, chol, zero_prob, *, zero_values):
    """log w_k + log p(x_i | segment k) for every customer and segment.

    Parameters
    ----------
    value : (N, D) model-scale features, as data (numpy or a TensorConstant, see below).
    weights : (..., K); means : (..., K, D); chol : (..., K, D, D); zero_prob : (..., K, D).
        Leading ``...`` dims (e.g. posterior draws) broadcast.
    zero_values : (D,) model-scale location of a zero spend per feature.

    Returns
    -------
    (..., N, K) log joint densities (natural log).

    The marginal over customer i's positive features is computed by padding: with M = diag(kept
    features) of the customer's zero pattern, M Sigma_k M + (I - M) has a Cholesky factor that
    carries the marginal's, and its identity block adds nothing for the zeroed differences. One
    factor per (pattern seen in the data, segment) is computed and each customer takes its own,
    with elementwise products only (no batched tiny matrix products). The pattern table comes
    from the data when the graph is built, which is why ``value`` must be data.
    """
    data = constant_value(value)
    n_features = data.shape[1]
    is_zero = zero_mask(data, zero_values)  # (N, D)
    patterns, pattern_of = np.unique(pattern_codes(is_zero), return_inverse=True)  # (P,), (N,)
    keep = 1.0 - ((patterns[:, None] >> np.arange(n_features)) & 1)  # (P, D): 1 = positive
    covariance = chol @ pt.swapaxes(chol, -1, -2)  # (..., K, D, D)
    padded = covariance[..., None, :, :, :] * keep[:, None, :, None] * keep[:, None, None, :] + (
        np.eye(n_features) * (1.0 - keep)[:, None, :, None]
    )  # (..., P, K, D, D)
    factor = pt.linalg.cholesky(padded)
    inverse = pt.linalg.solve_triangular(factor, pt.eye(n_features), lower=True)
    log_det = pt.log(pt.diagonal(factor, axis1=-2, axis2=-1)).sum(axis=-1)  # (..., P, K)
    positive = 1.0 - is_zero  # (N, D) float
    centred = positive[:, None, :] * (data[:, None, :] - means[..., None, :, :])  # (..., N, K, D)
    customer_inverse = pt.take(inverse, pattern_of, axis=-4)  # (..., N, K, D, D)
    z = (customer_inverse * centred[..., None, :]).sum(axis=-1)  # (..., N, K, D)
    log_normal = (
        -0.5 * (z**2).sum(axis=-1)
        - pt.take(log_det, pattern_of, axis=-2)
        - 0.5 * np.log(2 * np.pi) * positive.sum(axis=-1)[:, None]
    )  # (..., N, K)
    log_zero = pt.einsum("nd,...kd->...nk", 1.0 - positive, pt.log(zero_prob)) + pt.einsum(
        "nd,...kd->...nk", positive, pt.log1p(-zero_prob)
    )
    return pt.log(weights)[..., None, :] + log_zero + log_normal


def mixture_logp(value, weights, means, chol, zero_prob, *, zero_values):
    """Marginal log density per customer, (N,): logsumexp over segments."""
    joint = segment_log_joint(value, weights, means, chol, zero_prob, zero_values=zero_values)
    return pt.logsumexp(joint, axis=-1)


def mixture_random(weights, means, chol, zero_prob, rng=None, size=None, *, zero_values):
    """Draw customers (*size, D): a segment, its Gaussian, then zeros with its zero_prob."""
    batch = gmm.random_batch(size, (weights, 1), (means, 2), (chol, 3), (zero_prob, 2))
    labels = gmm.draw_labels(weights, batch, rng)
    spend = gmm.draw_gaussian(labels, means, chol, rng)
    zero_prob = np.broadcast_to(zero_prob, (*batch, *zero_prob.shape[-2:]))
    chosen = np.take_along_axis(zero_prob, labels[..., None, None], axis=-2)[..., 0, :]
    return np.where(rng.random(spend.shape) < chosen, np.asarray(zero_values), spend)


def build_hurdle(
    x: np.ndarray,
    k: int,
    *,
    customers,
    features,
    zero_values,
    covariance: str = "full",
    priors: dict | None = None,
) -> pm.Model:
    """Build the K-segment hurdle mixture for model-scale ``x`` (N, D).

    ``zero_values`` (D,) is where a zero spend lies on the model scale
    (``FittedTransform.model_zero``); ``customers`` (N,) and ``features`` (D,) label the dims.
    """
    if covariance not in gmm.COVARIANCES:
        raise ValueError(f"covariance must be one of {gmm.COVARIANCES}, got {covariance!r}")
    n_features = x.shape[1]
    if len(zero_values) != n_features:
        raise ValueError(f"{n_features} features but {len(zero_values)} zero values")
    prior = merged_priors(priors)
    coords = {
        "segment": np.arange(k),
        "feature": list(features),
        "feature_col": list(features),
        "customer": list(customers),
    }
    zero_values = tuple(float(v) for v in zero_values)
    with pm.Model(coords=coords) as model:
        weights = pm.Dirichlet(
            "weights", a=np.full(k, prior["weights_concentration"]), dims="segment"
        )
        means = pm.Normal("means", mu=0.0, sigma=prior["mean_sd"], dims=("segment", "feature"))
        chol = gmm.covariance_cholesky(k, n_features, prior, covariance)
        zero_prob = pm.Beta(
            "zero_prob",
            alpha=prior["zero_prob_a"],
            beta=prior["zero_prob_b"],
            dims=("segment", "feature"),
        )
        pm.CustomDist(
            "x",
            weights,
            means,
            chol,
            zero_prob,
            logp=partial(mixture_logp, zero_values=zero_values),
            random=partial(mixture_random, zero_values=zero_values),
            signature="(k),(k,d),(k,d,e),(k,d)->(d)",
            observed=x,  # a constant: segment_log_joint groups its rows by zero pattern
            dims=("customer", "feature"),
        )
    return model


def log_joint_function(value: np.ndarray, zero_values):
    """:func:`segment_log_joint` of ``value`` (N, D) compiled once: f(weights, means, chol,
    zero_prob) -> (N, K) for one set of parameters (no draw dims)."""
    parameters = [
        pt.tensor(name, shape=(None,) * ndim)
        for name, ndim in zip(PARAMETERS, (1, 2, 3, 2), strict=True)
    ]
    output = segment_log_joint(value, *parameters, zero_values=tuple(zero_values))
    return pytensor.function(parameters, output)


def conditional_moments(x, is_zero, responsibility, means, covariances):
    """Weighted means (K, D) and covariances (K, D, D) of the Gaussian part, zeros as missing.

    The E-step of EM with missing values: a customer's zero features are replaced by their
    conditional mean given the positive ones under the current ``means`` (K, D) and
    ``covariances`` (K, D, D), and the conditional covariance is added to the second moments.
    """
    n_segments, n_features = means.shape
    codes = pattern_codes(is_zero)
    first = np.zeros((n_segments, n_features))
    second = np.zeros((n_segments, n_features, n_features))
    for code in np.unique(codes):
        rows = codes == code
        missing = is_zero[rows][0]
        kept = ~missing
        weight = responsibility[rows]  # (n, K)
        for k in range(n_segments):
            filled = np.where(missing, means[k], x[rows])  # (n, D)
            extra = np.zeros((n_features, n_features))
            if missing.any():
                cov = covariances[k]
                gain = cov[np.ix_(missing, kept)] @ np.linalg.pinv(cov[np.ix_(kept, kept)])
                filled[:, missing] += (x[rows][:, kept] - means[k, kept]) @ gain.T
                extra[np.ix_(missing, missing)] = (
                    cov[np.ix_(missing, missing)] - gain @ cov[np.ix_(kept, missing)]
                )
            first[k] += weight[:, k] @ filled
            second[k] += filled.T @ (weight[:, k, None] * filled) + weight[:, k].sum() * extra
    mass = responsibility.sum(axis=0)[:, None] + 1e-12
    new_means = first / mass
    return new_means, second / mass[:, :, None] - new_means[:, :, None] * new_means[:, None, :]


def moment_step(
    x, is_zero, responsibility, covariance: str, nugget_sd: float, previous: dict | None = None
) -> dict:
    """Segment parameters from memberships ``responsibility`` (N, K): the M-step of a hurdle EM.

    Per segment: the weight; the zero probability per feature, (weighted zeros + 1) / (weight +
    2), the posterior mean under the model's Beta(1, 1) prior; the mean and covariance of the
    Gaussian part. Without ``previous`` (a point from this function) those are available-case
    moments of the positive values (each pair of features over the customers positive in both);
    with it, :func:`conditional_moments`, so that repeated steps converge to the maximum
    likelihood estimate. The correlations are eigenvalue-floored at 0.05 so they stay positive
    definite; the scales less the nugget are at least 0.05. Returns the sampler's variables plus
    ``chol`` (K, D, D).
    """
    if previous is None:
        positive = (~is_zero).astype(float)  # (N, D)
        both = positive[:, :, None] * positive[:, None, :]  # (N, D, D)
        mass = responsibility.T @ positive + 1e-9  # (K, D)
        means = responsibility.T @ (positive * x) / mass
        centred = positive[:, None, :] * (x[:, None, :] - means[None])  # (N, K, D)
        pair_mass = np.einsum("nk,nde->kde", responsibility, both) + 1e-9
        moments = np.einsum("nk,nkd,nke->kde", responsibility, centred, centred) / pair_mass
    else:
        chol = previous["chol"]
        means, moments = conditional_moments(
            x, is_zero, responsibility, previous["means"], chol @ np.swapaxes(chol, -1, -2)
        )
    # Sigma = nugget^2 I + diag(s) Omega diag(s): s and Omega from the moments less the nugget.
    structured_moments = moments - nugget_sd**2 * np.eye(x.shape[1])
    structured_sd = np.sqrt(np.maximum(np.diagonal(structured_moments, 0, -2, -1), 0.05**2))
    correlation = structured_moments / (structured_sd[:, :, None] * structured_sd[:, None, :])
    correlation[:, np.arange(x.shape[1]), np.arange(x.shape[1])] = 1.0
    if covariance == "diag":
        correlation = np.broadcast_to(np.eye(x.shape[1]), correlation.shape)
    eigenvalues, eigenvectors = np.linalg.eigh(correlation)
    floored = eigenvectors @ (
        np.maximum(eigenvalues, 0.05)[..., None] * np.swapaxes(eigenvectors, -1, -2)
    )
    correlation = floored / np.sqrt(
        np.diagonal(floored, 0, -2, -1)[:, :, None] * np.diagonal(floored, 0, -2, -1)[:, None, :]
    )
    structured = structured_sd[:, :, None] * np.linalg.cholesky(correlation)
    point = {
        "weights": responsibility.mean(axis=0),
        "means": means,
        "structured_sd": structured_sd,
        "zero_prob": (responsibility.T @ is_zero + 1.0)
        / (responsibility.sum(axis=0)[:, None] + 2.0),
        "chol": np.linalg.cholesky(
            nugget_sd**2 * np.eye(x.shape[1]) + structured @ np.swapaxes(structured, -1, -2)
        ),
    }
    if covariance == "full" and x.shape[1] > 1:
        point["corr_chol"] = np.linalg.cholesky(correlation)
    return point


def initial_point(
    x: np.ndarray,
    k: int,
    *,
    zero_values,
    covariance: str = "full",
    priors: dict | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A starting point for every chain: a hurdle EM solution, segments by weight (largest first).

    EM on all of x would cluster the zero patterns (zeros are ties far from the positive values),
    so the first memberships come from a Gaussian EM on x with every zero replaced by its
    feature's mean positive value. Then :data:`EM_ITERATIONS` rounds of the hurdle's own EM:
    memberships from :func:`segment_log_joint`, parameters from :func:`moment_step` (zeros
    treated as missing in the Gaussian part after the first round).
    """
    prior = merged_priors(priors)
    is_zero = zero_mask(x, zero_values)
    positive_means = np.nanmean(np.where(is_zero, np.nan, x), axis=0)
    imputed = np.where(is_zero, np.nan_to_num(positive_means), x)
    em = GaussianMixture(
        k, covariance_type=covariance, n_init=5, random_state=seed, reg_covar=1e-3, max_iter=500
    ).fit(imputed)
    responsibility = em.predict_proba(imputed)
    log_joint = log_joint_function(x, zero_values)
    point = None
    for _ in range(EM_ITERATIONS):
        point = moment_step(x, is_zero, responsibility, covariance, prior["nugget_sd"], point)
        joint = log_joint(*(point[name] for name in PARAMETERS))
        responsibility = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    order = np.argsort(-point["weights"])
    return {name: value[order] for name, value in point.items() if name != "chol"}

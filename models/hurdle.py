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
pattern table is fixed when the graph is built. To score new customers the data can be an input,
given the places of their zeros and missing values (``pattern``).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from models import compiled, gmm
from models.priors import merge_priors

DEFAULT_PRIORS = gmm.DEFAULT_PRIORS | {"zero_prob_a": 1.0, "zero_prob_b": 1.0}
PARAMETERS = ("weights", "means", "chol", "zero_prob")  # what segment_log_joint needs, in order
DIAGNOSED = ("weights", "means", "scales", "zero_prob")  # convergence is judged on these
ZERO_TOLERANCE = 1e-9  # model-scale distance within which a value is a zero spend


# Default priors with a user's overrides; unknown keys are an error.
merged_priors = partial(merge_priors, DEFAULT_PRIORS, model="hurdle GMM")


def data_options(transform, columns: list[str]) -> dict:
    """``zero_values``: where a zero spend lies on the model scale (``FittedTransform``)."""
    return {"zero_values": list(transform.model_zero())}


def zero_mask(x: np.ndarray, zero_values) -> np.ndarray:
    """(N, D) True where ``x`` is a zero spend (at its feature's ``zero_values`` location); a
    missing value (NaN) is not a zero."""
    return x <= np.asarray(zero_values) + ZERO_TOLERANCE


def structure(x: np.ndarray, zero_values) -> np.ndarray:
    """(N, 2 D) bool: what :func:`segment_log_joint` reads off the data when its graph is built,
    the missing values and then the zero spends."""
    missing = np.isnan(x)
    return np.concatenate([missing, zero_mask(x, zero_values) & ~missing], axis=1)


def constant_value(value) -> np.ndarray:
    """The numbers of a data tensor known when the graph is built (numpy or a TensorConstant)."""
    data = gmm.known_values(value)
    if data is None:
        raise TypeError(
            "the hurdle likelihood reads the zero patterns when its graph is built, so its "
            f"value must be data (numpy or a constant), got {type(value).__name__}"
        )
    return data


def segment_log_joint(
    value, weights, means, chol, zero_prob, *, zero_values, pattern: np.ndarray | None = None
):
    """log w_k + log p(x_i | segment k) for every customer and segment.

    Parameters
    ----------
    value : (N, D) model-scale features, as data (numpy or a TensorConstant), or symbolic when
        ``pattern`` is given (see below); NaN marks a missing value, which drops out of both
        parts of that customer's likelihood.
    weights : (..., K); means : (..., K, D); chol : (..., K, D, D); zero_prob : (..., K, D).
        Leading ``...`` dims (e.g. posterior draws) broadcast.
    zero_values : (D,) model-scale location of a zero spend per feature.
    pattern : (N, D) numpy data with zero spends and NaN where ``value`` has them (other
        numbers are not read). Default: ``value`` itself.

    Returns
    -------
    (..., N, K) log joint densities (natural log).

    The Gaussian part is the marginal over customer i's positive features
    (``models.gmm.marginal_log_normal``: one factor per pattern seen in the data and segment).
    The pattern table comes from the data when the graph is built, which is why ``value`` must
    be data, or ``pattern`` stand in for it.
    """
    data = constant_value(value) if pattern is None else pattern
    missing, zero = np.hsplit(structure(data, zero_values), 2)  # (N, D) each, numpy
    positive = ~(missing | zero)
    log_normal = gmm.marginal_log_normal(value, positive, means, chol)  # (..., N, K)
    # the Bernoulli part reads the zeros off value in the graph (constants folded for known
    # data), so a symbolic value carries no (N, D) constant: numba caches no compiled function
    # holding a constant over 1 MB, and recompiled for each scoring run (20 s)
    tensor = pt.as_tensor_variable(value)
    observed_in_graph = ~pt.isnan(tensor)
    zero_in_graph = zero_mask(tensor, zero_values) & observed_in_graph
    positive_in_graph = observed_in_graph & ~zero_in_graph
    log_zero = pt.einsum(
        "nd,...kd->...nk", zero_in_graph.astype("float64"), pt.log(zero_prob)
    ) + pt.einsum("nd,...kd->...nk", positive_in_graph.astype("float64"), pt.log1p(-zero_prob))
    return pt.log(weights)[..., None, :] + log_zero + log_normal


def mixture_logp(value, weights, means, chol, zero_prob, *, zero_values):
    """Marginal log density per customer, (N,): logsumexp over segments."""
    joint = segment_log_joint(value, weights, means, chol, zero_prob, zero_values=zero_values)
    return pt.logsumexp(joint, axis=-1)


def mixture_random(weights, means, chol, zero_prob, rng=None, size=None, *, zero_values):
    """Draw customers (*size, D): a segment, its Gaussian, then zeros with its zero_prob."""
    batch = gmm.random_batch(size, (weights, 1), (means, 2), (chol, 3), (zero_prob, 2))
    labels = gmm.draw_labels(weights, batch, rng)
    return draw_given_labels(labels, means, chol, zero_prob, rng, zero_values=zero_values)


def draw_given_labels(labels, means, chol, zero_prob, rng, *, zero_values) -> np.ndarray:
    """One customer (*batch, D) per segment label (*batch,): the segment's Gaussian, then each
    feature zero (at ``zero_values``) with the segment's ``zero_prob``."""
    spend = gmm.draw_gaussian(labels, means, chol, rng)
    zero_prob = np.broadcast_to(zero_prob, (*labels.shape, *zero_prob.shape[-2:]))
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
            observed=pt.as_tensor_variable(x),  # a constant: rows grouped by zero pattern
            dims=("customer", "feature"),
        )
    return model


def log_joint_function(value: np.ndarray, zero_values):
    """:func:`segment_log_joint` of ``value`` (N, D) compiled once per process
    (``models.compiled``): f(weights, means, chol, zero_prob) -> (N, K) for one set of
    parameters."""
    return compiled.log_joint_function(
        segment_log_joint,
        {"weights": 1, "means": 2, "chol": 3, "zero_prob": 2},
        value,
        zero_values=tuple(float(v) for v in zero_values),
    )


def moment_step(
    x,
    is_zero,
    responsibility,
    previous: dict | None = None,
    *,
    covariance: str,
    nugget_sd: float,
    observed: np.ndarray | None = None,
) -> dict:
    """Segment parameters from memberships ``responsibility`` (N, K): the M-step of a hurdle EM.

    The Gaussian part is ``models.gmm.moment_step`` with zeros and missing values hidden (its
    means, covariances and the sampler's variables, plus ``chol``). Per segment and feature the
    zero probability is (weighted zeros + 1) / (weighted observed customers + 2), the posterior
    mean under the model's Beta(1, 1) prior. ``observed`` (N, D) is False where a value is
    missing (default: none is).
    """
    observed = np.ones_like(is_zero) if observed is None else observed
    point = gmm.moment_step(
        x, is_zero | ~observed, responsibility, previous, covariance=covariance, nugget_sd=nugget_sd
    )
    point["zero_prob"] = (responsibility.T @ is_zero + 1.0) / (responsibility.T @ observed + 2.0)
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
    so ``models.gmm.em_with_hidden`` starts from a Gaussian EM on x with every zero (and missing
    value) replaced by its feature's mean positive value, then runs ``models.gmm.EM_ITERATIONS``
    rounds of the hurdle's own EM: memberships from :func:`segment_log_joint`, parameters from
    :func:`moment_step` (zeros treated as missing in the Gaussian part after the first round).
    """
    prior = merged_priors(priors)
    observed = ~np.isnan(x)
    is_zero = zero_mask(x, zero_values) & observed
    step = partial(
        moment_step,
        x,
        is_zero,
        covariance=covariance,
        nugget_sd=prior["nugget_sd"],
        observed=observed,
    )  # called as step(responsibility, previous), like models.gmm.moment_step
    point = gmm.em_with_hidden(
        x, is_zero | ~observed, k, covariance, seed, step, log_joint_function(x, zero_values),
        PARAMETERS,
    )  # fmt: skip
    order = np.argsort(-point["weights"])
    return {name: value[order] for name, value in point.items() if name != "chol"}

"""Mixed mixture: continuous features and categorical answers of the same customers, one segment
label.

Model, for customer i with model-scale features x_i (D,) and answers y_i to J categorical
variables, segments k = 1..K::

    w                    ~ Dirichlet(alpha * 1_K)
    mu_k, Sigma_k (, pi_k)  as in models.gmm (or models.hurdle), same priors
    theta_kj             ~ Dirichlet(beta * 1_{L_j})          as in models.lca
    p(x_i, y_i | k)      = p_cont(x_i | k) * prod_j theta_kj[y_ij]
    p(x_i, y_i | theta)  = sum_k w_k p(x_i, y_i | k)

The continuous and categorical parts are independent given the segment (local independence, as
in the latent class model), and share the segment weights: a segment is described by its spend
(or measurements) and by its answers at once. The continuous part is the GMM (``mixed-gmm``) or
the hurdle mixture (``mixed-hurdle``, for spend with exact zeros).

Data layout
-----------
The value matrix is the column-wise concatenation [x | y] (N, D + M): the D model-scale
continuous features, then the indicators of every level of the categorical variables (the
``indicators`` transform), dim ``column``. The option ``n_continuous`` = D says where the split
lies and ``levels`` names the variables and their levels, so

    log w_k + log p(x_i, y_i | k) = [log w_k + log p_cont(x_i | k)] + sum_m y_im log item_probs_km

is the continuous model's ``segment_log_joint`` plus the latent class model's ``log_items``.
Missing values drop out of both: a NaN feature leaves the Gaussian marginal over the observed
ones (``models.gmm.marginal_log_normal``), a missing answer is an all-zero block of indicators.
The data enter the graph as a constant (the split and the missingness patterns are read off
them when the graph is built).

Parameters keep the dims of the two parent models: ``means`` (segment, feature), ``chol``
(segment, feature, feature_col), ``zero_prob`` (segment, feature) for the hurdle part,
``theta_<variable>`` (segment, level_<variable>) and ``item_probs`` (segment, item).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from models import compiled, gmm, hurdle, lca
from models.priors import merge_priors

CONTINUOUS_PARTS = ("gmm", "hurdle")
DEFAULT_PRIORS = {
    "gmm": gmm.DEFAULT_PRIORS | lca.DEFAULT_PRIORS,
    "hurdle": hurdle.DEFAULT_PRIORS | lca.DEFAULT_PRIORS,
}
PARAMETERS = {  # what segment_log_joint needs, in order
    "gmm": (*gmm.PARAMETERS, "item_probs"),
    "hurdle": (*hurdle.PARAMETERS, "item_probs"),
}
DIAGNOSED = {  # convergence is judged on these
    "gmm": (*gmm.DIAGNOSED, "item_probs"),
    "hurdle": (*hurdle.DIAGNOSED, "item_probs"),
}
merged_priors = {
    part: partial(merge_priors, DEFAULT_PRIORS[part], model=f"mixed {part}")
    for part in CONTINUOUS_PARTS
}


def data_options(part: str, transform, columns: list[str], categories, categorical_columns):
    """Model options that follow from the data: the continuous part's own (``zero_values`` for
    the hurdle) from its ``transform`` and ``columns``, the latent class model's ``levels``
    from the ``indicators`` transform ``categories`` of ``categorical_columns``, and
    ``n_continuous``."""
    options = hurdle.data_options(transform, columns) if part == "hurdle" else {}
    return (
        options
        | lca.data_options(categories, categorical_columns)
        | {"n_continuous": len(transform.columns)}
    )


def split(value, n_continuous: int) -> tuple:
    """The continuous features (N, D) and the indicators (N, M) of data ``value``: numpy parts
    of numpy or a TensorConstant, tensor parts of a symbolic input."""
    known = gmm.known_values(value)
    data = value if known is None else known
    return data[:, :n_continuous], data[:, n_continuous:]


def structure(x: np.ndarray, n_continuous: int, zero_values=None) -> np.ndarray:
    """(N, C) bool: what :func:`segment_log_joint` reads off the data when its graph is built,
    that of its continuous part (``models.gmm.structure`` or ``models.hurdle.structure``)."""
    continuous = x[:, :n_continuous]
    if zero_values is None:
        return gmm.structure(continuous)
    return hurdle.structure(continuous, zero_values)


def segment_log_joint(
    value,
    weights,
    means,
    chol,
    *rest,
    n_continuous: int,
    zero_values=None,
    pattern: np.ndarray | None = None,
):
    """log w_k + log p(x_i, y_i | segment k) for every customer and segment, (..., N, K).

    Parameters
    ----------
    value : (N, D + M) data: D model-scale features, M indicators. Numpy or a TensorConstant,
        or symbolic when ``pattern`` is given (the continuous part's ``pattern``).
    weights : (..., K); means : (..., K, D); chol : (..., K, D, D); ``rest``: ``zero_prob``
        (..., K, D) when ``zero_values`` (D,) is given (the hurdle part), then ``item_probs``
        (..., K, M). Leading ``...`` dims (e.g. posterior draws) broadcast.
    pattern : (N, D + M) numpy data with missing values (and, for the hurdle, zero spends)
        where ``value`` has them. Default: ``value`` itself.
    """
    continuous, indicators = split(value, n_continuous)
    continuous_pattern = None if pattern is None else pattern[:, :n_continuous]
    if zero_values is None:
        (item_probs,) = rest
        joint = gmm.segment_log_joint(continuous, weights, means, chol, pattern=continuous_pattern)
    else:
        zero_prob, item_probs = rest
        joint = hurdle.segment_log_joint(
            continuous,
            weights,
            means,
            chol,
            zero_prob,
            zero_values=zero_values,
            pattern=continuous_pattern,
        )
    return joint + lca.log_items(indicators, item_probs)


def mixture_logp(value, *parameters, n_continuous: int, zero_values=None):
    """Marginal log density per customer, (N,): logsumexp over segments. The last of
    ``parameters`` is the ``layout`` (:func:`build_mixed`), which only gives a draw's width."""
    joint = segment_log_joint(
        value, *parameters[:-1], n_continuous=n_continuous, zero_values=zero_values
    )
    return pt.logsumexp(joint, axis=-1)


def mixture_random(
    weights, means, chol, *rest, rng=None, size=None, n_levels: Sequence[int], zero_values=None
):
    """Draw customers (*size, D + M): a segment, its continuous features, then its answers.
    ``rest`` is (``zero_prob``,) ``item_probs``, ``layout``."""
    item_probs = rest[-2]
    batch = gmm.random_batch(size, (weights, 1), (means, 2), (chol, 3), (item_probs, 2))
    labels = gmm.draw_labels(weights, batch, rng)
    if zero_values is None:
        continuous = gmm.draw_gaussian(labels, means, chol, rng)
    else:
        continuous = hurdle.draw_given_labels(
            labels, means, chol, rest[0], rng, zero_values=zero_values
        )
    return np.concatenate([continuous, lca.draw_answers(labels, item_probs, n_levels, rng)], -1)


def part_of(zero_values) -> str:
    """The continuous part a model's options describe: the hurdle when ``zero_values`` is set."""
    return "gmm" if zero_values is None else "hurdle"


def build_mixed(
    x: np.ndarray,
    k: int,
    *,
    customers,
    features,
    n_continuous: int,
    levels: Mapping[str, Sequence[str]],
    covariance: str = "full",
    zero_values=None,
    priors: dict | None = None,
) -> pm.Model:
    """Build the K-segment mixed mixture for data ``x`` (N, D + M) (module docstring).

    ``features`` (D + M,) names the columns: the first ``n_continuous`` are the ``feature``
    dim, the rest the ``item`` dim (``variable=level``); ``levels`` maps each categorical
    variable to its levels; ``zero_values`` (D,) makes the continuous part the hurdle.
    """
    if covariance not in gmm.COVARIANCES:
        raise ValueError(f"covariance must be one of {gmm.COVARIANCES}, got {covariance!r}")
    part = part_of(zero_values)
    prior = merged_priors[part](priors)
    x = np.asarray(x, dtype=float)
    n_levels = lca._check_levels(split(x, n_continuous)[1], levels)
    if zero_values is not None:
        if len(zero_values) != n_continuous:
            raise ValueError(f"{n_continuous} features but {len(zero_values)} zero values")
        zero_values = tuple(float(v) for v in zero_values)
    names = list(features)
    coords = {
        "segment": np.arange(k),
        "feature": names[:n_continuous],
        "feature_col": names[:n_continuous],
        "item": names[n_continuous:],
        "column": names,
        "customer": list(customers),
    } | lca.level_coords(levels)
    with pm.Model(coords=coords) as model:
        weights = pm.Dirichlet(
            "weights", a=np.full(k, prior["weights_concentration"]), dims="segment"
        )
        means = pm.Normal("means", mu=0.0, sigma=prior["mean_sd"], dims=("segment", "feature"))
        chol = gmm.covariance_cholesky(k, n_continuous, prior, covariance)
        continuous_parameters = [weights, means, chol]
        if part == "hurdle":
            continuous_parameters.append(
                pm.Beta(
                    "zero_prob",
                    alpha=prior["zero_prob_a"],
                    beta=prior["zero_prob_b"],
                    dims=("segment", "feature"),
                )
            )
        item_probs = lca.declare_item_probs(k, levels, prior)
        # layout (D + M,): 0 for a feature, 1 for an indicator. PyMC reads a draw's width, the
        # signature's c, off this input; the likelihood and the draws get the split from
        # n_continuous
        layout = np.arange(x.shape[1]) >= n_continuous
        options = {"n_continuous": n_continuous, "zero_values": zero_values}
        pm.CustomDist(
            "x",
            *continuous_parameters,
            item_probs,
            layout.astype(float),
            logp=partial(mixture_logp, **options),
            random=partial(mixture_random, n_levels=tuple(n_levels), zero_values=zero_values),
            signature=(
                "(k),(k,d),(k,d,e),(k,d),(k,m),(c)->(c)"
                if part == "hurdle"
                else "(k),(k,d),(k,d,e),(k,m),(c)->(c)"
            ),
            observed=pt.as_tensor_variable(x),  # a constant: split and missingness read off it
            dims=("customer", "column"),
        )
    return model


def initial_point(
    x: np.ndarray,
    k: int,
    *,
    n_continuous: int,
    levels: Mapping[str, Sequence[str]],
    covariance: str = "full",
    zero_values=None,
    priors: dict | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A starting point for every chain: an EM solution of the mixed model, segments by weight
    (largest first).

    ``models.gmm.em_with_hidden`` starts from a Gaussian EM on the continuous features (missing
    values and, for the hurdle, zeros replaced by the feature's mean visible value), then runs
    EM on both parts: memberships from :func:`segment_log_joint`, parameters from the
    continuous part's moment step and the latent class model's level probabilities.
    """
    part = part_of(zero_values)
    prior = merged_priors[part](priors)
    x = np.asarray(x, dtype=float)
    continuous, indicators = split(x, n_continuous)
    n_levels = lca._check_levels(indicators, levels)
    observed = ~np.isnan(continuous)
    moments = {"covariance": covariance, "nugget_sd": prior["nugget_sd"]}
    if part == "hurdle":
        is_zero = hurdle.zero_mask(continuous, zero_values) & observed
        hidden = is_zero | ~observed
        continuous_step = partial(hurdle.moment_step, continuous, is_zero, observed=observed)
    else:
        hidden = ~observed
        continuous_step = partial(gmm.moment_step, continuous, hidden)

    def step(responsibility, previous):
        point = continuous_step(responsibility, previous, **moments)
        point["item_probs"] = lca.item_probabilities(
            indicators, responsibility, n_levels, lca.EM_PSEUDO_COUNT
        )
        return point

    point = gmm.em_with_hidden(
        continuous, hidden, k, covariance, seed, step,
        log_joint_function(x, n_continuous, zero_values), PARAMETERS[part],
    )  # fmt: skip
    order = np.argsort(-point["weights"])
    start = {
        name: value[order] for name, value in point.items() if name not in ("chol", "item_probs")
    }
    return start | lca.theta_point(point["item_probs"][order], levels)


def log_joint_function(value: np.ndarray, n_continuous: int, zero_values=None):
    """:func:`segment_log_joint` of ``value`` (N, D + M) compiled once per process
    (``models.compiled``): f(*parameters) -> (N, K) for one set of parameters."""
    dims = {"weights": 1, "means": 2, "chol": 3, "zero_prob": 2, "item_probs": 2}
    parameters = {name: dims[name] for name in PARAMETERS[part_of(zero_values)]}
    zero_values = None if zero_values is None else tuple(float(v) for v in zero_values)
    return compiled.log_joint_function(
        segment_log_joint, parameters, value, n_continuous=n_continuous, zero_values=zero_values
    )

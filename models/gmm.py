"""Bayesian Gaussian mixture on standardized features, labels marginalized.

Model, for customer i with model-scale features x_i (D,), segments k = 1..K::

    w               ~ Dirichlet(alpha * 1_K)
    mu_k            ~ Normal(0, mean_sd)                          (D,)
    s_kd            ~ Gamma(structured_sd_shape, structured_sd_rate)
    Omega_k         ~ LKJ(eta)                                    ("full"; identity for "diag")
    Sigma_k         = nugget_sd^2 I + diag(s_k) Omega_k diag(s_k)
    p(x_i | theta)  = sum_k w_k MvNormal(x_i | mu_k, Sigma_k)

The nugget keeps every component's covariance away from singular, in every direction. Spend has
exact zeros for 17-19% of customers in several categories, and customers who bought none of
three categories are tied in all three coordinates: a component can sit on such a tie and gain
unbounded density either by shrinking its scales or by pushing its correlations to +-1 (det
Omega_k -> 0), so a floor on the scales alone leaves the posterior improper. With the nugget,
det Sigma_k >= nugget_sd^(2D) and the density is bounded. The nugget reads as measurement
error on the model scale: spend is recorded in whole units, and 0 vs 1 unit is about 0.5 sd
apart on the log-standardized scale, so 0.15 sd is well inside the rounding of the data.

The likelihood is evaluated for all segments at once by :func:`segment_log_joint`, which also
serves the post-processing (membership probabilities, pointwise log-likelihood): one formula.

Missing values (NaN) are marginalized, not imputed: a customer's missing features drop out of
their likelihood, which becomes the segment Gaussians' marginal over the observed features,
MvNormal(x_i[o_i] | mu_k[o_i], Sigma_k[o_i, o_i]) (:func:`marginal_log_normal`; exact under
missing at random). Data with NaN enter the model as a constant of the graph, because the
missingness patterns are read off them when it is built (:func:`known_values`). Evaluating the
likelihood of new data, the data can be an input instead, given the pattern of their missing
values as numpy (``pattern``): one compiled function then serves every table laid out with that
pattern (``analysis.inference.block_layout``).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.tensor.variable import TensorConstant
from scipy.special import logsumexp

from models import compiled
from models.priors import merge_priors

DEFAULT_PRIORS = {
    "weights_concentration": 1.0,
    "mean_sd": 1.5,
    "nugget_sd": 0.15,
    "structured_sd_shape": 2.0,
    "structured_sd_rate": 3.0,
    "lkj_eta": 2.0,
}
COVARIANCES = ("full", "diag")
# "vectorized": the CustomDist over segment_log_joint (what we fit). "pm_mixture": the same
# density as the idiomatic pm.Mixture over a list of K pm.MvNormal.dist (for the benchmark).
LIKELIHOODS = ("vectorized", "pm_mixture")
PARAMETERS = ("weights", "means", "chol")  # what segment_log_joint needs, in order
EM_ITERATIONS = 50  # most EM rounds for the chains' start when some coordinates are hidden
EM_TOLERANCE = 1e-3  # ...stopping when the mean log-likelihood per customer gains less (nats;
# scikit-learn GaussianMixture's default tol)
DIAGNOSED = ("weights", "means", "scales")  # convergence is judged on these


# Default priors with a user's overrides; unknown keys are an error.
merged_priors = partial(merge_priors, DEFAULT_PRIORS, model="GMM")


def data_options(transform, columns: list[str]) -> dict:
    """Model options that follow from the fitted transform: none for the GMM."""
    return {}


def known_values(value) -> np.ndarray | None:
    """The numbers of a data tensor known when the graph is built (numpy or a TensorConstant),
    or None for a symbolic input."""
    if isinstance(value, TensorConstant):
        return value.data
    if isinstance(value, np.ndarray):
        return value
    return None


def structure(x: np.ndarray) -> np.ndarray:
    """(N, D) bool: what :func:`segment_log_joint` reads off the data when its graph is built,
    the missing values."""
    return np.isnan(x)


def has_missing(x: np.ndarray) -> bool:
    """Whether the model-scale data hold a missing value (NaN)."""
    return bool(np.isnan(x).any())


def pattern_codes(hidden: np.ndarray) -> np.ndarray:
    """(N,) one integer per pattern of hidden coordinates: bit d is set when feature d is."""
    return hidden @ (2 ** np.arange(hidden.shape[1]))


BLOCK_RATIO = 4  # patterns share a block of customers when their counts are within this factor


def marginal_log_normal(data, keep: np.ndarray, means, chol):
    """log MvNormal(x_i[o_i] | mu_k[o_i], Sigma_k[o_i, o_i]) per customer and segment.

    Parameters
    ----------
    data : (N, D) values, numpy or a tensor; only the kept coordinates are read (others may be
        NaN).
    keep : (N, D) bool numpy, o_i: the coordinates in customer i's likelihood.
    means : (..., K, D); chol : (..., K, D, D). Leading ``...`` dims broadcast.

    Returns
    -------
    (..., N, K) log densities; a customer with no kept coordinate gets 0.

    Computed through precisions: with A_pk the precision of segment k's marginal over the kept
    coordinates of pattern p, padded with zero rows and columns at the hidden ones
    (:func:`kept_precisions`), and x~_i the data with hidden coordinates set to 0::

        (x_i - mu_k)[o]' Sigma_k[o, o]^-1 (x_i - mu_k)[o]
            = <x~_i x~_i', A_pk> - 2 x~_i' A_pk mu_k + mu_k' A_pk mu_k

    The first two terms are matrix products of constant data with the pattern's A, so the
    customers are taken in a few blocks of patterns of similar size (:func:`pattern_blocks`):
    the graph holds a handful of matrix products, not one factorization and gather per
    customer, which keeps the gradient cheap (about 2.5x faster than a per-customer factor on
    the Dunnhumby spend table, 35 patterns).
    """
    n_features = keep.shape[1]
    patterns, pattern_of, counts = np.unique(
        pattern_codes(~keep), return_inverse=True, return_counts=True
    )  # (P,), (N,), (P,)
    hidden = (patterns[:, None] >> np.arange(n_features)) & 1  # (P, D): 1 = hidden
    precision, log_det = kept_precisions(hidden, chol)  # (..., P, K, D, D), (..., P, K)
    shift = (precision * means[..., None, :, None, :]).sum(axis=-1)  # (..., P, K, D): A mu
    offset = (shift * means[..., None, :, :]).sum(axis=-1)  # (..., P, K): mu' A mu
    known = known_values(data)
    filled = pt.where(keep, data, 0.0) if known is None else np.where(keep, known, 0.0)
    blocks, position = pattern_blocks(pattern_of, counts)
    parts = []
    for group, rows in blocks:
        x = filled[rows]  # (B, n, D)
        outer = (x[..., :, None] * x[..., None, :]).reshape((*rows.shape, n_features**2))
        flat = precision[..., group, :, :, :]
        flat = flat.reshape((*flat.shape[:-2], n_features**2))  # (..., B, K, D * D)
        quadratic = (
            pt.matmul(outer, pt.swapaxes(flat, -1, -2))
            - 2.0 * pt.matmul(x, pt.swapaxes(shift[..., group, :, :], -1, -2))
            + offset[..., group, None, :]
        )  # (..., B, n, K)
        part = 0.5 * (log_det[..., group, None, :] - quadratic)
        parts.append(part.reshape((*part.shape[:-3], rows.size, part.shape[-1])))
    log_density = pt.take(pt.concatenate(parts, axis=-2), position, axis=-2)  # (..., N, K)
    return log_density - 0.5 * np.log(2 * np.pi) * keep.sum(axis=-1)[:, None]


def kept_precisions(hidden: np.ndarray, chol):
    """Precision of each pattern's kept coordinates, padded, and its log determinant.

    Parameters
    ----------
    hidden : (P, D) 0/1 numpy, the hidden coordinates of each pattern.
    chol : (..., K, D, D) Cholesky factors of the segment covariances Sigma_k.

    Returns
    -------
    ((..., P, K, D, D), (..., P, K)): A_pk = Sigma_k[o, o]^-1 on the kept coordinates o of
    pattern p and 0 on its hidden rows and columns; log det Sigma_k[o, o]^-1.

    The precision of a marginal is the Schur complement of the hidden block in
    Lambda_k = Sigma_k^-1, reached by eliminating the hidden coordinates one at a time: each
    is a rank-one update that leaves zeros in its row and column, and its pivot divides the
    determinant (det Lambda = pivot * det of the complement).
    """
    n_patterns, n_features = hidden.shape
    chol_inv = pt.linalg.solve_triangular(chol, pt.eye(n_features), lower=True)
    precision = pt.swapaxes(chol_inv, -1, -2) @ chol_inv  # (..., K, D, D)
    log_det = -2.0 * pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)  # (..., K)
    kept = precision[..., None, :, :, :] * np.ones((n_patterns, 1, 1, 1))
    kept_log_det = log_det[..., None, :] * np.ones((n_patterns, 1))
    for d in np.flatnonzero(hidden.any(axis=0)):
        drop = hidden[:, d].astype(float)[:, None]  # (P, 1)
        pivot = kept[..., d, d]  # (..., P, K)
        column = kept[..., :, d]  # (..., P, K, D)
        update = column[..., :, None] * column[..., None, :] / pivot[..., None, None]
        kept = kept - drop[..., None, None] * update
        kept_log_det = kept_log_det - drop * pt.log(pivot)
    return kept, kept_log_det


def pattern_blocks(pattern_of: np.ndarray, counts: np.ndarray):
    """Customers grouped by pattern into blocks of patterns of similar size.

    Parameters
    ----------
    pattern_of : (N,) each customer's pattern index; counts : (P,) customers per pattern.

    Returns
    -------
    (blocks, position): blocks is a list of (group (B,) pattern indices, rows (B, n) customer
    indices), a block's patterns having counts within :data:`BLOCK_RATIO` of its largest (n);
    shorter patterns repeat row 0 as padding. position (N,) is each customer's row in the
    blocks' rows laid end to end, so the padding is never read.
    """
    position = np.empty(len(pattern_of), dtype=int)
    blocks, group, start = [], [], 0
    by_size = np.argsort(-counts, kind="stable")
    for pattern in by_size:
        if group and counts[pattern] * BLOCK_RATIO < counts[group[0]]:
            blocks.append(np.array(group))
            group = []
        group.append(pattern)
    blocks.append(np.array(group))
    laid_out = []
    for group in blocks:
        rows = np.zeros((len(group), counts[group[0]]), dtype=int)
        for b, pattern in enumerate(group):
            members = np.flatnonzero(pattern_of == pattern)
            rows[b, : len(members)] = members
            position[members] = start + b * rows.shape[1] + np.arange(len(members))
        start += rows.size
        laid_out.append((group, rows))
    return laid_out, position


def segment_log_joint(value, weights, means, chol, *, pattern: np.ndarray | None = None):
    """log w_k + log MvNormal(x_i | mu_k, L_k L_k^T) for every customer and segment.

    Parameters
    ----------
    value : (N, D) model-scale features. Missing values (NaN) drop out per customer
        (:func:`marginal_log_normal`); their places must be known when the graph is built: data
        with NaN are numpy or a constant, or ``pattern`` gives them.
    weights : (..., K); means : (..., K, D); chol : (..., K, D, D) lower-triangular.
        Leading ``...`` dims (e.g. posterior draws) broadcast.
    pattern : (N, D) numpy data with NaN where ``value`` has them (any other numbers); ``value``
        may then be a symbolic input. Default: ``value``'s own, when it is known.

    Returns
    -------
    (..., N, K) tensor of log joint densities (natural log, model-scale density).
    """
    data = known_values(value) if pattern is None else pattern
    if data is not None and has_missing(data):
        log_normal = marginal_log_normal(value, ~np.isnan(data), means, chol)
        return pt.log(weights)[..., None, :] + log_normal
    d = value.shape[-1]
    chol_inv = pt.linalg.solve_triangular(chol, pt.eye(d), lower=True)  # batch dims broadcast
    # z_ik = L_k^{-1} (x_i - mu_k), computed as L_k^{-1} x_i - L_k^{-1} mu_k (one GEMM).
    z = (
        pt.einsum("nd,...ked->...nke", value, chol_inv)
        - pt.einsum("...ked,...kd->...ke", chol_inv, means)[..., None, :, :]
    )
    log_det = pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)  # (..., K)
    log_normal = -0.5 * (z**2).sum(axis=-1) - log_det[..., None, :] - 0.5 * d * np.log(2 * np.pi)
    return pt.log(weights)[..., None, :] + log_normal


def mixture_logp(value, weights, means, chol):
    """Marginal log density per customer, (N,): logsumexp over segments."""
    return pt.logsumexp(segment_log_joint(value, weights, means, chol), axis=-1)


def draw_labels(weights, batch: tuple, rng) -> np.ndarray:
    """Segment labels (*batch,) drawn with probabilities ``weights`` (..., K) broadcast to batch."""
    n_segments = weights.shape[-1]
    weights = np.broadcast_to(weights, (*batch, n_segments))
    cumulative = np.cumsum(weights / weights.sum(axis=-1, keepdims=True), axis=-1)
    return np.minimum((rng.random(batch)[..., None] > cumulative).sum(-1), n_segments - 1)


def draw_gaussian(labels, means, chol, rng) -> np.ndarray:
    """One MvNormal draw (*batch, D) per label from segment ``labels`` (*batch,) parameters."""
    batch = labels.shape
    n_segments, n_features = means.shape[-2:]
    means = np.broadcast_to(means, (*batch, n_segments, n_features))
    chol = np.broadcast_to(chol, (*batch, n_segments, n_features, n_features))
    chosen_mean = np.take_along_axis(means, labels[..., None, None], axis=-2)[..., 0, :]
    chosen_chol = np.take_along_axis(chol, labels[..., None, None, None], axis=-3)[..., 0, :, :]
    noise = rng.standard_normal((*batch, n_features))
    return chosen_mean + np.einsum("...de,...e->...d", chosen_chol, noise)


def random_batch(size, *parameters) -> tuple:
    """The batch shape of a random draw: ``size`` or the parameters' broadcast leading dims.

    ``parameters`` are (array, number of core dims) pairs.
    """
    if size is not None:
        return tuple(size)
    return np.broadcast_shapes(*(p.shape[: p.ndim - core] for p, core in parameters))


def mixture_random(weights, means, chol, rng=None, size=None):
    """Draw customers from the mixture: (*size, D), parameters broadcast against ``size``."""
    batch = random_batch(size, (weights, 1), (means, 2), (chol, 3))
    return draw_gaussian(draw_labels(weights, batch, rng), means, chol, rng)


def covariance_cholesky(k: int, n_features: int, prior: dict, covariance: str):
    """Segment covariances' Cholesky factors (K, D, D), declared in the active model.

    Adds ``structured_sd`` (segment, feature), ``corr_chol`` (for "full" with D > 1), and the
    deterministics ``chol`` and ``scales`` (segment, feature): sqrt(nugget^2 + s_kd^2), model scale.
    """
    structured_sd = pm.Gamma(
        "structured_sd",
        alpha=prior["structured_sd_shape"],
        beta=prior["structured_sd_rate"],
        dims=("segment", "feature"),
    )
    if covariance == "full" and n_features > 1:
        corr_chol = pm.LKJCorr(
            "corr_chol",
            n=n_features,
            eta=prior["lkj_eta"],
            shape=(k, n_features, n_features),
            dims=("segment", "feature", "feature_col"),
        )
    else:
        corr_chol = pt.broadcast_to(pt.eye(n_features), (k, n_features, n_features))
    structured = structured_sd[:, :, None] * corr_chol
    covariance_matrix = prior["nugget_sd"] ** 2 * pt.eye(n_features) + structured @ pt.swapaxes(
        structured, -1, -2
    )
    chol = pm.Deterministic(
        "chol",
        pt.linalg.cholesky(covariance_matrix),
        dims=("segment", "feature", "feature_col"),
    )
    pm.Deterministic(
        "scales",
        pt.sqrt(prior["nugget_sd"] ** 2 + structured_sd**2),
        dims=("segment", "feature"),
    )
    return chol


def build_gmm(
    x: np.ndarray,
    k: int,
    *,
    customers,
    features,
    covariance: str = "full",
    priors: dict | None = None,
    likelihood: str = "vectorized",
) -> pm.Model:
    """Build the K-segment mixture for model-scale data ``x`` (N, D).

    ``customers`` (N,) and ``features`` (D,) label the ``customer`` and ``feature`` dims.
    ``likelihood`` picks one of two codings of the same density (:data:`LIKELIHOODS`).
    """
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    prior = merged_priors(priors)
    n_features = x.shape[1]
    coords = {
        "segment": np.arange(k),
        "feature": list(features),
        "feature_col": list(features),
        "customer": list(customers),
    }
    with pm.Model(coords=coords) as model:
        # NaN data: a constant (PyMC would impute a NaN in pm.Data or in a numpy array)
        x_data = (
            pt.as_tensor_variable(x)
            if has_missing(x)
            else pm.Data("x_data", x, dims=("customer", "feature"))
        )
        weights = pm.Dirichlet(
            "weights", a=np.full(k, prior["weights_concentration"]), dims="segment"
        )
        means = pm.Normal("means", mu=0.0, sigma=prior["mean_sd"], dims=("segment", "feature"))
        chol = covariance_cholesky(k, n_features, prior, covariance)
        if likelihood == "vectorized":
            pm.CustomDist(
                "x",
                weights,
                means,
                chol,
                logp=mixture_logp,
                random=mixture_random,
                signature="(k),(k,d),(k,d,e)->(d)",
                observed=x_data,
                dims=("customer", "feature"),
            )
        else:
            components = [pm.MvNormal.dist(mu=means[j], chol=chol[j]) for j in range(k)]
            pm.Mixture(
                "x", w=weights, comp_dists=components, observed=x_data, dims=("customer", "feature")
            )
    return model


def initial_point(
    x: np.ndarray, k: int, *, covariance: str = "full", priors: dict | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """A starting point for every chain: an EM solution, segments ordered by weight (largest first).

    Starting all chains in one labelling keeps them in one of the K! symmetric modes; the post-hoc
    relabelling then removes any switch that happens during sampling. The EM variances, less the
    nugget, give the structured scales (at least 0.05).
    """
    from sklearn.mixture import GaussianMixture

    prior = merged_priors(priors)
    if has_missing(x):
        missing = np.isnan(x)
        step = partial(moment_step, x, missing, covariance=covariance, nugget_sd=prior["nugget_sd"])
        point = em_with_hidden(x, missing, k, covariance, seed, step, log_joint_function(x))
        order = np.argsort(-point["weights"])
        return {name: value[order] for name, value in point.items() if name != "chol"}
    em = GaussianMixture(
        k, covariance_type=covariance, n_init=5, random_state=seed, reg_covar=1e-3, max_iter=500
    ).fit(x)
    order = np.argsort(-em.weights_)
    covariances = em.covariances_[order]
    variances = covariances if covariance == "diag" else np.diagonal(covariances, 0, -2, -1)
    scales = np.sqrt(variances)
    point = {
        "weights": em.weights_[order],
        "means": em.means_[order],
        "structured_sd": np.sqrt(np.maximum(variances - prior["nugget_sd"] ** 2, 0.05**2)),
    }
    if covariance == "full" and x.shape[1] > 1:
        correlations = covariances / (scales[:, :, None] * scales[:, None, :])
        point["corr_chol"] = np.linalg.cholesky(correlations)
    return point


def log_joint_function(value: np.ndarray):
    """:func:`segment_log_joint` of ``value`` (N, D) compiled once per process
    (``models.compiled``): f(weights, means, chol) -> (N, K) for one set of parameters."""
    return compiled.log_joint_function(
        segment_log_joint, {"weights": 1, "means": 2, "chol": 3}, value
    )


def em_with_hidden(
    x: np.ndarray,
    hidden: np.ndarray,
    k: int,
    covariance: str,
    seed: int,
    step,
    log_joint,
    parameters: tuple[str, ...] = PARAMETERS,
) -> dict:
    """EM for a Gaussian mixture whose ``hidden`` (N, D) coordinates are not in the Gaussian
    likelihood (missing values; the hurdle's zeros): a point of :func:`moment_step`'s variables.

    The first memberships come from scikit-learn's EM on x with every hidden value replaced by
    its feature's mean visible value. Then :data:`EM_ITERATIONS` rounds: parameters from
    ``step(responsibility, previous)`` (a :func:`moment_step`, or the hurdle's), memberships
    from the compiled ``log_joint`` (:func:`log_joint_function`) of the point's ``parameters``,
    until the mean log-likelihood per customer gains less than :data:`EM_TOLERANCE`.
    """
    from sklearn.mixture import GaussianMixture

    visible_means = np.nanmean(np.where(hidden, np.nan, x), axis=0)
    imputed = np.where(hidden, np.nan_to_num(visible_means), x)
    em = GaussianMixture(
        k, covariance_type=covariance, n_init=5, random_state=seed, reg_covar=1e-3, max_iter=500
    ).fit(imputed)
    responsibility = em.predict_proba(imputed)
    point, previous = None, -np.inf
    for _ in range(EM_ITERATIONS):
        point = step(responsibility, point)
        joint = log_joint(*(point[name] for name in parameters))
        loglik = logsumexp(joint, axis=1, keepdims=True)
        responsibility = np.exp(joint - loglik)
        if loglik.mean() - previous < EM_TOLERANCE:
            break
        previous = loglik.mean()
    return point


def conditional_moments(x, hidden, responsibility, means, covariances):
    """Weighted means (K, D) and covariances (K, D, D) of the Gaussian part, ``hidden`` (N, D)
    coordinates as missing values.

    The E-step of EM with missing values: a customer's hidden features are replaced by their
    conditional mean given the visible ones under the current ``means`` (K, D) and
    ``covariances`` (K, D, D), and the conditional covariance is added to the second moments.
    ``x`` (N, D) holds 0 at the hidden coordinates.

    Vectorized over the P patterns of hidden coordinates: with M_p = diag(visible) and
    H_p = I - M_p, the gain is G_pk = H_p Sigma_k (M_p Sigma_k M_p + H_p)^-1 M_p (the padded
    inverse is Sigma_k[o, o]^-1 on the visible block), the conditional mean
    x~ + H_p mu_k + G_pk (x~ - mu_k), and the conditional covariance
    H_p Sigma_k H_p - G_pk Sigma_k H_p.
    """
    n_features = means.shape[1]
    patterns, pattern_of = np.unique(pattern_codes(hidden), return_inverse=True)
    hidden_p = ((patterns[:, None] >> np.arange(n_features)) & 1).astype(float)  # (P, D)
    visible_p = 1.0 - hidden_p
    eye = np.eye(n_features)
    padded = (
        covariances[None] * visible_p[:, None, :, None] * visible_p[:, None, None, :]
        + eye * hidden_p[:, None, None, :]
    )  # (P, K, D, D)
    kept_inverse = np.linalg.inv(padded) * visible_p[:, None, :, None] * visible_p[:, None, None, :]
    gain = hidden_p[:, None, :, None] * (covariances[None] @ kept_inverse)  # (P, K, D, D)
    extra = (covariances[None] - gain @ covariances[None]) * (
        hidden_p[:, None, :, None] * hidden_p[:, None, None, :]
    )  # (P, K, D, D)
    centred = x[:, None, :] - means[None]  # (N, K, D)
    filled = (
        x[:, None, :]
        + hidden[:, None, :] * means[None]
        + np.einsum("nkde,nke->nkd", gain[pattern_of], centred)
    )  # (N, K, D)
    pattern_mass = np.eye(len(patterns))[pattern_of].T @ responsibility  # (P, K)
    mass = responsibility.sum(axis=0)[:, None] + 1e-12  # (K, 1)
    new_means = np.einsum("nk,nkd->kd", responsibility, filled) / mass
    second = np.einsum("nk,nkd,nke->kde", responsibility, filled, filled) + np.einsum(
        "pk,pkde->kde", pattern_mass, extra
    )
    return new_means, second / mass[:, :, None] - new_means[:, :, None] * new_means[:, None, :]


def moment_step(
    x, hidden, responsibility, previous: dict | None = None, *, covariance: str, nugget_sd: float
) -> dict:
    """Segment parameters from memberships ``responsibility`` (N, K): the M-step of an EM whose
    ``hidden`` (N, D) coordinates are missing from the Gaussian likelihood.

    Per segment: the weight, and the mean and covariance of the Gaussian part. Without
    ``previous`` (a point from this function) those are available-case moments of the visible
    values (each pair of features over the customers visible in both); with it,
    :func:`conditional_moments`, so that repeated steps converge to the maximum likelihood
    estimate. The correlations are eigenvalue-floored at 0.05 so they stay positive definite;
    the scales less the nugget are at least 0.05. Returns the sampler's variables plus ``chol``
    (K, D, D).
    """
    x = np.where(hidden, 0.0, x)  # hidden values (NaN for missing ones) never enter a sum
    if previous is None:
        visible = (~hidden).astype(float)  # (N, D)
        both = visible[:, :, None] * visible[:, None, :]  # (N, D, D)
        mass = responsibility.T @ visible + 1e-9  # (K, D)
        means = responsibility.T @ (visible * x) / mass
        centred = visible[:, None, :] * (x[:, None, :] - means[None])  # (N, K, D)
        pair_mass = np.einsum("nk,nde->kde", responsibility, both) + 1e-9
        moments = np.einsum("nk,nkd,nke->kde", responsibility, centred, centred) / pair_mass
    else:
        chol = previous["chol"]
        means, moments = conditional_moments(
            x, hidden, responsibility, previous["means"], chol @ np.swapaxes(chol, -1, -2)
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
        "chol": np.linalg.cholesky(
            nugget_sd**2 * np.eye(x.shape[1]) + structured @ np.swapaxes(structured, -1, -2)
        ),
    }
    if covariance == "full" and x.shape[1] > 1:
        point["corr_chol"] = np.linalg.cholesky(correlation)
    return point

"""Per-draw segment membership and pointwise log-likelihood from a mixture posterior.

For posterior draw s, customer i and segment k::

    log_joint[s, i, k] = log w_k^s + log p(x_i | theta_k^s)
    membership[s, i, k] = softmax_k(log_joint[s, i, :])      p(segment = k | x_i, theta^s)
    loglik[s, i]        = logsumexp_k(log_joint[s, i, :])    marginal (label-free) log density

``log_joint`` is the model's own ``segment_log_joint`` compiled once and evaluated in chunks of
draws (:func:`chunk_draws`), so memory stays at one chunk plus the float32 memberships.
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import xarray as xr
from scipy.special import logsumexp

from models import Mixture

CHUNK_ELEMENTS = 20_000_000  # doubles per chunk of draws (160 MB): sets how many draws go at once


def chunk_draws(mixture: Mixture, n_customers: int, n_segments: int, n_features: int) -> int:
    """Draws evaluated at once: the model's largest per-draw intermediate times this fits
    :data:`CHUNK_ELEMENTS` (``Mixture.feature_power``)."""
    per_draw = n_customers * n_segments * n_features**mixture.feature_power
    return max(1, CHUNK_ELEMENTS // per_draw)


def stacked_parameters(posterior: xr.Dataset, names: tuple[str, ...]) -> list[np.ndarray]:
    """Posterior arrays with (chain, draw) flattened into one leading sample dim, (S, ...)."""
    return [
        posterior[name].stack(sample=("chain", "draw")).transpose("sample", ...).values
        for name in names
    ]


def compile_log_joint(
    mixture: Mixture, options: dict, value: np.ndarray, parameters: list[np.ndarray]
):
    """Compile the fit's ``segment_log_joint`` for a chunk of draws; f(*params) -> (S, N, K).

    ``options`` are the fit's model options (``FitSpec.options``).
    """
    inputs = [
        pt.tensor(name, shape=(None,) * p.ndim)
        for name, p in zip(mixture.parameters, parameters, strict=True)
    ]
    output = mixture.log_joint(options)(pt.as_tensor(value), *inputs)
    return pytensor.function(inputs, output)


def draw_log_joint(mixture: Mixture, options: dict, value: np.ndarray, posterior: xr.Dataset):
    """Yield (start, log_joint chunk (S_chunk, N, K)) over all posterior draws, in order."""
    parameters = stacked_parameters(posterior, mixture.parameters)
    function = compile_log_joint(mixture, options, value, parameters)
    n_samples = parameters[0].shape[0]
    size = chunk_draws(mixture, len(value), posterior.sizes["segment"], value.shape[1])
    for start in range(0, n_samples, size):
        chunk = [p[start : start + size] for p in parameters]
        yield start, function(*chunk)


def memberships_and_loglik(
    mixture: Mixture, options: dict, value: np.ndarray, posterior: xr.Dataset
) -> tuple[np.ndarray, np.ndarray]:
    """Membership probabilities (S, N, K) float32 and pointwise log-likelihood (S, N) float64."""
    n_samples = posterior.sizes["chain"] * posterior.sizes["draw"]
    n_segments = posterior.sizes["segment"]
    membership = np.empty((n_samples, len(value), n_segments), dtype=np.float32)
    loglik = np.empty((n_samples, len(value)))
    for start, log_joint in draw_log_joint(mixture, options, value, posterior):
        stop = start + len(log_joint)
        loglik[start:stop] = logsumexp(log_joint, axis=-1)
        membership[start:stop] = np.exp(log_joint - loglik[start:stop, :, None])
    return membership, loglik

"""Per-draw segment membership and pointwise log-likelihood from a mixture posterior.

For posterior draw s, customer i and segment k::

    log_joint[s, i, k] = log w_k^s + log p(x_i | theta_k^s)
    membership[s, i, k] = softmax_k(log_joint[s, i, :])      p(segment = k | x_i, theta^s)
    loglik[s, i]        = logsumexp_k(log_joint[s, i, :])    marginal (label-free) log density

``log_joint`` is the model's own ``segment_log_joint`` compiled once and evaluated in chunks of
draws, so memory stays at one chunk of (draws, N, K) doubles plus the float32 memberships.
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import xarray as xr
from scipy.special import logsumexp

from models import Mixture

CHUNK_DRAWS = 100


def stacked_parameters(posterior: xr.Dataset, names: tuple[str, ...]) -> list[np.ndarray]:
    """Posterior arrays with (chain, draw) flattened into one leading sample dim, (S, ...)."""
    return [
        posterior[name].stack(sample=("chain", "draw")).transpose("sample", ...).values
        for name in names
    ]


def compile_log_joint(mixture: Mixture, value: np.ndarray, parameters: list[np.ndarray]):
    """Compile ``mixture.segment_log_joint`` for a chunk of draws; returns f(*params) -> (S,N,K)."""
    inputs = [
        pt.tensor(name, shape=(None,) * p.ndim)
        for name, p in zip(mixture.parameters, parameters, strict=True)
    ]
    output = mixture.segment_log_joint(pt.as_tensor(value), *inputs)
    return pytensor.function(inputs, output)


def draw_log_joint(mixture: Mixture, value: np.ndarray, posterior: xr.Dataset):
    """Yield (start, log_joint chunk (S_chunk, N, K)) over all posterior draws, in order."""
    parameters = stacked_parameters(posterior, mixture.parameters)
    function = compile_log_joint(mixture, value, parameters)
    n_samples = parameters[0].shape[0]
    for start in range(0, n_samples, CHUNK_DRAWS):
        chunk = [p[start : start + CHUNK_DRAWS] for p in parameters]
        yield start, function(*chunk)


def memberships_and_loglik(
    mixture: Mixture, value: np.ndarray, posterior: xr.Dataset
) -> tuple[np.ndarray, np.ndarray]:
    """Membership probabilities (S, N, K) float32 and pointwise log-likelihood (S, N) float64."""
    n_samples = posterior.sizes["chain"] * posterior.sizes["draw"]
    n_segments = posterior.sizes["segment"]
    membership = np.empty((n_samples, len(value), n_segments), dtype=np.float32)
    loglik = np.empty((n_samples, len(value)))
    for start, log_joint in draw_log_joint(mixture, value, posterior):
        stop = start + len(log_joint)
        loglik[start:stop] = logsumexp(log_joint, axis=-1)
        membership[start:stop] = np.exp(log_joint - loglik[start:stop, :, None])
    return membership, loglik

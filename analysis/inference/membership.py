"""Per-draw segment membership and pointwise log-likelihood from a mixture posterior.

For posterior draw s, customer i and segment k::

    log_joint[s, i, k] = log w_k^s + log p(x_i | theta_k^s)
    membership[s, i, k] = softmax_k(log_joint[s, i, :])      p(segment = k | x_i, theta^s)
    loglik[s, i]        = logsumexp_k(log_joint[s, i, :])    marginal (label-free) log density

``log_joint`` is the model's own ``segment_log_joint``, compiled once with the log-sum-exp and
softmax in the same graph and evaluated in chunks of draws (:func:`chunk_draws`), so memory stays
at one chunk of intermediates plus the float32 memberships.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
import xarray as xr

from models import Mixture, compiled

CHUNK_ELEMENTS = 20_000_000  # doubles per chunk of draws (160 MB): sets how many draws go at once


def chunk_draws(mixture: Mixture, n_customers: int, n_segments: int, n_features: int) -> int:
    """Draws evaluated at once: the model's largest per-draw intermediate times this fits
    :data:`CHUNK_ELEMENTS` (``Mixture.feature_power``)."""
    per_draw = n_customers * n_segments * n_features**mixture.feature_power
    return max(1, CHUNK_ELEMENTS // per_draw)


def stacked_parameters(posterior: xr.Dataset, names: tuple[str, ...]) -> list[np.ndarray]:
    """Posterior arrays with (chain, draw) flattened into one leading sample dim, (S, ...).

    Aligned in memory (a copy when not): PyTensor refuses unaligned arrays, and a posterior a
    Dask worker received can hold them."""
    return [
        np.require(
            posterior[name].stack(sample=("chain", "draw")).transpose("sample", ...).values,
            requirements="A",
        )
        for name in names
    ]


def compile_memberships(
    mixture: Mixture, options: dict, value: np.ndarray, parameters: list[np.ndarray]
):
    """Compile the fit's ``segment_log_joint`` with the log-sum-exp and softmax over segments in
    the same graph: f(value, *params) -> (loglik (S, N), membership (S, N, K) float32) for a
    chunk of S draws. ``options`` are the fit's model options (``FitSpec.options``).

    The data are an input, so one compiled function serves every block of customers of the
    shape of ``value``. When the mixture reads structure off the data
    (``Mixture.structured``: zero spends, missing values), the graph is built for the
    structure of ``value``, and the function serves data of that structure only (laid out so
    by ``analysis.inference.block_layout``), refusing any other. It is compiled once per
    process for a structure (``models.compiled``: every K of a sweep shares it).
    """
    inputs = [
        pt.tensor(name, shape=(None,) * p.ndim)
        for name, p in zip(mixture.parameters, parameters, strict=True)
    ]
    data = pt.matrix("value", dtype=value.dtype)

    def outputs(**pattern):
        log_joint = mixture.log_joint(options)(data, *inputs, **pattern)
        loglik = pt.logsumexp(log_joint, axis=-1)
        return [loglik, pt.exp(log_joint - loglik[..., None]).astype("float32")]

    if not mixture.structured(value):
        return compiled.exact_function([data, *inputs], outputs())
    structure = mixture.data_structure(options)
    expected = structure(value)
    of_structure = compiled.of_data(
        f"memberships of {mixture.name}",
        expected,
        {"options": options, "ndims": [p.ndim for p in parameters]},
        lambda: compiled.exact_function([data, *inputs], outputs(pattern=value)),
    )

    def function(block: np.ndarray, *chunk: np.ndarray):
        if not np.array_equal(structure(block), expected):
            raise ValueError(
                f"{mixture.name}: compiled for data with zeros or missing values elsewhere"
            )
        return of_structure(block, *chunk)

    return function


def memberships_and_loglik(
    mixture: Mixture, options: dict, value: np.ndarray, posterior: xr.Dataset, function=None
) -> tuple[np.ndarray, np.ndarray]:
    """Membership probabilities (S, N, K) float32 and pointwise log-likelihood (S, N) float64,
    evaluated in chunks of draws (:func:`chunk_draws`). ``function`` is a
    :func:`compile_memberships` result to reuse (compiled here when None)."""
    parameters = stacked_parameters(posterior, mixture.parameters)
    if function is None:
        function = compile_memberships(mixture, options, value, parameters)
    n_samples, n_segments = parameters[0].shape[0], posterior.sizes["segment"]
    membership = np.empty((n_samples, len(value), n_segments), dtype=np.float32)
    loglik = np.empty((n_samples, len(value)))
    size = chunk_draws(mixture, len(value), n_segments, value.shape[1])
    for start in range(0, n_samples, size):
        stop = start + size
        chunk = [p[start:stop] for p in parameters]
        loglik[start:stop], membership[start:stop] = function(value, *chunk)
    return membership, loglik

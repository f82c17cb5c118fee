"""Relabelling on constructed posteriors whose label switches are known exactly."""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr

from analysis.inference.relabel import permute, relabel_posterior, stephens


def switched_memberships(seed: int = 0, n_samples: int = 300, n: int = 120, k: int = 3):
    """Noisy memberships around a fixed truth, each draw's labels scrambled by a known perm."""
    rng = np.random.default_rng(seed)
    truth = rng.dirichlet(np.full(k, 0.3), size=n)  # (N, K) fairly confident memberships
    clean = np.stack([rng.dirichlet(50 * truth[i] + 0.1, size=n_samples) for i in range(n)], 1)
    scramble = np.stack(
        [rng.permutation(k) for _ in range(n_samples)]
    )  # label j in draw = scramble
    scrambled = np.empty_like(clean)
    for s in range(n_samples):
        scrambled[s][:, scramble[s]] = clean[s]
    return clean.astype(np.float32), scrambled.astype(np.float32), scramble


def test_stephens_undoes_known_switches_up_to_one_global_relabelling():
    clean, scrambled, _ = switched_memberships()
    result = stephens(scrambled, pivot=0)
    recovered = permute(scrambled, result.permutation)
    # The labelling is identified only up to one global permutation: find it, then all draws match.
    best = min(itertools.permutations(range(3)),
               key=lambda p: np.abs(recovered[..., list(p)] - clean).sum())  # fmt: skip
    np.testing.assert_array_equal(recovered[..., list(best)], clean)
    assert result.iterations >= 1
    np.testing.assert_allclose(result.reference.sum(axis=1), 1.0, rtol=1e-5)


def test_stephens_leaves_an_unswitched_posterior_alone():
    clean, _, _ = switched_memberships(seed=1)
    result = stephens(clean, pivot=5)
    assert np.all(result.permutation == np.arange(3))


def test_relabel_posterior_permutes_every_segment_variable_and_nothing_else():
    rng = np.random.default_rng(2)
    chains, draws, k = 2, 4, 3
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "segment"), rng.random((chains, draws, k))),
            "means": (("chain", "draw", "segment", "feature"), rng.random((chains, draws, k, 2))),
            "other": (("chain", "draw"), rng.random((chains, draws))),
        },
        coords={"segment": np.arange(k), "feature": ["a", "b"]},
    )
    permutation = np.stack([rng.permutation(k) for _ in range(chains * draws)])
    relabelled = relabel_posterior(posterior, permutation)
    for s, (c, d) in enumerate(itertools.product(range(chains), range(draws))):
        np.testing.assert_array_equal(
            relabelled["weights"].values[c, d], posterior["weights"].values[c, d, permutation[s]]
        )
        np.testing.assert_array_equal(
            relabelled["means"].values[c, d], posterior["means"].values[c, d, permutation[s]]
        )
    xr.testing.assert_identical(relabelled["other"], posterior["other"])
    assert relabelled["means"].dims == posterior["means"].dims

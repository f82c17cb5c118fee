"""The later period's segment sizes, re-estimated per posterior draw with the segments held fixed.

A customer's membership in segment k at draw s is w_k p(x_i | theta_k) / sum_j w_j p(x_i | theta_j):
the weights w are the prior of every membership. The fit's weights are the segment sizes of the
fit's period. When customers migrate, the later period's sizes differ, and memberships of the later
data computed with the fit's weights are pulled toward the old sizes wherever the data leave a
customer's segment uncertain: the migration matrix then understates the movement into segments that
grew and out of those that shrank.

What is re-estimated, and why only that: the component parameters theta^s define what each segment
*is* (its spend profile). They stay the fit's, draw by draw, so that "segment k" means the same in
both periods and the migration matrix compares like with like; a change of the profiles themselves
is what the drift signal and the per-feature shifts measure (:mod:`analysis.decisions.drift`). Only
the sizes pi^s of the later period are estimated, for every draw s, as the maximum-likelihood
weights of the later data given theta^s, by EM over the weights alone::

    r_ik      = pi_k p(x_i | theta_k^s) / sum_j pi_j p(x_i | theta_j^s)
    pi_k     <- mean_i r_ik

The log-likelihood sum_i log sum_k pi_k p(x_i | theta_k^s) is concave in pi, so EM reaches its
maximum from any start (the fit's weights here). The component densities are not needed: with
m_ik the memberships under the fit's weights w^s, r_ik is proportional to m_ik pi_k / w_k, so the
memberships already computed are re-weighted.

Why the maximum likelihood and not a posterior of pi: the model's Dirichlet prior adds about one
customer per segment against the N matched customers, and a point per draw keeps every
downstream quantity (expected and realised counts) a plain function of the draw. The spread of the
re-estimated sizes over draws carries the component parameters' uncertainty; the sampling error of
pi given theta (about sqrt(pi (1 - pi) / N)) is not added. With few matched customers (tens) the
estimate is noisy and a segment nobody resembles gets size 0: its later memberships are then 0.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-7  # EM stops when no weight of any draw changes by more than this
MAX_ITERATIONS = 5_000  # EM iterations at most (slow only when segments overlap heavily)


def reweighted(memberships: np.ndarray, weights: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(S, N, K) float64 memberships under the weights ``sizes`` (S, K) in place of ``weights``
    (S, K), from ``memberships`` (S, N, K) computed with ``weights``: proportional to
    membership x size / weight, normalized over segments. A segment of weight 0 stays at 0."""
    ratio = np.divide(sizes, weights, out=np.zeros(sizes.shape), where=weights > 0)
    scaled = memberships * ratio[:, None, :]
    total = scaled.sum(axis=-1, keepdims=True)
    return np.divide(scaled, total, out=scaled, where=total > 0)


def later_weights(memberships: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(S, K) maximum-likelihood segment weights of N customers per draw, by EM over the weights
    only, given their (S, N, K) ``memberships`` computed with the fit's ``weights`` (S, K) and
    the fit's component parameters (module docstring). Starts at ``weights``; stops when every
    draw's weights change by less than :data:`TOLERANCE`. RuntimeError after
    :data:`MAX_ITERATIONS` without that."""
    sizes = weights.astype(np.float64)
    active = np.arange(len(sizes))  # draws not converged yet
    for _ in range(MAX_ITERATIONS):
        updated = reweighted(memberships[active], weights[active], sizes[active]).mean(
            axis=1, dtype=np.float64
        )
        change = np.abs(updated - sizes[active]).max(axis=1)
        sizes[active] = updated
        active = active[change > TOLERANCE]
        if not len(active):
            return sizes
    raise RuntimeError(
        f"later weights: EM did not converge in {MAX_ITERATIONS} iterations for {len(active)} draws"
    )

"""Recovery of a known transition matrix by the migration matrix of ``segment track``, no sampling.

Customers are drawn from a known, well-separated K = 3 Gaussian mixture in period 1
(:func:`analysis.data.simulate.gaussian_mixture`), each moves to a period-2 segment with a known
transition matrix, and their period-2 features are drawn from that segment. A fake posterior sits
tightly around the true parameters (jitter about the size of a real posterior's sd for these N).
Memberships of both periods go through :func:`analysis.decisions.track.period_draws` with the GMM's
``segment_log_joint``, as ``segment track`` does; the checks of wrong posteriors (one per period)
compose the same pieces with the fit's weights as the later prior (:func:`fit_weight_draws`).

Segment sizes that change between periods: with overlapping segments, later memberships computed
with the fit's weights as their prior are pulled toward the fit's sizes; the later sizes
re-estimated per draw (:mod:`analysis.decisions.later_weights`) remove that bias.

The migration matrix is the *expected* count given the data and theta, so its 94% HDI over draws
covers parameter uncertainty only: here it is under one customer wide, and the simulated counts
(which also vary with which segment each customer actually took) mostly fall outside it. The
realised-count HDI (:func:`analysis.decisions.migration.realised_draws`: every customer's two
segments drawn at every draw) is the interval that must hold them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis.data.simulate import gaussian_mixture
from analysis.decisions.migration import migration_draws, migration_table, realised_draws
from analysis.decisions.track import PeriodDraws, period_draws
from analysis.inference.assignments import HDI_PROB, hdi_nearest
from analysis.inference.subsample import membership_blocks
from models import MIXTURES

TRANSITION = np.array([[0.80, 0.15, 0.05], [0.10, 0.70, 0.20], [0.05, 0.25, 0.70]])
# Period-1 sizes 0.5, 0.3, 0.2; most customers move into segment 2: about 0.3, 0.2, 0.5 later.
SHIFTING = np.array([[0.50, 0.10, 0.40], [0.10, 0.50, 0.40], [0.05, 0.05, 0.90]])
OVERLAPPING = 2.0  # distance of the segment means from the origin (sd 0.5 to 1): many uncertain
N_CUSTOMERS, CHAINS, DRAWS = 3000, 2, 50
NAMES = pd.Series(["a", "b", "c"], index=[0, 1, 2])


def simulated_periods(seed: int = 17, transition: np.ndarray = TRANSITION, separation: float = 4.0):
    """The period-1 truth, the period-2 labels and features (N, D), and the true (K, K) counts."""
    truth = gaussian_mixture(n=N_CUSTOMERS, separation=separation, seed=seed)
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(transition[truth.labels], axis=1)
    later_labels = (rng.random(N_CUSTOMERS)[:, None] > cumulative).sum(axis=1)
    chols = np.linalg.cholesky(truth.covariances)
    noise = rng.standard_normal(truth.x.shape)
    later_x = truth.means[later_labels] + np.einsum("nde,ne->nd", chols[later_labels], noise)
    counts = np.zeros((3, 3))
    np.add.at(counts, (truth.labels, later_labels), 1)
    return truth, later_x, counts


def fake_posterior(truth, seed: int = 1) -> xr.Dataset:
    """(chain, draw) weights, means and chol around the truth, jittered by about a real
    posterior's sd for N customers: Dirichlet(N w) weights, means +- sd / sqrt(N_k), and the
    Cholesky factor scaled by exp(+- 1 / sqrt(2 N_k))."""
    rng = np.random.default_rng(seed)
    sizes = N_CUSTOMERS * truth.weights
    k, d = truth.means.shape
    sd = np.sqrt(np.diagonal(truth.covariances, axis1=1, axis2=2) / sizes[:, None])
    weights = rng.dirichlet(sizes, size=(CHAINS, DRAWS))
    means = truth.means + rng.standard_normal((CHAINS, DRAWS, k, d)) * sd
    scale = np.exp(rng.normal(size=(CHAINS, DRAWS, k, 1, 1)) / np.sqrt(2 * sizes)[:, None, None])
    chol = np.linalg.cholesky(truth.covariances) * scale
    return xr.Dataset(
        {
            "weights": (("chain", "draw", "segment"), weights),
            "means": (("chain", "draw", "segment", "feature"), means),
            "chol": (("chain", "draw", "segment", "feature", "feature_bis"), chol),
        },
        coords={"segment": np.arange(k)},
    )


def tracked(earlier_x, later_x, posterior) -> PeriodDraws:
    """The migration draws as ``segment track`` computes them (later sizes re-estimated)."""
    rng = np.random.default_rng(0)
    draws = period_draws(MIXTURES["gmm"], {}, earlier_x, later_x, posterior, rng)
    np.testing.assert_allclose(draws.expected.sum(axis=(1, 2)), N_CUSTOMERS, rtol=1e-6)
    np.testing.assert_array_equal(draws.realised.sum(axis=(1, 2)), N_CUSTOMERS)
    return draws


def fit_weight_draws(earlier_x, later_x, earlier_posterior, later_posterior):
    """(expected, realised) (S, K, K) migration draws with each period's memberships from its own
    posterior, weights included: the fit's weights as the later prior."""
    gmm = MIXTURES["gmm"]
    rng = np.random.default_rng(0)
    draws = realised = 0.0
    pairs = zip(
        membership_blocks(gmm, {}, earlier_x, earlier_posterior),
        membership_blocks(gmm, {}, later_x, later_posterior),
        strict=True,
    )
    for (_, earlier, _), (_, later, _) in pairs:
        draws = draws + migration_draws(earlier, later)
        realised = realised + realised_draws(earlier, later, rng)
    return draws, realised


def migration(earlier_x, later_x, earlier_posterior, later_posterior) -> pd.DataFrame:
    """The migration table of :func:`fit_weight_draws`."""
    return migration_table(
        *fit_weight_draws(earlier_x, later_x, earlier_posterior, later_posterior), NAMES
    )


@pytest.fixture(scope="module")
def periods():
    truth, later_x, counts = simulated_periods()
    return truth, later_x, counts, fake_posterior(truth)


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    return matrix / matrix.sum(axis=1, keepdims=True)


def inside(table: pd.DataFrame, counts: np.ndarray, low: str, high: str) -> np.ndarray:
    """(K * K,) whether each true count lies in its cell's interval [low, high]."""
    true = counts.ravel()
    return ((table[low] <= true) & (true <= table[high])).to_numpy()


def test_migration_matrix_recovers_a_known_transition_matrix(periods):
    truth, later_x, counts, posterior = periods
    draws = tracked(truth.x, later_x, posterior)
    table = migration_table(draws.expected, draws.realised, NAMES)
    expected = table["expected"].to_numpy().reshape(3, 3)
    assert np.abs(row_normalised(expected) - TRANSITION).max() < 0.05
    assert np.abs(row_normalised(expected) - row_normalised(counts)).max() < 0.01
    assert np.abs(expected - counts).max() < 0.005 * N_CUSTOMERS
    # 94% intervals of 9 cells: 7 or more hold the truth with probability 0.98
    assert inside(table, counts, "realised_low", "realised_high").sum() >= 7
    # the expected count's HDI (parameter uncertainty only) is not an interval for the count
    assert inside(table, counts, "hdi_low", "hdi_high").sum() < 7


def test_realised_counts_are_multinomial_given_the_memberships():
    """Every customer 1/4, 1/4, 1/2 in both periods: each draw's 3 x 3 counts are one
    Multinomial(N, p_a p_b) draw, so their mean is N p_a p_b and their sd sqrt(N q (1 - q))."""
    n_samples, n_customers = 4000, 200
    p = np.array([0.25, 0.25, 0.5], dtype=np.float32)
    memberships = np.broadcast_to(p, (n_samples, n_customers, 3))
    counts = realised_draws(memberships, memberships, np.random.default_rng(3))
    q = np.outer(p, p)
    np.testing.assert_array_equal(counts.sum(axis=(1, 2)), n_customers)
    np.testing.assert_allclose(counts.mean(axis=0), n_customers * q, rtol=0.03)
    np.testing.assert_allclose(counts.std(axis=0), np.sqrt(n_customers * q * (1 - q)), rtol=0.05)


def swapped(posterior: xr.Dataset) -> xr.Dataset:
    """Segments 1 and 2 exchanged: a later period scored with inconsistent labels."""
    return posterior.isel(segment=[0, 2, 1]).assign_coords(segment=np.arange(3))


def shifted(posterior: xr.Dataset) -> xr.Dataset:
    """Segment 1's mean moved 70% of the way to segment 2's, in every draw."""
    means = posterior["means"].values.copy()
    means[:, :, 1] += 0.7 * (means[:, :, 2] - means[:, :, 1])
    return posterior.assign(means=(posterior["means"].dims, means))


@pytest.mark.parametrize(
    ("earlier_wrong", "later_wrong"),
    [(lambda p: p, swapped), (shifted, shifted)],
    ids=["later-segments-swapped", "means-shifted"],
)
def test_a_wrong_posterior_does_not_recover_it(periods, earlier_wrong, later_wrong):
    truth, later_x, counts, posterior = periods
    table = migration(truth.x, later_x, earlier_wrong(posterior), later_wrong(posterior))
    expected = table["expected"].to_numpy().reshape(3, 3)
    assert np.abs(row_normalised(expected) - TRANSITION).max() > 0.1  # twice the recovery tolerance
    assert np.abs(expected - counts).max() > 0.02 * N_CUSTOMERS  # four times the tolerance
    assert inside(table, counts, "realised_low", "realised_high").sum() < 7  # coverage fails too


@pytest.fixture(scope="module")
def shifting():
    """Overlapping segments whose sizes change from 0.5, 0.3, 0.2 to about 0.3, 0.2, 0.5."""
    truth, later_x, counts = simulated_periods(transition=SHIFTING, separation=OVERLAPPING)
    return truth, later_x, counts, fake_posterior(truth)


def inside_hdi(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(K,) whether each true value lies in the 94% HDI of its (S, K) ``draws``."""
    low, high = hdi_nearest(draws, HDI_PROB)
    return (low <= truth) & (truth <= high)


def test_later_sizes_are_biased_with_the_fits_weights_and_not_when_re_estimated(shifting):
    truth, later_x, counts, posterior = shifting
    true_later = counts.sum(axis=0)  # about 900, 600, 1,500 of 3,000
    # before: the fit's weights (0.5, 0.3, 0.2) as the prior of every later membership
    expected, realised = fit_weight_draws(truth.x, later_x, posterior, posterior)
    before = expected.mean(axis=0).sum(axis=0)
    assert before[0] > true_later[0] and before[2] < true_later[2]  # pulled toward the old sizes
    assert np.abs(before - true_later).max() > 0.015 * N_CUSTOMERS  # 45 customers
    assert not inside_hdi(realised.sum(axis=1), true_later)[2]  # even the realised count misses
    # after: the later weights re-estimated per draw (analysis.decisions.later_weights)
    draws = tracked(truth.x, later_x, posterior)
    after = draws.expected.sum(axis=1)  # (S, K) expected later sizes
    assert np.abs(after.mean(axis=0) - true_later).max() < 0.005 * N_CUSTOMERS  # 15 customers
    assert inside_hdi(draws.realised.sum(axis=1), true_later).all()
    np.testing.assert_allclose(
        draws.later_weights.mean(axis=0), true_later / N_CUSTOMERS, atol=0.01
    )
    # the earlier sizes are the fit's memberships, unchanged by the later re-estimate
    np.testing.assert_allclose(draws.expected.sum(axis=2), expected.sum(axis=2), rtol=1e-5)

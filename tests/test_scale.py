"""The large-data path: NUTS on a random subsample, then every customer assigned and scored.

One small but real sampling run (2 chains) on simulated customers with known truth; checks are
label-invariant (the modal segments against the truth by ARI) or compare the code's two routes to
the same numbers (the population pass against the fit's own assignments).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from analysis.data.simulate import gaussian_mixture, true_log_density
from analysis.inference.fit import FitSpec, SamplerSettings, fit_k
from analysis.inference.subsample import heldout_elpd, subsample_indices
from analysis.selection.compare import outside_table

N_CUSTOMERS = 2000
N_FITTED = 400
FEATURES = ["f0", "f1", "f2"]


@pytest.fixture(scope="module")
def truth():
    return gaussian_mixture(n=N_CUSTOMERS, weights=(0.5, 0.3, 0.2), n_features=3, seed=5)


@pytest.fixture(scope="module")
def fitted(truth):
    settings = SamplerSettings(chains=2, draws=300, tune=300, seed=3)
    spec = FitSpec("simulated", "tests", "gmm", {}, {"covariance": "full"}, {}, settings, N_FITTED)
    return fit_k(spec, truth.x, 3, np.arange(N_CUSTOMERS) + 100, FEATURES)


def test_subsample_indices_are_seeded_distinct_and_sorted():
    first = subsample_indices(1000, 100, seed=3)
    assert np.array_equal(first, subsample_indices(1000, 100, seed=3))
    assert not np.array_equal(first, subsample_indices(1000, 100, seed=4))
    assert len(np.unique(first)) == 100 and np.all(np.diff(first) > 0)
    assert first.min() >= 0 and first.max() < 1000


@pytest.mark.sampling
def test_posterior_sees_the_subsample_and_the_population_gets_everyone(fitted):
    population = fitted["population"]
    in_fit = population["in_fit"].values
    assert population.sizes["customer"] == N_CUSTOMERS
    assert in_fit.sum() == N_FITTED
    fit_customers = fitted["observed_data"]["customer"].values
    assert np.array_equal(population["customer"].values[in_fit], fit_customers)
    assert fitted["log_likelihood"].sizes["customer"] == N_FITTED


@pytest.mark.sampling
def test_population_pass_repeats_the_fits_own_assignments(fitted):
    """Same draws, same relabelling: in-fit customers get the fit's own memberships."""
    population = fitted["population"]
    in_fit = population["in_fit"].values
    own = fitted["assignments"]["membership_mean"].values
    np.testing.assert_allclose(population["membership_mean"].values[in_fit], own, atol=1e-6)
    np.testing.assert_array_equal(
        population["modal_segment"].values[in_fit], fitted["assignments"]["modal_segment"].values
    )


@pytest.mark.sampling
def test_held_out_customers_are_assigned_and_scored_like_the_truth(fitted, truth):
    population = fitted["population"].to_dataset()
    outside = ~population["in_fit"].values
    ari = adjusted_rand_score(truth.labels[outside], population["modal_segment"].values[outside])
    assert ari > 0.95
    oracle = true_log_density(truth)[outside]
    scored = heldout_elpd(population)
    assert scored["n_heldout"] == N_CUSTOMERS - N_FITTED
    # a posterior from 400 customers predicts new ones a little worse than the truth, not better
    per_customer_gap = (oracle.sum() - scored["elpd_heldout"]) / scored["n_heldout"]
    assert 0 < per_customer_gap < 0.05
    assert scored["se_heldout"] == pytest.approx(np.sqrt(outside.sum()) * oracle.std(), rel=0.1)


def test_outside_table_pairs_customers_across_k():
    rng = np.random.default_rng(0)
    outside = {2: rng.normal(-3, 1, 50), 3: rng.normal(-2.9, 1, 50)}
    table = outside_table(outside, [1, 2, 3], chosen=2).set_index("K")
    assert np.isnan(table.loc[1, "elpd_outside"])
    assert table.loc[2, "outside_diff"] == 0
    difference = outside[3] - outside[2]
    assert table.loc[3, "outside_diff"] == pytest.approx(difference.sum())
    assert table.loc[3, "outside_dse"] == pytest.approx(np.sqrt(50) * difference.std(ddof=1))
    assert table.loc[3, "n_outside"] == 50

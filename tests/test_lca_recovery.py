"""Latent class model: parameter recovery on simulated data with known truth (issue 6).

Truth: 3 classes (weights 0.5, 0.3, 0.2), 5 categorical variables with 3, 4, 4, 5 and 6 levels,
800 households. In every variable each class puts 60-75% of its probability on its own level
and spreads the rest; classifying with the true parameters gives an ARI of about 0.9, so the
classes are identifiable but overlap as survey classes do.

Label-invariant checks only: fitted classes are matched to true ones by an assignment on the
item-probability distances (scipy), never by assuming label order. The fit goes through the
pipeline's ``fit_k`` (nutpie, memberships, Stephens relabelling, assignments, diagnostics).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import arviz as az
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from analysis.inference.fit import FitSpec, SamplerSettings, fit_k
from models.lca import sample_households

pytestmark = pytest.mark.sampling  # every test here fits a posterior (slow ones: slow)

N_LEVELS = (3, 4, 4, 5, 6)
WEIGHTS = (0.5, 0.3, 0.2)
PEAKS = (0.75, 0.6, 0.65, 0.7, 0.6)  # probability of each class's own level, per variable
N_HOUSEHOLDS = 800
LEVELS = {f"q{j}": [f"a{level}" for level in range(n)] for j, n in enumerate(N_LEVELS)}
FEATURES = [f"{variable}={level}" for variable, levels in LEVELS.items() for level in levels]


@dataclass(frozen=True)
class LatentClassTruth:
    """y (N, M) indicators; labels (N,); weights (K,); item_probs (K, M)."""

    y: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    item_probs: np.ndarray


def simulate(seed: int = 0) -> LatentClassTruth:
    rng = np.random.default_rng(seed)
    blocks = []
    for n, peak in zip(N_LEVELS, PEAKS, strict=True):
        own = rng.permutation(n)[:3]  # a distinct favourite level per class
        block = rng.dirichlet(np.full(n, 3.0), size=3) * (1 - peak)
        block[np.arange(3), own] += peak
        blocks.append(block)
    item_probs = np.concatenate(blocks, axis=1)
    weights = np.array(WEIGHTS)
    labels, y = sample_households(weights, item_probs, N_LEVELS, rng, (N_HOUSEHOLDS,))
    return LatentClassTruth(y, labels, weights, item_probs)


def spec(**sampler) -> FitSpec:
    settings = SamplerSettings(**({"chains": 4, "draws": 500, "tune": 500, "seed": 5} | sampler))
    return FitSpec("simulated", "tests", "lca", {}, {"levels": LEVELS}, {}, settings)


def fit(truth: LatentClassTruth, k: int, **sampler):
    return fit_k(spec(**sampler), truth.y, k, np.arange(N_HOUSEHOLDS), FEATURES)


def match_to_truth(fitted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Index of the fitted class matched to each true class (label-invariant)."""
    cost = np.abs(fitted[:, None, :] - true[None, :, :]).sum(axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return rows[np.argsort(cols)]


def inside_hdi(tree, name: str, truth_values: np.ndarray, order: np.ndarray, prob: float):
    hdi = az.hdi(tree["posterior"][name].isel(segment=order), prob=prob)
    inside = (hdi.sel(ci_bound="lower") <= truth_values) & (
        truth_values <= hdi.sel(ci_bound="upper")
    )
    return inside.values.ravel()


def coverage(fitted, truth: LatentClassTruth) -> dict[float, np.ndarray]:
    """Whether each true weight and item probability is inside its 94% and 99% HDI, classes
    matched to the truth first."""
    posterior = fitted["posterior"]
    order = match_to_truth(posterior["item_probs"].mean(("chain", "draw")).values, truth.item_probs)
    return {
        prob: np.concatenate(
            [
                inside_hdi(fitted, "weights", truth.weights, order, prob),
                inside_hdi(fitted, "item_probs", truth.item_probs, order, prob),
            ]
        )
        for prob in (0.94, 0.99)
    }


@pytest.fixture(scope="module")
def truth() -> LatentClassTruth:
    return simulate(seed=0)


@pytest.fixture(scope="module")
def fitted(truth):
    return fit(truth, 3)


def test_recovers_weights_item_probabilities_and_classes(truth, fitted):
    """69 true values (3 weights, 66 item probabilities) against their HDIs.

    With 69 values "all inside the 99% HDI" fails about half of all seeds for a perfectly
    calibrated posterior (0.99^69 = 0.50), and "all inside the 94% HDI" nearly always. The test
    asks what a calibrated posterior delivers with high probability: at most 2 of 69 outside the
    99% HDI (passes with probability 0.97 if misses were independent) and at least 61 of 69 (88%)
    inside the 94% HDI (expected 65; passes with probability 0.98).
    """
    assert fitted["posterior"]["item_probs"].dims == ("chain", "draw", "segment", "item")
    inside = coverage(fitted, truth)
    assert inside[0.94].size == 69
    assert (~inside[0.99]).sum() <= 2, f"{(~inside[0.99]).sum()} of 69 outside the 99% HDI"
    assert inside[0.94].sum() >= 61, f"{inside[0.94].sum()} of 69 inside the 94% HDI"
    modal = fitted["assignments"]["modal_segment"].values
    assert adjusted_rand_score(truth.labels, modal) >= 0.8


def test_per_variable_probabilities_are_labelled_and_match_the_flat_array(fitted):
    posterior = fitted["posterior"]
    theta = posterior["theta_q3"]
    assert theta.dims == ("chain", "draw", "segment", "level_q3")
    assert list(theta["level_q3"].values) == LEVELS["q3"]
    flat = posterior["item_probs"].sel(item=[f"q3={level}" for level in LEVELS["q3"]])
    np.testing.assert_allclose(flat.values, theta.values)  # both relabelled alike
    np.testing.assert_allclose(theta.sum("level_q3"), 1.0, rtol=1e-10)


def test_diagnostics_and_saved_groups_are_complete(fitted):
    """4 x 500 draws: the pipeline's R-hat 1.01 rule is for 4 x 1000; here R-hat <= 1.02."""
    diagnostics = json.loads(fitted.attrs["segment_diagnostics"])
    assert diagnostics["divergences"] == 0
    assert diagnostics["max_rhat"] <= 1.02
    assert min(diagnostics["min_ess_bulk"], diagnostics["min_ess_tail"]) >= 400
    assert fitted["log_likelihood"]["x"].shape == (4, 500, N_HOUSEHOLDS)
    assert np.isfinite(fitted["log_likelihood"]["x"].values).all()
    replicated = fitted["posterior_predictive"]["x"]
    assert replicated.dims[-2:] == ("customer", "item")
    np.testing.assert_array_equal(replicated.isel(item=slice(0, 3)).sum("item"), 1.0)
    assignments = fitted["assignments"]
    np.testing.assert_allclose(
        assignments["membership_mean"].sum("segment"), 1.0, rtol=1e-4
    )  # float32
    config = json.loads(fitted.attrs["segment_config"])
    assert config["model"] == "lca" and config["options"]["levels"] == LEVELS


def with_missing_answers(truth: LatentClassTruth, share: float, seed: int) -> LatentClassTruth:
    """The same households with each answer missing (its block of indicators all zero)
    completely at random with probability ``share``."""
    rng = np.random.default_rng(seed)
    y = truth.y.copy()
    start = 0
    for n in N_LEVELS:
        y[rng.random(len(y)) < share, start : start + n] = 0.0
        start += n
    return LatentClassTruth(y, truth.labels, truth.weights, truth.item_probs)


@pytest.mark.slow  # a second 4 x (500 + 500) fit; the default run checks the exact marginal
def test_recovers_classes_with_ten_percent_of_answers_missing():
    """10% of answers missing completely at random drop out of the likelihood (issue 16): the
    same coverage rules as the complete data, and every household still assigned.

    The households are a fresh simulation (truth seed 3), not the complete-data test's with
    answers removed: a subset of those data inherits that fit's misses (2 of 69 outside the 99%
    HDI at truth seed 0), so the two tests' coverage counts would not be independent.
    """
    truth = simulate(seed=3)
    incomplete = with_missing_answers(truth, 0.10, seed=1)
    assert 0.08 < 1 - incomplete.y.sum() / truth.y.sum() < 0.12
    fitted = fit(incomplete, 3)
    inside = coverage(fitted, truth)
    assert (~inside[0.99]).sum() <= 2, f"{(~inside[0.99]).sum()} of 69 outside the 99% HDI"
    assert inside[0.94].sum() >= 61, f"{inside[0.94].sum()} of 69 inside the 94% HDI"
    modal = fitted["assignments"]["modal_segment"].values
    assert len(modal) == N_HOUSEHOLDS
    assert adjusted_rand_score(truth.labels, modal) >= 0.8
    assert np.isfinite(fitted["log_likelihood"]["x"].values).all()


@pytest.mark.slow
def test_loo_prefers_three_classes(truth, fitted):
    """PSIS-LOO on K = 2, 3, 4 from the saved pointwise (label-summed) log-likelihood.

    K = 3 must beat K = 2 by more than 2 SE of the paired difference and have the highest
    elpd_loo; K = 4 (one class too many) may only tie with it.
    """
    loo = {k: az.loo(fit(truth, k), pointwise=True) for k in (2, 4)}
    loo[3] = az.loo(fitted, pointwise=True)
    for k, result in loo.items():
        assert float(result.pareto_k.max()) < 0.7, f"K={k}: Pareto k {result.pareto_k.max()}"

    def difference(a: int, b: int) -> tuple[float, float]:
        pointwise = (loo[a].elpd_i - loo[b].elpd_i).values
        return pointwise.sum(), np.sqrt(len(pointwise)) * pointwise.std(ddof=1)

    gain, se = difference(3, 2)
    assert gain > 2 * se, f"K=3 vs K=2: {gain:.1f} (SE {se:.1f})"
    extra, se_extra = difference(4, 3)
    assert max(loo, key=lambda k: loo[k].elpd) == 3, f"K=4 vs K=3: {extra:.1f} (SE {se_extra:.1f})"

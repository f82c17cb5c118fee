"""Structure tests of the latent class model: dims, finite log density and gradient, one formula,
the indicators transform, the EM start, and the CLI routing of categorical data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest
from pymc.initial_point import make_initial_point_fn
from scipy.special import logsumexp

from analysis.cli import main
from analysis.data.transforms import fit_transform
from models import MIXTURES
from models.lca import (
    DEFAULT_PRIORS,
    build_lca,
    em,
    initial_point,
    merged_priors,
    mixture_random,
    sample_households,
    segment_log_joint,
)

N_LEVELS = (3, 4, 2)
LEVELS = {
    "size": ["1", "2", "3+"],
    "home": ["Owner", "Renter", "Other", "Unknown"],
    "married": ["yes", "no"],
}
FEATURES = [f"{v}={level}" for v, lv in LEVELS.items() for level in lv]


@pytest.fixture(scope="module")
def truth():
    """Two classes over three variables; (labels (N,), indicators (N, 9), weights, item_probs)."""
    weights = np.array([0.6, 0.4])
    item_probs = np.array(
        [
            [0.7, 0.2, 0.1, 0.6, 0.2, 0.1, 0.1, 0.8, 0.2],
            [0.1, 0.3, 0.6, 0.1, 0.5, 0.1, 0.3, 0.3, 0.7],
        ]
    )
    labels, y = sample_households(weights, item_probs, N_LEVELS, np.random.default_rng(0), (300,))
    return labels, y, weights, item_probs


def direct_log_joint(y, weights, item_probs):
    """log w_k + sum_j log theta_kj[x_ij] with an explicit loop over households and variables."""
    codes = [np.flatnonzero(row) for row in y]  # the column of each variable's level
    out = np.empty((len(y), len(weights)))
    for i, columns in enumerate(codes):
        for k in range(len(weights)):
            out[i, k] = np.log(weights[k]) + sum(np.log(item_probs[k, m]) for m in columns)
    return out


def test_every_variable_has_named_dims_and_logp_is_finite(truth):
    _, y, _, _ = truth
    model = build_lca(y, 3, customers=np.arange(300) + 500, features=FEATURES, levels=LEVELS)
    for variable in model.free_RVs + model.deterministics + model.observed_RVs:
        assert model.named_vars_to_dims.get(variable.name), f"{variable.name} has no dims"
    assert model.named_vars_to_dims["item_probs"] == ("segment", "item")
    assert model.named_vars_to_dims["theta_home"] == ("segment", "level_home")
    assert list(model.coords["level_home"]) == LEVELS["home"]
    assert list(model.coords["item"]) == FEATURES
    assert list(model.coords["customer"])[:2] == [500, 501]
    point = model.initial_point()
    assert np.isfinite(model.compile_logp()(point))
    assert np.all(np.isfinite(model.compile_dlogp()(point)))
    # Unconstrained dimension = (K - 1) + K * sum_j (L_j - 1): the model's parameter count.
    assert sum(np.size(v) for v in point.values()) == 2 + 3 * (2 + 3 + 1)


def test_segment_log_joint_matches_a_direct_computation(truth):
    _, y, weights, item_probs = truth
    ours = segment_log_joint(pt.as_tensor(y), weights, item_probs).eval()
    np.testing.assert_allclose(ours, direct_log_joint(y, weights, item_probs), rtol=1e-12)
    # Leading draw dims broadcast: two draws at once give both answers.
    other = np.roll(item_probs, 1, axis=0)
    batched = segment_log_joint(
        pt.as_tensor(y), np.stack([weights, weights[::-1]]), np.stack([item_probs, other])
    ).eval()
    np.testing.assert_allclose(batched[0], direct_log_joint(y, weights, item_probs), rtol=1e-12)
    np.testing.assert_allclose(batched[1], direct_log_joint(y, weights[::-1], other), rtol=1e-12)


def test_a_missing_answer_drops_out_as_the_model_without_that_variable(truth):
    """Issue 16: a missing answer (its block of indicators all zero) leaves exactly the product
    over the household's other variables: the same household scored by a model that never had
    that variable, and the indicators transform writes NaN as that all-zero block."""
    _, y, weights, item_probs = truth
    incomplete = y.copy()
    incomplete[:100, 3:7] = 0.0  # "home" missing for the first 100 households
    ours = segment_log_joint(pt.as_tensor(incomplete), weights, item_probs).eval()
    without_home = np.r_[0:3, 7:9]
    expected = direct_log_joint(y[:100][:, without_home], weights, item_probs[:, without_home])
    np.testing.assert_allclose(ours[:100], expected, rtol=1e-12)
    np.testing.assert_allclose(ours[100:], direct_log_joint(y[100:], weights, item_probs))
    answers = pd.DataFrame({"home": pd.Categorical(["Owner", None, "Other"], LEVELS["home"])})
    indicators = fit_transform("indicators", answers).apply(answers)
    np.testing.assert_array_equal(indicators[1], 0.0)
    np.testing.assert_array_equal(indicators.sum(axis=1), [1.0, 0.0, 1.0])


def test_model_logp_is_the_marginal_mixture_probability(truth):
    _, y, _, _ = truth
    model = build_lca(y, 2, customers=np.arange(300), features=FEATURES, levels=LEVELS)
    point = initial_point(y, 2, levels=LEVELS, seed=0)
    transformed = make_initial_point_fn(
        model=model, overrides=point, jitter_rvs=set(), return_transformed=True
    )(0)
    loglik = np.ravel(model.compile_fn(model.logp(vars=[model["x"]], sum=False)[0])(transformed))
    item_probs = np.concatenate([point[f"theta_{v}"] for v in LEVELS], axis=-1)
    expected = logsumexp(direct_log_joint(y, point["weights"], item_probs), axis=1)
    np.testing.assert_allclose(loglik, expected, rtol=1e-10)


def test_mixture_random_reproduces_weights_and_item_probabilities(truth):
    _, _, weights, item_probs = truth
    draws = mixture_random(
        weights, item_probs, rng=np.random.default_rng(1), size=(40_000,), n_levels=N_LEVELS
    )
    assert draws.shape == (40_000, 9)
    np.testing.assert_array_equal(np.add.reduceat(draws, [0, 3, 7], axis=1), 1.0)
    np.testing.assert_allclose(draws.mean(0), weights @ item_probs, atol=0.01)
    # Within class 0 (identified by level "1" of "size" being common), not the marginal.
    labels, y = sample_households(
        weights, item_probs, N_LEVELS, np.random.default_rng(2), (40_000,)
    )
    np.testing.assert_allclose(np.bincount(labels) / 40_000, weights, atol=0.01)
    np.testing.assert_allclose(y[labels == 1].mean(0), item_probs[1], atol=0.015)


def test_em_start_is_ordered_by_weight_and_inside_every_simplex(truth):
    _, y, _, item_probs = truth
    point = initial_point(y, 2, levels=LEVELS, seed=0)
    assert np.all(np.diff(point["weights"]) <= 0)
    np.testing.assert_allclose(point["weights"].sum(), 1.0)
    for variable, levels in LEVELS.items():
        theta = point[f"theta_{variable}"]
        assert theta.shape == (2, len(levels))
        assert np.all(theta > 0)
        np.testing.assert_allclose(theta.sum(-1), 1.0)
    fitted = np.concatenate([point[f"theta_{v}"] for v in LEVELS], axis=-1)
    np.testing.assert_allclose(fitted, item_probs, atol=0.12)  # 300 households, order by weight
    _, _, loglik = em(y, 2, N_LEVELS, seed=0)
    assert loglik > em(y, 1, N_LEVELS, seed=0)[2]


def test_builder_refuses_data_that_are_not_indicators(truth):
    _, y, _, _ = truth
    with pytest.raises(ValueError, match="describe 8 indicator columns"):
        build_lca(
            y,
            2,
            customers=np.arange(300),
            features=FEATURES,
            levels=LEVELS | {"home": ["Owner", "Renter", "Other"]},
        )
    broken = y.copy()
    broken[0, :3] = [1, 1, 0]
    with pytest.raises(ValueError, match="at most one 1 per variable"):
        build_lca(broken, 2, customers=np.arange(300), features=FEATURES, levels=LEVELS)


def test_priors_merge_and_reject_unknown_keys():
    assert merged_priors({"item_concentration": 0.5})["item_concentration"] == 0.5
    assert (
        merged_priors()
        == DEFAULT_PRIORS
        == {"weights_concentration": 1.0, "item_concentration": 1.0}
    )
    with pytest.raises(ValueError, match="unknown LCA prior"):
        merged_priors({"beta": 2.0})


def test_lca_is_registered_for_categorical_data():
    mixture = MIXTURES["lca"]
    assert mixture.data_kind == "categorical"
    assert mixture.parameters == ("weights", "item_probs")
    assert MIXTURES["gmm"].data_kind == "continuous"


def test_indicators_transform_keeps_every_level():
    frame = pd.DataFrame(
        {
            "size": pd.Categorical(["1", "2", "5+", "2"], categories=["1", "2", "3", "5+"]),
            "owner": ["Renter", "Homeowner", "Unknown", "Renter"],
        }
    )
    transform = fit_transform("indicators", frame)
    assert transform.columns == (
        "size=1",
        "size=2",
        "size=3",
        "size=5+",
        "owner=Homeowner",
        "owner=Renter",
        "owner=Unknown",
    )
    x = transform.apply(frame)
    expected = [
        [1, 0, 0, 0, 0, 1, 0],
        [0, 1, 0, 0, 1, 0, 0],
        [0, 0, 0, 1, 0, 0, 1],
        [0, 1, 0, 0, 0, 1, 0],
    ]
    np.testing.assert_array_equal(x, expected)


def test_indicators_on_demographics_have_one_level_per_variable(demographics):
    transform = fit_transform("indicators", demographics.features)
    x = transform.apply(demographics.features)
    assert x.shape == (801, 39)
    np.testing.assert_array_equal(x.sum(axis=1), 7)
    home = transform.columns.index("home_ownership=Unknown")
    assert x[:, home].sum() == 233


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--dataset", "dunnhumby-demographics", "--model", "gmm"], "--model gmm needs continuous"),
        (
            ["--dataset", "dunnhumby-demographics", "--transform", "one-hot"],
            "--transform one-hot: --model lca needs indicators",
        ),
        (["--features", "a,b", "--model", "lca"], "--model lca needs categorical features"),
        (["--categorical", "a,b", "--model", "gmm"], "--model gmm needs continuous features"),
    ],
)
def test_fit_routes_categorical_data_to_the_lca_only(tmp_path, capsys, argv, needle):
    if argv[0] != "--dataset":  # a csv file whose columns a and b hold numbers
        path = tmp_path / "table.csv"
        pd.DataFrame({"a": [1, 2, 3, 1], "b": [2, 1, 2, 3]}).to_csv(path, index=False)
        argv = ["--dataset", "csv", "--data", str(path), *argv]
    out = tmp_path / "run"
    code = main(["fit", *argv, "--k", "2", "--out", str(out)])
    error = capsys.readouterr().err
    assert code == 2
    assert needle in error
    assert len(error.strip().splitlines()) == 1
    assert not out.exists()

"""Local-dependence check of the latent class model (issue 21, item 1).

Exact values on a hand case; then the check on data simulated from the latent class truth of
``test_lca_recovery`` under synthetic posteriors (the conjugate posterior given the true class
labels), so nothing is sampled: local independence passes, and a near-copy of one variable gets
exactly that pair flagged. The slow test checks the same on a real fit.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from analysis import plotting
from analysis.data.datasets import Dataset
from analysis.data.joins import join_variables
from analysis.data.transforms import fit_transform
from analysis.inference.local_dependence import (
    PAIR_COLUMNS,
    answer_codes,
    local_dependence,
    pair_checks,
    pair_counts,
)
from analysis.reporting.figures import local_dependence_figure
from tests.test_lca_recovery import LEVELS, N_LEVELS, simulate

HAND_LEVELS = {"a": ["0", "1"], "b": ["0", "1"]}
# four customers on the diagonal of a 2 x 2 table, a fifth who answered only a
HAND_X = np.array([[1, 0, 1, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 1, 0, 1], [1, 0, 0, 0]], float)
HAND_WEIGHTS = np.array([[0.5, 0.5]])
HAND_PROBS = np.array([[[0.8, 0.2, 0.8, 0.2], [0.2, 0.8, 0.2, 0.8]]])
COPY_SHARE = 0.9  # the near-copy repeats its source's level for this share of households


def test_codes_and_counts_leave_out_missing_answers():
    codes = answer_codes(HAND_X, [2, 2])
    np.testing.assert_array_equal(codes, [[0, 0], [0, 0], [1, 1], [1, 1], [0, -1]])
    np.testing.assert_array_equal(pair_counts(codes[:, 0], codes[:, 1], 2, 2), [[2, 0], [0, 2]])


def test_chi_square_of_a_hand_table_is_exact():
    """P(a, b) = 0.5 (0.8, 0.2)^(x)2 + 0.5 (0.2, 0.8)^(x)2 = [[0.34, 0.16], [0.16, 0.34]], so
    E = 4 P = [[1.36, 0.64], [0.64, 1.36]] and X2 = 2 (0.64^2 / 1.36) + 2 (0.64^2 / 0.64)
    = 32 / 17; the customer without b is not counted."""
    pairs, cells = pair_checks(HAND_X, HAND_WEIGHTS, HAND_PROBS, HAND_LEVELS)
    assert list(pairs.columns) == list(PAIR_COLUMNS)
    row = pairs.iloc[0]
    assert (row["variable_a"], row["variable_b"], row["customers"], row["cells"]) == (
        "a",
        "b",
        4,
        4,
    )
    assert row["chi2_observed"] == pytest.approx(32 / 17, rel=1e-12)
    np.testing.assert_allclose(cells["expected"], [1.36, 0.64, 0.64, 1.36], rtol=1e-12)
    np.testing.assert_array_equal(cells["observed"], [2, 0, 0, 2])
    # the replicated tables count the same 4 customers
    assert cells["replicated_mean"].sum() == pytest.approx(4)
    # one draw: the p-value is whether its replicated chi-square reached the observed one
    assert row["p_value"] in (0.0, 1.0)


def synthetic_posterior(y, labels, draws: int, seed: int, n_levels=N_LEVELS):
    """Draws (S, K) and (S, K, M) from the posterior given the true class labels (conjugate:
    Dirichlet(1 + class sizes) weights, Dirichlet(1 + class-wise level counts) probabilities),
    so they are centred on the data as a fitted posterior is, with its spread."""
    rng = np.random.default_rng(seed)
    members = np.eye(labels.max() + 1)[labels]  # (N, K)
    weights = rng.dirichlet(1 + members.sum(0), size=draws)
    counts = 1 + members.T @ y  # (K, M)
    starts = np.cumsum([0, *n_levels[:-1]])
    blocks = [
        np.stack([rng.dirichlet(c, size=draws) for c in counts[:, s : s + m]], axis=1)
        for s, m in zip(starts, n_levels, strict=True)
    ]
    return weights, np.concatenate(blocks, axis=-1)


def fake_fit(y, weights, item_probs, seed: int = 3, levels=LEVELS) -> xr.DataTree:
    """A saved-fit look-alike: posterior (1 chain), observed data and the configuration."""
    k = weights.shape[-1]
    features = [f"{variable}={level}" for variable, lv in levels.items() for level in lv]
    posterior = xr.Dataset(
        {
            "weights": (("chain", "draw", "segment"), weights[None]),
            "item_probs": (("chain", "draw", "segment", "item"), item_probs[None]),
        },
        coords={"segment": np.arange(k), "item": features},
    )
    observed = xr.Dataset({"x": (("customer", "item"), y)}, coords={"item": features})
    tree = xr.DataTree.from_dict({"posterior": posterior, "observed_data": observed})
    tree.attrs["segment_config"] = json.dumps(
        {"options": {"levels": levels}, "sampler": {"seed": seed}}
    )
    return tree


def with_near_copy(truth, source: int, copy: int, seed: int = 1) -> np.ndarray:
    """The indicators with variable ``copy`` replaced by ``source``'s level for COPY_SHARE of the
    households (a uniform level otherwise): (N, M)."""
    rng = np.random.default_rng(seed)
    codes = answer_codes(truth.y, N_LEVELS)
    n = N_LEVELS[copy]
    assert N_LEVELS[source] == n
    repeat = rng.random(len(codes)) < COPY_SHARE
    copied = np.where(repeat, codes[:, source], rng.integers(n, size=len(codes)))
    start = sum(N_LEVELS[:copy])
    y = truth.y.copy()
    y[:, start : start + n] = np.eye(n)[copied]
    return y


@pytest.fixture(scope="module")
def truth():
    return simulate(seed=0)


def test_local_independence_passes(truth):
    draws = synthetic_posterior(truth.y, truth.labels, 200, seed=2)
    pairs, _ = local_dependence(fake_fit(truth.y, *draws))
    assert len(pairs) == 10
    assert not pairs["flagged"].any(), pairs
    assert pairs["p_value"].min() > 0.2  # posterior predictive p-values sit near 0.5
    assert (pairs["customers"] == len(truth.y)).all()


def test_a_near_copy_gets_exactly_its_pair_flagged(truth):
    y = with_near_copy(truth, source=1, copy=2)
    draws = synthetic_posterior(y, truth.labels, 200, seed=2)
    pairs, cells = local_dependence(fake_fit(y, *draws))
    flagged = pairs[pairs["flagged"]]
    assert list(zip(flagged["variable_a"], flagged["variable_b"], strict=True)) == [("q1", "q2")]
    assert flagged["p_value"].iloc[0] == 0.0 and flagged["chi2_ratio"].iloc[0] > 10
    # the copy is the most associated pair in the observed data (Cramér's V; the classes
    # associate the others too, 0.3-0.55 here), above the bar for suggesting --join
    assert flagged["cramers_v"].iloc[0] > 0.7
    assert pairs.loc[~pairs["flagged"], "cramers_v"].max() < flagged["cramers_v"].iloc[0] - 0.2
    # its diagonal is observed far above what the model replicates
    diagonal = cells[(cells["variable_a"] == "q1") & (cells["variable_b"] == "q2")]
    diagonal = diagonal[diagonal["level_a"] == diagonal["level_b"]]
    assert (diagonal["observed"] > diagonal["replicated_hdi_high"]).all()


def test_joining_the_near_copy_to_its_source_passes(truth):
    """--join q1+q2: their dependence is now inside one variable, which the classes allow."""
    codes = answer_codes(with_near_copy(truth, source=1, copy=2), N_LEVELS)
    frame = pd.DataFrame(
        {
            variable: pd.Categorical(np.asarray(lv)[codes[:, j]], categories=lv)
            for j, (variable, lv) in enumerate(LEVELS.items())
        }
    )
    dataset = Dataset(
        "simulated", "test", "categorical", frame, pd.DataFrame(index=frame.index), ""
    )
    joined = join_variables(dataset, [("q1", "q2")]).features
    transform = fit_transform("indicators", joined)
    levels = {v: list(lv) for v, lv in zip(joined.columns, transform.levels, strict=True)}
    y = transform.apply(joined)
    n_levels = [len(lv) for lv in levels.values()]
    draws = synthetic_posterior(y, truth.labels, 200, seed=2, n_levels=n_levels)
    pairs, _ = local_dependence(fake_fit(y, *draws, levels=levels))
    assert len(pairs) == 6 and "q1+q2" in set(pairs["variable_a"]) | set(pairs["variable_b"])
    assert not pairs["flagged"].any(), pairs


def test_missing_answers_shrink_the_pair_counts_and_replicates_follow(truth):
    y = truth.y.copy()
    y[:100, :3] = 0  # q0 unanswered for 100 households
    draws = synthetic_posterior(y, truth.labels, 40, seed=2)
    pairs, cells = local_dependence(fake_fit(y, *draws))
    with_q0 = pairs[pairs["variable_a"] == "q0"]
    assert (with_q0["customers"] == len(y) - 100).all()
    q0_q1 = cells[(cells["variable_a"] == "q0") & (cells["variable_b"] == "q1")]
    for column in ("observed", "expected", "replicated_mean"):
        assert q0_q1[column].sum() == pytest.approx(len(y) - 100)


def test_the_check_is_seeded(truth):
    draws = synthetic_posterior(truth.y, truth.labels, 30, seed=2)
    first, _ = local_dependence(fake_fit(truth.y, *draws))
    again, _ = local_dependence(fake_fit(truth.y, *draws))
    assert first.equals(again)


def test_heatmap_marks_the_flagged_pair(truth):
    y = with_near_copy(truth, source=1, copy=2)
    draws = synthetic_posterior(y, truth.labels, 50, seed=2)
    pairs, _ = local_dependence(fake_fit(y, *draws))
    figure = local_dependence_figure(pairs, list(LEVELS))
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert len(texts) == 10 and sum("*" in t for t in texts) == 1


@pytest.mark.slow  # a 4 x (500 + 500) fit of K = 3, about a minute
def test_a_fitted_model_finds_the_near_copy_most_discrepant(truth):
    """On a real fit the classes bend towards the dependent pair, so other pairs can fail too
    (measured: 4 flagged, q1 x q2 at 32 times its replicated chi-square, the next at 12)."""
    from tests.test_lca_recovery import fit

    y = with_near_copy(truth, source=1, copy=2)
    pairs, _ = local_dependence(
        fit(type(truth)(y, truth.labels, truth.weights, truth.item_probs), 3)
    )
    first = pairs.iloc[0]
    assert (first["variable_a"], first["variable_b"], first["p_value"]) == ("q1", "q2", 0.0)
    assert first["chi2_ratio"] > 2 * pairs["chi2_ratio"].iloc[1:].max()


def test_report_shows_the_heatmap_the_table_and_a_first_screen_warning(truth, tmp_path):
    from analysis.paths import RunPaths
    from analysis.reporting.report import (
        Source,
        local_dependence_warnings,
        section_local_dependence,
    )
    from analysis.reporting.report_outputs import LOCAL_DEPENDENCE

    y = with_near_copy(truth, source=1, copy=2)
    pairs, _ = local_dependence(fake_fit(y, *synthetic_posterior(y, truth.labels, 50, seed=2)))
    paths = RunPaths(tmp_path)
    pairs.to_csv(tmp_path / LOCAL_DEPENDENCE, index=False)
    paths.figures_dir.mkdir()
    plotting.save(local_dependence_figure(pairs, list(LEVELS)), paths.figure("local_dependence"))
    src = {LOCAL_DEPENDENCE: Source(paths, LOCAL_DEPENDENCE)}
    section = section_local_dependence(paths, src)
    assert 'data-file="local_dependence.png"' in section
    assert section.count('<tr class="failed">') == 1
    (warning,) = local_dependence_warnings(src, lambda name: "none")
    assert ">q1</span> &times; <span" in warning and "q3" not in warning
    assert "--join" not in warning
    suggestion = "segment run --dataset test --join q1+q2 --out runs/x-joined"
    (warning,) = local_dependence_warnings(src, {"suggested joins": suggestion}.get)
    assert f"<code>{suggestion}</code>" in warning

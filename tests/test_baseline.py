"""The scikit-learn baseline: reference BIC figures, criteria, parameter counts, K selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from analysis.data.transforms import fit_transform
from analysis.selection import baseline
from analysis.selection.baseline import BASELINE_COLUMNS, COVARIANCE_TYPES


def test_reproduces_published_bic_on_marketing(marketing):
    """The original analysis' figures: standardize, full covariance, n_init=1, seed 42."""
    x = fit_transform("standardize", marketing.features).apply(marketing.features)
    table = baseline.sweep(x, [1, 2, 3], ["full"], n_init=1, seeds=[42], progress=None)
    np.testing.assert_allclose(table["bic"], [33405, 15798, 11459], atol=1)


def test_baseline_command_writes_csv_and_figure(marketing_csv, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["baseline", "--dataset", "marketing", "--data", str(marketing_csv)]
    argv += ["--transform", "standardize", "--n-init", "1", "--seeds", "42", "--k", "1-3"]
    assert main([*argv, "--out", str(out)]) == 0
    table = pd.read_csv(out / "baseline.csv")
    assert list(table.columns) == list(BASELINE_COLUMNS)
    assert list(table["K"]) == [1, 2, 3]
    assert set(table["covariance_type"]) == {"full"}
    np.testing.assert_allclose(table["bic"], [33405, 15798, 11459], atol=1)
    assert (out / "figures" / "baseline.png").stat().st_size > 10_000
    assert not list(out.rglob("*.tmp"))
    printed = capsys.readouterr().out
    assert "full    42  3" in printed  # the minimum-BIC K of the one seed


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    """(300, 2) draws from three well-separated Gaussians (centres 10 sd apart)."""
    rng = np.random.default_rng(2024)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    return np.concatenate([rng.normal(centre, 1.0, size=(100, 2)) for centre in centres])


@pytest.fixture(scope="module")
def blob_table(blobs) -> pd.DataFrame:
    return baseline.sweep(blobs, [1, 2, 3, 4, 5], ["full", "diag"], 2, [0, 1], progress=None)


def test_min_bic_recovers_three_clusters(blob_table):
    best = baseline.best_k_by_seed(blob_table)
    assert len(best) == 4  # 2 covariance types x 2 seeds
    assert (best["K"] == 3).all()


def test_icl_is_bic_plus_entropy(blob_table, blobs):
    assert (blob_table["icl"] >= blob_table["bic"] - 1e-9).all()
    one = blob_table[blob_table["K"] == 1]
    np.testing.assert_allclose(one["icl"], one["bic"])  # one component: no assignment entropy
    model = baseline.fit_gmm(blobs, 2, "full", 1, 0)
    tau = model.predict_proba(blobs)
    entropy = -np.sum(tau * np.log(np.clip(tau, 1e-300, None)))
    scores = baseline.score_gmm(model, blobs)
    assert scores["icl"] == pytest.approx(scores["bic"] + 2 * entropy)
    n = len(blobs)
    assert scores["bic"] == pytest.approx(-2 * scores["loglik"] + scores["n_params"] * np.log(n))
    assert scores["aic"] == pytest.approx(-2 * scores["loglik"] + 2 * scores["n_params"])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("k,d", [(1, 1), (2, 3), (4, 6), (9, 32)])
def test_n_parameters_matches_sklearn(k, d, covariance_type):
    x = np.random.default_rng(k * 100 + d).normal(size=(max(40, 2 * k), d))
    model = baseline.fit_gmm(x, k, covariance_type, n_init=1, seed=0)
    assert baseline.n_parameters(k, d, covariance_type) == model._n_parameters()


def test_best_k_by_seed_returns_argmin():
    table = pd.DataFrame(
        {
            "K": [1, 2, 3, 1, 2, 3, 1, 2, 3],
            "seed": [0, 0, 0, 1, 1, 1, 0, 0, 0],
            "covariance_type": ["full"] * 6 + ["diag"] * 3,
            "bic": [30.0, 10.0, 20.0, 30.0, 25.0, 5.0, 1.0, 2.0, 3.0],
            "aic": [3.0, 2.0, 1.0, 3.0, 2.0, 1.0, 3.0, 2.0, 1.0],
        }
    )
    best = baseline.best_k_by_seed(table)
    got = {(row.covariance_type, row.seed): row.K for row in best.itertuples()}
    assert got == {("full", 0): 2, ("full", 1): 3, ("diag", 0): 1}
    assert set(baseline.best_k_by_seed(table, "aic")["K"]) == {3}


def test_demographics_baseline_defaults_to_diag(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["baseline", "--dataset", "dunnhumby-demographics", "--k", "1-3"]
    assert main([*argv, "--n-init", "1", "--seeds", "0", "--out", str(out)]) == 0
    table = pd.read_csv(out / "baseline.csv")
    assert set(table["covariance_type"]) == {"diag"}
    assert list(table["n_params"]) == [baseline.n_parameters(k, 32, "diag") for k in (1, 2, 3)]
    assert "diag" in capsys.readouterr().out


def test_k_with_more_parameters_than_rows_is_skipped_and_said(tmp_path, capsys):
    """Full covariance on 801 households x 32 dummies: K=1 has 560 parameters, K=2 1121. EM
    fits K=1; K=2 is skipped with its reason in baseline.csv, on stdout and in the figure."""
    out = tmp_path / "run"
    argv = ["baseline", "--dataset", "dunnhumby-demographics", "--covariance-types", "full"]
    assert main([*argv, "--k", "1-2", "--n-init", "1", "--seeds", "0", "--out", str(out)]) == 0
    table = pd.read_csv(out / "baseline.csv", keep_default_na=False, na_values=[""])
    fitted, skipped = table.iloc[0], table.iloc[1]
    assert np.isfinite(fitted["bic"]) and pd.isna(fitted["skipped"])
    assert np.isnan(skipped["bic"]) and skipped["skipped"] == "1121 parameters for 801 rows"
    assert "K=2 (full) skipped: 1121 parameters for 801 rows" in capsys.readouterr().out
    assert list(baseline.best_k_by_seed(table)["K"]) == [1]


def test_plot_has_one_line_per_seed(blob_table):
    figure = baseline.plot_criteria(blob_table, "blobs")
    try:
        labels = [text.get_text() for text in figure.legends[0].get_texts()]
        assert labels[:4] == ["diag, seed 0", "diag, seed 1", "full, seed 0", "full, seed 1"]
        assert [axis.get_title() for axis in figure.axes[:3]] == [
            "BIC (lower is better)",
            "AIC (lower is better)",
            "ICL (lower is better)",
        ]
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)

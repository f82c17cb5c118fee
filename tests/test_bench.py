"""The benchmark tables: ESS/s ratios per K (over the idiomatic fit and the NumPyro peer), the
score block, and an idiomatic fit with no posterior draw."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from bench import sweep
from bench.sweep import ratios


def test_ratios_divide_ess_per_second_and_mark_a_fit_without_draws_infinite():
    table = pd.DataFrame(
        [
            {"method": "project", "K": 2, "status": "ok", "seconds": 50.0,
             "ess_per_second": 20.0, "ess_per_sampling_second": 40.0},
            {"method": "idiomatic", "K": 2, "status": "failed", "seconds": 480.0,
             "ess_per_second": 0.5, "ess_per_sampling_second": 1.0},
            {"method": "sklearn", "K": 2, "status": "ok", "seconds": 2.0},
            {"method": "project", "K": 4, "status": "failed", "seconds": 150.0,
             "ess_per_second": 3.0, "ess_per_sampling_second": 6.0},
            {"method": "idiomatic", "K": 4, "status": "timeout", "seconds": 480.0,
             "ess_per_second": 0.0},
            {"method": "sklearn", "K": 4, "status": "ok", "seconds": 3.0},
        ]
    )  # fmt: skip
    result = ratios(table).set_index("K")
    assert result.loc[2, "ess_per_s_ratio"] == pytest.approx(40.0)
    assert result.loc[2, "ess_per_sampling_s_ratio"] == pytest.approx(40.0)
    assert result.loc[4, "ess_per_s_ratio"] == np.inf
    assert pd.isna(result.loc[4, "ess_per_sampling_s_ratio"])
    assert result.loc["sweep", "project_over_sklearn"] == pytest.approx(200.0 / 5.0)


def test_ratios_divide_by_the_numpyro_peer_when_the_table_has_it():
    table = pd.DataFrame(
        [
            {"method": "project", "K": 2, "status": "ok", "seconds": 50.0,
             "ess_per_second": 20.0, "ess_per_sampling_second": 40.0},
            {"method": "numpyro", "K": 2, "status": "slow", "seconds": 100.0,
             "ess_per_second": 4.0, "ess_per_sampling_second": 5.0},
            {"method": "idiomatic", "K": 2, "status": "failed", "seconds": 480.0,
             "ess_per_second": 0.5, "ess_per_sampling_second": 1.0},
            {"method": "sklearn", "K": 2, "status": "ok", "seconds": 2.0},
        ]
    )  # fmt: skip
    result = ratios(table).set_index("K")
    assert result.loc[2, "numpyro_ess_per_s_ratio"] == pytest.approx(5.0)
    assert result.loc[2, "numpyro_status"] == "slow"
    assert result.loc[2, "ess_per_s_ratio"] == pytest.approx(40.0)
    assert result.loc["sweep", "numpyro_seconds"] == pytest.approx(100.0)


def test_the_sweep_without_numpyro_says_how_to_install_it_and_skips_the_peer(
    monkeypatch, tmp_path, capsys, marketing_csv
):
    """The fits are stubs: this is about the sweep's control flow when numpyro is missing."""
    monkeypatch.setitem(sys.modules, "numpyro", None)  # import numpyro fails, find_spec: None

    def stub(method: str, k: int) -> dict:
        return {"method": method, "K": k, "status": "ok", "reason": "", "seconds": 1.0,
                "ess_per_second": 1.0, "ess_per_sampling_second": 1.0}  # fmt: skip

    def numpyro_fit(*args):
        raise AssertionError("the numpyro peer ran without numpyro")

    monkeypatch.setattr(sweep, "project_fit", lambda spec, x, k, *rest: stub("project", k))
    monkeypatch.setattr(sweep, "idiomatic_fit", lambda data, k, *rest: stub("idiomatic", k))
    monkeypatch.setattr(sweep, "sklearn_fit", lambda x, k, seed: stub("sklearn", k))
    monkeypatch.setattr(sweep, "numpyro_fit", numpyro_fit)
    argv = ["--k", "2", "--models", "gmm", "--data", str(marketing_csv), "--out", str(tmp_path)]
    sweep.main(argv)
    assert sweep.NUMPYRO_MISSING in capsys.readouterr().err.splitlines()
    assert set(pd.read_csv(tmp_path / "sweep.csv")["method"]) == {"project", "idiomatic", "sklearn"}
    assert "numpyro_ess_per_s_ratio" not in pd.read_csv(tmp_path / "ratios.csv").columns


def test_score_block_says_which_draws_settings_meet_the_target():
    from bench.score import markdown

    rows = pd.DataFrame(
        {
            "date": ["2026-12-02 16:00 UTC"] * 2,
            "model": ["hurdle"] * 2,
            "K": [3, 3],
            "features": [6, 6],
            "posterior_draws": [2000, 2000],
            "draws_used": ["300", "all"],
            "customers": [100_000, 100_000],
            "table_seed": [7, 7],
            "seconds": [30.0, 120.0],
            "customers_per_minute": [200_000.0, 50_000.0],
            "meets_target": [True, False],
            "peak_rss_mb": [900.0, 1500.0],
        }
    )
    block = markdown(rows, "2 CPUs, load 0.1")
    assert "2 CPUs, load 0.1: `hurdle` K = 3, 6 features, 2,000 posterior draws" in block
    assert "100,000 customers (table seed 7, new to the compile cache" in block
    assert "| 300 | 30.0 | 200,000 | met | 900 |" in block
    assert "| all | 120.0 | 50,000 | missed | 1,500 |" in block

"""The benchmark's ratio table: ESS/s ratios per K, and an idiomatic fit with no posterior draw."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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

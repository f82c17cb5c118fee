"""The sweep's NumPyro peer on a tiny simulated table: one real fit, its row as the sweep keeps it.

Needs the ``bench`` extra (``pip install -e '.[bench]'``); skipped without numpyro (CI installs
``.[dev]`` only).
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis.data.simulate import gaussian_mixture
from analysis.inference.fit import FitSpec, SamplerSettings, load_fit
from bench.sweep import numpyro_fit

pytest.importorskip("numpyro")


@pytest.mark.slow  # a real NumPyro fit: 66-76 s measured (3 JAX compiles)
def test_numpyro_peer_row_has_finite_ess_and_its_method(tmp_path):
    truth = gaussian_mixture(n=200, weights=(0.6, 0.4), n_features=2, seed=8)
    sampler = SamplerSettings(chains=2, draws=100, tune=100, seed=3)
    spec = FitSpec(
        "simulated", "analysis.data.simulate", "gmm", {}, {"covariance": "full"}, {}, sampler
    )
    row = numpyro_fit(spec, truth.x, 2, np.arange(200), ["f0", "f1"], tmp_path)
    assert row["method"] == "numpyro" and row["K"] == 2 and row["draws"] == 200
    assert np.isfinite(row["min_ess_bulk"]) and row["min_ess_bulk"] > 0
    assert np.isfinite(row["ess_per_second"]) and 0 < row["sampling_seconds"] <= row["seconds"]
    fit = load_fit(tmp_path / "numpyro_K2.nc")
    assert fit["posterior"].sizes["chain"] == 2
    # lp is the log density (PyMC passes NumPyro's potential energy, its negative, as lp)
    assert float(fit["sample_stats"]["lp"].mean()) < 0

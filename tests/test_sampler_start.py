"""Each nutpie chain starts at the point it is given, in the compiled model's own layout.

nutpie's jax backend samples a frozen copy of the model whose free variables come in another
order; a start vector laid out in the original model's order put the chains at a scrambled
point (log density -340,000 instead of -13,700 on dunnhumby-spend) and cost most of the warm-up.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from pymc.initial_point import make_initial_point_fn

from analysis.data.simulate import hurdle_mixture
from analysis.inference.fit import compile_nutpie, flat_start
from models.hurdle import build_hurdle, initial_point

ZERO_VALUES = (-9.0, -8.0, -10.0)


@pytest.mark.sampling  # compiles the model with nutpie (the sampler's own compilation)
def test_nutpie_log_density_at_the_flat_start_is_the_models_at_the_start():
    """The jax backend (the default); numba samples ``model`` itself, in its own order."""
    truth = hurdle_mixture([[0.1, 0.6, 0.0], [0.5, 0.2, 0.3]], ZERO_VALUES, n=200, seed=4)
    model = build_hurdle(
        truth.x, 2, customers=np.arange(200), features=["a", "b", "c"], zero_values=ZERO_VALUES
    )
    start = initial_point(truth.x, 2, zero_values=ZERO_VALUES, seed=0)
    point = make_initial_point_fn(
        model=model, overrides=start, jitter_rvs=set(), return_transformed=True
    )(0)
    sampled_model, compiled = compile_nutpie(model, "jax")
    logp, _ = compiled._make_logp_func()(flat_start(sampled_model, start), **compiled._shared_data)
    assert logp == pytest.approx(model.compile_logp()(point), rel=1e-9)


@pytest.mark.sampling  # compiles the model with nutpie, in a fresh process
def test_compiling_for_nutpie_prints_no_blas_warning():
    """nutpie's start-point function uses PyTensor's C backend, whose BLAS search warned on
    every first fit of a process (``analysis.inference.fit.without_c_blas``). A fresh process,
    because the search runs once per process."""
    script = (
        "import warnings; warnings.simplefilter('error');"
        "import numpy as np;"
        "from analysis.inference.fit import compile_nutpie;"
        "from models.hurdle import build_hurdle;"
        "x = np.random.default_rng(0).normal(size=(80, 6)); x[:20, 0] = -9.0;"
        "model = build_hurdle(x, 1, customers=np.arange(80), features=list('abcdef'),"
        " zero_values=[-9.0] * 6);"
        "compile_nutpie(model, 'jax')"
    )  # 6 features: with 3 the start-point function has no C code
    environment = {k: v for k, v in os.environ.items() if k != "PYTENSOR_FLAGS"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment
    )
    assert done.returncode == 0, done.stderr[-2000:]

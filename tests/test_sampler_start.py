"""Each nutpie chain starts at the point it is given, in the compiled model's own layout.

nutpie's jax backend samples a frozen copy of the model whose free variables come in another
order; a start vector laid out in the original model's order put the chains at a scrambled
point (log density -340,000 instead of -13,700 on dunnhumby-spend) and cost most of the warm-up.
"""

from __future__ import annotations

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

"""Scoring in blocks with one compiled function, for a mixture that reads structure off its data.

The hurdle reads its zero spends and missing values off the data when its graph is built.
Blocks of customers are laid out with one structure (``analysis.inference.block_layout``), so
one compiled function serves them all (issue 17: one compile per block made scoring slow). The
checks: the layout's invariants for any structure; the symbolic-data graph equals the constant
one; blocked scoring equals scoring everyone at once, with one compile.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pytensor.graph.basic import Constant

from analysis.inference import membership, subsample
from analysis.inference.block_layout import laid_out_blocks
from analysis.inference.membership import compile_memberships, memberships_and_loglik
from models import MIXTURES, compiled, gmm, hurdle, mixed

ZERO_VALUES = (-1.0, -1.2, -0.8)
N_DRAWS, N_SEGMENTS = 6, 3


@settings(max_examples=60, deadline=None)
@given(
    structure=arrays(bool, st.tuples(st.integers(1, 60), st.integers(1, 3))),
    block=st.integers(1, 25),
)
def test_every_block_is_laid_out_with_one_structure(structure, block):
    laid_out = list(laid_out_blocks(structure, block))
    first = structure[laid_out[0][1]]
    covered = []
    for rows, order, position in laid_out:
        np.testing.assert_array_equal(structure[order], first)
        np.testing.assert_array_equal(order[position], np.arange(rows.start, rows.stop))
        covered.extend(range(rows.start, rows.stop))
    assert covered == list(range(len(structure)))
    assert all(
        rows.stop - rows.start == min(block, len(structure) - rows.start) for rows, *_ in laid_out
    )


def spend_with_zeros_and_gaps(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) model-scale values: about 20% zero spends, 5% missing."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    x = np.where(rng.random(x.shape) < 0.2, ZERO_VALUES, x)
    x[rng.random(x.shape) < 0.05] = np.nan
    return x


def hurdle_posterior(seed: int = 1) -> xr.Dataset:
    """A posterior of (1 chain, N_DRAWS draws) of hurdle parameters, 3 features."""
    rng = np.random.default_rng(seed)
    shape = (1, N_DRAWS, N_SEGMENTS)
    chol = np.tril(rng.normal(size=(*shape, 3, 3)) * 0.3) + np.eye(3)
    dims = ("chain", "draw", "segment")
    return xr.Dataset(
        {
            "weights": (dims, rng.dirichlet(np.ones(N_SEGMENTS), size=shape[:2])),
            "means": ((*dims, "feature"), rng.normal(size=(*shape, 3))),
            "chol": ((*dims, "feature", "feature_col"), chol),
            "zero_prob": ((*dims, "feature"), rng.uniform(0.1, 0.9, size=(*shape, 3))),
        }
    )


def test_a_symbolic_input_with_its_pattern_gives_the_constant_graphs_values():
    x = spend_with_zeros_and_gaps(300)
    posterior = hurdle_posterior()
    weights, means, chol, zero_prob = (posterior[name].values[0] for name in hurdle.PARAMETERS)
    value = pt.matrix("value")
    as_input = pytensor.function(
        [value],
        hurdle.segment_log_joint(
            value, weights, means, chol, zero_prob, zero_values=ZERO_VALUES, pattern=x
        ),
    )(x)
    as_constant = hurdle.segment_log_joint(
        x, weights, means, chol, zero_prob, zero_values=ZERO_VALUES
    ).eval()
    assert np.isfinite(as_constant).all()
    np.testing.assert_allclose(as_input, as_constant, rtol=1e-12, atol=1e-12)
    gaussian = gmm.segment_log_joint(value, weights, means, chol, pattern=x)
    np.testing.assert_allclose(
        pytensor.function([value], gaussian)(x),
        gmm.segment_log_joint(x, weights, means, chol).eval(),
        rtol=1e-12,
    )


def test_the_mixed_model_takes_its_continuous_pattern():
    x = spend_with_zeros_and_gaps(200)
    indicators = np.eye(2)[np.random.default_rng(3).integers(2, size=200)]
    data = np.concatenate([x, indicators], axis=1)
    posterior = hurdle_posterior()
    weights, means, chol, zero_prob = (posterior[name].values[0] for name in hurdle.PARAMETERS)
    item_probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.5, 0.5]])
    parameters = (weights, means, chol, zero_prob, item_probs)
    options = {"n_continuous": 3, "zero_values": ZERO_VALUES}
    value = pt.matrix("value")
    as_input = mixed.segment_log_joint(value, *parameters, **options, pattern=data)
    np.testing.assert_allclose(
        pytensor.function([value], as_input)(data),
        mixed.segment_log_joint(data, *parameters, **options).eval(),
        rtol=1e-12,
    )


@pytest.fixture
def counted_compiles(monkeypatch):
    """Compilations by the membership step (calls of ``compiled.exact_function``), with an empty
    compile cache."""
    calls = []
    original = compiled.exact_function

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(compiled, "exact_function", counting)
    monkeypatch.setattr(compiled, "_kept", OrderedDict())
    return calls


def test_blocks_of_a_structured_table_share_one_compiled_function(monkeypatch, counted_compiles):
    x = spend_with_zeros_and_gaps(700, seed=5)
    posterior = hurdle_posterior()
    mixture, options = MIXTURES["hurdle"], {"zero_values": list(ZERO_VALUES)}
    monkeypatch.setattr(subsample, "BLOCK_ELEMENTS", 100 * N_DRAWS * N_SEGMENTS)  # 7 blocks
    blocks = list(subsample.membership_blocks(mixture, options, x, posterior))
    assert len(blocks) == 7 and len(counted_compiles) == 1
    membership_all, loglik_all = memberships_and_loglik(mixture, options, x, posterior)
    np.testing.assert_allclose(
        np.concatenate([b[2] for b in blocks], axis=1), loglik_all, rtol=1e-12
    )
    np.testing.assert_allclose(
        np.concatenate([b[1] for b in blocks], axis=1), membership_all, rtol=1e-6
    )


def test_a_compiled_function_refuses_data_of_another_structure():
    x = spend_with_zeros_and_gaps(50)
    posterior = hurdle_posterior()
    mixture, options = MIXTURES["hurdle"], {"zero_values": list(ZERO_VALUES)}
    parameters = membership.stacked_parameters(posterior, mixture.parameters)
    function = compile_memberships(mixture, options, x, parameters)
    with pytest.raises(ValueError, match="compiled for data with zeros or missing values"):
        function(spend_with_zeros_and_gaps(50, seed=9), *parameters)


def test_the_scoring_graph_holds_no_constant_of_customers_times_features(counted_compiles):
    """numba caches no compiled function that holds a constant over 1 MB, so a scoring block of
    20,000 customers recompiled on every run (20 s) while the Bernoulli part held the (N, D)
    zero masks as constants; now only index vectors of one number per customer remain."""
    x = spend_with_zeros_and_gaps(2000)
    posterior = hurdle_posterior()
    mixture, options = MIXTURES["hurdle"], {"zero_values": list(ZERO_VALUES)}
    parameters = membership.stacked_parameters(posterior, mixture.parameters)
    compile_memberships(mixture, options, x, parameters)
    (function,) = compiled._kept.values()
    sizes = [
        np.asarray(v.data).nbytes
        for v in function.maker.fgraph.variables
        if isinstance(v, Constant)
    ]
    assert max(sizes) <= 8 * len(x)

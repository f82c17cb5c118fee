"""Compiled PyTensor functions of one data set, kept for the process.

The hurdle's zero patterns and the missing-value patterns are read off the data when a graph is
built, so its functions are compiled for that data set, with the data as a constant. Compiling
one takes about 5 s (mostly graph rewrites), and its parameters have unknown shapes, so one
compiled function serves every chain's EM start and every K of a sweep. :func:`of_data` keeps
the last :data:`KEPT` of them, keyed by what they compute and the data's contents (the
membership functions of ``analysis.inference.membership`` pass the data's structure instead,
so blocks of new customers with one layout share one).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pytensor
import pytensor.tensor as pt

KEPT = 8  # compiled functions kept (scoring keeps one per structure of its blocks)
_kept: OrderedDict[tuple, Callable] = OrderedDict()


def of_data(what: str, data: np.ndarray, options: dict, build: Callable[[], Callable]):
    """``build()``, or its result from an earlier call with the same ``what`` (a name for the
    computation), ``options`` (JSON-able) and ``data`` contents."""
    digest = hashlib.blake2b(np.ascontiguousarray(data).tobytes(), digest_size=16).hexdigest()
    key = (
        what,
        json.dumps(options, sort_keys=True, default=repr),
        data.shape,
        data.dtype.str,
        digest,
    )
    if key in _kept:
        _kept.move_to_end(key)
        return _kept[key]
    function = build()
    _kept[key] = function
    if len(_kept) > KEPT:
        _kept.popitem(last=False)
    return function


def exact_function(inputs: list, outputs) -> Callable:
    """``pytensor.function(inputs, outputs)`` compiled without numba's fast-math flags.

    With them (PyTensor's default), LLVM may reassociate sums, and its vectorised loops then add
    in an order that depends on where the arrays sit in memory: the same draws gave pointwise
    log-likelihoods 1 ulp apart between processes (20 of a hurdle K = 1 fit's 48,000 values,
    2026-12-03), so a fit was not bit for bit the same in-process and on a Dask worker. Exact
    flags cost nothing measurable here: marketing's K = 5 memberships of 4,000 draws took
    2.3 s with them and 2.4 s without. ``change_flags`` is process-global: compile from one
    thread at a time (the fit's chain threads only sample).
    """
    with pytensor.config.change_flags(numba__fastmath=False):
        return pytensor.function(inputs, outputs)


def log_joint_function(
    segment_log_joint: Callable, parameter_ndims: dict[str, int], value: np.ndarray, **options
):
    """``segment_log_joint(value, *parameters, **options)`` compiled for one set of parameters
    (no draw dims): f(*parameters) -> (N, K), ``value`` (N, D) built in as a constant.

    ``parameter_ndims`` maps each parameter, in call order, to its number of dims.
    """

    def compile_it():
        parameters = [pt.tensor(name, shape=(None,) * n) for name, n in parameter_ndims.items()]
        return exact_function(parameters, segment_log_joint(value, *parameters, **options))

    what = f"{segment_log_joint.__module__}.{segment_log_joint.__qualname__}"
    return of_data(what, value, options, compile_it)

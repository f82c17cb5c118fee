"""PyMC mixture-model builders, and the small interface the analysis steps use.

A :class:`Mixture` bundles what a step needs from a model without knowing which one it is:
how to build it, where chains start, which posterior variables feed ``segment_log_joint``
(the (..., N, K) log of w_k p(x_i | segment k)), which variables convergence is judged on,
the default priors, and whether it models continuous or categorical features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from models import gmm, lca


@dataclass(frozen=True)
class Mixture:
    name: str
    build: Callable
    initial_point: Callable
    segment_log_joint: Callable
    parameters: tuple[str, ...]
    diagnosed: tuple[str, ...]
    default_priors: dict
    merged_priors: Callable
    data_kind: str = "continuous"  # the Dataset.kind it models: "continuous" or "categorical"


MIXTURES = {
    "gmm": Mixture(
        "gmm",
        gmm.build_gmm,
        gmm.initial_point,
        gmm.segment_log_joint,
        gmm.PARAMETERS,
        gmm.DIAGNOSED,
        gmm.DEFAULT_PRIORS,
        gmm.merged_priors,
    ),
    "lca": Mixture(
        "lca",
        lca.build_lca,
        lca.initial_point,
        lca.segment_log_joint,
        lca.PARAMETERS,
        lca.DIAGNOSED,
        lca.DEFAULT_PRIORS,
        lca.merged_priors,
        data_kind="categorical",
    ),
}

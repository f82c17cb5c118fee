"""PyMC mixture-model builders, and the small interface the analysis steps use.

A :class:`Mixture` bundles what a step needs from a model without knowing which one it is:
how to build it, where chains start, which posterior variables feed ``segment_log_joint``
(the (..., N, K) log of w_k p(x_i | segment k)), which variables convergence is judged on,
the default priors, and whether it models continuous, categorical or mixed (both) features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from models import gmm, hurdle, lca, mixed


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
    # (FittedTransform, input column names) -> model options it implies; a mixed model also takes
    # the categorical columns' indicators FittedTransform and their names
    data_options: Callable
    data_kind: str = "continuous"  # the Dataset.kind it models: continuous, categorical or mixed
    log_joint_options: tuple[str, ...] = ()  # model options segment_log_joint also reads
    # segment_log_joint's largest intermediate per draw is (N, K, D ** feature_power) doubles
    feature_power: int = 1
    # the baseline yardstick its comparison uses (yardstick.HELDOUT_MEANING); None: data_kind
    yardstick: str | None = None
    # segment_log_joint reads structure off the data (the hurdle's zero patterns) when its graph
    # is built: the data are a constant of the model's graph, or come with a ``pattern``
    reads_structure: bool = False
    # (x (N, D), **log_joint options) -> (N, C) bool, the structure segment_log_joint reads off x
    structure: Callable = gmm.structure

    def structured(self, x) -> bool:
        """Whether ``segment_log_joint`` reads structure off data ``x`` (N, D) when its graph is
        built: always for ``reads_structure``, and for data with missing values (NaN)
        (``models.gmm.marginal_log_normal``). It then needs ``x`` as numpy or a constant, or
        ``pattern=`` numpy data of the same structure (:meth:`data_structure`)."""
        return self.reads_structure or gmm.has_missing(x)

    def data_structure(self, options: dict) -> Callable:
        """``structure(x)`` with the options it reads bound: (N, C) bool per customer, equal
        for two tables exactly when one ``segment_log_joint`` graph serves both."""
        return partial(self.structure, **{name: options[name] for name in self.log_joint_options})

    def log_joint(self, options: dict) -> Callable:
        """``segment_log_joint(value, *parameters)`` with the options it reads bound."""
        return partial(
            self.segment_log_joint, **{name: options[name] for name in self.log_joint_options}
        )


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
        gmm.data_options,
    ),
    "hurdle": Mixture(
        "hurdle",
        hurdle.build_hurdle,
        hurdle.initial_point,
        hurdle.segment_log_joint,
        hurdle.PARAMETERS,
        hurdle.DIAGNOSED,
        hurdle.DEFAULT_PRIORS,
        hurdle.merged_priors,
        hurdle.data_options,
        log_joint_options=("zero_values",),
        feature_power=2,
        yardstick="hurdle",
        reads_structure=True,
        structure=hurdle.structure,
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
        lca.data_options,
        data_kind="categorical",
    ),
} | {
    f"mixed-{part}": Mixture(
        f"mixed-{part}",
        mixed.build_mixed,
        mixed.initial_point,
        mixed.segment_log_joint,
        mixed.PARAMETERS[part],
        mixed.DIAGNOSED[part],
        mixed.DEFAULT_PRIORS[part],
        mixed.merged_priors[part],
        partial(mixed.data_options, part),
        data_kind="mixed",
        log_joint_options=("n_continuous",) + (("zero_values",) if part == "hurdle" else ()),
        feature_power=2 if part == "hurdle" else 1,
        yardstick=None,
        reads_structure=True,
        structure=mixed.structure,
    )
    for part in mixed.CONTINUOUS_PARTS
}

"""The scikit-learn baseline beside the Bayesian fits: BIC per K, and scores on the elpd yardstick.

- :func:`read_baseline` checks and reads ``baseline.csv``, :func:`ensure_baseline` runs the
  default baseline when there is none, and
  :func:`baseline_per_k` keeps the best BIC, AIC and ICL over seeds per K.
- :func:`gmm_heldout` scores the EM GMM on held-out customers (K-fold) on the same scale as
  ``elpd_loo``; what it scores depends on the fits' data (:data:`HELDOUT_MEANING`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import logsumexp
from sklearn.model_selection import KFold

from analysis.data.transforms import CATEGORICAL_TRANSFORMS
from analysis.inference.elpd import summed
from analysis.paths import RunPaths, read_step_csv
from analysis.selection import baseline
from models import MIXTURES, hurdle

HELDOUT_FOLDS = 10
HELDOUT_N_INIT = 3
YARDSTICK_ROUNDS = 20  # M-steps that turn an EM segmentation into hurdle segments
# What gmm_heldout_elpd scores, by the data kind of the fits (legend text and table notes).
HELDOUT_LABEL = {
    "continuous": f"EM GMM: {HELDOUT_FOLDS}-fold held-out log density",
    "categorical": f"one-hot EM GMM clusters as latent classes: {HELDOUT_FOLDS}-fold held-out "
    "log probability",
    "hurdle": f"EM GMM clusters as hurdle segments: {HELDOUT_FOLDS}-fold held-out log density",
    "mixed": "not computed for the mixed model",
}
HELDOUT_MEANING = {
    "continuous": f"{HELDOUT_FOLDS}-fold held-out log density of the EM GMM on the same matrix, "
    "the baseline on the elpd yardstick",
    "categorical": f"{HELDOUT_FOLDS}-fold held-out log probability of each household's observed "
    "category combination under the one-hot EM GMM's segmentation: the GMM (the baseline's "
    "dummies and covariance) is fitted on the other folds, its soft cluster memberships give "
    "class weights and, per cluster and variable, level probabilities (add-one smoothed), "
    "and that latent class model scores the held-out households. The GMM's own density on 0/1 "
    "dummies is not a probability of categories (it puts mass on impossible values), so it is "
    "not compared; its clusters are",
    "hurdle": f"{HELDOUT_FOLDS}-fold held-out log density of each customer under the EM GMM's "
    "segmentation made hurdle segments: the GMM is fitted on the other folds, and per cluster "
    "its soft memberships give the weight, the zero probability per feature ((zeros + 1) / "
    "(n + 2)) and the maximum likelihood Gaussian part with zeros as missing values (the hurdle "
    "model's own M-step, iterated), which score the "
    "held-out customers on the hurdle model's measure (a zero spend has a probability, not a "
    "density). The GMM's own density is not compared: it gives exact zeros a density",
    "mixed": "not computed: the baseline has no yardstick for the mixed model yet",
}
BASELINE_SEEDS = (0, 1, 2)

BASELINE_N_INIT = 10


def heldout_kind(model: str) -> str:
    """Which baseline yardstick (a key of :data:`HELDOUT_MEANING`) fits of ``model`` get."""
    return MIXTURES[model].yardstick or MIXTURES[model].data_kind


def baseline_matrix(x: np.ndarray, config: dict) -> tuple[np.ndarray, str]:
    """The matrix and covariance type ``segment baseline`` uses by default for the data ``x`` of
    fits with configuration ``config`` (``segment_config``: transform and model options).

    Continuous data: the fits' own model-scale matrix, full covariance. Categorical data: the
    baseline's drop-first one-hot dummies (the fits' ``indicators`` minus each column's first
    level), diagonal covariance. Mixed data: the continuous columns and those dummies, full
    covariance.
    """
    transform, options = config["transform"], config["options"]
    if "n_continuous" in options:
        d = options["n_continuous"]
        dummies = x[:, d:][:, drop_first_columns(options["levels"].values())]
        return np.concatenate([x[:, :d], dummies], axis=1), "full"
    if transform.get("name") not in CATEGORICAL_TRANSFORMS:
        return x, "full"
    if transform["name"] == "indicators":
        x = x[:, drop_first_columns(transform["levels"])]
    return x, "diag"


def drop_first_columns(levels) -> list[int]:
    """Indices of the indicator columns left when each variable's first level is dropped;
    ``levels`` is the level list of every variable, in column order."""
    keep, start = [], 0
    for variable_levels in levels:
        keep.extend(range(start + 1, start + len(variable_levels)))
        start += len(variable_levels)
    return keep


def baseline_per_k(table: pd.DataFrame, covariance_type: str) -> pd.DataFrame:
    """Best over seeds of BIC, AIC and ICL per K, the BIC spread over seeds and the seed count."""
    available = table["covariance_type"].unique()
    chosen = covariance_type if covariance_type in available else available[0]
    rows = table[table["covariance_type"] == chosen]
    grouped = rows.groupby("K")
    per_k = pd.DataFrame(
        {
            "bic": grouped["bic"].min(),
            "aic": grouped["aic"].min(),
            "icl": grouped["icl"].min(),
            "bic_spread": grouped["bic"].max() - grouped["bic"].min(),
            "bic_seeds": grouped["seed"].nunique(),
        }
    ).reset_index()
    per_k.attrs["covariance_type"] = chosen
    return per_k


def clusters_as_latent_classes(
    memberships: np.ndarray, train: np.ndarray, test: np.ndarray, n_levels: list[int]
) -> np.ndarray:
    """Log probability of each ``test`` row's categories under a segmentation's latent classes.

    ``memberships`` (n_train, K) soft cluster memberships of the ``train`` rows; ``train`` and
    ``test`` are 0/1 indicators of every level, variables in blocks of ``n_levels`` columns.
    Class weights are the mean memberships; level probabilities per class and variable are the
    membership-weighted level counts plus one, normalised. Returns (n_test,) natural logs.
    """
    log_joint = np.tile(np.log(memberships.mean(axis=0)), (len(test), 1))  # (n_test, K)
    start = 0
    for n in n_levels:
        block = slice(start, start + n)
        counts = memberships.T @ train[:, block] + 1.0  # (K, levels)
        log_joint += test[:, block] @ np.log(counts / counts.sum(axis=1, keepdims=True)).T
        start += n
    return logsumexp(log_joint, axis=1)


def clusters_as_hurdle_segments(
    memberships: np.ndarray, train: np.ndarray, score, zero_values, covariance: str
) -> np.ndarray:
    """Log probability of customers under a segmentation's hurdle segments.

    ``memberships`` (n_train, K) soft cluster memberships of the ``train`` rows (N_train, D).
    Per cluster: weight, zero probability per feature, and mean and covariance of the Gaussian
    part, membership-weighted: :data:`YARDSTICK_ROUNDS` rounds of ``models.hurdle.moment_step``
    (the hurdle EM's M-step, zeros as missing values, default nugget) with the memberships fixed.
    ``score`` is ``models.hurdle.log_joint_function`` of the customers to score, e.g. every
    customer, of whom the caller keeps the held-out ones: one compiled function serves every
    fold and K. Returns (n,) natural logs.
    """
    is_zero = hurdle.zero_mask(train, zero_values)
    point = None
    for _ in range(YARDSTICK_ROUNDS):  # the Gaussian part converges to its ML estimate
        point = hurdle.moment_step(
            train,
            is_zero,
            memberships,
            point,
            covariance=covariance,
            nugget_sd=hurdle.DEFAULT_PRIORS["nugget_sd"],
        )
    return logsumexp(score(*(point[name] for name in hurdle.PARAMETERS)), axis=1)


def heldout_pointwise(
    x: np.ndarray,
    ks: list[int],
    covariance_type: str,
    folds: int = HELDOUT_FOLDS,
    n_init: int = HELDOUT_N_INIT,
    seed: int = 0,
    categories: tuple[np.ndarray, list[int]] | None = None,
    zero_values=None,
) -> dict[int, np.ndarray]:
    """K-fold held-out log density of the EM-fitted GMM per customer: K -> (n,) natural logs,
    in the rows' order; all NaN for a K that EM cannot fit on some fold.

    For each fold, EM (``n_init`` starts) on the other folds, then the log density of every
    held-out customer. With ``categories`` (the (n, levels) 0/1 indicators the latent class fits
    model and each variable's number of levels), the held-out score is instead the log
    probability of the customer's categories under the GMM's clusters made latent classes
    (:func:`clusters_as_latent_classes`). With ``zero_values`` (the hurdle model's), it is the
    log density under the GMM's clusters made hurdle segments
    (:func:`clusters_as_hurdle_segments`): the EM density on exact zeros is not a probability of
    zero spend, so it is not compared.
    """
    splits = list(KFold(folds, shuffle=True, random_state=seed).split(x))
    if zero_values is not None:  # every customer, compiled once: each fold keeps its test rows
        score = hurdle.log_joint_function(x, zero_values)
    scores = {}
    for k in ks:
        pointwise = np.empty(len(x))
        for train, test in splits:
            model, _ = baseline.try_fit_gmm(x[train], k, covariance_type, n_init, seed)
            if model is None:  # EM cannot fit this K on the fold: no held-out score
                pointwise[:] = np.nan
                break
            if zero_values is not None:
                pointwise[test] = clusters_as_hurdle_segments(
                    model.predict_proba(x[train]), x[train], score, zero_values, covariance_type
                )[test]
            elif categories is None:
                pointwise[test] = model.score_samples(x[test])
            else:
                indicators, n_levels = categories
                pointwise[test] = clusters_as_latent_classes(
                    model.predict_proba(x[train]), indicators[train], indicators[test], n_levels
                )
        scores[k] = pointwise
    return scores


def gmm_heldout(
    x: np.ndarray,
    ks: list[int],
    covariance_type: str,
    elpd_i: dict[int, np.ndarray] | None = None,
    **heldout,
) -> pd.DataFrame:
    """The held-out scores of :func:`heldout_pointwise` (``heldout``: its keyword options) per K,
    on the elpd scale.

    ``gmm_heldout_elpd`` sums them over customers and ``gmm_heldout_se`` is sqrt(n) x their sd,
    as for ``elpd_loo``. With the Bayesian fits' pointwise ``elpd_i`` (K -> (n,) in the rows'
    order), ``heldout_diff`` = elpd_loo - gmm_heldout_elpd and its paired SE ``heldout_dse`` =
    sqrt(n) x sd of the per-customer differences, as ``dse`` in ``compare``. (10-fold refits see
    90% of the data, LOO all but one customer: a small bias, of the order of the number of
    parameters / 10, in LOO's favour.)
    """
    rows = []
    for k, pointwise in heldout_pointwise(x, ks, covariance_type, **heldout).items():
        row = {"K": k}
        row["gmm_heldout_elpd"], row["gmm_heldout_se"] = summed(pointwise)
        if elpd_i is not None and k in elpd_i:
            difference = np.asarray(elpd_i[k]).ravel() - pointwise
            row["heldout_diff"], row["heldout_dse"] = summed(difference)
        rows.append(row)
    return pd.DataFrame(rows)


def read_baseline(paths: RunPaths) -> pd.DataFrame | None:
    """``baseline.csv`` of the run directory, None when there is none; InputError when it lacks
    a column compare or the report reads (:data:`analysis.selection.baseline.READ_BACK`)."""
    if not paths.baseline_csv.exists():
        return None
    return read_step_csv(
        paths.baseline_csv, baseline.READ_BACK, f"segment baseline --out {paths.root}"
    )


def ensure_baseline(
    paths: RunPaths,
    saved: pd.DataFrame | None,
    x: np.ndarray,
    ks: list[int],
    config: dict,
    progress,
):
    """(table, covariance type, whether it ran): the ``saved`` baseline table
    (:func:`read_baseline`); when None, the default baseline run on the fits' data, not saved
    (``analysis.selection.compare.write_comparison`` saves it, titled
    :func:`default_baseline_title`)."""
    matrix, covariance_type = baseline_matrix(x, config)
    if saved is not None:
        return saved, covariance_type, False
    if progress is not None:
        print(
            f"no {paths.baseline_csv}: running the baseline ({covariance_type} covariance, "
            f"n_init={BASELINE_N_INIT}, seeds {', '.join(map(str, BASELINE_SEEDS))})",
            file=progress,
        )
    ks_run = sorted(set(ks) | set(range(1, max(ks) + 1)))
    table = baseline.sweep(
        matrix, ks_run, [covariance_type], BASELINE_N_INIT, list(BASELINE_SEEDS), progress
    )
    return table, covariance_type, True


def default_baseline_title(config: dict) -> str:
    """The figure title of the default baseline on the data of fits with configuration
    ``config``."""
    transform = config["transform"].get("name", "model scale")
    return f"scikit-learn GMM on {config['dataset']} ({transform}, n_init={BASELINE_N_INIT})"

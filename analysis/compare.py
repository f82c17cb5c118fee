"""Choose K from one table: PSIS-LOO and WAIC with standard errors beside the BIC baseline.

For every saved fit ``DIR/fits/K{k}.nc`` (read from disk, never resampled):

- PSIS-LOO from the pointwise log-likelihood (the label-summed marginal log density per
  customer) with ArviZ: ``elpd_loo``, its SE, ``p_loo``, and the Pareto-k counts:
  ``pareto_k_bad`` customers above ArviZ's threshold good_k (0.7 from S >= 2,200 draws),
  ``pareto_k_very_bad`` the part of them above 1, ``pareto_k_good`` the rest.
- Customers with k > good_k are handled, never ignored. First ``az.loo_moment_match``
  (Paananen et al. 2021): the model is rebuilt from the fit's saved configuration and observed
  data, and only evaluated (log posterior density and one customer's log-likelihood at affinely
  moved unconstrained draws), never sampled; the rebuilt model's log density must reproduce the
  sampler's ``lp`` for every draw, or moment matching is refused. Mixture importance sampling
  LOO (``az.loo(mixture=True)``) does not apply: it needs draws from a different (mixture)
  posterior, which a saved fit does not hold. What moment matching cannot fix is refitted by
  exact K-fold CV (``az.loo_kfold`` around :func:`analysis.fit.fit_k`) when asked for
  (``kfold_folds``; it samples K x folds times, so it is opt-in), and otherwise stays in the
  table as ``loo_reliable = False`` with the count of customers left above the threshold.
  Fits that failed diagnostics are neither moment-matched nor refitted (never chosen anyway);
  their high k are only counted. ``loo_method`` says which estimate each row uses.
- WAIC with its SE (:mod:`analysis.waic`).
- ``az.compare`` for ``elpd_diff`` and ``dse`` against the best fit that passed diagnostics,
  and stacking / Bayesian-bootstrap pseudo-BMA weights over those fits.
- The scikit-learn baseline per K (``DIR/baseline.csv``, run here with the default settings if
  absent): best over seeds of BIC, AIC and ICL, and the spread of BIC over seeds; and the
  baseline on the elpd yardstick: for continuous data the 10-fold held-out log density of the
  EM-fitted GMM on the same matrix; for categorical data the held-out log probability of each
  household's categories under the one-hot GMM's clusters made latent classes (its density on
  0/1 dummies is not a probability of categories).

The decision rule (:func:`choose_k`): among fits whose diagnostics are ``ok``, the smallest K
whose ``elpd_diff`` is within 2 x ``dse`` of the best (``elpd_diff >= -2 dse``): parsimony under
the uncertainty of the comparison. Fits whose diagnostics failed are listed but never chosen and
get no weight. The BIC choice (smallest best-over-seeds BIC among the same K values) is shown
beside it and a disagreement is spelled out in ``comparison.md``.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field, replace

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats.loo import SamplingWrapper
from scipy.special import logsumexp
from sklearn.model_selection import KFold

from analysis import baseline
from analysis.elpd import summed
from analysis.errors import InputError
from analysis.figures import save as save_figure
from analysis.fit import FitSpec, SamplerSettings, fit_k, load_fit, saved_attrs
from analysis.membership import chunk_draws, memberships_and_loglik
from analysis.paths import RunPaths, atomic_path
from analysis.scale import lpd_outside_fit
from analysis.transforms import CATEGORICAL_TRANSFORMS
from analysis.waic import P_WAIC_I_WARN, waic
from models import MIXTURES, hurdle

RULE_SE = 2.0  # elpd_diff within RULE_SE x dse of the best fit
MAX_MOMENT_MATCH = 30  # customers per fit; about 10 s each at 4,000 draws x 2,240 customers
LP_TOLERANCE = 1e-6  # relative agreement required between the rebuilt model and the sampler's lp
HELDOUT_FOLDS = 10
HELDOUT_N_INIT = 3
YARDSTICK_ROUNDS = 20  # M-steps that turn an EM segmentation into hurdle segments
# What gmm_heldout_elpd scores, by the data kind of the fits (legend text and table notes).
HELDOUT_LABEL = {
    "continuous": f"EM GMM: {HELDOUT_FOLDS}-fold held-out log density",
    "categorical": f"one-hot EM GMM clusters as latent classes: {HELDOUT_FOLDS}-fold held-out "
    "log probability",
    "hurdle": f"EM GMM clusters as hurdle segments: {HELDOUT_FOLDS}-fold held-out log density",
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
}
BASELINE_SEEDS = (0, 1, 2)


def heldout_kind(model: str) -> str:
    """Which baseline yardstick (a key of :data:`HELDOUT_MEANING`) fits of ``model`` get."""
    return MIXTURES[model].yardstick or MIXTURES[model].data_kind


BASELINE_N_INIT = 10

COLUMNS = (
    # the columns the issue fixes, then the rest
    "K", "elpd_loo", "se_loo", "p_loo", "elpd_diff", "dse", "weight", "pareto_k_bad",
    "elpd_waic", "se_waic", "bic", "aic", "icl", "bic_spread", "status", "chosen",
    "weight_pbma", "within_rule", "bic_chosen", "loo_method", "loo_reliable",
    "pareto_k_remaining", "pareto_k_good", "pareto_k_very_bad", "k_threshold", "elpd_psis",
    "p_waic", "waic_p_over_0_4", "gmm_heldout_elpd", "gmm_heldout_se", "heldout_diff",
    "heldout_dse", "bic_seeds", "elpd_outside", "se_outside", "n_outside", "outside_diff",
    "outside_dse", "diagnostics_reason", "loo_note",
)  # fmt: skip


OUTSIDE_COLUMNS = ("elpd_outside", "se_outside", "n_outside", "outside_diff", "outside_dse")


def shown_columns(table: pd.DataFrame, columns) -> list[str]:
    """``columns`` present in ``table``, without :data:`OUTSIDE_COLUMNS` when no fit was on a
    subsample (all NaN): what the printed, markdown and HTML comparison tables show."""
    return [
        c
        for c in columns
        if c in table.columns and not (c in OUTSIDE_COLUMNS and table[c].isna().all())
    ]


@dataclass
class FitEstimate:
    """One fit's predictive estimates: the plain PSIS result, the one used, and WAIC."""

    k: int
    status: str
    reason: str
    psis: object  # ELPDDataLOO, plain PSIS-LOO, pointwise
    used: object  # ELPDDataLOO (possibly moment matched) or ELPDDataLOOKFold, pointwise
    method: str
    remaining: int  # customers still above the threshold in the estimate used
    waic: object
    note: str = ""
    config: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Per fit: PSIS-LOO, moment matching, K-fold, WAIC


def log_likelihood_name(tree: xr.DataTree) -> str:
    names = list(tree["log_likelihood"].data_vars)
    if len(names) != 1:
        raise ValueError(f"expected one log-likelihood variable, found {names}")
    return names[0]


def khat_bands(pareto_k: np.ndarray, good_k: float) -> dict[str, int]:
    """Customers with k <= good_k (good), k > good_k (bad, all of them) and k > 1 (very bad,
    a subset of bad), so that good + bad = n."""
    pareto_k = np.asarray(pareto_k).ravel()
    return {
        "pareto_k_good": int((pareto_k <= good_k).sum()),
        "pareto_k_bad": int((pareto_k > good_k).sum()),
        "pareto_k_very_bad": int((pareto_k > 1).sum()),
    }


def psis_loo(tree: xr.DataTree, var_name: str):
    """Pointwise PSIS-LOO; ArviZ's high-k warning is dropped because the caller handles k."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        return az.loo(tree, pointwise=True, var_name=var_name)


def _observed(tree: xr.DataTree, var_name: str) -> xr.DataArray:
    return tree["observed_data"][var_name]


def rebuild_model(tree: xr.DataTree, config: dict, var_name: str):
    """The fit's PyMC model, rebuilt from its saved configuration and observed data."""
    observed = _observed(tree, var_name)
    customer_dim, feature_dim = observed.dims
    return FitSpec.from_config(config).build_model(
        observed.values,
        config["K"],
        observed[customer_dim].values,
        list(observed[feature_dim].values),
    )


def moment_match(tree: xr.DataTree, config: dict, psis, var_name: str, k_threshold=None):
    """``az.loo_moment_match`` for the customers of ``psis`` above ``k_threshold``.

    The rebuilt model provides the log posterior density at unconstrained draws (evaluated on
    all customers, in chunks of draws) and one customer's log-likelihood (the same compiled
    graph with the model's data set to that customer's row; for data fixed in the graph, all
    customers' values and then that customer's). Returns (loo result, note); raises
    ValueError when the rebuilt model does not reproduce the sampler's log density.
    """
    from arviz_stats.loo.loo_moment_match_helper import mm_from_pymc

    model = rebuild_model(tree, config, var_name)
    observed_rv = model[var_name]
    data = model.rvs_to_values[observed_rv]
    x = _observed(tree, var_name).values
    log_prob, log_lik, upars = mm_from_pymc(tree, model=model, var_name=var_name)

    mixture = MIXTURES[config["model"]]
    size_all_chains = chunk_draws(mixture, len(x), config["K"], x.shape[1])
    size = max(1, size_all_chains // tree["posterior"].sizes["chain"])  # draws per chain at once

    # pm.Data can be swapped for one customer's row; data built into the graph (the hurdle model
    # reads its zero patterns from them) cannot, so customer i is read off all customers' values.
    mutable = not mixture.constant_data

    def log_prob_chunked(draws: xr.DataArray) -> xr.DataArray:
        if mutable:
            data.set_value(x)
        draws = draws.transpose("chain", "draw", ...)
        parts = [
            log_prob(draws.isel(draw=slice(start, start + size)))
            for start in range(0, draws.sizes["draw"], size)
        ]
        return xr.concat(parts, dim="draw")

    def log_lik_i(draws: xr.DataArray, i: int) -> xr.DataArray:
        if not mutable:
            return log_lik(draws, i)
        data.set_value(x[int(i) : int(i) + 1])
        try:
            return log_lik(draws, 0)
        finally:
            data.set_value(x)

    lp = tree["sample_stats"]["lp"].transpose("chain", "draw").values
    rebuilt = log_prob_chunked(upars).values
    mismatch = float(np.max(np.abs(rebuilt - lp)) / max(1.0, float(np.max(np.abs(lp)))))
    if not mismatch <= LP_TOLERANCE:
        raise ValueError(
            "the rebuilt model's log density differs from the sampler's lp "
            f"(relative {mismatch:.1e})"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = az.loo_moment_match(
            tree,
            psis,
            log_prob_upars_fn=log_prob_chunked,
            log_lik_i_upars_fn=log_lik_i,
            upars=upars,
            var_name=var_name,
            k_threshold=k_threshold,
            pointwise=True,
        )
    reverted = sum("did not improve" in str(w.message) for w in caught)
    note = f"moment matching did not improve {reverted} customer(s)" if reverted else ""
    return result, note


class RefitWrapper(SamplingWrapper):
    """Exact K-fold refits of one saved fit: :func:`analysis.fit.fit_k` on the training rows.

    The held-out customers' log density under each refit's draws is the same marginal
    (label-summed) log-likelihood as the saved fit's, from the model's ``segment_log_joint``.
    """

    def __init__(self, tree, config, var_name, settings=None, progress=sys.stderr):
        super().__init__(model=None, idata_orig=tree)
        observed = _observed(tree, var_name)
        customer_dim, feature_dim = observed.dims
        self.x = observed.values
        self.customers = observed[customer_dim].values
        self.features = list(observed[feature_dim].values)
        self.customer_dim = customer_dim
        self.k = config["K"]
        self.mixture = MIXTURES[config["model"]]
        # the saved fit's observed data are its (sub)sample already: refits use all of them
        self.spec = replace(FitSpec.from_config(config, settings), subsample=None)
        self.progress = progress
        self.fold = 0

    def sel_observations(self, idx):
        test = np.asarray(idx)
        train = np.setdiff1d(np.arange(len(self.x)), test)
        return train, test

    def sample(self, modified_observed_data):
        self.fold += 1
        if self.progress is not None:
            print(f"[K={self.k}] K-fold refit {self.fold}", file=self.progress, flush=True)
        train = modified_observed_data
        return fit_k(self.spec, self.x[train], self.k, self.customers[train], self.features)

    def get_inference_data(self, fitted_model):
        return fitted_model

    def log_likelihood__i(self, excluded_obs, idata__i):
        posterior = idata__i["posterior"].to_dataset()
        _, loglik = memberships_and_loglik(
            self.mixture, self.spec.options, self.x[excluded_obs], posterior
        )
        n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
        return xr.DataArray(
            loglik.reshape(n_chains, n_draws, -1),
            dims=("chain", "draw", self.customer_dim),
            coords={self.customer_dim: self.customers[excluded_obs]},
        )


def kfold_loo(tree, config, var_name, folds=10, settings=None, seed=0, progress=sys.stderr):
    """Exact K-fold CV of one fit (samples ``folds`` times). Returns ELPDDataLOOKFold."""
    wrapper = RefitWrapper(tree, config, var_name, settings, progress)
    return az.loo_kfold(tree, wrapper, pointwise=True, var_name=var_name, k=folds, seed=seed)


def estimate_fit(
    tree: xr.DataTree,
    attrs: dict,
    *,
    moment_matching: bool = True,
    max_moment_match: int = MAX_MOMENT_MATCH,
    k_threshold: float | None = None,
    kfold_folds: int | None = None,
    kfold_settings: SamplerSettings | None = None,
    progress=sys.stderr,
) -> FitEstimate:
    """PSIS-LOO of one fit with its high-k customers handled, and WAIC.

    ``k_threshold`` defaults to ArviZ's ``good_k``. ``kfold_folds`` (e.g. 10) turns on exact
    K-fold refits for a fit whose high k survive moment matching (slow: it samples). A fit
    whose diagnostics failed gets plain PSIS-LOO only.
    """
    config, diagnostics = attrs["config"], attrs["diagnostics"]
    k = config["K"]
    var_name = log_likelihood_name(tree)
    psis = psis_loo(tree, var_name)
    threshold = psis.good_k if k_threshold is None else k_threshold
    high = int((psis.pareto_k.values > threshold).sum())
    used, method, notes = psis, "psis", []

    def say(message: str) -> None:
        if progress is not None:
            print(f"[K={k}] {message}", file=progress, flush=True)

    if high:
        say(f"PSIS-LOO: {high} customer(s) with Pareto k > {threshold:.2f}")
        if diagnostics["status"] != "ok":
            notes.append("not moment-matched: the fit failed diagnostics and is never chosen")
        elif not moment_matching:
            notes.append("moment matching turned off")
        elif high > max_moment_match:
            notes.append(f"moment matching skipped: {high} customers > max {max_moment_match}")
        else:
            started = time.perf_counter()
            try:
                matched, note = moment_match(tree, config, psis, var_name, threshold)
            except (ValueError, NotImplementedError, KeyError) as error:
                notes.append(f"moment matching failed: {type(error).__name__}: {error}")
            else:
                used, method = matched, "psis+moment-match"
                notes.append(note)
            left = int((used.pareto_k.values > threshold).sum())
            seconds = time.perf_counter() - started
            say(f"moment matching: {left} left above {threshold:.2f} ({seconds:.0f} s)")
    remaining = int((used.pareto_k.values > threshold).sum()) if high else 0
    if remaining and kfold_folds and diagnostics["status"] == "ok":
        say(f"exact {kfold_folds}-fold CV: {kfold_folds} refits")
        used = kfold_loo(tree, config, var_name, kfold_folds, kfold_settings, progress=progress)
        method, remaining = f"kfold-{kfold_folds}", 0
    elif remaining:
        notes.append(
            f"{remaining} customer(s) keep k > {threshold:.2f}: this elpd_loo is unreliable"
            + (
                " (exact K-fold: segment compare --kfold 10)"
                if diagnostics["status"] == "ok"
                else ""
            )
        )
    return FitEstimate(
        k=k,
        status=diagnostics["status"],
        reason=diagnostics.get("reason", ""),
        psis=psis,
        used=used,
        method=method,
        remaining=remaining,
        waic=waic(tree, var_name),
        note="; ".join(n for n in notes if n),
        config=config,
    )


# ----------------------------------------------------------------------------------------------
# Tables


def model_name(estimate: FitEstimate) -> str:
    return f"K={estimate.k}" + ("" if estimate.status == "ok" else " (failed)")


def _compare(elpds: dict, **kwargs) -> tuple[pd.DataFrame, list[str]]:
    """``az.compare`` on raw numbers, its warnings returned as text."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = az.compare(elpds, round_to="none", **kwargs)
    return table, sorted({str(w.message) for w in caught})


def loo_table(estimates: list[FitEstimate]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Per-K LOO/WAIC columns, the raw ``az.compare`` table (for the plot) and its warnings.

    ``elpd_diff`` and ``dse`` are against the best fit whose diagnostics are ok (the best of all
    fits when none is). Weights (stacking; Bayesian-bootstrap pseudo-BMA) are over the ok fits
    only; failed fits get NaN.
    """
    by_name = {model_name(e): e for e in estimates}
    elpds = {name: e.used for name, e in by_name.items()}
    ok_names = [name for name, e in by_name.items() if e.status == "ok"]
    pool = ok_names or list(by_name)
    reference = max(pool, key=lambda name: by_name[name].used.elpd)
    notes: list[str] = []
    if len(elpds) > 1:
        compared, caught = _compare(elpds, reference=reference)
        notes += caught
    else:
        compared = pd.DataFrame({"elpd_diff": [0.0], "dse": [0.0]}, index=list(elpds))
    weights = pd.Series(np.nan, index=list(by_name))
    weights_pbma = pd.Series(np.nan, index=list(by_name))
    if len(ok_names) > 1:
        subset = {name: elpds[name] for name in ok_names}
        stacking, caught = _compare(subset, method="stacking")
        pbma, caught_pbma = _compare(subset, method="BB-pseudo-BMA")
        notes += caught + caught_pbma
        weights[ok_names] = stacking.loc[ok_names, "weight"]
        weights_pbma[ok_names] = pbma.loc[ok_names, "weight"]
    elif ok_names:
        weights[ok_names] = weights_pbma[ok_names] = 1.0
    rows = []
    for name, e in by_name.items():
        used, psis = e.used, e.psis
        rows.append(
            {
                "K": e.k,
                "elpd_loo": float(used.elpd),
                "se_loo": float(used.se),
                "p_loo": float(used.p),
                "elpd_diff": float(compared.loc[name, "elpd_diff"]),
                "dse": float(compared.loc[name, "dse"]),
                "weight": float(weights[name]),
                "weight_pbma": float(weights_pbma[name]),
                **khat_bands(psis.pareto_k.values, psis.good_k),
                "k_threshold": float(psis.good_k),
                "pareto_k_remaining": e.remaining,
                "loo_method": e.method,
                "loo_reliable": e.remaining == 0,
                "elpd_psis": float(psis.elpd),
                "elpd_waic": e.waic.elpd,
                "se_waic": e.waic.se,
                "p_waic": e.waic.p,
                "waic_p_over_0_4": e.waic.n_p_over_warn,
                "status": e.status,
                "diagnostics_reason": e.reason,
                "loo_note": e.note,
            }
        )
    ordered = compared.loc[[reference] + [n for n in compared.index if n != reference]]
    return pd.DataFrame(rows).sort_values("K").reset_index(drop=True), ordered, notes


def baseline_matrix(x: np.ndarray, transform: dict) -> tuple[np.ndarray, str]:
    """The matrix and covariance type ``segment baseline`` uses by default for these data.

    Continuous data: the fits' own model-scale matrix, full covariance. Categorical data: the
    baseline's drop-first one-hot dummies (the fits' ``indicators`` minus each column's first
    level), diagonal covariance.
    """
    if transform.get("name") not in CATEGORICAL_TRANSFORMS:
        return x, "full"
    if transform["name"] == "indicators":
        keep, start = [], 0
        for levels in transform["levels"]:
            keep.extend(range(start + 1, start + len(levels)))
            start += len(levels)
        x = x[:, keep]
    return x, "diag"


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
    memberships: np.ndarray, train: np.ndarray, score_test, zero_values, covariance: str
) -> np.ndarray:
    """Log probability of held-out customers under a segmentation's hurdle segments.

    ``memberships`` (n_train, K) soft cluster memberships of the ``train`` rows (N_train, D).
    Per cluster: weight, zero probability per feature, and mean and covariance of the Gaussian
    part, membership-weighted: :data:`YARDSTICK_ROUNDS` rounds of ``models.hurdle.moment_step``
    (the hurdle EM's M-step, zeros as missing values, default nugget) with the memberships fixed.
    ``score_test`` is ``models.hurdle.log_joint_function`` of the test rows. Returns
    (n_test,) natural logs.
    """
    is_zero = hurdle.zero_mask(train, zero_values)
    point = None
    for _ in range(YARDSTICK_ROUNDS):  # the Gaussian part converges to its ML estimate
        point = hurdle.moment_step(
            train, is_zero, memberships, covariance, hurdle.DEFAULT_PRIORS["nugget_sd"], point
        )
    return logsumexp(score_test(*(point[name] for name in hurdle.PARAMETERS)), axis=1)


def gmm_heldout(
    x: np.ndarray,
    ks: list[int],
    covariance_type: str,
    folds: int = HELDOUT_FOLDS,
    n_init: int = HELDOUT_N_INIT,
    seed: int = 0,
    elpd_i: dict[int, np.ndarray] | None = None,
    categories: tuple[np.ndarray, list[int]] | None = None,
    zero_values=None,
) -> pd.DataFrame:
    """K-fold held-out log density of the EM-fitted GMM per K, on the elpd scale.

    For each fold, EM (``n_init`` starts) on the other folds, then the log density of every
    held-out customer. With ``categories`` (the (n, levels) 0/1 indicators the latent class fits
    model and each variable's number of levels), the held-out score is instead the log
    probability of the customer's categories under the GMM's clusters made latent classes
    (:func:`clusters_as_latent_classes`). With ``zero_values`` (the hurdle model's), it is the
    log density under the GMM's clusters made hurdle segments
    (:func:`clusters_as_hurdle_segments`): the EM density on exact zeros is not a probability of
    zero spend, so it is not compared.
    ``gmm_heldout_elpd`` sums them over customers and
    ``gmm_heldout_se`` is
    sqrt(n) x their sd, as for ``elpd_loo``. With the Bayesian fits' pointwise ``elpd_i`` (K ->
    (n,) in the rows' order), ``heldout_diff`` = elpd_loo - gmm_heldout_elpd and its paired SE
    ``heldout_dse`` = sqrt(n) x sd of the per-customer differences, as ``dse`` in ``compare``.
    (10-fold refits see 90% of the data, LOO all but one customer: a small bias, of the order of
    the number of parameters / 10, in LOO's favour.)
    """
    splits = list(KFold(folds, shuffle=True, random_state=seed).split(x))
    if zero_values is not None:  # compiled once per fold, reused for every K
        scorers = [hurdle.log_joint_function(x[test], zero_values) for _, test in splits]
    rows = []
    for k in ks:
        pointwise = np.empty(len(x))
        for fold, (train, test) in enumerate(splits):
            model = baseline.fit_gmm(x[train], k, covariance_type, n_init, seed)
            if zero_values is not None:
                pointwise[test] = clusters_as_hurdle_segments(
                    model.predict_proba(x[train]),
                    x[train],
                    scorers[fold],
                    zero_values,
                    covariance_type,
                )
            elif categories is None:
                pointwise[test] = model.score_samples(x[test])
            else:
                indicators, n_levels = categories
                pointwise[test] = clusters_as_latent_classes(
                    model.predict_proba(x[train]), indicators[train], indicators[test], n_levels
                )
        row = {"K": k}
        row["gmm_heldout_elpd"], row["gmm_heldout_se"] = summed(pointwise)
        if elpd_i is not None and k in elpd_i:
            difference = np.asarray(elpd_i[k]).ravel() - pointwise
            row["heldout_diff"], row["heldout_dse"] = summed(difference)
        rows.append(row)
    return pd.DataFrame(rows)


def outside_table(outside: dict[int, np.ndarray], ks: list[int], chosen: int | None):
    """Per K: held-out elpd of the customers outside a subsample fit (``analysis.scale``), its
    SE, count, and the paired difference (and its SE) to the chosen K. NaN without a subsample.
    """
    rows = []
    for k in ks:
        lpd = outside.get(k)
        row = {"K": k, "elpd_outside": np.nan, "se_outside": np.nan, "n_outside": np.nan}
        row |= {"outside_diff": np.nan, "outside_dse": np.nan}
        if lpd is not None:
            row["elpd_outside"], row["se_outside"] = summed(lpd)
            row["n_outside"] = len(lpd)
            if chosen in outside:  # the same customers at every K: a paired difference
                row["outside_diff"], row["outside_dse"] = summed(lpd - outside[chosen])
        rows.append(row)
    return pd.DataFrame(rows)


def choose_k(table: pd.DataFrame, rule_se: float = RULE_SE) -> int | None:
    """The smallest ``ok`` K whose ``elpd_diff >= -rule_se * dse``; None when no fit is ok.

    ``elpd_diff`` and ``dse`` must be relative to the best ``ok`` fit (elpd_diff 0 there).
    """
    ok = table[table["status"] == "ok"]
    if ok.empty:
        return None
    best = ok.loc[ok["elpd_loo"].idxmax()]
    if not np.isclose(best["elpd_diff"], 0.0):
        raise ValueError(f"elpd_diff must be relative to the best ok fit (K={best['K']})")
    within = ok[ok["elpd_diff"] >= -rule_se * ok["dse"]]
    return int(within["K"].min())


def bic_choice(table: pd.DataFrame) -> int | None:
    """K with the lowest best-over-seeds BIC among the table's K (None without baseline)."""
    known = table.dropna(subset=["bic"])
    return None if known.empty else int(known.loc[known["bic"].idxmin(), "K"])


# ----------------------------------------------------------------------------------------------
# Text


def _fmt(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:,.{digits}f}"
    return str(value)


def _ratio(row) -> str:
    return "-" if row["dse"] == 0 else f"{row['elpd_diff'] / row['dse']:.1f}"


def decision_lines(table: pd.DataFrame, rule_se: float = RULE_SE) -> list[str]:
    """The rule, the choice with the numbers that drove it, the BIC choice, and any disagreement."""
    chosen = choose_k(table, rule_se)
    by_k = table.set_index("K")
    lines = [
        f"Rule: among fits that passed diagnostics, the smallest K whose elpd_loo is within "
        f"{rule_se:g} x dse of the best (elpd_diff >= -{rule_se:g} dse)."
    ]
    if chosen is None:
        lines.append("No K chosen: no fit passed its diagnostics.")
    else:
        ok = table[table["status"] == "ok"]
        best = ok.loc[ok["elpd_loo"].idxmax()]
        c = by_k.loc[chosen]
        lines.append(
            f"Best elpd_loo among ok fits: K={int(best['K'])}, "
            f"{best['elpd_loo']:,.1f} (SE {best['se_loo']:,.1f})."
        )
        if chosen == int(best["K"]):
            lines.append(f"Chosen K={chosen}: the best fit itself; every smaller ok K is below.")
        else:
            lines.append(
                f"Chosen K={chosen}: elpd_diff {c['elpd_diff']:,.1f}, dse {c['dse']:,.1f} "
                f"({_ratio(c)} dse), inside the {rule_se:g} dse band."
            )
        smaller = ok[ok["K"] < chosen]
        if not smaller.empty:
            lines.append(
                "Rejected smaller K: "
                + "; ".join(
                    f"K={int(r['K'])} elpd_diff {r['elpd_diff']:,.1f} ({_ratio(r)} dse)"
                    for _, r in smaller.iterrows()
                )
                + "."
            )
        if not bool(c["loo_reliable"]):
            lines.append(
                f"Caution: K={chosen} keeps {int(c['pareto_k_remaining'])} customer(s) with "
                f"Pareto k above {c['k_threshold']:.2f}; its elpd_loo is not reliable."
            )
    failed = table[table["status"] != "ok"]
    if not failed.empty:
        lines.append(
            "Never chosen (diagnostics failed): " + ", ".join(f"K={k}" for k in failed["K"]) + "."
        )
    unreliable = table[~table["loo_reliable"].astype(bool)]
    if not unreliable.empty:
        lines.append(
            "Unreliable elpd_loo (customers with Pareto k above the threshold in the estimate "
            "used): "
            + ", ".join(
                f"K={int(r['K'])} ({int(r['pareto_k_remaining'])})"
                for _, r in unreliable.iterrows()
            )
            + "."
        )
    bic_k = bic_choice(table)
    if bic_k is None:
        lines.append("BIC choice: no baseline rows for these K.")
        return lines
    b = by_k.loc[bic_k]
    lines.append(
        f"BIC choice (lowest best-over-seeds BIC among these K): K={bic_k}, BIC {b['bic']:,.0f} "
        f"(spread over seeds {b['bic_spread']:,.0f})."
    )
    if chosen is not None and bic_k != chosen:
        lines.append(disagreement(by_k, chosen, bic_k, rule_se))
    elif chosen is not None:
        lines.append(f"BIC agrees: K={chosen}.")
    heldout = table.dropna(subset=["gmm_heldout_elpd"]) if "gmm_heldout_elpd" in table else None
    if heldout is not None and not heldout.empty:
        h = heldout.loc[heldout["gmm_heldout_elpd"].idxmax()]
        lines.append(
            f"Same yardstick: the baseline's {HELDOUT_FOLDS}-fold held-out log score "
            "(gmm_heldout_elpd) is highest "
            f"at K={int(h['K'])} ({h['gmm_heldout_elpd']:,.1f}, SE {h['gmm_heldout_se']:,.1f})"
            + (
                f"; at the chosen K={chosen} it is {by_k.loc[chosen, 'gmm_heldout_elpd']:,.1f} "
                f"against the Bayesian elpd_loo {by_k.loc[chosen, 'elpd_loo']:,.1f}: "
                f"difference (Bayesian - EM) {by_k.loc[chosen, 'heldout_diff']:,.1f}, paired SE "
                f"{by_k.loc[chosen, 'heldout_dse']:,.1f}."
                if chosen is not None and "heldout_diff" in by_k
                else "."
            )
        )
    outside = table.dropna(subset=["elpd_outside"]) if "elpd_outside" in table else None
    if outside is not None and not outside.empty:
        o = outside.loc[outside["elpd_outside"].idxmax()]
        lines.append(
            f"Customers outside the fitted subsample ({int(o['n_outside']):,}, never seen by "
            f"the posterior): held-out elpd highest at K={int(o['K'])} "
            f"({o['elpd_outside']:,.1f}, SE {o['se_outside']:,.1f})"
            + (
                f"; difference to the chosen K={chosen}: {o['outside_diff']:,.1f}, "
                f"paired SE {o['outside_dse']:,.1f}."
                if chosen is not None and not np.isnan(o["outside_diff"])
                else "."
            )
        )
    return lines


def disagreement(by_k: pd.DataFrame, chosen: int, bic_k: int, rule_se: float) -> str:
    """One sentence on why the LOO rule and BIC pick different K, with the numbers."""
    c, b = by_k.loc[chosen], by_k.loc[bic_k]
    text = (
        f"Disagreement: the LOO rule picks K={chosen}, BIC picks K={bic_k}. BIC at K={chosen} is "
        f"{c['bic'] - b['bic']:,.0f} higher than at K={bic_k} (BIC spread over seeds at K={bic_k}: "
        f"{b['bic_spread']:,.0f}). "
    )
    predictive = f"elpd_diff {b['elpd_diff']:,.1f}, {_ratio(b)} dse"
    if b["status"] != "ok":
        return text + (
            f"The Bayesian fit at K={bic_k} failed its diagnostics ({b['diagnostics_reason']}), so "
            f"the rule cannot use it; its elpd_loo ({predictive}) is not trustworthy as it stands."
        )
    if bic_k > chosen and b["elpd_diff"] >= -rule_se * b["dse"]:
        return text + (
            f"On held-out prediction K={bic_k} is within {rule_se:g} dse of the best "
            f"({predictive}): the extra segments BIC rewards are not a clear predictive gain, "
            f"and the rule keeps the smaller K."
        )
    if bic_k > chosen:
        return text + (
            f"K={bic_k} predicts held-out customers worse ({predictive}): the extra segments "
            "BIC rewards do not carry over to new customers."
        )
    return text + (
        f"K={bic_k} is {rule_se:g}+ dse below the best on held-out prediction ({predictive}): LOO "
        "finds the extra segments worth their parameters where BIC's penalty does not."
    )


PRINTED_COLUMNS = (
    "K", "status", "elpd_loo", "se_loo", "p_loo", "elpd_diff", "dse", "weight", "loo_method",
    "pareto_k_bad", "pareto_k_remaining", "elpd_waic", "se_waic", "gmm_heldout_elpd",
    "elpd_outside", "bic",
    "bic_spread", "chosen", "bic_chosen",
)  # fmt: skip


def printable(table: pd.DataFrame) -> str:
    """The main columns as aligned text for the terminal."""
    shown = table[shown_columns(table, PRINTED_COLUMNS)].copy()
    for column in ("chosen", "bic_chosen"):
        shown[column] = shown[column].map({True: "<==", False: ""})
    digits = {"weight": 3, "bic": 0, "bic_spread": 0}
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            places = digits.get(column, 1)
            shown[column] = shown[column].map(
                lambda v, p=places: "-" if np.isnan(v) else f"{v:,.{p}f}"
            )
    return shown.to_string(index=False)


MARKDOWN_COLUMNS = (
    ("K", 0), ("status", 0), ("chosen", 0), ("elpd_loo", 1), ("se_loo", 1), ("p_loo", 1),
    ("elpd_diff", 1), ("dse", 1), ("weight", 3), ("weight_pbma", 3), ("loo_method", 0),
    ("pareto_k_bad", 0), ("pareto_k_very_bad", 0), ("pareto_k_remaining", 0), ("elpd_waic", 1),
    ("se_waic", 1), ("gmm_heldout_elpd", 1), ("heldout_diff", 1), ("heldout_dse", 1),
    ("elpd_outside", 1), ("se_outside", 1), ("outside_diff", 1), ("outside_dse", 1),
    ("bic", 0), ("aic", 0), ("icl", 0),
    ("bic_spread", 0), ("bic_chosen", 0),
)  # fmt: skip


def markdown_table(table: pd.DataFrame, columns=MARKDOWN_COLUMNS) -> str:
    shown = shown_columns(table, [c for c, _ in columns])
    present = [(c, d) for c, d in columns if c in shown]
    header = "| " + " | ".join(c for c, _ in present) + " |"
    rule = "|" + "|".join("---" if c in ("status", "loo_method") else "---:" for c, _ in present)
    lines = [header, rule + "|"]
    for _, row in table.iterrows():
        cells = []
        for column, digits in present:
            value = row[column]
            if column in ("chosen", "bic_chosen"):
                cells.append("**yes**" if value else "")
            elif digits == 0 and isinstance(value, (float, np.floating)) and not np.isnan(value):
                cells.append(f"{value:,.0f}")
            else:
                cells.append(_fmt(value, digits))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(path, table, context: dict, notes: list[str], figures: dict) -> None:
    rule_lines = decision_lines(table)
    thresholds = ", ".join(f"{t:.2f}" for t in sorted(table["k_threshold"].unique()))
    failed = table[table["status"] != "ok"]
    handled = table[table["loo_method"] != "psis"]
    flagged = table[table["loo_note"].astype(str) != ""]
    lines = [
        f"# Choosing K: {context['title']}",
        "",
        context["description"],
        "",
        "## Decision",
        "",
        *[f"- {line}" for line in rule_lines],
        "",
        "## Comparison table",
        "",
        markdown_table(table),
        "",
        "elpd values are natural-log predictive densities summed over customers on the model "
        "scale (higher is better); SE and dse are standard errors (normal approximation, ±1 SE). "
        "elpd_diff and dse are against the best fit that passed diagnostics. weight: stacking; "
        "weight_pbma: Bayesian-bootstrap pseudo-BMA; both over the fits that passed diagnostics. "
        "pareto_k_bad counts customers whose plain PSIS Pareto k is above the threshold "
        f"(k_threshold: {thresholds}), pareto_k_very_bad those of them above 1; "
        "pareto_k_remaining counts those still above the threshold in the estimate used "
        "(loo_method; 0 means that estimate is reliable). bic, aic, icl: best (lowest) over EM "
        "seeds; bic_spread: max - min BIC over seeds. "
        "gmm_heldout_elpd: "
        + (
            f"{HELDOUT_MEANING[context['heldout_kind']]}; heldout_diff = elpd_loo - "
            "gmm_heldout_elpd (positive: the Bayesian fit predicts held-out customers better) "
            "with its paired SE heldout_dse."
            if context["heldout"]
            else "not computed."
        ),
        "",
        "## Pareto k and the LOO estimate each row uses",
        "",
    ]
    if handled.empty and flagged.empty:
        lines.append(
            "Every fit's PSIS-LOO has all Pareto k at or below the threshold: plain PSIS-LOO."
        )
    for _, row in table.iterrows():
        if row["loo_method"] == "psis" and not row["loo_note"]:
            continue
        lines.append(
            f"- K={int(row['K'])}: {int(row['pareto_k_bad'])} "
            f"customer(s) above k = {row['k_threshold']:.2f} in plain PSIS "
            f"(elpd_psis {row['elpd_psis']:,.1f}); estimate used: {row['loo_method']} "
            f"(elpd_loo {row['elpd_loo']:,.1f}); "
            + ("reliable" if row["loo_reliable"] else "**UNRELIABLE**")
            + (f"; {row['loo_note']}" if row["loo_note"] else "")
            + "."
        )
    lines += ["", "## Fits that failed diagnostics", ""]
    if failed.empty:
        lines.append("None: every fit passed (R-hat, ESS, divergences, E-BFMI).")
    for _, row in failed.iterrows():
        lines.append(f"- K={int(row['K'])}: {row['diagnostics_reason']} (listed, never chosen).")
    waic_warned = table[table["waic_p_over_0_4"] > 0]
    lines += ["", "## WAIC", ""]
    lines.append(
        "elpd_waic = lppd - p_waic with SE = sqrt(n) x sd of the pointwise values "
        "(analysis/waic.py). "
        + (
            "Customers with p_waic_i > 0.4, where WAIC is known to be unreliable: "
            + ", ".join(
                f"K={int(r['K'])}: {int(r['waic_p_over_0_4'])}" for _, r in waic_warned.iterrows()
            )
            + ". PSIS-LOO is the criterion used for the decision."
            if not waic_warned.empty
            else f"No customer has p_waic_i > {P_WAIC_I_WARN}."
        )
    )
    if notes:
        lines += ["", "## Warnings from ArviZ", ""] + [f"- {note}" for note in notes]
    lines += ["", "## Figures", ""]
    for caption, name in figures.items():
        lines.append(f"![{caption}](figures/{name}.png)")
        lines.append("")
    with atomic_path(path) as temporary:
        temporary.write_text("\n".join(lines).rstrip() + "\n")


# ----------------------------------------------------------------------------------------------
# Figures


COMPARE_DPI = 110


def plot_compare_figure(compared: pd.DataFrame, title: str):
    """ArviZ's comparison plot (elpd_diff ± dse against the best ok fit) as a matplotlib figure."""
    plot = az.plot_compare(compared, backend="matplotlib")
    figure = plot.get_viz("figure")
    axis = figure.axes[0]
    axis.set_title(f"{title}\nelpd_loo difference from the best fit that passed diagnostics "
                   "(± 1 dse; higher is better)", fontsize=10)  # fmt: skip
    return figure


def plot_khat_figure(psis, k: int, title: str, method: str = "psis"):
    """ArviZ's Pareto-k plot of one fit's plain PSIS-LOO (before moment matching or K-fold).

    Lines at 0, the threshold and 1, the count of customers in each band on the right, and the
    customer ID beside every point above the threshold.
    """
    plot = az.plot_khat(
        psis,
        threshold=psis.good_k,
        bin_format="{count}",
        visuals={"hlines": {}, "bin_text": {}, "khat": {"alpha": 0.5}},
        figure_kwargs={"figsize": (10, 4.5)},
        backend="matplotlib",
    )
    figure = plot.get_viz("figure")
    axis = figure.axes[0]
    axis.set_title(
        f"{title}, K={k}: plain PSIS-LOO Pareto k per customer "
        f"(the table's estimate: {method})\n"
        f"(labels: customer ID above k = {psis.good_k:.2f}; numbers on the right: customers "
        "per band)",
        fontsize=10,
    )
    axis.set_xlabel("customer (data order)")
    # room left of the first customer, so a label centred on it clears the y tick labels
    axis.set_xlim(left=-0.04 * psis.pareto_k.size)
    return figure


def _draw_elpd(
    axis, table: pd.DataFrame, model: str, heldout_label: str, labels: bool = True
) -> None:
    """elpd_loo ± SE (ok fits joined, failed ones as grey crosses), WAIC, GMM held-out."""
    ks = table["K"].to_numpy()
    ok = (table["status"] == "ok").to_numpy()
    unreliable = ~table["loo_reliable"].astype(bool).to_numpy()

    def label(text):
        return text if labels else None

    elpd = table["elpd_loo"].to_numpy()
    axis.plot(ks, np.where(ok, elpd, np.nan), "-", color="C0")  # joins consecutive ok K only
    axis.errorbar(ks[ok], elpd[ok], yerr=table["se_loo"][ok], fmt="o", ms=5,
                  capsize=3, color="C0",
                  label=label(f"Bayesian {model}: elpd_loo ± 1 SE"))  # fmt: skip
    if (~ok).any():
        axis.errorbar(ks[~ok], table["elpd_loo"][~ok], yerr=table["se_loo"][~ok], fmt="x",
                      ms=8, capsize=3, color="grey",
                      label=label("fit failed diagnostics (never chosen)"))  # fmt: skip
    axis.plot(ks + 0.12, table["elpd_waic"], "s", ms=4, mfc="none", color="C2",
              label=label("elpd_waic"))  # fmt: skip
    if table["gmm_heldout_elpd"].notna().any():
        axis.errorbar(ks - 0.12, table["gmm_heldout_elpd"], yerr=table["gmm_heldout_se"],
                      fmt="^--", ms=5, capsize=3, color="C1",
                      label=label(f"{heldout_label} ± 1 SE"),
                      )  # fmt: skip
    if unreliable.any():
        axis.plot(ks[unreliable], table["elpd_loo"][unreliable], "o", ms=12, mfc="none",
                  color="red", label=label("elpd_loo unreliable (Pareto k)"))  # fmt: skip


def _draw_bic(axis, table: pd.DataFrame, labels: bool = True) -> None:
    known = table.dropna(subset=["bic"])
    if known.empty:
        return
    spread = known["bic_spread"].to_numpy()
    axis.errorbar(known["K"], known["bic"], yerr=[np.zeros_like(spread), spread], fmt="o-",
                  ms=5, capsize=3, color="C3",
                  label="scikit-learn GMM: best BIC over seeds (bar up to the worst seed)"
                  if labels else None)  # fmt: skip


def _zoom(axis, table: pd.DataFrame, columns: list[str], draw, where) -> None:
    """An inset on K >= the third K when the first K values dwarf the rest (< 1/4 of the span)."""
    ks = sorted(table["K"])
    if len(ks) < 5:
        return
    values = table[columns].to_numpy(dtype=float)
    tail = table[table["K"] >= ks[2]][columns].to_numpy(dtype=float)
    span, tail_span = np.nanmax(values) - np.nanmin(values), np.nanmax(tail) - np.nanmin(tail)
    if not (span > 0 and tail_span < span / 4):
        return
    inset = axis.inset_axes(where)
    draw(inset, table[table["K"] >= ks[2]])
    inset.set_xticks(ks[2:])
    inset.tick_params(labelsize=7)
    inset.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    inset.grid(alpha=0.3)
    inset.set_title(f"zoom: K >= {ks[2]}", fontsize=8)


def plot_elpd_and_bic(
    table: pd.DataFrame,
    chosen: int | None,
    bic_k: int | None,
    title: str,
    model: str = "GMM",
    heldout_label: str = HELDOUT_LABEL["continuous"],
):
    """Left: elpd_loo ± SE (and WAIC, GMM held-out) against K. Right: BIC against K.

    When the first K values dwarf the rest, each panel gets an inset on K >= the third K. The
    legends sit under the panels so they never hide a point.
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.6))
    ks = table["K"].to_numpy()
    _draw_elpd(left, table, model, heldout_label)
    if chosen is not None:
        left.axvline(chosen, color="C0", lw=1, ls=":", label=f"chosen by the LOO rule: K={chosen}")
    _zoom(left, table, ["elpd_loo", "gmm_heldout_elpd"],
          lambda axis, part: _draw_elpd(axis, part, model, heldout_label, labels=False),
          (0.45, 0.08, 0.52, 0.5))  # fmt: skip
    left.set_title(
        "elpd (higher is better)\nbars: ± 1 SE of each elpd; K are compared by elpd_diff ± dse "
        "(compare.png), which is much smaller",
        fontsize=10,
    )
    left.set_ylabel("log density summed over customers")
    if bic_k is not None:
        right.axvline(bic_k, color="C3", lw=1, ls=":", label=f"BIC choice: K={bic_k}")
    _draw_bic(right, table)
    _zoom(right, table, ["bic"], lambda axis, part: _draw_bic(axis, part, labels=False),
          (0.45, 0.42, 0.52, 0.5))  # fmt: skip
    right.set_title("BIC (lower is better)")
    thousands = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:,.0f}")
    for axis in (left, right):
        axis.set_xlabel("K (segments)")
        axis.set_xticks(ks)
        axis.yaxis.set_major_formatter(thousands)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
                    frameon=False)  # fmt: skip
    figure.suptitle(title)
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------------------------
# The step


def _consistent(configs: list[dict], customers: list[np.ndarray], paths: RunPaths) -> None:
    keys = ("dataset", "model", "transform")
    first = configs[0]
    for config, ids in zip(configs[1:], customers[1:], strict=True):
        differing = [key for key in keys if config.get(key) != first.get(key)]
        if differing or not np.array_equal(ids, customers[0]):
            what = ", ".join(differing) or "customers"
            raise InputError(
                f"{paths.fits_dir}: K={config['K']} and K={first['K']} differ in {what}; "
                "compare needs fits of one model on one data set"
            )


def ensure_baseline(paths: RunPaths, x: np.ndarray, ks: list[int], config: dict, progress):
    """Read ``baseline.csv``; when absent, run the default baseline on the fits' data."""
    matrix, covariance_type = baseline_matrix(x, config["transform"])
    if paths.baseline_csv.exists():
        return pd.read_csv(paths.baseline_csv), covariance_type, False
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
    transform = config["transform"].get("name", "model scale")
    title = f"scikit-learn GMM on {config['dataset']} ({transform}, n_init={BASELINE_N_INIT})"
    baseline.write_run_files(table, title, paths)
    return table, covariance_type, True


def compare_run(
    paths: RunPaths,
    *,
    moment_matching: bool = True,
    max_moment_match: int = MAX_MOMENT_MATCH,
    kfold_folds: int | None = None,
    kfold_settings: SamplerSettings | None = None,
    heldout: bool = True,
    progress=sys.stderr,
) -> pd.DataFrame:
    """Compare every fit in ``paths.fits_dir``; write comparison.csv/.md and figures.

    Returns the table (one row per K, sorted by K, columns :data:`COLUMNS`, boolean ``chosen``).
    Raises InputError when the directory has no fits or the fits are not comparable.
    """
    files = sorted(paths.fits_dir.glob("K*.nc")) if paths.fits_dir.is_dir() else []
    if not files:
        raise InputError(f"{paths.fits_dir}: no fits (K*.nc); run segment fit --out {paths.root}")
    estimates, configs, customers, outside_lpd = [], [], [], {}
    x = None
    for path in files:
        attrs = saved_attrs(path)
        tree = load_fit(path)
        var_name = log_likelihood_name(tree)
        observed = _observed(tree, var_name)
        configs.append(attrs["config"])
        customers.append(observed[observed.dims[0]].values)
        _consistent(configs, customers, paths)
        if x is None:
            x = observed.values
        estimates.append(
            estimate_fit(
                tree,
                attrs,
                moment_matching=moment_matching,
                max_moment_match=max_moment_match,
                kfold_folds=kfold_folds,
                kfold_settings=kfold_settings,
                progress=progress,
            )
        )
        if "population" in tree:
            outside_lpd[attrs["config"]["K"]] = lpd_outside_fit(tree["population"].to_dataset())
        del tree
    estimates.sort(key=lambda e: e.k)
    config = min(configs, key=lambda c: c["K"])
    ks = [e.k for e in estimates]
    table, compared, notes = loo_table(estimates)

    baseline_table, covariance_type, ran = ensure_baseline(paths, x, ks, config, progress)
    per_k = baseline_per_k(baseline_table, covariance_type)
    table = table.merge(per_k, on="K", how="left")
    data_kind = MIXTURES[config["model"]].data_kind
    kind = heldout_kind(config["model"])
    if heldout:
        matrix, _ = baseline_matrix(x, config["transform"])
        pointwise = {e.k: e.used.elpd_i.values for e in estimates}
        categories = None
        if data_kind == "categorical":
            categories = (x, [len(levels) for levels in config["transform"]["levels"]])
        heldout_table = gmm_heldout(
            matrix,
            ks,
            covariance_type,
            elpd_i=pointwise,
            categories=categories,
            zero_values=config["options"].get("zero_values"),
        )
        table = table.merge(heldout_table, on="K", how="left")
    else:
        for column in ("gmm_heldout_elpd", "gmm_heldout_se", "heldout_diff", "heldout_dse"):
            table[column] = np.nan

    chosen = choose_k(table)
    bic_k = bic_choice(table)
    table["within_rule"] = (table["status"] == "ok") & (
        table["elpd_diff"] >= -RULE_SE * table["dse"]
    )
    table["chosen"] = table["K"] == chosen
    table["bic_chosen"] = table["K"] == bic_k
    table = table.merge(outside_table(outside_lpd, ks, chosen), on="K", how="left")
    table = table[list(COLUMNS)]

    sampler = config["sampler"]
    transform = config["transform"].get("name", "model scale")
    title = f"{config['dataset']} ({transform}, {config['model']})"
    baseline_source = (
        "run here with the defaults because baseline.csv was absent"
        if ran
        else "read from baseline.csv"
    )
    outside = per_k[~per_k["K"].isin(ks)]
    if not outside.empty and per_k.loc[per_k["bic"].idxmin(), "K"] not in ks:
        lowest = per_k.loc[per_k["bic"].idxmin()]
        baseline_source += (
            f"; over all of its K ({int(per_k['K'].min())}-{int(per_k['K'].max())}) the lowest "
            f"BIC is at K={int(lowest['K'])} ({lowest['bic']:,.0f}), outside the fitted range"
        )
    context = {
        "title": title,
        "heldout": heldout,
        "heldout_kind": kind,
        "description": (
            f"Run directory `{paths.root}`: {len(ks)} fits (K = {', '.join(map(str, ks))}), "
            f"{len(x):,} customers x {x.shape[1]} features"
            + (
                f" (a random subsample; {len(next(iter(outside_lpd.values()))):,} more "
                "customers outside it are scored as held-out data: elpd_outside)"
                if outside_lpd
                else ""
            )
            + f", {sampler['chains']} chains x "
            f"{sampler['draws']} draws (+{sampler['tune']} tune), {sampler['sampler']}. "
            f"Baseline: scikit-learn GaussianMixture, {per_k.attrs['covariance_type']} "
            f"covariance, {baseline_source}."
        ),
    }
    figures = {
        "ArviZ comparison plot": "compare",
        "elpd and BIC against K": "elpd_vs_bic",
    }
    save_figure(
        plot_compare_figure(compared, title), paths.figure("compare"), COMPARE_DPI, tight=True
    )
    model = config["model"].upper()
    save_figure(
        plot_elpd_and_bic(table, chosen, bic_k, title, model, HELDOUT_LABEL[kind]),
        paths.figure("elpd_vs_bic"),
        COMPARE_DPI,
        tight=True,
    )
    if chosen is not None:
        chosen_estimate = next(e for e in estimates if e.k == chosen)
        save_figure(
            plot_khat_figure(chosen_estimate.psis, chosen, title, chosen_estimate.method),
            paths.figure("khat"),
            COMPARE_DPI,
            tight=True,
        )
        figures[f"Pareto k of the chosen fit (K={chosen}), plain PSIS"] = "khat"
    with atomic_path(paths.comparison_csv) as temporary:
        table.to_csv(temporary, index=False)
    write_markdown(paths.comparison_md, table, context, notes, figures)
    return table

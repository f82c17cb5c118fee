"""Per fit: PSIS-LOO with its high Pareto k handled (moment matching, exact K-fold), and WAIC.

:func:`estimate_fit` reads one saved fit (never resamples it, except for opt-in K-fold refits)
and returns a :class:`FitEstimate`: the plain PSIS-LOO, the estimate used for the comparison and
WAIC. ``analysis.selection.compare`` puts the estimates of every K in one table.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field, replace

import arviz as az
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from arviz_stats.loo import SamplingWrapper

from analysis.distributed import Cluster, current
from analysis.inference.chain_stacking import stack_chains, stacked_elpd_data
from analysis.inference.elpd import psis_loo
from analysis.inference.fit import FitSpec, SamplerSettings, fit_k
from analysis.inference.membership import chunk_draws, memberships_and_loglik
from analysis.selection.waic import waic
from models import MIXTURES

MAX_MOMENT_MATCH = 30  # customers per fit; about 6 s each (hurdle, 4,000 draws x 2,240 customers)
LP_TOLERANCE = 1e-6  # relative agreement required between the rebuilt model and the sampler's lp


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


def entry_elpd(tree: xr.DataTree, status: str, var_name: str = "x") -> tuple[object, str]:
    """(pointwise ELPD data, method) that stands for a fit in the comparison: PSIS-LOO, or for
    a ``multimodal`` fit the chain-stacked elpd (Yao, Vehtari & Gelman 2022)."""
    psis = psis_loo(tree, var_name)
    if status != "multimodal":
        return psis, "psis"
    return stacked_elpd_data(stack_chains(tree, var_name), psis), "chain-stacking"


def observed_data(tree: xr.DataTree, var_name: str) -> xr.DataArray:
    return tree["observed_data"][var_name]


def rebuild_model(tree: xr.DataTree, config: dict, var_name: str, rows: slice = slice(None)):
    """The fit's PyMC model, rebuilt from its saved configuration and observed data (its
    customers ``rows``; default: all)."""
    observed = observed_data(tree, var_name)
    customer_dim, feature_dim = observed.dims
    observed = observed.isel({customer_dim: rows})
    return FitSpec.from_config(config).build_model(
        observed.values,
        config["K"],
        observed[customer_dim].values,
        list(observed[feature_dim].values),
    )


def moment_match(tree: xr.DataTree, config: dict, psis, var_name: str, k_threshold=None):
    """``az.loo_moment_match`` for the customers of ``psis`` above ``k_threshold``.

    The rebuilt model gives the log posterior density at unconstrained draws (all customers,
    in chunks of draws), and a model of one customer's row alone gives that customer's
    log-likelihood; both are compiled to JAX (:func:`over_draws`). Returns (loo result, note);
    raises ValueError when the rebuilt model does not reproduce the sampler's log density.
    """
    # the posterior's unconstrained draws, as mm_from_pymc makes them (without compiling the
    # two PyTensor functions it also builds, 19 s for the hurdle at K = 2, which JAX replaces)
    from arviz_stats.loo.loo_moment_match_helper import _get_upars_da

    model = rebuild_model(tree, config, var_name)
    upars, _ = _get_upars_da(tree, model, dict(model.initial_point()), list(model.value_vars))
    x = observed_data(tree, var_name).values
    n_chains, n_draws = tree["posterior"].sizes["chain"], tree["posterior"].sizes["draw"]
    chunk = chunk_draws(MIXTURES[config["model"]], len(x), config["K"], x.shape[1])
    log_prob = over_draws(model, lambda frozen: frozen.logp(jacobian=True), chunk)
    one_customer = {}  # customer position -> its log-likelihood at unconstrained draws

    def log_lik_i(draws: xr.DataArray, i: int) -> xr.DataArray:
        if int(i) not in one_customer:
            row = rebuild_model(tree, config, var_name, slice(int(i), int(i) + 1))
            one_customer[int(i)] = over_draws(
                row, lambda frozen: frozen.logp(vars=[frozen[var_name]]), n_chains * n_draws
            )
        return one_customer[int(i)](draws)

    lp = tree["sample_stats"]["lp"].transpose("chain", "draw").values
    rebuilt = log_prob(upars).values
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
            log_prob_upars_fn=log_prob,
            log_lik_i_upars_fn=log_lik_i,
            upars=upars,
            var_name=var_name,
            k_threshold=k_threshold,
            pointwise=True,
        )
    reverted = sum("did not improve" in str(w.message) for w in caught)
    note = f"moment matching did not improve {reverted} customer(s)" if reverted else ""
    return result, note


def over_draws(model: pm.Model, output, chunk: int):
    """A scalar of ``model`` evaluated at each of many unconstrained draws, in JAX.

    Parameters
    ----------
    model : the model whose value variables' layout the draws follow (each flattened, in
        ``model.value_vars`` order: ``mm_from_pymc``'s ``upars``).
    output : ``output(frozen) -> scalar`` of the frozen copy of ``model``
        (``freeze_dims_and_data``, as nutpie's jax backend samples it; JAX needs every shape
        known), e.g. its log density.
    chunk : draws evaluated at once (``jax.vmap`` over them); the last chunk is padded so
        that one shape is compiled.

    Returns
    -------
    ``f(draws)`` for ``draws`` (chain, draw, unconstrained_parameter) -> (chain, draw) DataArray.
    """
    import jax
    from pymc.model.transform.optimization import freeze_dims_and_data
    from pymc.sampling.jax import get_jaxified_graph

    initial_point = model.initial_point()
    names = [value.name for value in model.value_vars]
    shapes = [initial_point[name].shape for name in names]
    splits = np.cumsum([int(np.prod(shape, dtype=int)) for shape in shapes])
    frozen = freeze_dims_and_data(model)  # its value variables come in another order
    inputs = [next(v for v in frozen.value_vars if v.name == name) for name in names]
    one_draw = get_jaxified_graph(inputs=inputs, outputs=[pt.sum(output(frozen))])

    def at(flat):  # (P,) unconstrained parameters -> scalar
        parts = jax.numpy.split(flat, splits[:-1])
        return one_draw(*(p.reshape(s) for p, s in zip(parts, shapes, strict=True)))[0]

    batched = jax.jit(jax.vmap(at))

    def evaluate(draws: xr.DataArray) -> xr.DataArray:
        draws = draws.transpose("chain", "draw", ...)
        flat = np.asarray(draws.values).reshape(-1, draws.shape[-1])
        if flat.shape[1] != splits[-1]:
            raise ValueError(f"draws of {flat.shape[1]} parameters; the model has {splits[-1]}")
        size = min(chunk, len(flat))
        values = []
        for start in range(0, len(flat), size):
            block = flat[start : start + size]
            padded = np.concatenate([block, np.repeat(block[-1:], size - len(block), axis=0)])
            values.append(np.asarray(batched(padded))[: len(block)])
        return xr.DataArray(
            np.concatenate(values).reshape(draws.shape[:2]),
            dims=("chain", "draw"),
            coords={"chain": draws["chain"], "draw": draws["draw"]},
        )

    return evaluate


class RefitWrapper(SamplingWrapper):
    """Exact K-fold refits of one saved fit: :func:`analysis.inference.fit.fit_k` on the training
    rows.

    The held-out customers' log density under each refit's draws is the same marginal
    (label-summed) log-likelihood as the saved fit's, from the model's ``segment_log_joint``.
    """

    def __init__(self, tree, config, var_name, settings=None, progress=sys.stderr):
        super().__init__(model=None, idata_orig=tree)
        observed = observed_data(tree, var_name)
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
        self.refits: dict[bytes, object] = {}  # training rows -> the refit's future (a cluster)

    def sel_observations(self, idx):
        test = np.asarray(idx)
        train = np.setdiff1d(np.arange(len(self.x)), test)
        return train, test

    def sample(self, modified_observed_data):
        self.fold += 1
        if self.progress is not None:
            print(f"[K={self.k}] K-fold refit {self.fold}", file=self.progress, flush=True)
        train = modified_observed_data
        refit = self.refits.pop(np.asarray(train).tobytes(), None)
        if refit is not None:
            return refit.result()
        return fit_k(self.spec, self.x[train], self.k, self.customers[train], self.features)

    def submit_refits(self, cluster: Cluster, trains: list[np.ndarray]) -> None:
        """Send the refits on ``trains`` (training rows, one array per fold) to the cluster, one
        task per fold, all at once; :meth:`sample` then takes each fold's result."""
        for fold, train in enumerate(trains, start=1):
            self.refits[np.asarray(train).tobytes()] = cluster.submit(
                fit_k, self.spec, self.x[train], self.k, self.customers[train], self.features,
                key=cluster.key(f"kfold-K{self.k}-{fold}"),
            )  # fmt: skip

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


class FoldRecorder(RefitWrapper):
    """A wrapper that samples nothing and records the training rows ``az.loo_kfold`` asks for,
    fold by fold (a dry run that learns its folds, to send them to a cluster at once)."""

    def __init__(self, tree, config, var_name):
        super().__init__(tree, config, var_name, progress=None)
        self.trains: list[np.ndarray] = []

    def sample(self, modified_observed_data):
        self.trains.append(np.asarray(modified_observed_data))

    def log_likelihood__i(self, excluded_obs, idata__i):
        return xr.DataArray(
            np.zeros((1, 1, len(excluded_obs))), dims=("chain", "draw", self.customer_dim)
        )


def kfold_loo(tree, config, var_name, folds=10, settings=None, seed=0, progress=sys.stderr):
    """Exact K-fold CV of one fit (samples ``folds`` times). Returns ELPDDataLOOKFold.

    On a cluster (:func:`analysis.distributed.current`) the folds are learnt first by a dry run
    of ``az.loo_kfold`` (:class:`FoldRecorder`), their refits sent at once, one task each, and
    ``az.loo_kfold`` then takes each fold's refit as it comes: the same folds and fits as
    in-process."""
    wrapper = RefitWrapper(tree, config, var_name, settings, progress)
    cluster = current()
    if cluster is not None:
        recorder = FoldRecorder(tree, config, var_name)
        az.loo_kfold(tree, recorder, pointwise=True, var_name=var_name, k=folds, seed=seed)
        wrapper.submit_refits(cluster, recorder.trains)
    return az.loo_kfold(tree, wrapper, pointwise=True, var_name=var_name, k=folds, seed=seed)


def stacked_estimate(tree: xr.DataTree, attrs: dict, var_name: str) -> FitEstimate:
    """A multimodal fit's comparison entry: its chain-stacked elpd, status ``stacked``."""
    config, diagnostics = attrs["config"], attrs["diagnostics"]
    stacked, method = entry_elpd(tree, "multimodal", var_name)
    threshold = stacked.good_k
    remaining = int((stacked.pareto_k.values > threshold).sum())
    modes = "; ".join(
        f"chains {', '.join(map(str, mode['chains']))}: weight {mode['stacking_weight']:.2f}"
        for mode in diagnostics["modes"]
    )
    top = diagnostics["modes"][0]
    note = (
        f"chains stacked over {len(diagnostics['modes'])} modes ({modes}); the heaviest mode's "
        f"draws: max R-hat {top['max_rhat']:.3f}, min ESS {top['min_ess']:.0f}"
    )
    if remaining:
        note += (
            f"; {remaining} customer(s) keep k > {threshold:.2f} in a weighted chain: unreliable"
        )
    return FitEstimate(
        k=config["K"],
        status="stacked",
        reason=diagnostics["reason"],
        psis=psis_loo(tree, var_name),
        used=stacked,
        method=method,
        remaining=remaining,
        waic=waic(tree, var_name),
        note=note,
        config=config,
    )


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
    if diagnostics["status"] == "multimodal":
        return stacked_estimate(tree, attrs, var_name)
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

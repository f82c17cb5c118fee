"""Sample one posterior per K, post-process it, save it, and resume a sweep.

Per K: build the mixture, start each chain at its own EM solution (aligned to one labelling,
analysis/inference/starts.py), run NUTS (nutpie by default), then on the saved draws: per-draw
memberships and pointwise log-likelihood, Stephens relabelling, assignment summaries, ArviZ
diagnostics with one status per fit (analysis/inference/diagnostics.py) and prior and posterior
predictive samples (for the checks in analysis/reporting/predictive_checks.py). The sweep
(analysis/selection/sweep.py) refits ``slow`` K for longer within a time budget and stops early when
larger K stop improving. Everything goes into one DataTree written atomically to ``fits/K{k}.nc``
with its configuration (JSON) in the root attrs; a later run with the same configuration skips that
K.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path

import numpy as np
import pymc as pm
import pytensor
import xarray as xr

from analysis.errors import InputError
from analysis.inference.assignments import summarize_memberships
from analysis.inference.chain_stacking import stack_chains
from analysis.inference.diagnostics import diagnose, mode_convergence
from analysis.inference.membership import memberships_and_loglik
from analysis.inference.relabel import permutation_dataarray, permute, relabel_posterior, stephens
from analysis.inference.starts import chain_starts, starts_dataset
from analysis.inference.subsample import population, subsample_indices
from analysis.paths import atomic_path
from analysis.worker_environment import sampling_cores
from models import MIXTURES, Mixture

SAMPLERS = ("nutpie", "pymc")
# nutpie's compile backend. jax compiles a model in 3-4.5 s; numba in about 30 s with a warm
# PyTensor cache and 1.5-4.5 min without one, for 1.2-1.95x faster gradients at K <= 6 and
# 2.2-2.4x slower ones at K = 8, 10 on marketing (bench.compile).
BACKENDS = ("jax", "numba")
# nutpie's mass matrix adaptation: "low_rank" adds the leading eigenvectors of the draws'
# covariance to the diagonal; on the main job's mixtures it gave 3x the bulk ESS per draw of
# "diag" (dunnhumby-spend K = 3, bench/README.md, "Sweep")
ADAPTATIONS = ("low_rank", "diag")
# Uniform jitter, on the unconstrained scale, added to each chain's EM start. At a mode the
# gradient is near zero, and nutpie's first mass matrix, set from the gradient, is then far off:
# on dunnhumby-spend (hurdle, one chain of 500 + 500) the first 50 warm-up draws took 9,594
# leapfrog steps at K = 1 without jitter, 1,387 with 0.05 and 817 with 0.3; at K = 3 the whole
# chain took 16,100 steps without jitter and 11,400 with 0.3.
START_JITTER = 0.3
# chains sampled at once: one per core (on a Dask worker: its threads)
SAMPLING_CORES = sampling_cores()
FIT_FORMAT = 4  # bump when the saved contents change, so old fits are not silently reused
# (4: jax chains really start at their saved chain_starts, jittered; format-3 jax fits began at
# a scrambled point)
PPC_DRAWS = 100  # replicated data sets kept for prior and posterior predictive checks
# the groups made of posterior draws, which a multimodal fit's described mode restricts
DRAWN_GROUPS = ("posterior", "sample_stats", "log_likelihood", "posterior_predictive")
SAMPLE_STATS = ("lp", "diverging", "energy", "step_size")  # named alike by both samplers
# PPC_DRAWS replicated data sets need no optimised code: the Python linker compiles the draws
# in under 1 s, numba in about 7 s per K.
PREDICTIVE_COMPILE = {"mode": "FAST_COMPILE"}
DISTRIBUTION = "bayes-segments"
PACKAGES = ("pymc", "pytensor", "arviz", "nutpie", "jax", "numpy", "scikit-learn")


@dataclass(frozen=True)
class SamplerSettings:
    chains: int = 4
    draws: int = 1000
    tune: int = 1000
    seed: int = 0
    sampler: str = "nutpie"
    backend: str = "jax"  # nutpie's compile backend (BACKENDS); pm.sample's NUTS ignores it
    adaptation: str = "low_rank"  # nutpie's mass matrix (ADAPTATIONS); pm.sample's: diagonal


@dataclass(frozen=True)
class FitSpec:
    """Everything that defines a fit except K. ``transform`` is a FittedTransform config dict."""

    dataset: str
    source: str
    model: str
    transform: dict
    options: dict = field(default_factory=dict)
    priors: dict = field(default_factory=dict)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    subsample: int | None = (
        None  # NUTS on this many random customers (analysis/inference/subsample.py)
    )
    joins: tuple[tuple[str, ...], ...] = ()  # --join groups of the data (analysis/data/joins.py)

    @property
    def mixture(self) -> Mixture:
        return MIXTURES[self.model]

    @classmethod
    def from_config(cls, config: dict, sampler: SamplerSettings | None = None) -> FitSpec:
        """The spec a saved fit's configuration describes; ``sampler`` replaces its settings."""
        return cls(
            dataset=config["dataset"],
            source=config["source"],
            model=config["model"],
            transform=config["transform"],
            options=config["options"],
            priors=config["priors"],
            sampler=sampler or SamplerSettings(**config["sampler"]),
            subsample=config.get("subsample"),
            joins=tuple(tuple(group) for group in config.get("joins", ())),
        )

    def build_model(self, x: np.ndarray, k: int, customers, features) -> pm.Model:
        """The K-segment model of model-scale ``x`` (N, D) with this spec's priors and options."""
        priors = self.mixture.merged_priors(self.priors)
        return self.mixture.build(
            x, k, customers=customers, features=features, priors=priors, **self.options
        )

    def identity(self, k: int) -> dict:
        """The JSON-able configuration that decides whether a saved fit can be reused."""
        priors = self.mixture.merged_priors(self.priors)
        identity = {"K": k, "format": FIT_FORMAT} | asdict(self) | {"priors": priors}
        if not self.joins:  # fits saved before --join existed stay reusable
            del identity["joins"]
        return json.loads(json.dumps(identity))  # as read back from a file: tuples -> lists


def backend_of(sampler: dict) -> str:
    """The compile backend of a saved fit's sampler settings: fits saved before the setting
    existed were compiled with numba."""
    return sampler.get("backend", "numba")


def adaptation_of(sampler: dict) -> str:
    """The mass matrix adaptation of a saved fit's sampler settings: fits saved before the
    setting existed used nutpie's diagonal one."""
    return sampler.get("adaptation", "diag")


def sampling_settings(configs: list[dict]) -> dict[str, list[int]]:
    """Fit configurations grouped by how they were sampled: setting text, e.g. "4 chains x 1000
    draws (+1000 tune), nutpie (jax)", -> the K sampled that way (sorted)."""
    by_setting: dict[str, list[int]] = {}
    for config in sorted(configs, key=lambda c: c["K"]):
        sampler = config["sampler"]
        backend = (
            f" ({backend_of(sampler)}, {adaptation_of(sampler).replace('_', '-')} mass matrix)"
            if sampler["sampler"] == "nutpie"
            else ""
        )
        setting = (
            f"{sampler['chains']} chains x {sampler['draws']} draws (+{sampler['tune']} tune), "
            f"{sampler['sampler']}{backend}"
        )
        by_setting.setdefault(setting, []).append(config["K"])
    return by_setting


def sampling_description(configs: list[dict]) -> str:
    """The one setting of :func:`sampling_settings`, or each setting with its K when they
    differ (e.g. failed K refitted with a longer warm-up)."""
    by_setting = sampling_settings(configs)
    if len(by_setting) == 1:
        return next(iter(by_setting))
    return "; ".join(
        f"K = {', '.join(map(str, ks))}: {setting}" for setting, ks in by_setting.items()
    )


def provenance() -> dict:
    """Package versions, this package's version and the commit the fit was made with
    (:func:`source_commit`)."""
    versions = {p: version(p) for p in (DISTRIBUTION, *PACKAGES)}
    return {"versions": versions, "git_commit": source_commit()}


def source_commit() -> str:
    """The git commit of the code that runs: ``git rev-parse HEAD`` when the package sits in a
    git checkout (an editable install or a source tree), else the commit pip recorded for an
    install from a repository (``direct_url.json``, PEP 610); "unknown" otherwise. A wheel in
    some other repository's virtual environment is not mistaken for that repository's code."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / ".git").exists():
        try:
            return subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                cwd=checkout,
            ).stdout.strip()  # fmt: skip
        except (OSError, subprocess.CalledProcessError):
            return "unknown"
    try:
        recorded = json.loads(distribution(DISTRIBUTION).read_text("direct_url.json") or "{}")
    except PackageNotFoundError:
        return "unknown"
    return recorded.get("vcs_info", {}).get("commit_id", "unknown")


def nutpie_backend(backend: str) -> dict:
    """nutpie's compile options for ``backend`` (BACKENDS): jax compiles jax gradients too."""
    return {"backend": backend, "gradient_backend": "jax" if backend == "jax" else "pytensor"}


def run_sampler(model: pm.Model, starts, settings: SamplerSettings, callback=None) -> xr.DataTree:
    """NUTS with chain c started at ``starts[c]`` (a list of one dict per chain; None: the
    sampler's own initialisation, pymc sampler only).

    ``callback(trace, draw)`` is ``pm.sample``'s per-draw callback (pymc sampler only); raising
    KeyboardInterrupt in it stops sampling and keeps the draws so far.
    """
    if settings.sampler == "nutpie":
        sampled = nutpie_chains(model, starts, settings)
        stats = sampled["sample_stats"].to_dataset().rename(logp="lp")
    else:
        # forkserver: forked workers took 5.2x longer per gradient (bench.sweep, idiomatic K = 2),
        # and a fork would copy JAX's threads (a deadlock risk)
        sampled = pm.sample(
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            random_seed=settings.seed,
            initvals=starts,
            model=model,
            progressbar=True,
            compute_convergence_checks=False,
            cores=min(settings.chains, SAMPLING_CORES),
            mp_ctx="forkserver",
            callback=callback,
        )
        stats = sampled["sample_stats"].to_dataset()
    sampled["sample_stats"] = xr.DataTree(stats[list(SAMPLE_STATS)])
    return sampled


def nutpie_chains(model: pm.Model, starts: list[dict], settings: SamplerSettings) -> xr.DataTree:
    """nutpie NUTS, one chain per start, :data:`SAMPLING_CORES` chains at a time.

    pm.sample's nutpie path takes one start for all chains, so the model is compiled once and
    each chain runs as its own ``nutpie.sample`` call from its start jittered by
    :data:`START_JITTER` (seeded by the chain's seed), in a thread
    (nutpie samples outside the GIL). The chains are joined into one DataTree as pm.sample
    returns it.

    nutpie's jax backend samples a frozen copy of the model, whose free variables come in another
    order than ``model``'s, and its flat start vector follows that copy. So the model is frozen
    here (:func:`compile_nutpie`), and the compiled model and the start vectors
    (:func:`flat_start`) are both made from the frozen copy.
    """
    import nutpie
    from pymc.backends.arviz import patch_nutpie_idata

    sampled_model, compiled = compile_nutpie(model, settings.backend)
    chain_seeds = np.random.SeedSequence(settings.seed).generate_state(settings.chains)

    # Every start vector is made here, before the chains' threads: flat_start compiles a PyTensor
    # function, and PyTensor's config.change_flags (which PyMC's compile steps use) is
    # process-global and not thread-safe. Two chains compiling at once left flags changed for the
    # rest of the process (mode, cxx="", optdb__max_use_ratio), so that the later pointwise
    # log-likelihood was compiled without the default rewrites and differed in the last digits
    # (up to 9e-15) from the same computation in a process that sampled its chains one at a time.
    flats = []
    for chain in range(settings.chains):
        flat = flat_start(sampled_model, starts[chain])
        jitter = np.random.default_rng(int(chain_seeds[chain])).uniform(-1.0, 1.0, flat.shape)
        flats.append(flat + START_JITTER * jitter)

    def sample_chain(chain: int) -> xr.DataTree:
        flat = flats[chain]
        # nutpie asks its model for a start per chain; this one always answers ``flat``
        started_at = dataclasses.replace(
            compiled, **{initial_point_field(compiled): lambda seed: flat.copy()}
        )
        began = time.perf_counter()
        trace = nutpie.sample(
            started_at,
            draws=settings.draws,
            tune=settings.tune,
            chains=1,
            cores=1,
            seed=int(chain_seeds[chain]),
            save_warmup=False,
            progress_bar=False,
            adaptation=settings.adaptation,
        )
        print(
            f"    chain {chain + 1}/{settings.chains} done in {time.perf_counter() - began:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        return trace

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(settings.chains, SAMPLING_CORES)) as pool:
        traces = list(pool.map(sample_chain, range(settings.chains)))
    joined = xr.DataTree.from_dict(
        {
            group: xr.concat(
                [t[group].to_dataset().assign_coords(chain=[c]) for c, t in enumerate(traces)],
                dim="chain",
                combine_attrs="override",
            )
            for group in ("posterior", "sample_stats")
        }
    )
    patch_nutpie_idata(joined, model, sampling_time=time.perf_counter() - began)
    return joined


def without_c_blas() -> None:
    """Tell PyTensor's C backend to link no BLAS, unless ``PYTENSOR_FLAGS`` names one.

    nutpie compiles its start-point function with PyTensor's C virtual machine (a scan in it
    has C code); the C backend's first use then searches for a BLAS to link and, with pip's
    numpy, finds none and warns that BLAS operations "will be severely degraded". That function
    runs once per chain; sampling and post-processing run on JAX or numba, which bring their
    own BLAS. So no BLAS is the right setting, and saying so skips the search and its warning.
    """
    if "blas__ldflags" not in os.environ.get("PYTENSOR_FLAGS", ""):
        pytensor.config.blas__ldflags = ""


def compile_nutpie(model: pm.Model, backend: str):
    """``(sampled_model, compiled)``: the model nutpie samples (for jax, a frozen copy of
    ``model``) and its nutpie compilation; start vectors come from ``sampled_model``
    (:func:`flat_start`)."""
    import nutpie
    from pymc.model.transform.optimization import freeze_dims_and_data

    without_c_blas()
    sampled_model = freeze_dims_and_data(model) if backend == "jax" else model
    compiled = nutpie.compile_pymc_model(
        sampled_model, jitter_rvs=set(), freeze_model=False, **nutpie_backend(backend)
    )
    return sampled_model, compiled


def flat_start(model: pm.Model, start: dict) -> np.ndarray:
    """``start`` (constrained values by variable name) as the flat unconstrained vector that a
    nutpie model compiled from ``model`` takes: its value variables in ``model.free_RVs`` order."""
    from pymc.initial_point import make_initial_point_fn

    point = make_initial_point_fn(
        model=model, overrides=start, jitter_rvs=set(), return_transformed=True
    )(0)
    names = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    return np.concatenate([np.asarray(point[name], float).ravel() for name in names])


def initial_point_field(compiled) -> str:
    """The field of a compiled nutpie model that gives each chain its start (nutpie 0.16: jax
    models are PyFuncModel with ``_make_initial_points``, numba ones ``initial_point_func``)."""
    return (
        "_make_initial_points"
        if hasattr(compiled, "_make_initial_points")
        else ("initial_point_func")
    )


def fit_k(
    spec: FitSpec,
    x: np.ndarray,
    k: int,
    customers,
    features,
    starts: list[dict] | None = None,
    assign_population: bool = True,
) -> xr.DataTree:
    """Sample and post-process the K-segment fit of model-scale ``x`` (N, D).

    Chain c starts at ``starts[c]`` (default: :func:`analysis.inference.starts.chain_starts`, each
    chain's own EM solution in one labelling); the starts are saved in the ``chain_starts`` group.

    With ``spec.subsample`` the posterior is fitted on that many random customers, and a
    ``population`` group holds every customer's assignments and log predictive density
    (:func:`add_population`; not with ``assign_population=False``: a cluster's sweep task leaves it
    to the client, which sends its blocks of customers to the cluster).
    """
    mixture = spec.mixture
    priors = mixture.merged_priors(spec.priors)
    customers = np.asarray(customers)
    fitted = np.ones(len(x), dtype=bool)
    if spec.subsample is not None:
        fitted[:] = False
        fitted[subsample_indices(len(x), spec.subsample, spec.sampler.seed)] = True
    model = spec.build_model(x[fitted], k, customers[fitted], features)
    started = time.perf_counter()
    if starts is None:
        starts = chain_starts(
            mixture,
            x[fitted],
            k,
            chains=spec.sampler.chains,
            seed=spec.sampler.seed,
            priors=priors,
            options=spec.options,
        )
    sampled = run_sampler(model, starts, spec.sampler)
    seconds = time.perf_counter() - started
    tree = postprocess(sampled, model, mixture, x[fitted], spec.identity(k), seconds)
    tree["chain_starts"] = starts_dataset(starts, tree["posterior"].to_dataset())
    if spec.subsample is not None and assign_population:
        add_population(tree, spec, x, customers, k)
    return tree


def add_population(tree: xr.DataTree, spec: FitSpec, x: np.ndarray, customers, k: int) -> None:
    """Put the ``population`` group (every customer of ``x`` (N, D) assigned with the fit's
    relabelled posterior, :func:`analysis.inference.subsample.population`) into the K fit
    ``tree`` of ``spec``, which was sampled on its subsample."""
    fitted = np.zeros(len(x), dtype=bool)
    fitted[subsample_indices(len(x), spec.subsample, spec.sampler.seed)] = True
    posterior = tree["posterior"].to_dataset()
    started = time.perf_counter()
    tree["population"] = population(
        spec.mixture, spec.options, x, np.asarray(customers), fitted, posterior, f"[K={k}] "
    )
    tree["population"].attrs["seconds"] = time.perf_counter() - started


def postprocess(
    sampled: xr.DataTree,
    model: pm.Model,
    mixture: Mixture,
    x: np.ndarray,
    identity: dict,
    seconds: float,
) -> xr.DataTree:
    """Relabel, diagnose, summarise assignments and assemble the DataTree that is saved.

    A ``multimodal`` fit's chains are stacked (:mod:`analysis.inference.chain_stacking`): each mode
    gets its chains' stacking weight, and the assignments summarise the draws of the mode with the
    largest weight (the one the report describes).
    """
    posterior = sampled["posterior"].to_dataset()
    sample_stats = sampled["sample_stats"].to_dataset()
    membership, loglik = memberships_and_loglik(mixture, identity["options"], x, posterior)
    pivot = int(np.argmax(_stacked(sample_stats["lp"])))
    relabelling = stephens(membership, pivot)
    posterior = relabel_posterior(posterior, relabelling.permutation)
    membership = permute(membership, relabelling.permutation)
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    customer = sampled["observed_data"]["customer"]
    sampling_seconds = sampled["posterior"].attrs.get("sampling_time")
    timings = {"seconds": seconds, "sampling_seconds": sampling_seconds}
    diagnostics = diagnose(posterior, sample_stats, mixture.diagnosed) | timings
    log_likelihood = xr.Dataset(
        {"x": (("chain", "draw", "customer"), loglik.reshape(n_chains, n_draws, -1))},
        coords={"chain": posterior["chain"], "draw": posterior["draw"], "customer": customer},
    )
    described = list(posterior["chain"].values)  # the chains the assignments summarise
    if diagnostics["status"] == "multimodal":
        stack = stack_chains(
            xr.DataTree.from_dict({"posterior": posterior, "log_likelihood": log_likelihood}), "x"
        )
        for mode in diagnostics["modes"]:
            positions = [described.index(chain) for chain in mode["chains"]]
            mode["stacking_weight"] = float(stack.mode_weights([positions])[0])
        diagnostics["modes"].sort(key=lambda mode: -mode["stacking_weight"])
        described = diagnostics["modes"][0]["chains"]
        diagnostics["modes"][0] |= mode_convergence(posterior, mixture.diagnosed, described)
    per_chain = membership.reshape(n_chains, n_draws, *membership.shape[1:])
    chosen = per_chain[[list(posterior["chain"].values).index(c) for c in described]]
    assignments = summarize_memberships(
        chosen.reshape(-1, *membership.shape[1:]),
        len(described),
        customer.values,
        posterior["segment"].values,
    )
    assignments.attrs["chains"] = [int(chain) for chain in described]
    seed = identity["sampler"]["seed"]
    tree = xr.DataTree.from_dict(
        {
            "posterior": posterior,
            "sample_stats": sample_stats,
            "log_likelihood": log_likelihood,
            "posterior_predictive": predictive(model, seed, posterior),
            "prior_predictive": predictive(model, seed),
            "observed_data": sampled["observed_data"].to_dataset(),
            "assignments": assignments,
            "relabel": permutation_dataarray(relabelling.permutation, posterior).to_dataset(),
        }
    )
    tree["relabel"].attrs |= {
        "method": "Stephens (2000) KL relabelling from an ECR-style pivot (max lp draw)",
        "iterations": relabelling.iterations,
        "meaning": "permutation[chain, draw, k] = sampled label that became segment k",
    }
    tree.attrs |= {
        "segment_config": json.dumps(identity),
        "segment_provenance": json.dumps(provenance()),
        "segment_diagnostics": json.dumps(diagnostics),
    }
    return tree


def described_mode(tree: xr.DataTree) -> xr.DataTree:
    """The fit restricted to the chains its assignments describe: every chain, or for a
    multimodal fit the mode with the largest stacking weight (profiles and plots use these)."""
    chains = tree["assignments"].attrs.get("chains")  # a 1-chain list is read back as a scalar
    chains = None if chains is None else [int(chain) for chain in np.atleast_1d(chains)]
    if chains is None or len(chains) == tree["posterior"].sizes["chain"]:
        return tree
    described = tree.copy()
    for name in DRAWN_GROUPS:  # chain_starts and prior_predictive have other chains
        described[name] = tree[name].to_dataset().sel(chain=chains)
    return described


def predictive(model: pm.Model, seed: int, posterior: xr.Dataset | None = None) -> xr.Dataset:
    """Replicated data sets (chain, draw, customer, feature), float32, about PPC_DRAWS of them.

    From the prior when ``posterior`` is None, else from evenly thinned posterior draws.
    """
    with model:
        if posterior is None:
            sampled = pm.sample_prior_predictive(
                draws=PPC_DRAWS, random_seed=seed, compile_kwargs=PREDICTIVE_COMPILE
            )
            replicated = sampled["prior_predictive"].to_dataset()
        else:
            step = max(1, posterior.sizes["chain"] * posterior.sizes["draw"] // PPC_DRAWS)
            thinned = posterior.isel(draw=slice(None, None, step))
            sampled = pm.sample_posterior_predictive(
                xr.DataTree.from_dict({"posterior": thinned}),
                random_seed=seed,
                progressbar=False,
                compile_kwargs=PREDICTIVE_COMPILE,
            )
            replicated = sampled["posterior_predictive"].to_dataset()
    return replicated.astype(np.float32)


def _stacked(values: xr.DataArray) -> np.ndarray:
    return values.stack(sample=("chain", "draw")).transpose("sample", ...).values


# What reading a damaged fit file raises: h5py's OSError for a file cut short or not HDF5,
# ValueError (JSONDecodeError) for a mangled configuration, KeyError for a missing group.
UNREADABLE = (OSError, ValueError, KeyError)


def unreadable_fit(path: Path, problem: str) -> InputError:
    """The one-line error for a saved fit that cannot be read (a copy cut short, a disk error,
    a file that is no fit); ``problem`` says what reading it ran into."""
    return InputError(
        f"{path}: not a readable fit file: truncated or corrupt ({problem}); "
        f"delete it and refit with segment fit --k {path.stem.removeprefix('K')} --out "
        f"{path.parent.parent} (and the run's data options)"
    )


def saved_attrs(path: Path) -> dict:
    """The JSON attrs of a saved fit (config, provenance, diagnostics) without loading draws;
    InputError (:func:`unreadable_fit`) when the file is not a readable fit.

    Only the root group's attributes are read (about 15 ms; opening the file as a DataTree
    decodes every group's variables first, about 1.1 s for a K = 4 fit, and the pipeline reads
    these attrs a dozen times)."""
    import h5netcdf

    try:
        with h5netcdf.File(path, "r") as handle:
            attrs = {
                key.removeprefix("segment_"): json.loads(value)
                for key, value in handle.attrs.items()
                if key.startswith("segment_")
            }
    except UNREADABLE as error:
        raise unreadable_fit(path, error.__class__.__name__) from None
    if "config" not in attrs:  # a NetCDF file, but not one segment fit wrote
        raise unreadable_fit(path, "no segment_config attribute")
    return attrs


def save_fit(tree: xr.DataTree, path: Path) -> None:
    """Write atomically: a killed run leaves the previous file or none, never a partial one."""
    with atomic_path(path) as temporary:
        tree.to_netcdf(temporary, engine="h5netcdf")


def load_fit(path: Path) -> xr.DataTree:
    """Open a saved fit fully into memory (the file is closed afterwards); InputError
    (:func:`unreadable_fit`) when it cannot be read."""
    try:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            return tree.load()
    except UNREADABLE as error:
        raise unreadable_fit(path, error.__class__.__name__) from None


def saved_fit_matches(path: Path, identity: dict) -> bool:
    """True when ``path`` holds a fit asked for with exactly this configuration (a fit the sweep
    sampled longer keeps the configuration it was asked for as ``request``); InputError when it
    exists but cannot be read."""
    if not path.exists():
        return False
    attrs = saved_attrs(path)
    return attrs.get("request", attrs["config"]) == identity

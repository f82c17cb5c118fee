"""Sample one posterior per K, post-process it, save it, and resume a sweep.

Per K: build the mixture, start every chain at the EM solution (one labelling), run NUTS
(nutpie by default), then on the saved draws: per-draw memberships and pointwise log-likelihood,
Stephens relabelling, assignment summaries, ArviZ diagnostics and prior and posterior predictive
samples (for the checks in analysis/checks.py).
Everything goes into one DataTree written atomically to ``fits/K{k}.nc`` with its configuration
(JSON) in the root attrs; a later run with the same configuration skips that K.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from analysis.assignments import summarize_memberships
from analysis.diagnostics import COLUMNS as DIAGNOSTIC_COLUMNS
from analysis.diagnostics import diagnose
from analysis.membership import memberships_and_loglik
from analysis.paths import RunPaths, atomic_path
from analysis.relabel import permutation_dataarray, permute, relabel_posterior, stephens
from analysis.scale import population, subsample_indices
from models import MIXTURES, Mixture

SAMPLERS = ("nutpie", "pymc")
# nutpie's compile backend. jax compiles a model in 3-4.5 s; numba in about 30 s with a warm
# PyTensor cache and 1.5-4.5 min without one, for 1.2-1.95x faster gradients at K <= 6 and
# 2.2-2.4x slower ones at K = 8, 10 on marketing (bench.compile).
BACKENDS = ("jax", "numba")
FIT_FORMAT = 1  # bump when the saved contents change, so old fits are not silently reused
PPC_DRAWS = 100  # replicated data sets kept for prior and posterior predictive checks
SAMPLE_STATS = ("lp", "diverging", "energy", "step_size")  # named alike by both samplers
# PPC_DRAWS replicated data sets need no optimised code: the Python linker compiles the draws
# in under 1 s, numba in about 7 s per K.
PREDICTIVE_COMPILE = {"mode": "FAST_COMPILE"}
PACKAGES = ("pymc", "pytensor", "arviz", "nutpie", "jax", "numpy", "scikit-learn")


@dataclass(frozen=True)
class SamplerSettings:
    chains: int = 4
    draws: int = 1000
    tune: int = 1000
    seed: int = 0
    sampler: str = "nutpie"
    backend: str = "jax"  # nutpie's compile backend (BACKENDS); pm.sample's NUTS ignores it


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
    subsample: int | None = None  # NUTS on this many random customers (analysis/scale.py)

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
        return json.loads(json.dumps(identity))  # as read back from a file: tuples -> lists


def backend_of(sampler: dict) -> str:
    """The compile backend of a saved fit's sampler settings: fits saved before the setting
    existed were compiled with numba."""
    return sampler.get("backend", "numba")


def sampling_settings(configs: list[dict]) -> dict[str, list[int]]:
    """Fit configurations grouped by how they were sampled: setting text, e.g. "4 chains x 1000
    draws (+1000 tune), nutpie (jax)", -> the K sampled that way (sorted)."""
    by_setting: dict[str, list[int]] = {}
    for config in sorted(configs, key=lambda c: c["K"]):
        sampler = config["sampler"]
        backend = f" ({backend_of(sampler)})" if sampler["sampler"] == "nutpie" else ""
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
    """Package versions and the git commit the fit was made with."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"versions": {p: version(p) for p in PACKAGES}, "git_commit": commit}


def nutpie_backend(backend: str) -> dict:
    """nutpie's compile options for ``backend`` (BACKENDS): jax compiles jax gradients too."""
    return {"backend": backend, "gradient_backend": "jax" if backend == "jax" else "pytensor"}


def run_sampler(model: pm.Model, initvals, settings: SamplerSettings, callback=None) -> xr.DataTree:
    """NUTS from ``initvals`` (one dict for all chains, or a list of one per chain: pymc only).

    ``callback(trace, draw)`` is ``pm.sample``'s per-draw callback (pymc sampler only); raising
    KeyboardInterrupt in it stops sampling and keeps the draws so far.
    """
    common = {
        "draws": settings.draws,
        "tune": settings.tune,
        "chains": settings.chains,
        "random_seed": settings.seed,
        "initvals": initvals,
        "model": model,
        "progressbar": True,
        "compute_convergence_checks": False,
    }
    if settings.sampler == "nutpie":
        # no jitter: every chain starts in the EM labelling; warm-up separates them
        compile_kwargs = {"jitter_rvs": set()} | nutpie_backend(settings.backend)
        sampled = pm.sample(**common, nuts_sampler="nutpie", compile_kwargs=compile_kwargs)
        stats = sampled["sample_stats"].to_dataset().rename(logp="lp")
    else:
        # forkserver: forked workers took 5.2x longer per gradient (bench.sweep, idiomatic K = 2),
        # and a fork would copy JAX's threads (a deadlock risk)
        cores = min(settings.chains, 2)
        sampled = pm.sample(
            **common, nuts_sampler="pymc", cores=cores, mp_ctx="forkserver", callback=callback
        )
        stats = sampled["sample_stats"].to_dataset()
    sampled["sample_stats"] = xr.DataTree(stats[list(SAMPLE_STATS)])
    return sampled


def fit_k(
    spec: FitSpec,
    x: np.ndarray,
    k: int,
    customers,
    features,
    initvals=None,
) -> xr.DataTree:
    """Sample and post-process the K-segment fit of model-scale ``x`` (N, D).

    With ``spec.subsample`` the posterior is fitted on that many random customers, and a
    ``population`` group holds every customer's assignments and log predictive density.
    """
    mixture = spec.mixture
    priors = mixture.merged_priors(spec.priors)
    customers = np.asarray(customers)
    fitted = np.ones(len(x), dtype=bool)
    if spec.subsample is not None:
        fitted[:] = False
        fitted[subsample_indices(len(x), spec.subsample, spec.sampler.seed)] = True
    model = spec.build_model(x[fitted], k, customers[fitted], features)
    if initvals is None:
        initvals = mixture.initial_point(
            x[fitted], k, priors=priors, seed=spec.sampler.seed, **spec.options
        )
    started = time.perf_counter()
    sampled = run_sampler(model, initvals, spec.sampler)
    seconds = time.perf_counter() - started
    tree = postprocess(sampled, model, mixture, x[fitted], spec.identity(k), seconds)
    if spec.subsample is not None:
        posterior = tree["posterior"].to_dataset()
        started = time.perf_counter()
        label = f"[K={k}] "
        tree["population"] = population(
            mixture, spec.options, x, customers, fitted, posterior, label
        )
        tree["population"].attrs["seconds"] = time.perf_counter() - started
    return tree


def postprocess(
    sampled: xr.DataTree,
    model: pm.Model,
    mixture: Mixture,
    x: np.ndarray,
    identity: dict,
    seconds: float,
) -> xr.DataTree:
    """Relabel, summarise assignments, diagnose and assemble the DataTree that is saved."""
    posterior = sampled["posterior"].to_dataset()
    sample_stats = sampled["sample_stats"].to_dataset()
    membership, loglik = memberships_and_loglik(mixture, identity["options"], x, posterior)
    pivot = int(np.argmax(_stacked(sample_stats["lp"])))
    relabelling = stephens(membership, pivot)
    posterior = relabel_posterior(posterior, relabelling.permutation)
    membership = permute(membership, relabelling.permutation)
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    customer = sampled["observed_data"]["customer"]
    assignments = summarize_memberships(
        membership, n_chains, customer.values, posterior["segment"].values
    )
    sampling_seconds = sampled["posterior"].attrs.get("sampling_time")
    timings = {"seconds": seconds, "sampling_seconds": sampling_seconds}
    diagnostics = diagnose(posterior, sample_stats, mixture.diagnosed) | timings
    log_likelihood = xr.Dataset(
        {"x": (("chain", "draw", "customer"), loglik.reshape(n_chains, n_draws, -1))},
        coords={"chain": posterior["chain"], "draw": posterior["draw"], "customer": customer},
    )
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


def saved_attrs(path: Path) -> dict:
    """The JSON attrs of a saved fit (config, provenance, diagnostics) without loading draws."""
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        return {
            key.removeprefix("segment_"): json.loads(value)
            for key, value in tree.attrs.items()
            if key.startswith("segment_")
        }


def save_fit(tree: xr.DataTree, path: Path) -> None:
    """Write atomically: a killed run leaves the previous file or none, never a partial one."""
    with atomic_path(path) as temporary:
        tree.to_netcdf(temporary, engine="h5netcdf")


def load_fit(path: Path) -> xr.DataTree:
    """Open a saved fit fully into memory (the file is closed afterwards)."""
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        return tree.load()


def saved_fit_matches(path: Path, identity: dict) -> bool:
    """True when ``path`` holds a readable fit made with exactly this configuration."""
    if not path.exists():
        return False
    try:
        return saved_attrs(path).get("config") == identity
    except (OSError, ValueError, KeyError):
        return False


def fit_sweep(
    spec: FitSpec, x: np.ndarray, ks: list[int], customers, features, paths: RunPaths
) -> list[dict]:
    """Fit every K not already saved with the same configuration; returns diagnostics rows."""
    rows = []
    for position, k in enumerate(ks, start=1):
        path = paths.fit(k)
        if saved_fit_matches(path, spec.identity(k)):
            print(f"[K={k}] ({position}/{len(ks)}) already fitted: {path}", file=sys.stderr)
        else:
            print(
                f"[K={k}] ({position}/{len(ks)}) sampling {spec.sampler.chains} chains "
                f"x ({spec.sampler.tune} tune + {spec.sampler.draws} draws)",
                file=sys.stderr,
            )
            save_fit(fit_k(spec, x, k, customers, features), path)
        row = {"K": k} | saved_attrs(path)["diagnostics"]
        rows.append(row)
        loud = "" if row["status"] == "ok" else f"  <<< FAILED: {row['reason']}"
        print(
            f"[K={k}] status {row['status']}, max R-hat {row['max_rhat']:.3f}, "
            f"min ESS {min(row['min_ess_bulk'], row['min_ess_tail']):.0f}, "
            f"{row['divergences']} divergences, {row['seconds']:.0f} s{loud}",
            file=sys.stderr,
        )
    return rows


def write_diagnostics(paths: RunPaths) -> pd.DataFrame:
    """Rebuild ``diagnostics.csv`` from every saved fit in the run directory (sorted by K)."""
    rows = [
        {"K": saved_attrs(path)["config"]["K"]} | saved_attrs(path)["diagnostics"]
        for path in paths.fit_files()
    ]
    table = pd.DataFrame(rows, columns=list(DIAGNOSTIC_COLUMNS)).sort_values("K")
    with atomic_path(paths.diagnostics_csv) as temporary:
        table.to_csv(temporary, index=False)
    return table

"""Time the project's K sweep against NumPyro, the idiomatic PyMC mixture and scikit-learn EM.

``python -m bench.sweep [--quick] [--k 2,4,6,9] [--models gmm,hurdle] [--tune N] [--data PATH]``
(``make bench`` runs --quick).

On ``marketing`` (log-standardize, 2,240 x 6), for every K:

1. project: ``analysis.inference.fit.fit_k`` (vectorized likelihood, nutpie, EM start), wall time
   split into compilation (model build + nutpie compile) and sampling, then relabelling/diagnostics;
   method ``project`` is the GMM (the same posterior as the idiomatic model), ``project-hurdle`` the
   hurdle mixture (models/hurdle.py: a point mass at zero spend, so a different model of the same
   data, timed with the same settings);
2. numpyro: the project's model (``FitSpec.build_model``), priors and EM chain starts sampled by
   NumPyro's NUTS through ``pm.sample(nuts_sampler="numpyro")`` with the project's chains and
   draws (method ``numpyro``; ``numpyro-hurdle`` for the hurdle), chains one after another
   (``chain_method="sequential"``), wall time including JAX compilation; needs the ``bench``
   extra (``pip install -e '.[bench]'``), skipped with a note without it;
3. idiomatic: the same priors with ``pm.Mixture`` over K ``pm.MvNormal.dist`` sampled by
   ``pm.sample()`` defaults (``bench.idiomatic``, in a child process that stops sampling at
   ``--cap`` seconds), fewer draws;
4. sklearn: ``GaussianMixture(K, full, n_init=10)`` wall time.

Every Bayesian fit's draws go through the same relabelling and diagnostics. ESS is the minimum
bulk ESS over weights and means after relabelling; ESS/s divides it by the whole wall time of the
fit (compile + sampling) and, separately, by sampling time alone (numpyro's sampling time
includes the compilation of its NUTS loop, which runs inside ``MCMC.run``). An idiomatic fit
stopped at the cap is measured on the posterior draws it made by then (its row says how far
every chain got); one with no posterior draw has ESS/s 0 and an infinite ratio.
Compilation options (numba, jax, caches) are measured by ``bench.compile``.
Writes ``bench/results/sweep.csv`` (one row per method and K) and ``bench/results/ratios.csv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from sklearn.mixture import GaussianMixture

from analysis.inference.fit import (
    SAMPLE_STATS,
    FitSpec,
    SamplerSettings,
    fit_k,
    load_fit,
    postprocess,
    save_fit,
    saved_attrs,
)
from analysis.inference.starts import chain_starts
from bench.idiomatic import marketing_spec
from bench.output import DEFAULT_DATA, RESULTS, machine, peak_rss_mb, write_table

SETTINGS = {
    # project chains x (tune + draws); idiomatic chains x (tune + draws) and its cap in seconds
    "full": {"k": "2,4,6,9", "chains": 4, "tune": 1000, "draws": 1000,
             "idiomatic_tune": 200, "idiomatic_draws": 200, "cap": 480},
    "quick": {"k": "2,4", "chains": 2, "tune": 300, "draws": 300,
              "idiomatic_tune": 100, "idiomatic_draws": 100, "cap": 120},
}  # fmt: skip
SKLEARN_N_INIT = 10
ESS_VARIABLES = ["weights", "means"]


def fit_row(method: str, k: int, path: Path, draws: int) -> dict:
    """Timings, diagnostics and ESS of a saved fit."""
    attrs = saved_attrs(path)["diagnostics"]
    posterior = load_fit(path)["posterior"].to_dataset()
    ess = az.ess(posterior[ESS_VARIABLES], method="bulk")
    min_ess = float(min(ess[v].min() for v in ESS_VARIABLES))
    seconds, sampling = attrs["seconds"], attrs["sampling_seconds"]
    return {
        "method": method,
        "K": k,
        "status": attrs["status"],
        "reason": attrs["reason"],
        "draws": draws,
        "seconds": seconds,
        "compile_seconds": seconds - sampling,
        "sampling_seconds": sampling,
        "min_ess_bulk": min_ess,
        "ess_per_second": min_ess / seconds,
        "ess_per_sampling_second": min_ess / sampling,
        "max_rhat": attrs["max_rhat"],
        "divergences": attrs["divergences"],
    }


PROJECT_METHODS = {"gmm": "project", "hurdle": "project-hurdle"}
# the NumPyro peer of each project method: the same model, priors and starts
NUMPYRO_METHODS = {"project": "numpyro", "project-hurdle": "numpyro-hurdle"}
NUMPYRO_MISSING = (
    "bench.sweep: numpyro is not installed, so the numpyro peer is skipped "
    "(install it with: pip install -e '.[bench]')"
)
# numpyro 0.22 with jax 0.12 fails with chain_method="parallel" (TracerArrayConversionError);
# without XLA host devices it would run the chains one after another anyway
NUMPYRO_CHAIN_METHOD = "sequential"


def project_fit(spec: FitSpec, x, k: int, customers, features, workdir: Path) -> dict:
    method = PROJECT_METHODS[spec.model]
    path = workdir / f"{method}_K{k}.nc"
    save_fit(fit_k(spec, x, k, customers, features), path)
    return fit_row(method, k, path, spec.sampler.chains * spec.sampler.draws)


def numpyro_fit(spec: FitSpec, x, k: int, customers, features, workdir: Path) -> dict:
    """The NumPyro peer of :func:`project_fit`: the same fit sampled by NumPyro's NUTS.

    The model is the project's (``spec.build_model``, the marginalized mixture with its
    priors), sampled by ``pm.sample(nuts_sampler="numpyro")`` with the project's chains, warm-up,
    draws and seed, each chain started at the project's EM start
    (:func:`analysis.inference.starts.chain_starts`) without PyMC's U(-1, 1) jitter. The clock runs,
    as for the project, from the EM starts to the last draw, JAX compilation included.

    Parameters
    ----------
    spec : FitSpec
        The project's fit spec; its sampler settings are kept, with ``sampler="numpyro"``.
    x : np.ndarray
        Model-scale data (N, D).
    k : int
        Number of segments.
    customers, features
        Customer ids (N,) and feature names (D,).
    workdir : Path
        Where the fit is saved (``numpyro_K{k}.nc`` or ``numpyro-hurdle_K{k}.nc``).

    Returns
    -------
    dict
        The sweep row (:func:`fit_row`) of method ``NUMPYRO_METHODS[project method]``.
    """
    method = NUMPYRO_METHODS[PROJECT_METHODS[spec.model]]
    settings = dataclasses.replace(spec.sampler, sampler="numpyro")
    spec = dataclasses.replace(spec, sampler=settings)
    model = spec.build_model(x, k, customers, features)
    started = time.perf_counter()
    starts = chain_starts(
        spec.mixture,
        x,
        k,
        chains=settings.chains,
        seed=settings.seed,
        priors=spec.mixture.merged_priors(spec.priors),
        options=spec.options,
    )
    sampled = pm.sample(
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        random_seed=settings.seed,
        initvals=starts,
        model=model,
        nuts_sampler="numpyro",
        nuts={"chain_method": NUMPYRO_CHAIN_METHOD, "jitter": False},
        progressbar=False,
        compute_convergence_checks=False,
    )
    seconds = time.perf_counter() - started
    sampled = sampled.map_over_datasets(xr.Dataset.as_numpy)  # PyMC leaves the draws in JAX arrays
    stats = sampled["sample_stats"].to_dataset()
    # PyMC 6.4 renames NumPyro's potential energy (minus the log density) to lp
    stats["lp"] = -stats["lp"]
    sampled["sample_stats"] = xr.DataTree(stats[list(SAMPLE_STATS)])
    path = workdir / f"{method}_K{k}.nc"
    save_fit(postprocess(sampled, model, spec.mixture, x, spec.identity(k), seconds), path)
    return fit_row(method, k, path, settings.chains * settings.draws)


KILL_GRACE = 300  # seconds past the cap before a child that ignored it is killed


def idiomatic_fit(data: Path, k: int, settings: dict, seed: int, workdir: Path) -> dict:
    """Run bench.idiomatic in a child process, which stops sampling at the cap and keeps its
    posterior draws so far; the row says what every chain reached."""
    path = workdir / f"idiomatic_K{k}.nc"
    cap = settings["cap"]
    command = [
        sys.executable, "-m", "bench.idiomatic", "--data", str(data), "--k", str(k),
        "--chains", str(settings["chains"]), "--draws", str(settings["idiomatic_draws"]),
        "--tune", str(settings["idiomatic_tune"]), "--seed", str(seed), "--cap", str(cap),
        "--out", str(path),
    ]  # fmt: skip
    asked = f"{settings['chains']} x ({settings['idiomatic_tune']} + {settings['idiomatic_draws']})"
    child = subprocess.Popen(command, start_new_session=True)  # its own group: sampler workers
    try:
        if child.wait(timeout=cap + KILL_GRACE):
            raise RuntimeError(f"bench.idiomatic K={k} exited with status {child.returncode}")
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # stuck past the cap, e.g. in one long iteration
        child.wait()
        return {"method": "idiomatic", "K": k, "status": "killed", "reason": f"{asked}: no "
                f"draw within {cap + KILL_GRACE:.0f} s", "seconds": cap + KILL_GRACE}  # fmt: skip
    progress = json.loads(path.with_suffix(".progress.json").read_text())
    reached = {
        "tune_reached": sum(progress["tune"]),
        "draws_reached": sum(progress["draws"]),
        "gradient_evaluations": sum(progress["gradient_evaluations"]),
    }
    capped = f"stopped at the cap ({cap:.0f} s) of {asked}: " if progress["capped"] else ""
    if not path.exists():  # every chain still in warm-up: no posterior draw to measure
        return {
            "method": "idiomatic",
            "K": k,
            "status": "timeout",
            "reason": f"{capped}warm-up iterations per chain {progress['tune']}, no posterior draw",
            "seconds": progress["seconds"],
            "draws": 0,
            "ess_per_second": 0.0,
        } | reached
    row = fit_row("idiomatic", k, path, reached["draws_reached"]) | reached
    row["reason"] = capped + str(row["reason"] or "")
    return row


def sklearn_fit(x, k: int, seed: int) -> dict:
    started = time.perf_counter()
    GaussianMixture(k, covariance_type="full", n_init=SKLEARN_N_INIT, random_state=seed).fit(x)
    return {"method": "sklearn", "K": k, "status": "ok", "seconds": time.perf_counter() - started}


def ratios(table: pd.DataFrame) -> pd.DataFrame:
    """ESS/s ratios per project method and K, then sweep walls per project method.

    Parameters
    ----------
    table : pd.DataFrame
        The sweep rows (:func:`fit_row` and the peers' rows), with an ``idiomatic`` and a
        ``sklearn`` row per K; the NumPyro peer's rows (``NUMPYRO_METHODS``) are optional.

    Returns
    -------
    pd.DataFrame
        Per project method and K: its ESS/s over the idiomatic ESS/s (wall and sampling time) and
        over its NumPyro peer's (wall), with the fits' statuses; then per project method
        (``K`` = "sweep") the summed wall seconds over sklearn's, and the peer's sum.
    """
    by = table.set_index(["method", "K"])
    methods = [m for m in PROJECT_METHODS.values() if m in set(table["method"])]
    rows = []
    for method in methods:
        peer = NUMPYRO_METHODS[method]
        for k in sorted(table["K"].unique()):
            project, idiomatic = by.loc[(method, k)], by.loc[("idiomatic", k)]
            with np.errstate(divide="ignore"):  # no idiomatic posterior draw: infinite ratio
                row = {
                    "method": method,
                    "K": k,
                    "project_ess_per_s": project["ess_per_second"],
                    "idiomatic_ess_per_s": idiomatic["ess_per_second"],
                    "ess_per_s_ratio": np.float64(project["ess_per_second"])
                    / idiomatic["ess_per_second"],
                    "ess_per_sampling_s_ratio": np.float64(project["ess_per_sampling_second"])
                    / idiomatic.get("ess_per_sampling_second", np.nan),
                }
            if (peer, k) in by.index:
                numpyro = by.loc[(peer, k)]
                row |= {
                    "numpyro_ess_per_s": numpyro["ess_per_second"],
                    "numpyro_ess_per_s_ratio": project["ess_per_second"]
                    / numpyro["ess_per_second"],
                    "numpyro_status": numpyro["status"],
                }
            rows.append(
                row | {"project_status": project["status"], "idiomatic_status": idiomatic["status"]}
            )
    walls = table.groupby("method")["seconds"].sum()
    for method in methods:
        row = {
            "method": method,
            "K": "sweep",
            "project_seconds": walls[method],
            "sklearn_seconds": walls["sklearn"],
            "project_over_sklearn": walls[method] / walls["sklearn"],
        }
        if NUMPYRO_METHODS[method] in walls:
            row["numpyro_seconds"] = walls[NUMPYRO_METHODS[method]]
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small settings for iteration")
    parser.add_argument("--k", help="comma-separated K list (default 2,4,6,9; quick 2,4)")
    parser.add_argument("--cap", type=float, help="idiomatic wall-clock cap per K, seconds")
    parser.add_argument(
        "--tune", type=int, help="project warm-up iterations per chain (default 1000; quick 300)"
    )
    parser.add_argument(
        "--models", default="gmm,hurdle", help="project models to time (default gmm,hurdle)"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    settings = SETTINGS["quick" if args.quick else "full"] | {
        key: value
        for key, value in (("k", args.k), ("cap", args.cap), ("tune", args.tune))
        if value is not None
    }
    ks = [int(k) for k in settings["k"].split(",")]

    sampler = SamplerSettings(settings["chains"], settings["draws"], settings["tune"], args.seed)
    specs = {}
    for model in args.models.split(","):
        if model not in PROJECT_METHODS:
            parser.error(f"--models: unknown model {model!r} (choose from gmm, hurdle)")
        specs[model], x, dataset = marketing_spec(args.data, {"covariance": "full"}, sampler, model)
    spec = next(iter(specs.values()))
    customers, features = dataset.features.index, list(spec.transform["columns"])
    print(
        f"bench.sweep: {dataset.source} {x.shape[0]} x {x.shape[1]}, K = {ks}, {machine()}; "
        f"settings {settings}",
        file=sys.stderr,
    )
    with_numpyro = importlib.util.find_spec("numpyro") is not None
    if not with_numpyro:
        print(NUMPYRO_MISSING, file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        for step, k in enumerate(ks, start=1):
            say = f"[K={k}] ({step}/{len(ks)})"
            for model, model_spec in specs.items():
                print(f"{say} project {model} fit", file=sys.stderr)
                rows.append(project_fit(model_spec, x, k, customers, features, workdir))
                rows[-1]["peak_rss_mb"] = peak_rss_mb()
                if with_numpyro:
                    print(f"{say} numpyro {model} fit ({NUMPYRO_CHAIN_METHOD})", file=sys.stderr)
                    rows.append(numpyro_fit(model_spec, x, k, customers, features, workdir))
                    rows[-1]["peak_rss_mb"] = peak_rss_mb()
            print(f"{say} idiomatic pm.Mixture fit (cap {settings['cap']:.0f} s)", file=sys.stderr)
            rows.append(idiomatic_fit(args.data, k, settings, args.seed, workdir))
            rows[-1]["peak_rss_mb"] = peak_rss_mb(resource.RUSAGE_CHILDREN)
            print(f"{say} scikit-learn GaussianMixture n_init={SKLEARN_N_INIT}", file=sys.stderr)
            rows.append(sklearn_fit(x, k, args.seed))
    table = pd.DataFrame(rows)
    ratio_table = ratios(table)
    write_table(table, args.out / "sweep.csv", shown=table.drop(columns="reason"))
    write_table(ratio_table, args.out / "ratios.csv")
    for row in rows:
        if row["status"] != "ok":
            print(f"{row['method']} K={row['K']}: {row['status'].upper()}: {row['reason']}")
    print(f"wrote {args.out / 'sweep.csv'} and {args.out / 'ratios.csv'}")


if __name__ == "__main__":
    main()

"""Measure nutpie's compile options for the project's models: compile time and gradient cost per K.

``python -m bench.compile [--quick] [--k 1,2,4,6,8,10] [--model gmm|hurdle] [--data PATH]``

On ``marketing`` (log-standardize, 2,240 x 6), the GMM (default) or the hurdle mixture (the
default model for spend with zeros), every K of the list is compiled and sampled
(chains x (tune + draws), EM start) in a child process of its own, under three options:

1. ``numba-fresh``: nutpie's numba backend with a new, empty PyTensor compile directory, the
   K's in order, as a first sweep on a fresh machine (or CI) pays it;
2. ``numba-warm``: the same directory again, as a rerun of that sweep pays it (PyTensor's
   on-disk numba cache is full; nutpie's own wrapper is compiled again);
3. ``jax``: nutpie's jax backend with jax gradients (what ``segment fit`` uses by default).

Per option and K: compile seconds (model build, nutpie compile and one first evaluation, where
jax compiles its XLA code), sampling seconds, gradient
evaluations (warm-up included) and wall microseconds per evaluation (sampling wall over all
chains' evaluations). The ratios then say what each option costs: jax over numba-warm for
compile and for the gradient, and, for a padded model compiled once at K_max and reused for
every K (the other way to pay compilation once), the gradient at K_max over the gradient at K.
Writes ``bench/results/compile.csv`` and ``bench/results/compile_ratios.csv`` (the hurdle:
``compile_hurdle.csv``, ``compile_hurdle_ratios.csv``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.output import DEFAULT_DATA, RESULTS, machine, write_table

SETTINGS = {
    "full": {"k": "1,2,4,6,8,10", "chains": 4, "tune": 300, "draws": 300},
    "quick": {"k": "2,4", "chains": 2, "tune": 100, "draws": 100},
}
OPTIONS = ("numba-fresh", "numba-warm", "jax")


def child(
    data: Path, model_name: str, k: int, backend: str, chains: int, tune: int, draws: int
) -> dict:
    """Compile and sample the K model once; the measurements (run in the child process)."""
    import nutpie

    from analysis.inference.fit import SamplerSettings, nutpie_backend
    from bench.idiomatic import marketing_spec

    settings = SamplerSettings(chains, draws, tune, seed=0, backend=backend)
    spec, x, dataset = marketing_spec(str(data), {"covariance": "full"}, settings, model_name)
    priors = spec.mixture.merged_priors(spec.priors)
    initial = spec.mixture.initial_point(x, k, priors=priors, seed=0, **spec.options)
    started = time.perf_counter()
    model = spec.build_model(x, k, dataset.features.index, list(spec.transform["columns"]))
    compiled = nutpie.compile_pymc_model(
        model,
        initial_points=initial,
        jitter_rvs=set(),
        **nutpie_backend(backend),
    )
    # jax compiles its XLA code at the first evaluation: one short chain pays it here
    nutpie.sample(compiled, draws=1, tune=1, chains=1, seed=0, progress_bar=False)
    compile_seconds = time.perf_counter() - started
    started = time.perf_counter()
    trace = nutpie.sample(
        compiled, draws=draws, tune=tune, chains=chains, seed=0, save_warmup=True,
        progress_bar=False,
    )  # fmt: skip
    sampling_seconds = time.perf_counter() - started
    evaluations = sum(
        int(trace[group]["n_steps"].sum()) for group in ("warmup_sample_stats", "sample_stats")
    )
    return {
        "compile_seconds": compile_seconds,
        "sampling_seconds": sampling_seconds,
        "gradient_evaluations": evaluations,
        "microseconds_per_gradient": 1e6 * sampling_seconds / evaluations,
    }


def run_option(
    option: str, model_name: str, k: int, settings: dict, data: Path, compiledir: Path
) -> dict:
    """One child process; numba options share ``compiledir`` as their PyTensor cache."""
    backend = option.split("-")[0]
    env = os.environ | {"PYTENSOR_FLAGS": f"base_compiledir={compiledir}"}
    command = [
        sys.executable, "-m", "bench.compile", "--child", "--k", str(k), "--backend", backend,
        "--data", str(data), "--model", model_name, "--chains", str(settings["chains"]),
        "--tune", str(settings["tune"]), "--draws", str(settings["draws"]),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"bench.compile {option} K={k} failed:\n{done.stderr[-2000:]}")
    return {"option": option, "K": k} | json.loads(done.stdout.strip().splitlines()[-1])


def ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Per K: jax over numba-warm (compile, gradient, compile + sampling) and the padded-model
    factor, numba's gradient at the largest K over its gradient at this K."""
    by = table.set_index(["option", "K"])
    k_max = table["K"].max()
    rows = []
    for k in sorted(table["K"].unique()):
        jax, warm, fresh = by.loc[("jax", k)], by.loc[("numba-warm", k)], by.loc[("numba-fresh", k)]
        rows.append(
            {
                "K": k,
                "jax_over_warm_compile": jax["compile_seconds"] / warm["compile_seconds"],
                "jax_over_fresh_compile": jax["compile_seconds"] / fresh["compile_seconds"],
                "jax_over_warm_gradient": jax["microseconds_per_gradient"]
                / warm["microseconds_per_gradient"],
                "jax_over_warm_total": (jax["compile_seconds"] + jax["sampling_seconds"])
                / (warm["compile_seconds"] + warm["sampling_seconds"]),
                f"padded_K{k_max}_gradient_factor": by.loc[("numba-warm", k_max)][
                    "microseconds_per_gradient"
                ]
                / warm["microseconds_per_gradient"],
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small settings for iteration")
    parser.add_argument("--k", help="comma-separated K list (default 1,2,4,6,8,10; quick 2,4)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", choices=("gmm", "hurdle"), default="gmm")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    for name in ("chains", "tune", "draws"):
        parser.add_argument(f"--{name}", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        k = int(args.k)
        print(
            json.dumps(
                child(args.data, args.model, k, args.backend, args.chains, args.tune, args.draws)
            )
        )
        return
    settings = SETTINGS["quick" if args.quick else "full"]
    ks = [int(k) for k in (args.k or settings["k"]).split(",")]
    print(
        f"bench.compile: {args.model}, K = {ks}, options {OPTIONS}, {machine()}; "
        f"settings {settings}",
        file=sys.stderr,
    )
    rows = []
    with tempfile.TemporaryDirectory() as compiledir:
        for option in OPTIONS:
            for k in ks:
                print(f"[{option}] K={k}", file=sys.stderr)
                rows.append(
                    run_option(option, args.model, k, settings, args.data, Path(compiledir))
                )
                print(
                    f"[{option}] K={k}: compile {rows[-1]['compile_seconds']:.1f} s, "
                    f"{rows[-1]['microseconds_per_gradient']:.0f} us per gradient",
                    file=sys.stderr,
                )
    table = pd.DataFrame(rows)
    ratio_table = ratios(table)
    suffix = "" if args.model == "gmm" else f"_{args.model}"
    written = [args.out / f"compile{suffix}.csv", args.out / f"compile{suffix}_ratios.csv"]
    write_table(table, written[0])
    write_table(ratio_table, written[1])
    print(f"wrote {written[0]} and {written[1]}")


if __name__ == "__main__":
    main()

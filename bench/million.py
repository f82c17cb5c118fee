"""A million customers, in-process and on a local Dask cluster of 2 workers, in one run.

``python -m bench.million [--n 1000000] [--subsample 10000] [--workers 2] [--chains 2]
[--tune 300] [--draws 250] [--score-draws 200]``

1,000,000 synthetic customers with known truth (``analysis.data.simulate.gaussian_mixture``:
K = 4, 6 features, the segments of ``bench.scale``) are written once as a CSV file. Then, for each
mode (in-process, then ``--workers 2``), in a fresh process of its own so that peak memory is
that mode's:

1. ``segment fit --dataset csv --k 4 --subsample 10000``: NUTS on 10,000 random customers, then
   the population pass assigns all 1,000,000 (blocks of customers; on the cluster, runs of
   blocks are tasks) into the fit file's ``population`` group;
2. ``segment score`` of the same 1,000,000 rows with the saved posterior (``--score-draws``
   thinned draws): ``scores.csv``, the columns of ``assignments.csv`` (modal segment, its
   probability with a 94% HDI, each segment's probability with its HDI, lpd, novel).

Printed per mode: wall time of each step, peak RSS of the client process (with the scheduler and
nannies of a local cluster) and of each worker, and the adjusted Rand index of the modal
segments (population group and scores.csv) against the true labels; then the cluster/in-process
ratios, and whether both modes gave the same assignments. Memory stays bounded by the block size
(``analysis.inference.subsample.BLOCK_ELEMENTS``): no N x draws array is ever made.

Writes ``bench/results/million.csv`` (with the date, the commit and the 1-minute load before each
mode). ``python -m bench.million --markdown`` prints that file as bench/README.md's table, to paste
between its ``<!-- BEGIN million -->`` and ``<!-- END million -->`` lines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.inference.fit import source_commit
from bench.output import RESULTS, machine, write_table
from bench.scale import N_FEATURES, simulated

FEATURES = [f"f{i}" for i in range(N_FEATURES)]


def write_customers(directory: Path, n: int, seed: int) -> tuple[Path, Path]:
    """(customers CSV with an ``id`` column, true labels .npy) of ``n`` simulated customers."""
    truth = simulated(n, seed)
    data, labels = directory / "customers.csv", directory / "labels.npy"
    frame = pd.DataFrame(truth.x, columns=FEATURES)
    frame.insert(0, "id", np.arange(n))
    frame.to_csv(data, index=False, float_format="%.6f")
    np.save(labels, truth.labels)
    return data, labels


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_mode(args: argparse.Namespace) -> dict:
    """One mode, in this process: fit, then score; timings, peak memory and ARI."""
    from sklearn.metrics import adjusted_rand_score

    from analysis.cli import main as segment
    from analysis.distributed import ClusterOptions, open_cluster
    from analysis.inference.fit import load_fit

    out = Path(args.out)
    cluster_args = [] if args.workers is None else ["--workers", str(args.workers)]
    fit = [
        "fit", "--dataset", "csv", "--data", args.data, "--features", ",".join(FEATURES),
        "--id-column", "id", "--k", "4", "--subsample", str(args.subsample), "--chains",
        str(args.chains), "--tune", str(args.tune), "--draws", str(args.draws), "--seed", "0",
        "--patience", "0", "--out", str(out), *cluster_args,
    ]  # fmt: skip
    score = [
        "score", "--run", str(out), "--data", args.data, "--id-column", "id", "--k", "4",
        "--draws", str(args.score_draws), *cluster_args,
    ]  # fmt: skip
    result = {"mode": "in-process" if args.workers is None else f"{args.workers} workers"}
    options = ClusterOptions(workers=args.workers)
    with open_cluster(options) as cluster:  # the commands below reuse it (open_cluster nests)
        started = time.perf_counter()
        assert segment(fit) == 0
        result["fit_s"] = time.perf_counter() - started
        started = time.perf_counter()
        assert segment(score) == 0
        result["score_s"] = time.perf_counter() - started
        if cluster is not None:
            worker_peaks = cluster.client.run(peak_mb)
            result["worker_peak_mb"] = sorted(round(v) for v in worker_peaks.values())
    result["client_peak_mb"] = round(peak_mb())
    labels = np.load(args.labels)
    tree = load_fit(out / "fits" / "K4.nc")
    population = tree["population"]
    result["population_vars"] = sorted(population.data_vars)
    modal = population["modal_segment"].values
    result["ari_population"] = adjusted_rand_score(labels, modal)
    scores = pd.read_csv(out / "scores.csv")
    result["scores_columns"] = list(scores.columns)
    result["ari_scores"] = adjusted_rand_score(labels, scores["segment"].to_numpy())
    diagnostics = json.loads(tree.attrs["segment_diagnostics"])
    result |= {
        "status": diagnostics["status"],
        "max_rhat": diagnostics["max_rhat"],
        "sampling_s": diagnostics["seconds"],
        "population_s": float(population.attrs["seconds"]),
    }
    np.save(out / "modal.npy", modal)
    np.save(out / "scores_segment.npy", scores["segment"].to_numpy())
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.million")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--subsample", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="of the cluster mode")
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--draws", type=int, default=250)
    parser.add_argument("--score-draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--markdown", action="store_true", help="print bench/results/million.csv; run nothing"
    )
    parser.add_argument("--mode", choices=("in-process", "cluster"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--labels", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode is not None:  # a child: one mode, its result as JSON on the last line
        if args.mode == "in-process":
            args.workers = None
        print(json.dumps(run_mode(args)), flush=True)
        return
    if args.markdown:
        print(markdown(pd.read_csv(RESULTS / "million.csv")))
        return
    print(f"machine: {machine()}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="million-") as scratch:
        scratch = Path(scratch)
        started = time.perf_counter()
        data, labels = write_customers(scratch, args.n, args.seed)
        print(f"wrote {args.n:,} customers in {time.perf_counter() - started:.0f} s", flush=True)
        for mode in ("in-process", "cluster"):
            command = [
                sys.executable, "-m", "bench.million", "--mode", mode, "--data", str(data),
                "--labels", str(labels), "--out", str(scratch / mode), "--workers",
                str(args.workers), "--subsample", str(args.subsample), "--chains",
                str(args.chains), "--tune", str(args.tune), "--draws", str(args.draws),
                "--score-draws", str(args.score_draws),
            ]  # fmt: skip
            load = os.getloadavg()[0]
            started = time.perf_counter()
            child = subprocess.run(command, capture_output=True, text=True)
            if child.returncode != 0:
                print(child.stderr[-5000:], file=sys.stderr)
                raise SystemExit(f"{mode}: exit {child.returncode}")
            result = json.loads(child.stdout.strip().splitlines()[-1])
            result["total_s"] = time.perf_counter() - started
            result["load_before"] = load
            results.append(result)
            print(f"{mode}: done in {result['total_s']:.0f} s", flush=True)
        same = {
            name: bool(
                np.array_equal(
                    np.load(scratch / "in-process" / name), np.load(scratch / "cluster" / name)
                )
            )
            for name in ("modal.npy", "scores_segment.npy")
        }
    local, remote = results
    measured = {"date": f"{datetime.now(UTC):%Y-%m-%d}", "commit": source_commit()[:7]}
    print(f"fit file population group: {', '.join(local['population_vars'])}")
    print(f"scores.csv columns: {', '.join(local['scores_columns'])}")
    print(f"same modal segments in both modes: fit {same['modal.npy']}, "
          f"score {same['scores_segment.npy']}")  # fmt: skip
    rows = []
    for result in results:
        rows.append(
            {
                "mode": result["mode"],
                "fit_s": result["fit_s"],
                "sampling_s": result["sampling_s"],
                "population_s": result["population_s"],
                "score_s": result["score_s"],
                "total_s": result["total_s"],
                "client_peak_mb": result["client_peak_mb"],
                "worker_peak_mb": " / ".join(map(str, result.get("worker_peak_mb", []))) or "-",
                "ari_population": result["ari_population"],
                "ari_scores": result["ari_scores"],
                "status": result["status"],
                "max_rhat": result["max_rhat"],
                "load_before": result["load_before"],
                **measured,
            }
        )
    rows.append(
        {
            "mode": "ratio (cluster / in-process)",
            **{
                column: remote[column] / local[column]
                for column in ("fit_s", "sampling_s", "population_s", "score_s", "total_s")
            },
            "client_peak_mb": remote["client_peak_mb"] / local["client_peak_mb"],
            **measured,
        }
    )
    write_table(pd.DataFrame(rows), RESULTS / "million.csv")


def markdown(table: pd.DataFrame) -> str:
    """bench/README.md's table of ``million.csv``: a line saying when, at which commit and under
    what load, then one row per mode and the cluster / in-process ratios."""
    modes, ratio = table.iloc[:-1], table.iloc[-1]
    loads = ", ".join(f"{row['mode']} {row['load_before']:.1f}" for _, row in modes.iterrows())
    lines = [
        f"Measured {ratio['date']} at {ratio['commit']}; 1-minute load before each mode: {loads}.",
        "",
        "| mode | fit (s) | of which sampling | population pass | score (s) | total (s) "
        "| peak RSS client (MB) | peak RSS workers (MB) | ARI fit | ARI score "
        "| status (max R-hat) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    seconds = ("fit_s", "sampling_s", "population_s", "score_s", "total_s")
    for _, row in modes.iterrows():
        lines.append(
            f"| {row['mode']} | "
            + " | ".join(f"{row[name]:.0f}" for name in seconds)
            + f" | {row['client_peak_mb']:,.0f} | {row['worker_peak_mb']} | "
            f"{row['ari_population']:.3f} | {row['ari_scores']:.3f} | "
            f"{row['status']} ({row['max_rhat']:.3f}) |"
        )
    lines.append(
        "| ratio | "
        + " | ".join(f"{ratio[name]:.2f}" for name in seconds)
        + f" | {ratio['client_peak_mb']:.2f} | | | | |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""The environment of a Dask worker process (:mod:`analysis.distributed`): its own PyTensor compile
directory, held with a lock for the worker's life, and single-threaded XLA, BLAS and chains; and
how many chains a process samples at once. Without ``distributed`` imports, so the fit can read
:func:`sampling_cores` in-process."""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from pathlib import Path

# XLA on CPU: no intra-op thread pool, single-threaded Eigen (the worker's one core)
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CORES_VARIABLE = "SEGMENT_SAMPLING_CORES"  # chains sampled at once by one process (fit.py)


def compile_root() -> Path:
    """Where the workers' PyTensor compile directories are: ``segment-pytensor`` in the
    temporary directory."""
    return Path(tempfile.gettempdir()) / "segment-pytensor"


def take_compile_slot(root: Path | None = None) -> tuple[str, object]:
    """(name, lock handle) of the first compile directory ``root/slot-<i>`` no living process
    holds (an exclusive ``flock`` on ``slot-<i>.lock``, held while the handle is open: the
    kernel releases it when the holder dies). A worker keeps its slot for its life, so no two
    processes compile into one directory at once, and a later worker finds a warm cache (numba
    compiles PyTensor's functions in minutes from a cold one)."""
    root = compile_root() if root is None else root
    root.mkdir(parents=True, exist_ok=True)
    for slot in range(1024):
        handle = open(root / f"slot-{slot}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return f"slot-{slot}", handle
    raise RuntimeError(f"{root}: all 1024 compile directories are taken")


def worker_environment(name: str, threads: int = 1, root: Path | None = None) -> dict[str, str]:
    """Environment variables of the worker process ``name`` running ``threads`` threads: its own
    PyTensor ``base_compiledir`` (``root/name``; default root: :func:`compile_root`), XLA on one
    thread, BLAS/OpenMP on ``threads`` and ``threads`` chains at once
    (:data:`CORES_VARIABLE`)."""
    root = compile_root() if root is None else root
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(name))
    flags = [os.environ.get("PYTENSOR_FLAGS", ""), f"base_compiledir={root / safe}"]
    environment = {
        "PYTENSOR_FLAGS": ",".join(flag for flag in flags if flag),
        "XLA_FLAGS": " ".join(filter(None, [os.environ.get("XLA_FLAGS", ""), XLA_FLAGS])),
        CORES_VARIABLE: str(threads),
    }
    return environment | {variable: str(threads) for variable in THREAD_VARIABLES}


def sampling_cores() -> int:
    """Chains this process samples at once: :data:`CORES_VARIABLE` on a worker, else one per
    core."""
    value = os.environ.get(CORES_VARIABLE)
    return max(1, int(value)) if value else (os.cpu_count() or 1)

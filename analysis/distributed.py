"""The parallel parts of the pipeline on a Dask cluster (``--scheduler ADDRESS``, ``--workers N``).

Without either option everything runs in this process, as it always has: that is the default
and the tested path. With one of them, these parts become Dask tasks (``dask.distributed``):

- the K sweep of ``segment fit``: one task per K, all submitted at once; the client applies the
  stopping rule to the results in K order and cancels the K past the stop
  (:func:`analysis.selection.sweep.fit_sweep`);
- the exact K-fold refits of ``segment compare --kfold``: one task per fold
  (:func:`analysis.selection.loo.kfold_loo`);
- the population pass of ``--subsample`` and ``segment score``: one task per run of blocks of
  customers (:func:`analysis.inference.subsample.population`).

Tasks compute and return; the client alone writes files, with the same atomic writes and
run-directory lock as in-process. Every task is a pure function of its inputs (data, seeds,
posterior), so a task that is run again, on another worker after one died, gives the same result.

Workers: ``--workers N`` starts a ``LocalCluster`` of N worker processes with one thread each.
Every worker process gets its own PyTensor compile directory (PyTensor's compile cache is not safe
to share between processes that compile at once) and single-threaded XLA, BLAS and chains, set in
its environment before it starts (:func:`analysis.worker_environment.worker_environment`):
parallelism comes from the tasks.
Workers of a cluster given by ``--scheduler`` get the same environment from a nanny plugin
(:class:`analysis.cluster_worker.WorkerEnvironment`), which restarts them once when the client
connects.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from analysis.errors import InputError

CONNECT_TIMEOUT = "10s"  # for --scheduler: a scheduler that does not answer by then is an error
# scheme://host:port (a scheme of SCHEMES) or host:port
ADDRESS = re.compile(
    r"^(?:(?P<scheme>[a-z]+)://)?(?P<host>[^\s:/]+|\[[0-9a-fA-F:]+\]):(?P<port>\d+)$"
)
SCHEMES = ("tcp", "tls", "ucx", "ws", "wss")


@dataclass(frozen=True)
class ClusterOptions:
    """Where the parallel parts run: ``scheduler`` (a Dask scheduler's address) or ``workers``
    (a LocalCluster of that many single-threaded worker processes); neither: in this process."""

    scheduler: str | None = None
    workers: int | None = None

    @property
    def in_process(self) -> bool:
        return self.scheduler is None and self.workers is None

    def check(self) -> None:
        """InputError, one line, for both options, a malformed address or fewer than 1 worker."""
        if self.scheduler is not None and self.workers is not None:
            raise InputError("give --scheduler ADDRESS or --workers N, not both")
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers: must be >= 1, got {self.workers}")
        if self.scheduler is not None:
            match = ADDRESS.match(self.scheduler)
            if match is None or not 0 < int(match["port"]) < 65536:
                raise InputError(
                    f"--scheduler: '{self.scheduler}' is not a scheduler address (expected "
                    "tcp://HOST:PORT or HOST:PORT, as `dask scheduler` prints)"
                )
            if match["scheme"] is not None and match["scheme"] not in SCHEMES:
                raise InputError(
                    f"--scheduler: unknown protocol '{match['scheme']}' (choose from "
                    f"{', '.join(SCHEMES)})"
                )

    def options(self) -> list[str]:
        """The command-line options that give these settings."""
        if self.scheduler is not None:
            return ["--scheduler", self.scheduler]
        return [] if self.workers is None else ["--workers", str(self.workers)]


IN_PROCESS = ClusterOptions()


def add_cluster_options(parser) -> None:
    """--scheduler and --workers on an argparse parser (segment fit, compare, score, run)."""
    group = parser.add_argument_group("cluster (default: everything in this process)")
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="send the parallel parts (one K per task, one K-fold refit per task, blocks of "
        "customers) to the Dask scheduler at ADDRESS, e.g. tcp://10.0.0.5:8786 (`dask "
        "scheduler`; workers: `dask worker ADDRESS --nthreads 1`)",
    )
    group.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="start a local Dask cluster of N single-threaded worker processes for the "
        "parallel parts",
    )


def cluster_options(args) -> ClusterOptions:
    """The checked cluster options (InputError) of a parsed command line, or of anything with
    ``scheduler`` and ``workers`` attributes (a :class:`analysis.api.Segmentation`)."""
    options = ClusterOptions(getattr(args, "scheduler", None), getattr(args, "workers", None))
    options.check()
    return options


class Cluster:
    """A connected Dask client and what the pipeline submits to it."""

    def __init__(self, client, options: ClusterOptions):
        self.client = client
        self.options = options

    @property
    def n_workers(self) -> int:
        return max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))

    def submit(self, function: Callable, *args, key: str | None = None, **kwargs):
        """A future of ``function(*args, **kwargs)`` on the cluster, retried on another worker
        when its worker dies (Dask's ``allowed_failures``) and never run twice for the same
        ``key`` at once."""
        if key is not None:
            kwargs["key"] = key
        return self.client.submit(function, *args, pure=False, **kwargs)

    @staticmethod
    def key(name: str) -> str:
        """A task key no other run shares: ``segment-<name>-<8 hex digits>``."""
        return f"segment-{name}-{uuid.uuid4().hex[:8]}"

    def scatter(self, value):
        """``value`` sent once to the workers (broadcast), as a future tasks can take."""
        return self.client.scatter(value, broadcast=True, hash=False)


def workers_without_nanny(client) -> list[str]:
    """Addresses of the cluster's workers that have no nanny (started with ``--no-nanny``): the
    nanny plugin cannot give them the environment of
    :func:`analysis.worker_environment.worker_environment`."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return sorted(address for address, worker in workers.items() if not worker.get("nanny"))


def warn_of_workers_without_nanny(client) -> None:
    """One WARNING line on stderr naming the workers of :func:`workers_without_nanny`."""
    bare = workers_without_nanny(client)
    if bare:
        print(
            f"WARNING: {len(bare)} Dask worker(s) run without a nanny ({', '.join(bare)}): they "
            "share PyTensor's compile directory and use every core per task; start them "
            "without --no-nanny",
            file=sys.stderr,
        )


_current: ContextVar[Cluster | None] = ContextVar("segment_cluster", default=None)


def current() -> Cluster | None:
    """The cluster the running command sends work to (:func:`open_cluster`); None: in-process."""
    return _current.get()


@contextlib.contextmanager
def open_cluster(options: ClusterOptions) -> Iterator[Cluster | None]:
    """Connect to (``scheduler``) or start (``workers``) the cluster of ``options`` for the body,
    as :func:`current`; yields None and does nothing for in-process options. Re-entrant: inside
    an open cluster it yields that one (``segment run`` opens one for its steps). InputError when
    the scheduler cannot be reached."""
    if options.in_process or current() is not None:
        yield current()
        return
    options.check()
    from distributed import Client, LocalCluster

    from analysis.cluster_worker import SegmentNanny, WorkerEnvironment

    with contextlib.ExitStack() as stack:
        if options.workers is not None:
            local = stack.enter_context(
                LocalCluster(
                    n_workers=options.workers,
                    threads_per_worker=1,
                    processes=True,
                    worker_class=SegmentNanny,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            )
            client = stack.enter_context(Client(local))
        else:
            try:
                client = stack.enter_context(
                    Client(options.scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
                )
            except (OSError, TimeoutError) as error:
                raise InputError(
                    f"--scheduler {options.scheduler}: no Dask scheduler answered "
                    f"({type(error).__name__}); start one with `dask scheduler`"
                ) from None
            client.register_plugin(WorkerEnvironment())
            warn_of_workers_without_nanny(client)
        token = _current.set(Cluster(client, options))
        try:
            yield _current.get()
        finally:
            _current.reset(token)

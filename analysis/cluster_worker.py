"""The Dask worker side of :mod:`analysis.distributed`: a Nanny for the local cluster and a nanny
plugin for a remote one, both starting each worker process with
:func:`analysis.worker_environment.worker_environment` (imports ``distributed``: loaded only when a
cluster is used)."""

from __future__ import annotations

from distributed import Nanny
from distributed.diagnostics.plugin import NannyPlugin

from analysis.worker_environment import take_compile_slot, worker_environment


class SegmentNanny(Nanny):
    """A Nanny (``--workers N``) whose worker process starts with :func:`worker_environment` of
    its name: its own PyTensor compile directory, single-threaded XLA and BLAS."""

    def __init__(self, *args, name=None, env=None, nthreads=1, **kwargs):
        slot, self.compile_slot = take_compile_slot()
        environment = worker_environment(slot, nthreads or 1)
        super().__init__(
            *args, name=name, env=environment | (env or {}), nthreads=nthreads, **kwargs
        )

    async def close(self, *args, **kwargs):
        try:
            return await super().close(*args, **kwargs)
        finally:
            self.compile_slot.close()  # the slot's lock: free for the next worker


class WorkerEnvironment(NannyPlugin):
    """Nanny plugin for the workers of a cluster given by ``--scheduler``: each nanny sets
    :func:`worker_environment` for its worker, then restarts the worker with it (``restart``), so
    PyTensor and JAX are imported with it. A worker started without a nanny (``--no-nanny``) is
    left as it is, and the client names it in a WARNING. Each nanny holds a compile slot
    (:func:`take_compile_slot`) for its life."""

    restart = True
    name = "segment-worker-environment"

    def setup(self, nanny):
        if not hasattr(nanny, "segment_compile_slot"):  # one slot per nanny, whatever reconnects
            slot, nanny.segment_compile_slot = take_compile_slot()
            nanny.env.update(worker_environment(slot, nanny.nthreads or 1))

"""Dask task runners for every way :class:`ClusterConfig` reaches workers, and a runner
whose cluster starts in the background while the driver prepares the run.

A fresh local worker needs ~3 s (2-core CPU) to import torch and the model stack, a GPU
worker more with CUDA's start; the driver meanwhile identifies the model (which costs the
same in a driver that has not imported torch yet), covers the store and plans its first
window. Started early, the two overlap: -2.1 s per flow call measured with such a driver,
nothing with one that had identified the model already (docs/BENCHMARKS.md, "Pipeline").
The default one-worker local cluster runs in the driver's process and has nothing to
import; it still starts in the thread, which costs nothing.
"""

from __future__ import annotations

import contextvars
import threading
import time
from types import TracebackType

from prefect_dask import DaskTaskRunner

from plumenet.config import ClusterConfig
from plumenet.jobs.cluster import local_cluster_kwargs, scheduler_address
from plumenet.jobs.gpu_cluster import local_cuda_kwargs
from plumenet.jobs.workunit import THREADS_ENV


def make_task_runner(spec: ClusterConfig) -> DaskTaskRunner:
    """A DaskTaskRunner for any of the ways :class:`ClusterConfig` reaches workers."""
    adapt = spec.adapt.model_dump() if spec.adapt else None
    if spec.kind == "local":
        kwargs = local_cluster_kwargs(spec, THREADS_ENV)
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster"
            if kwargs["processes"]
            else "plumenet.jobs.inprocess.InProcessCluster",
            cluster_kwargs=kwargs,
            adapt_kwargs=adapt,
        )
    if spec.kind == "local-cuda":
        return DaskTaskRunner(
            cluster_class="dask_cuda.LocalCUDACluster", cluster_kwargs=local_cuda_kwargs(spec)
        )
    if spec.kind == "cluster_class":
        return DaskTaskRunner(
            cluster_class=spec.cluster_class,
            cluster_kwargs=dict(spec.cluster_kwargs),
            adapt_kwargs=adapt,
        )
    if spec.kind == "scheduler_file":
        return DaskTaskRunner(address=scheduler_address(spec))
    return DaskTaskRunner(address=spec.address)


def workers_seen(runner: DaskTaskRunner) -> tuple[int, list[dict[str, float]]]:
    """Worker threads in total and each worker's resources, as the scheduler sees them now
    (the first call starts the runner's client, and its cluster if it makes one)."""
    workers = runner.client.scheduler_info(n_workers=-1).get("workers", {}).values()
    return sum(int(w.get("nthreads", 1)) for w in workers), [
        dict(w.get("resources") or {}) for w in workers
    ]


class StartedRunner:
    """A task runner entered now, with its cluster (or its connection to one) starting in
    a thread; :meth:`ready` waits for it. Leaving closes it, after the start has ended."""

    def __init__(self, spec: ClusterConfig) -> None:
        self.runner = make_task_runner(spec)
        self._seen: tuple[int, list[dict[str, float]]] | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StartedRunner:
        self.runner.__enter__()
        context = contextvars.copy_context()  # the flow run's, for the runner's log lines
        self._thread = threading.Thread(
            target=context.run, args=(self._start,), name="cluster-start", daemon=True
        )
        self._thread.start()
        return self

    def _start(self) -> None:
        try:
            self._seen = workers_seen(self.runner)
        except BaseException as err:  # noqa: BLE001 - re-raised by ready()
            self._error = err

    def ready(self) -> tuple[DaskTaskRunner, int, list[dict[str, float]], float]:
        """The runner once its client is up, the worker threads and resources seen then,
        and the seconds this call waited for them."""
        assert self._thread is not None, "enter the StartedRunner first"
        waited = time.perf_counter()
        self._thread.join()
        waited = time.perf_counter() - waited
        if self._error is not None:
            raise self._error
        assert self._seen is not None
        return self.runner, *self._seen, waited

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is not None:
            self._thread.join()  # a cluster half-made is closed whole, not left behind
        self.runner.__exit__(kind, error, tb)

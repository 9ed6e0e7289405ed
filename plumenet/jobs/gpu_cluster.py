"""The local GPU cluster (``cluster: local-cuda``): dask-cuda's ``LocalCUDACluster`` with
several units per GPU and the worker settings plumenet gives every worker it starts.

``LocalCUDACluster`` passes its own ``config`` to ``LocalCluster``, sets each worker's
``env`` itself and appends its own preload (``dask_cuda.initialize``), so the way the CPU
cluster gets :data:`cluster.WORKER_DASK_CONFIG` (a ``config`` argument) would fail with
"got multiple values for keyword argument 'config'" (dask-cuda 26.10, read from its
source). Here the settings travel on the worker class (:class:`ConfiguredNanny`) and the
warm-up on the preload list. Imports ``distributed``: import this module only to start a
cluster (``benchmarks/gpu.py`` does, to run this very path on a GPU machine).
"""

from __future__ import annotations

from typing import Any

from distributed import Nanny

from plumenet.config import ClusterConfig
from plumenet.jobs.cluster import WORKER_PRELOAD, worker_config

#: Work units one GPU worker runs at once (threads sharing one model; docs/deploy.md).
UNITS_PER_GPU = 3


class ConfiguredNanny(Nanny):
    """A nanny whose worker runs with plumenet's worker settings (``worker_config()``) under
    whatever ``config`` the cluster passes (dask-cuda's UCX settings), which win."""

    def __init__(self, *args: Any, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, config={**worker_config(), **(config or {})}, **kwargs)


def local_cuda_kwargs(spec: ClusterConfig) -> dict[str, Any]:
    """``LocalCUDACluster`` arguments: one worker per GPU, running several units at once.

    Each unit asks for ``GPU=1``; a GPU worker offers ``UNITS_PER_GPU`` of it (or
    ``threads_per_worker``) and as many threads, so units that share the worker's one
    model overlap one unit's listing, first fetch and write with another's inference.
    No ``config`` or ``env`` here: ``LocalCUDACluster`` sets both itself (module docstring).
    """
    units = spec.threads_per_worker or UNITS_PER_GPU
    kwargs: dict[str, Any] = {
        "resources": {"GPU": units},
        "threads_per_worker": units,
        "dashboard_address": None,
        "worker_class": ConfiguredNanny,
        "preload": [WORKER_PRELOAD],  # dask-cuda appends dask_cuda.initialize
    }
    if spec.workers:
        kwargs["n_workers"] = spec.workers
    if spec.memory_limit:
        kwargs["memory_limit"] = spec.memory_limit
    return kwargs

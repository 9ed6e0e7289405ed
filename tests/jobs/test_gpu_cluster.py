"""``cluster: local-cuda`` for real: a ``LocalCUDACluster`` started from plumenet's arguments
(run by benchmarks/gpu_check.sh on a GPU machine; skipped where CUDA or dask-cuda is absent;
the CPU suite checks the same arguments on a ``LocalCluster`` started the same way)."""

from __future__ import annotations

import importlib.util

import pytest

from plumenet.config import ClusterConfig

torch = pytest.importorskip("torch")


def _dask_cuda_missing() -> str | None:
    """Why dask-cuda cannot run here (None: it can). Only imported where CUDA is: it
    imports ``cuda.core`` (>= 0.5.1 for dask-cuda 26.10), which an image may hold older."""
    if not torch.cuda.is_available():
        return "needs CUDA"
    if importlib.util.find_spec("dask_cuda") is None:
        return "needs dask-cuda (the gpu extra)"
    try:
        import dask_cuda  # noqa: F401
    except Exception as err:  # noqa: BLE001 - the reason goes into the skip message
        return f"dask-cuda does not import: {type(err).__name__}: {err}"
    return None


_MISSING = _dask_cuda_missing()
needs_cuda_cluster = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))


def _worker_state(dask_worker) -> tuple:
    import dask
    import torch as worker_torch

    from tests.helpers.workers import warm_up_finished

    return (
        dask.config.get("distributed.worker.profile.enabled"),
        [p.name for p in dask_worker.preloads],
        warm_up_finished(),  # the warm-up thread imports and starts CUDA
        worker_torch.cuda.is_initialized(),
        dict(dask_worker.state.total_resources),
    )


@pytest.mark.gpu
@needs_cuda_cluster
def test_local_cuda_cluster_starts_from_plumenets_arguments_with_its_settings():
    from dask_cuda import LocalCUDACluster
    from distributed import Client

    from plumenet.jobs.cluster import WORKER_PRELOAD
    from plumenet.jobs.gpu_cluster import UNITS_PER_GPU, local_cuda_kwargs

    kwargs = local_cuda_kwargs(ClusterConfig(address="local-cuda", workers=1))
    with LocalCUDACluster(**kwargs) as cluster, Client(cluster) as client:
        client.wait_for_workers(1, timeout=120)
        (state,) = client.run(_worker_state).values()
    profile, preloads, warmed, cuda_started, resources = state
    assert profile is False
    assert preloads[0] == WORKER_PRELOAD and "dask_cuda.initialize" in preloads
    assert warmed and cuda_started
    assert resources == {"GPU": UNITS_PER_GPU}

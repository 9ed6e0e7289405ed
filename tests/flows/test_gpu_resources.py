"""Several work units per GPU: the local CUDA cluster's worker resources and threads.

(``dask_cuda`` is the gpu extra, absent here: the cluster's arguments are checked, not a
started ``LocalCUDACluster``; benchmarks/gpu.py runs units concurrently on a real GPU.)
"""

from __future__ import annotations

from flows.runners import UNITS_PER_GPU, local_cuda_kwargs
from plumenet.config import ClusterConfig


def test_a_gpu_worker_offers_several_unit_slots_of_its_gpu():
    kwargs = local_cuda_kwargs(ClusterConfig(address="local-cuda"))
    # each unit asks for GPU=1 (the annotation); the worker offers UNITS_PER_GPU of it
    assert kwargs["resources"] == {"GPU": UNITS_PER_GPU} and UNITS_PER_GPU >= 2
    assert kwargs["threads_per_worker"] == UNITS_PER_GPU
    assert "n_workers" not in kwargs  # one worker per visible GPU, dask-cuda's default


def test_threads_per_worker_sets_the_units_per_gpu():
    kwargs = local_cuda_kwargs(
        ClusterConfig(address="local-cuda", threads_per_worker=2, workers=1, memory_limit="8GB")
    )
    assert kwargs["resources"] == {"GPU": 2} and kwargs["threads_per_worker"] == 2
    assert (kwargs["n_workers"], kwargs["memory_limit"]) == (1, "8GB")

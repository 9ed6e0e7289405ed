"""The local CUDA cluster: its worker resources and threads (several units per GPU), and
that its worker settings survive the way ``LocalCUDACluster`` passes arguments on.

(``dask_cuda`` is the gpu extra, absent here: the arguments are checked, and a CPU
``LocalCluster`` is started the way ``LocalCUDACluster`` starts one; benchmarks/gpu.py
starts a real one from the same arguments on a GPU machine.)
"""

from __future__ import annotations

from plumenet.config import ClusterConfig
from plumenet.jobs.gpu_cluster import UNITS_PER_GPU, local_cuda_kwargs


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


def test_worker_settings_survive_the_way_local_cuda_cluster_passes_them():
    """dask-cuda 26.10 calls ``LocalCluster(n_workers=0, config={UCX}, **ours)``, appends
    ``dask_cuda.initialize`` to the preloads with a flat argv, then scales: a real worker
    started that way must have the profiler off, dask-cuda's config, both preloads in order,
    and the warm-up done (``config`` among our arguments would raise "multiple values")."""
    import dask
    from distributed import Client, LocalCluster

    from plumenet.jobs.cluster import WORKER_PRELOAD
    from tests.helpers.workers import warm_up_finished

    kwargs = local_cuda_kwargs(ClusterConfig(address="local-cuda", threads_per_worker=2))
    assert "config" not in kwargs and "env" not in kwargs  # LocalCUDACluster sets both
    ucx = {"distributed.comm.ucx": {"create-cuda-context": True}}
    with LocalCluster(n_workers=0, processes=True, config=ucx, **kwargs) as cluster:
        options = cluster.new_spec["options"]
        options["preload"] = [*options.get("preload", []), "json"]  # as dask_cuda.initialize
        options["preload_argv"] = [*options.get("preload_argv", []), "--create-cuda-context"]
        cluster.scale(1)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=60)

            def seen(dask_worker) -> tuple:
                return (
                    dask.config.get("distributed.worker.profile.enabled"),
                    dask.config.get("distributed.comm.ucx")["create-cuda-context"],
                    [p.name for p in dask_worker.preloads],
                    warm_up_finished(),
                    dask_worker.state.nthreads,
                    dict(dask_worker.state.total_resources),
                )

            assert list(client.run(seen).values()) == [
                (False, True, [WORKER_PRELOAD, "json"], True, 2, {"GPU": 2})
            ]

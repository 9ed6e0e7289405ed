"""The task runner the flow starts early: its cluster comes up in a thread while the driver
prepares; what went wrong there is raised where the flow waits for it."""

from __future__ import annotations

import socket

import dask
import pytest

from flows.runners import StartedRunner
from plumenet.config import ClusterConfig


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_cluster_that_cannot_start_fails_where_the_flow_waits():
    spec = ClusterConfig(address=f"tcp://127.0.0.1:{_closed_port()}")
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        StartedRunner(spec) as started,
        pytest.raises(OSError, match=r"127\.0\.0\.1"),
    ):
        started.ready()


@pytest.mark.slow
def test_a_local_cluster_started_early_is_ready_with_its_workers():
    with StartedRunner(ClusterConfig(workers=1, threads_per_worker=2)) as started:
        runner, threads, resources, waited = started.ready()
        assert (threads, resources) == (2, [{}])
        assert waited >= 0.0
        assert runner.client.submit(sum, [1, 2]).result() == 3
    assert runner.client.status == "closed"


def test_one_local_worker_runs_in_the_driver_and_several_in_processes():
    from flows.runners import make_task_runner

    def started(spec: ClusterConfig) -> tuple[str, dict]:
        runner = make_task_runner(spec)
        return runner.cluster_class, runner.cluster_kwargs

    cls, kwargs = started(ClusterConfig(workers=1))
    assert cls == "plumenet.jobs.inprocess.InProcessCluster" and not kwargs["processes"]
    cls, kwargs = started(ClusterConfig(workers=1, processes=True))
    assert cls == "distributed.LocalCluster" and kwargs["processes"]
    cls, kwargs = started(ClusterConfig(workers=2))
    assert cls == "distributed.LocalCluster" and kwargs["n_workers"] == 2


@pytest.mark.slow
def test_an_in_process_local_cluster_runs_tasks_in_this_process():
    import os

    with StartedRunner(ClusterConfig(workers=1)) as started:
        runner, threads, _, _ = started.ready()
        assert threads == 1
        assert runner.client.submit(os.getpid).result() == os.getpid()
    assert runner.client.status == "closed"

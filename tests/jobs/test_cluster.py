"""Where units run: ``--cluster`` strings, the config's ``cluster:`` section and the CLI options
resolved to one :class:`ClusterConfig`, with one clear error line for each mistake."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from plumenet.config import ClusterConfig, parse_config
from plumenet.errors import ConfigError
from plumenet.jobs.cluster import (
    cluster_from_options,
    in_flight_bound,
    parse_cluster,
    resolve_cluster,
    scheduler_address,
    wants_gpu,
)


def test_cluster_strings_name_each_way_to_reach_workers():
    assert parse_cluster("local") == {"address": "local"}
    assert parse_cluster("local-cuda") == {"address": "local-cuda"}
    assert parse_cluster("tcp://10.0.0.1:8786") == {"address": "tcp://10.0.0.1:8786"}
    assert parse_cluster("/shared/scheduler.json") == {"scheduler_file": "/shared/scheduler.json"}
    assert parse_cluster("dask_jobqueue.SLURMCluster") == {
        "cluster_class": "dask_jobqueue.SLURMCluster"
    }
    with pytest.raises(ConfigError, match=r"unknown cluster 'gpu-box': use 'local'"):
        parse_cluster("gpu-box")


def test_the_config_section_is_strict_and_says_what_to_fix():
    base = {"cameras": []}
    cfg = parse_config({**base, "cluster": {"cluster_class": "distributed.LocalCluster",
                                            "cluster_kwargs": {"n_workers": 2},
                                            "adapt": {"minimum": 1, "maximum": 6}}})  # fmt: skip
    assert cfg.cluster.kind == "cluster_class"
    assert parse_config(base).cluster.kind == "local"
    bad = [
        ({"address": "tcp://a:1", "scheduler_file": "s.json"}, r"give one of address / sched"),
        ({"address": "gpu-box"}, r"address 'gpu-box' is not 'local'"),
        ({"address": "tcp://a:1", "workers": 2}, r"workers size a local cluster only"),
        ({"scheduler_file": "s.json", "adapt": {"maximum": 2}}, r"adapt needs a cluster"),
        ({"cluster_kwargs": {"cores": 8}}, r"cluster_kwargs go with cluster_class"),
        ({"max_in_flight": 0}, r"cluster.max_in_flight"),
        ({"frames_per_task": -1}, r"cluster.frames_per_task"),
        ({"adress": "local"}, r"did you mean 'address'"),
        ({"address": "local-cuda", "processes": True}, r"processes applies to a local clus"),
        ({"processes": False, "memory_limit": "4GiB"}, r"memory_limit needs worker processes"),
        ({"processes": False, "adapt": {"maximum": 2}}, r"adapt needs worker .* or adapt"),
    ]
    for section, message in bad:
        with pytest.raises(ConfigError, match=message):
            parse_config({**base, "cluster": section})


def test_cli_options_override_the_config_and_fail_early(tmp_path):
    configured = ClusterConfig(address="local", workers=3, max_in_flight=5, frames_per_task=900)
    assert cluster_from_options(configured) is None  # nothing given: the flow reads the config
    assert cluster_from_options(configured, workers=2) == {
        "address": "local", "workers": 2, "max_in_flight": 5, "frames_per_task": 900,
    }  # fmt: skip
    assert cluster_from_options(configured, processes=True)["processes"] is True
    in_process = ClusterConfig(processes=False)
    with _listening() as address:  # a remote cluster's address is probed
        assert cluster_from_options(in_process, cluster=address) == {"address": address}
        remote = cluster_from_options(configured, cluster=address)
    assert remote == {"address": address, "max_in_flight": 5, "frames_per_task": 900}
    cls = cluster_from_options(
        configured, cluster="distributed.LocalCluster", cluster_kwargs='{"n_workers": 1}',
        adapt="0:4",
    )  # fmt: skip
    assert cls["cluster_class"] == "distributed.LocalCluster"
    assert cls["adapt"] == {"minimum": 0, "maximum": 4} and cls["cluster_kwargs"]["n_workers"] == 1
    with pytest.raises(ConfigError, match=r"--adapt '4': give MIN:MAX"):
        cluster_from_options(configured, adapt="4")
    with pytest.raises(ConfigError, match=r"--cluster-kwargs .* is not JSON"):
        cluster_from_options(configured, cluster="distributed.LocalCluster", cluster_kwargs="{x")
    with pytest.raises(ConfigError, match=r"cluster_class 'distributed.NoSuchCluster': no"):
        cluster_from_options(configured, cluster="distributed.NoSuchCluster")
    with pytest.raises(ConfigError, match=r"cannot import 'dask_nowhere'"):
        resolve_cluster(configured, "dask_nowhere.SLURMCluster")
    missing = tmp_path / "scheduler.json"
    with pytest.raises(ConfigError, match=r"scheduler file .* not found — start the scheduler"):
        resolve_cluster(configured, str(missing))
    with _listening() as address:
        assert resolve_cluster(configured, address).frames_per_task == 900  # kept
        missing.write_text(json.dumps({"address": address, "type": "Scheduler"}))
        spec = resolve_cluster(configured, str(missing))
        assert spec.kind == "scheduler_file" and scheduler_address(spec) == address
    missing.write_text("{}")
    with pytest.raises(ConfigError, match=r"holds no scheduler address"):
        resolve_cluster(configured, str(missing))


@contextlib.contextmanager
def _listening() -> Iterator[str]:
    """A TCP port on 127.0.0.1 that accepts connections, as a scheduler's does."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"


def test_a_scheduler_that_does_not_answer_is_one_line_before_anything_starts(tmp_path):
    """A dead or mistyped address, or a stale scheduler file, fails at once (Dask's client
    would wait 30 s and end in tracebacks); so do unusable memory limits and adapt ranges."""
    with _listening() as address:
        pass  # closed again: nothing listens there now
    with pytest.raises(ConfigError, match=r"no Dask scheduler answers at tcp://127\.0\.0\.1:\d+ "
                       r"\(Connection refused; from --cluster"):  # fmt: skip
        resolve_cluster(ClusterConfig(), address)
    stale = tmp_path / "scheduler.json"
    stale.write_text(json.dumps({"address": address}))
    with pytest.raises(ConfigError, match=r"no Dask scheduler answers .* from scheduler file"):
        resolve_cluster(ClusterConfig(), str(stale))
    with pytest.raises(ConfigError, match=r"has no host:port"):
        resolve_cluster(ClusterConfig(), "tcp://127.0.0.1")
    with pytest.raises(ConfigError, match=r"memory_limit 'lots' is not an amount of memory"):
        resolve_cluster(ClusterConfig(), {"memory_limit": "lots"})
    assert resolve_cluster(ClusterConfig(), {"memory_limit": "2GiB"}).memory_limit == "2GiB"
    with pytest.raises(ConfigError, match=r"adapt minimum 4 is above its maximum 1"):
        cluster_from_options(ClusterConfig(), adapt="4:1")


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("8", r"memory_limit '8' has no unit, so Dask would read 8 bytes \(--memory-limit, "),
        ("0.5", r"memory_limit '0.5' has no unit"),
        ("100MB", r"memory_limit '100MB' is 95.37 MiB per worker, under the 256 MiB a worker"),
        ("255MiB", r"give at least 256MiB"),
    ],
)
def test_a_memory_limit_dask_would_misread_is_refused_before_any_worker(limit, message):
    """A bare number is bytes to Dask (``8``: a worker restarted 150 times, a hung run), and
    a limit a worker cannot start under is as bad: both are one line at pre-flight."""
    with pytest.raises(ConfigError, match=message):
        resolve_cluster(ClusterConfig(), {"memory_limit": limit})
    with pytest.raises(ConfigError, match=message):
        cluster_from_options(ClusterConfig(), memory_limit=limit)


def test_memory_limits_with_a_unit_pass_as_bytes():
    from plumenet.jobs.cluster import MIN_MEMORY_LIMIT, memory_limit_bytes

    assert memory_limit_bytes("256MiB") == MIN_MEMORY_LIMIT
    assert memory_limit_bytes("8GiB") == 8 * 2**30
    assert resolve_cluster(ClusterConfig(), {"memory_limit": "auto"}).memory_limit == "auto"


def test_in_flight_bound_and_gpu_annotation_follow_the_cluster():
    local = ClusterConfig()
    assert in_flight_bound(local, worker_threads=3) == 6
    assert in_flight_bound(local, worker_threads=0) == 2
    assert in_flight_bound(ClusterConfig(max_in_flight=7), worker_threads=3) == 7
    adaptive = ClusterConfig(cluster_class="distributed.LocalCluster", adapt={"maximum": 5})
    assert in_flight_bound(adaptive, worker_threads=0) == 10  # sized to its maximum
    remote = ClusterConfig(address="tcp://h:8786")
    assert wants_gpu(remote, [{}, {"GPU": 1.0}]) is True  # any GPU worker: annotate
    assert wants_gpu(remote, [{}, {}]) is False
    assert wants_gpu(ClusterConfig(address="tcp://h:8786", gpu=False), [{"GPU": 1}]) is False
    assert wants_gpu(ClusterConfig(address="local-cuda"), []) is True


def test_one_local_worker_runs_in_the_driver_unless_told_or_sized_otherwise(monkeypatch):
    from plumenet.jobs.cluster import local_cluster_kwargs, workers_in_process

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert workers_in_process(ClusterConfig()) is True  # 2 cores: one worker
    assert workers_in_process(ClusterConfig(workers=1, threads_per_worker=2)) is True
    assert workers_in_process(ClusterConfig(workers=2)) is False
    assert workers_in_process(ClusterConfig(memory_limit="4GiB")) is False
    assert workers_in_process(ClusterConfig(adapt={"maximum": 2})) is False
    assert workers_in_process(ClusterConfig(processes=True)) is False
    assert workers_in_process(ClusterConfig(workers=3, processes=False)) is True
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert workers_in_process(ClusterConfig()) is False  # 16 cores: four workers

    threads = local_cluster_kwargs(ClusterConfig(workers=1), "T")
    assert threads == {"n_workers": 1, "threads_per_worker": 1, "processes": False,
                       "dashboard_address": None}  # fmt: skip
    processes = local_cluster_kwargs(ClusterConfig(workers=2), "T")
    assert processes["processes"] is True and processes["env"] == {"T": "8"}
    assert "distributed" in processes["config"]


def test_an_in_process_worker_runs_here_without_the_dask_profiler():
    """The profiler would sample the driver's threads too; the driver's own Dask config is
    left as it was, and the worker runs a unit's code in this process."""
    import os

    import dask
    from distributed import Client, get_worker

    from plumenet.jobs.inprocess import InProcessCluster

    def where() -> tuple[int, bool, list[str]]:
        worker = get_worker()
        return os.getpid(), "profile" in worker.periodic_callbacks, list(worker.periodic_callbacks)

    with InProcessCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        assert dask.config.get("distributed.worker.profile.enabled") is True
        with Client(cluster) as client:
            pid, profiled, callbacks = client.submit(where).result()
        assert pid == os.getpid()
        assert not profiled and "heartbeat" in callbacks
        with pytest.raises(NotImplementedError, match="adaptive scaling needs worker processes"):
            cluster.adapt(maximum=2)


#: Shared with the task below: an in-process worker runs it in this process.
_UNIT_STARTED = threading.Event()
_UNIT_OUTCOME: list = []


def _unit_as_the_cluster_closes(unit, job) -> None:
    from plumenet.jobs.workunit import UnitStopped, run_unit, worker_closing

    _UNIT_STARTED.set()
    deadline = time.monotonic() + 60
    while not worker_closing() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        _UNIT_OUTCOME.append(run_unit(unit, job))
    except UnitStopped as stopped:
        _UNIT_OUTCOME.append(str(stopped))


def test_a_unit_in_an_in_process_worker_stops_when_its_cluster_closes(tmp_path, rng):
    """Its threads cannot be killed: without the stop, the close waits 30 s for a unit
    still running, and the unit outlives the run (and the store lease) that started it.
    Here the unit reaches its first batch only once the close has begun."""
    import zarr
    from distributed import Client

    from plumenet.jobs.inprocess import InProcessCluster
    from plumenet.jobs.workunit import UnitJob, worker_closing
    from tests.jobs.test_workunit import _unit_and_store

    unit, store = _unit_and_store(tmp_path, rng)
    job = UnitJob(store=store, camera="WU", model="demo", model_index=0, batch_size=4)
    assert not worker_closing()  # outside a worker
    cluster = InProcessCluster(n_workers=1, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
    future = client.submit(_unit_as_the_cluster_closes, unit, job)  # held: dropped, it is cancelled
    assert _UNIT_STARTED.wait(30)
    t0 = time.monotonic()
    client.close()
    cluster.close()
    assert time.monotonic() - t0 < 15
    assert _UNIT_OUTCOME == ["unit WU/0 stopped: its worker closed"]
    assert not zarr.open_group(store, mode="r")["WU"]["status"][:].any()
    del future


def test_workers_plumenet_starts_run_without_the_dask_profiler_warm_up_and_keep_settings():
    """Dask's profiler samples every thread every 10 ms holding the GIL (4-6 % of CPU
    inference here), so a real worker process must see it off; it must import the model
    stack on its own as it starts (the warm-up preload), and keep the user's settings and
    preloads."""
    import dask
    from distributed import Client, LocalCluster

    from plumenet.jobs.cluster import WORKER_PRELOAD, local_cluster_kwargs
    from tests.helpers.workers import warm_up_finished

    def seen() -> tuple[bool, float, list[str]]:
        return (
            dask.config.get("distributed.worker.profile.enabled"),
            dask.config.get("distributed.worker.memory.target"),
            dask.config.get("distributed.worker.preload"),
        )

    user = {"distributed.worker.memory.target": 0.42, "distributed.worker.preload": ["json"]}
    with dask.config.set(user):
        kwargs = local_cluster_kwargs(
            ClusterConfig(workers=1, processes=True), "PLUMENET_TORCH_THREADS"
        )
    assert dask.config.get("distributed.worker.profile.enabled") is True  # driver unchanged
    assert dask.config.get("distributed.worker.preload") == []
    with LocalCluster(**kwargs) as cluster, Client(cluster) as client:
        assert list(client.run(seen).values()) == [(False, 0.42, ["json", WORKER_PRELOAD])]
        assert list(client.run(warm_up_finished).values()) == [True]


@pytest.mark.parametrize(
    ("preload", "argv", "expected_argv"),
    [
        ([], [], []),
        ("json", ["--x"], ["--x"]),  # one argv for all: ours ignores it
        (["json"], [["--x"]], [["--x"], []]),  # one per preload: ours gets none
        (["plumenet.jobs.warmup"], [], []),  # already there: not added twice
    ],
)
def test_worker_config_appends_the_warm_up_preload(preload, argv, expected_argv):
    import dask

    from plumenet.jobs.cluster import WORKER_PRELOAD, worker_config

    with dask.config.set(
        {"distributed.worker.preload": preload, "distributed.worker.preload-argv": argv}
    ):
        worker = worker_config()["distributed"]["worker"]
    given = [preload] if isinstance(preload, str) else preload
    assert worker["preload"] == [*[p for p in given if p != WORKER_PRELOAD], WORKER_PRELOAD]
    assert worker["preload-argv"] == expected_argv
    assert worker["profile"]["enabled"] is False

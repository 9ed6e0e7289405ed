"""Where units run: ``--cluster`` strings, the config's ``cluster:`` section and the CLI options
resolved to one :class:`ClusterConfig`, with one clear error line for each mistake."""

from __future__ import annotations

import json

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
    remote = cluster_from_options(configured, cluster="tcp://h:8786")
    assert remote == {"address": "tcp://h:8786", "max_in_flight": 5, "frames_per_task": 900}
    assert resolve_cluster(configured, "tcp://h:8786").frames_per_task == 900  # kept
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
    missing.write_text(json.dumps({"address": "tcp://127.0.0.1:9999", "type": "Scheduler"}))
    spec = resolve_cluster(configured, str(missing))
    assert spec.kind == "scheduler_file" and scheduler_address(spec) == "tcp://127.0.0.1:9999"
    missing.write_text("{}")
    with pytest.raises(ConfigError, match=r"holds no scheduler address"):
        resolve_cluster(configured, str(missing))


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
        kwargs = local_cluster_kwargs(ClusterConfig(workers=1), "PLUMENET_TORCH_THREADS")
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

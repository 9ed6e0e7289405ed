"""The backfill on other Dask deployments, for real: a ``cluster_class`` named by string
(``distributed.LocalCluster`` with kwargs), and a scheduler file written by
``dask scheduler --scheduler-file`` whose workers differ: units go only to the worker that
offers a ``GPU`` resource, because the cluster has one (not because of ``local-cuda``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers.flows import read_arrays, stop_processes, write_config

pytestmark = [pytest.mark.slow]

START = "2024-05-01"
CADENCE, UNIT, UNITS = "2h", "6h", 4  # one day: four units of three slots


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    from plumenet.jobs.synth_archive import write_archive

    root = tmp_path_factory.mktemp("archive")
    write_archive(
        str(root), layout="flat", start=pd.Timestamp(START, tz="UTC"),
        end=pd.Timestamp(START, tz="UTC") + pd.Timedelta(days=1), cadence=CADENCE, seed=2,
        size=(64, 48), fields={"CAM": "flowcam"}, camera="FLOW", missing=0.0,
    )  # fmt: skip
    return root


def _config(out: Path, archive: Path, model: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    return write_config(out, archive=archive, model=model, cadence=CADENCE, start=START, unit=UNIT)


def _waiting_for_a_worker(prepare, seen: list[bool]):
    """``prepare_backfill`` that first waits (up to 60 s) for a new worker process of this
    driver: one can only appear if the flow started the cluster before preparing the run."""
    import psutil

    def workers() -> set[int]:
        found = set()
        for child in psutil.Process().children(recursive=True):
            try:
                if "spawn_main" in " ".join(child.cmdline()):
                    found.add(child.pid)
            except psutil.Error:
                continue
        return found

    before = workers()

    def wrapped(*args, **kwargs):
        deadline = time.monotonic() + 60
        while not workers() - before and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.append(bool(workers() - before))
        return prepare(*args, **kwargs)

    return wrapped


def test_cluster_class_named_by_string(
    prefect_harness, archive, tiny_model_dir, tmp_path, monkeypatch
):
    """Also: the cluster starts while the driver prepares the run (identifying the model,
    covering the store), so workers import the model stack meanwhile."""
    import flows.pipeline
    from flows.pipeline import backfill

    config = _config(tmp_path, archive, tiny_model_dir)
    section = {
        "cluster_class": "distributed.LocalCluster",
        "cluster_kwargs": {"n_workers": 2, "threads_per_worker": 1, "processes": True,
                           "dashboard_address": None},
    }  # fmt: skip
    seen: list[bool] = []
    prepare = _waiting_for_a_worker(flows.pipeline.prepare_backfill, seen)
    monkeypatch.setattr(flows.pipeline, "prepare_backfill", prepare)
    report = backfill(config=str(config), start=START, end=START, cluster=section)
    assert seen == [True]
    assert report["units_failed"] == [] and report["units_run"] == UNITS
    assert report["max_in_flight"] == 4  # 2 per worker thread of the cluster it started
    store = yaml.safe_load(config.read_text())["store"]
    assert int((read_arrays(store, "FLOW")["status"] == 1).sum()) == report["frames"] == 12


def _start_from_scheduler_file(log_dir: Path, scheduler_file: Path) -> list[subprocess.Popen]:
    dask = str(Path(sys.executable).parent / "dask")
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(scheduler_file)],
            stdout=open(log_dir / "scheduler.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
    ]  # fmt: skip
    deadline = time.monotonic() + 60
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    for name, extra in (("gpu", ["--resources", "GPU=1"]), ("cpu", [])):
        procs.append(
            subprocess.Popen(
                [dask, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--name", name, *extra],
                stdout=open(log_dir / f"{name}.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
            )
        )  # fmt: skip
    from distributed import Client

    with Client(scheduler_file=str(scheduler_file), timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
    return procs


def test_scheduler_file_and_gpu_units_only_on_gpu_workers(
    prefect_harness, archive, tiny_model_dir, tmp_path
):
    from flows.pipeline import backfill

    scheduler_file = tmp_path / "scheduler.json"
    procs = _start_from_scheduler_file(tmp_path, scheduler_file)
    try:
        grouped = backfill(
            config=str(_config(tmp_path / "grouped", archive, tiny_model_dir)),
            start=START, end=START, cluster=str(scheduler_file),
        )  # fmt: skip
        # one unit per task, so each unit is placed on its own
        report = backfill(
            config=str(_config(tmp_path / "single", archive, tiny_model_dir)), start=START,
            end=START, cluster={"scheduler_file": str(scheduler_file), "frames_per_task": 0},
        )  # fmt: skip
    finally:
        stop_processes(procs)
    # a GPU worker in the cluster: units are grouped by default (12 frames < 20,000: one task)
    assert grouped["units_run"] == UNITS and grouped["tasks"] == 1
    assert report["units_failed"] == [] and report["units_run"] == UNITS
    assert report["tasks"] == UNITS
    for run in (grouped, report):
        ran = {name: set() for name in ("gpu", "cpu")}
        for timing in run["unit_timings"]:
            ran[timing["worker"]].add(timing["unit"])
        assert len(ran["gpu"]) == UNITS, ran  # every unit ran where the GPU resource is
        assert ran["cpu"] == set(), ran

"""The backfill flow end to end on real parts: Prefect, Dask processes, moto S3, Zarr.

Scenarios: a local cluster against the synthetic ground truth; a rerun that writes no chunk;
archive and store on a moto S3 server with a `dask scheduler` and two `dask worker` processes;
a worker killed mid-run; the flow killed mid-run and resumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
import zarr

from tests.helpers.flows import (
    DATA_VARS,
    chunk_snapshot,
    read_arrays,
    start_dask_cluster,
    stop_processes,
    wait_for_status,
    write_config,
)

pytestmark = [pytest.mark.slow]

START, LAST_DAY = "2024-02-01", "2024-02-02"  # two daily units
CADENCE = "30min"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    from plumenet.jobs.synth_archive import write_archive

    root = tmp_path_factory.mktemp("archive")
    truth = write_archive(
        str(root),
        layout="flat",
        start=pd.Timestamp(START, tz="UTC"),
        end=pd.Timestamp(LAST_DAY, tz="UTC") + pd.Timedelta(days=1),
        cadence=CADENCE,
        seed=5,
        broken=4,
        size=(160, 120),
        fields={"CAM": "flowcam"},
        camera="FLOW",
    )
    return root, truth


@pytest.fixture(scope="module")
def clean_run(prefect_harness, archive, tiny_model_dir, tmp_path_factory):
    """A backfill on a local cluster, from an empty store: the reference for later runs."""
    from flows.pipeline import backfill

    root, _ = archive
    out = tmp_path_factory.mktemp("clean")
    config = write_config(out, archive=root, model=tiny_model_dir, cadence=CADENCE, start=START)
    report = backfill(config=str(config), start=START, end=LAST_DAY, cluster="local")
    return config, report


def test_backfill_matches_ground_truth(clean_run, archive):
    config, report = clean_run
    _, truth = archive
    store = yaml.safe_load(Path(config).read_text())["store"]
    ds = read_arrays(store, "FLOW")

    frames = truth.fractions
    kind = frames["broken"].fillna("")
    listed = frames[kind != "misnamed"]
    broken = set(frames.loc[kind.isin(["truncated", "empty", "not_image"]), "url"])
    misnamed = set(frames.loc[kind == "misnamed", "url"])
    assert broken and misnamed, "the archive fixture should plant both kinds"
    by_source = dict(zip(ds["source"], ds["status"], strict=True))
    for url in listed["url"]:
        assert url in by_source, f"frame {url} missing from the store"
        expected = {2} if url in broken else {1, 3}
        assert by_source[url] in expected, (url, by_source[url])
    assert not misnamed & set(ds["source"])
    assert report["units_failed"] == []
    assert report["frames"] == len(listed)
    assert sum(r["unreadable"] for r in report["cameras"]) == len(broken)
    assert len(report["unreadable_files"]) == len(broken)
    ok = ds["status"] == 1
    np.testing.assert_allclose(np.nansum(ds["fraction"][ok], axis=1), 1.0, atol=1e-5)
    # the run's Prefect artifacts: the per-camera table and the unreadable files
    summary = _latest_artifact("backfill-summary")
    assert all(Path(url).name in summary.data for url in broken)
    table = _latest_artifact("backfill-units").data
    assert "FLOW" in str(table) and "unreadable" in str(table)
    assert np.all(np.isnan(ds["fraction"][ds["status"] == 0]))


def _latest_artifact(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key!r}"
    return max(found, key=lambda a: a.created)


def test_catalogue_flow_publishes_episodes_and_timeline(prefect_harness, clean_run, tmp_path):
    from flows.science import catalogue

    config, _ = clean_run
    paths = catalogue(config=str(config), out=str(tmp_path / "catalogue"))
    assert Path(paths["FLOW"]["timeline_png"]).stat().st_size > 5_000
    timeline = _latest_artifact("timeline-flow")  # the PNG inline: a remote UI shows it
    assert timeline.type == "markdown" and "](data:image/png;base64,iVBORw0KGgo" in timeline.data
    assert _latest_artifact("episodes-flow").type in {"table", "markdown"}


def test_rerun_after_completion_writes_no_chunk(prefect_harness, clean_run):
    from flows.pipeline import backfill

    config, _ = clean_run
    store = yaml.safe_load(Path(config).read_text())["store"]
    before = chunk_snapshot(store)
    report = backfill(config=str(config), start=START, end=LAST_DAY, cluster="local")
    assert report["units_run"] == 0
    assert chunk_snapshot(store) == before


def test_a_camera_whose_archive_lists_nothing_is_not_reported_done(
    prefect_harness, clean_run, caplog
):
    """A typo in the camera's fields lists no frame: the run says so for that camera (it
    used to say only that every frame was already in the store) and writes nothing."""
    from flows.pipeline import backfill

    config, _ = clean_run
    typo = Path(config).with_name("cameras-typo.yaml")
    typo.write_text(Path(config).read_text().replace("flowcam", "flowcamm"))
    store = yaml.safe_load(typo.read_text())["store"]
    before = chunk_snapshot(store)
    with caplog.at_level("INFO", logger="flows.pipeline"):
        report = backfill(config=str(typo), start=START, end=LAST_DAY, cluster="local")
    assert report["units_run"] == 0 and report["cameras"][0]["frames_listed"] == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(m.startswith("FLOW: no frames in the archive for [2024-02-01") for m in warned)
    assert any("every frame found is already in the store" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert chunk_snapshot(store) == before


def test_overwrite_rewrites_exactly_the_units_and_same_bytes(prefect_harness, clean_run):
    from flows.pipeline import backfill

    config, _ = clean_run
    store = yaml.safe_load(Path(config).read_text())["store"]
    before = chunk_snapshot(store, content=True)
    report = backfill(config=str(config), start=START, end=START, cluster="local", overwrite=True)
    assert report["units_run"] == 1
    after = chunk_snapshot(store, content=True)
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}
    changed = [k for k in after if after[k][0] != before[k][0]]
    assert changed, "overwrite rewrote nothing"


@pytest.fixture(scope="module")
def dask_cluster(prefect_harness, tmp_path_factory):
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "OMP_NUM_THREADS": "1"}
    log_dir = tmp_path_factory.mktemp("dask-logs")
    address, procs = start_dask_cluster(n_workers=2, env=env, log_dir=log_dir)
    yield address, procs, env, log_dir
    stop_processes(procs)


@pytest.mark.server
def test_s3_archive_and_store_on_external_dask_cluster(
    prefect_harness, dask_cluster, s3_storage_options, tiny_model_dir, tmp_path
):
    import fsspec

    from flows.pipeline import backfill
    from plumenet.jobs.synth_archive import write_archive

    address, _, _, _ = dask_cluster
    fs = fsspec.filesystem("s3", **s3_storage_options)
    fs.mkdir("flowbucket")
    truth = write_archive(
        "s3://flowbucket/archive",
        layout="avo",
        start=pd.Timestamp(START, tz="UTC"),
        end=pd.Timestamp(LAST_DAY, tz="UTC") + pd.Timedelta(days=1),
        cadence=CADENCE,
        seed=9,
        broken=2,
        size=(160, 120),
        fields={"CAM": "s3cam"},
        camera="S3CAM",
        storage_options=s3_storage_options,
    )
    config = write_config(
        tmp_path,
        archive="s3://flowbucket/archive",
        model=tiny_model_dir,
        cadence=CADENCE,
        start=START,
        camera="S3CAM",
        template="avo",
        fields={"CAM": "s3cam"},
        store="s3://flowbucket/plumenet.zarr",
        storage_options=s3_storage_options,
    )
    report = backfill(config=str(config), start=START, end=LAST_DAY, cluster=address)
    assert report["units_failed"] == []
    ds = read_arrays("s3://flowbucket/plumenet.zarr", "S3CAM", s3_storage_options)
    n_broken = sum(1 for _, kind in truth.broken if kind != "misnamed")
    assert n_broken > 0
    assert int((ds["status"] == 2).sum()) == n_broken
    assert int(np.isin(ds["status"], [1, 3]).sum()) == report["frames"] - n_broken
    assert report["frames"] > 0
    # the secret never reaches the store
    secret = s3_storage_options["secret"]
    for path in fs.find("flowbucket/plumenet.zarr"):
        assert secret.encode() not in fs.cat_file(path)


def test_worker_killed_mid_run_still_completes(
    prefect_harness, dask_cluster, archive, tiny_model_dir, tmp_path
):
    from flows.pipeline import backfill

    address, procs, _env, _log_dir = dask_cluster
    root, _ = archive
    reference = tmp_path / "reference"
    reference.mkdir()
    ref_config = write_config(
        reference, archive=root, model=tiny_model_dir, cadence=CADENCE, start=START
    )
    backfill(config=str(ref_config), start=START, end=LAST_DAY, cluster=address)

    config = write_config(
        tmp_path, archive=root, model=tiny_model_dir, cadence=CADENCE, start=START
    )
    store = yaml.safe_load(Path(config).read_text())["store"]
    result: dict = {}

    def run() -> None:
        result["report"] = backfill(config=str(config), start=START, end=LAST_DAY, cluster=address)

    thread = threading.Thread(target=run)
    thread.start()
    victim = procs[-1]
    # kill a worker as soon as any work has reached the store (or after a short wait)
    wait_for_status(store, "FLOW", minimum=1, timeout=60, allow_timeout=True)
    victim.send_signal(signal.SIGKILL)
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert victim.poll() is not None
    report = result["report"]
    assert report["units_failed"] == []
    got, want = read_arrays(store, "FLOW"), read_arrays(reference / "plumenet.zarr", "FLOW")
    for name in DATA_VARS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_flow_killed_mid_run_resumes_only_missing_units(
    prefect_harness, archive, tiny_model_dir, clean_run, tmp_path
):
    from prefect.settings import PREFECT_API_URL

    root, _ = archive
    config = write_config(
        tmp_path, archive=root, model=tiny_model_dir, cadence=CADENCE, start=START
    )
    store = yaml.safe_load(Path(config).read_text())["store"]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    cmd = [
        sys.executable, "-m", "plumenet.cli", "backfill", "--config", str(config),
        "--start", START, "--end", LAST_DAY,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        wait_for_status(store, "FLOW", minimum=1, timeout=180)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = _done_units(store)
    assert done_before == 1, "the kill should land between the two units"

    summary = tmp_path / "rerun.json"
    rerun = subprocess.run(
        [*cmd, "--json", str(summary)], env=env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads(summary.read_text())["units_run"] == 2 - done_before

    clean_config, _ = clean_run
    clean_store = yaml.safe_load(Path(clean_config).read_text())["store"]
    got, want = read_arrays(store, "FLOW"), read_arrays(clean_store, "FLOW")
    for name in DATA_VARS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def _done_units(store: str) -> int:
    status = zarr.open_group(store, mode="r")["FLOW"]["status"][:]
    per_unit = 48  # one day of 30-min slots
    start = int(np.flatnonzero(status)[0] // per_unit) if status.any() else 0
    return sum(
        int(status[u * per_unit : (u + 1) * per_unit].any()) for u in range(start, start + 2)
    )


def test_nightly_covers_the_lookback_and_picks_up_late_uploads(
    prefect_harness, tiny_model_dir, tmp_path
):
    from flows.pipeline import nightly
    from plumenet.jobs.synth_archive import write_archive

    today = pd.Timestamp.now(tz="UTC").floor("1D")
    yesterday = today - pd.Timedelta(days=1)
    archive = tmp_path / "archive"
    truth = write_archive(
        str(archive), layout="flat", start=yesterday, end=today, cadence="2h", seed=3,
        size=(96, 72), fields={"CAM": "flowcam"}, camera="FLOW", missing=0.0,
    )  # fmt: skip
    config = write_config(
        tmp_path, archive=archive, model=tiny_model_dir, cadence="1h",
        start=(today - pd.Timedelta(days=3)).date().isoformat(),
    )  # fmt: skip
    store = yaml.safe_load(Path(config).read_text())["store"]

    first = nightly(config=str(config), lookback="1D", cluster="local")
    assert first["units_failed"] == [] and first["frames"] == len(truth.fractions)
    status = zarr.open_group(store, mode="r")["FLOW"]["status"][:]
    assert int((status != 0).sum()) == len(truth.fractions)

    # a frame uploaded late, at an hour that had none, is picked up by the next night
    late = archive / f"flowcam_{yesterday + pd.Timedelta(hours=5):%Y%m%d_%H%M%S}.jpg"
    late.write_bytes((archive / Path(truth.fractions["path"].iloc[0]).name).read_bytes())
    second = nightly(config=str(config), lookback="1D", cluster="local")
    assert second["units_run"] == 1
    sources = zarr.open_group(store, mode="r")["FLOW"]["source"][:]
    assert str(late) in set(sources)

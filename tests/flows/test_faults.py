"""A backfill on an S3 archive survives real S3 faults: nothing lost, arrays equal a clean run.

The faults are real HTTP: a fault-injecting proxy (tests/helpers/fault_proxy.py) on
127.0.0.1 in front of moto answers 8 % of the frame GETs with 500 / 503 or drops the
connection (seeded, bounded). botocore's own retries are off (``total_max_attempts: 1``) so
every fault that s3fs does not absorb reaches the per-file retry of the work unit, whose
counts the run's summary reports. One object answers 403 throughout: that frame is one
``status=2`` slot with its reason, not a lost unit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.helpers.fault_proxy import FaultPlan, fault_proxy
from tests.helpers.flows import DATA_VARS, read_arrays, write_config

pytestmark = [pytest.mark.slow]

START, LAST_DAY = "2024-02-01", "2024-02-02"  # two daily units
CADENCE = "30min"


@pytest.fixture(scope="module")
def s3_archive(make_bucket, s3_storage_options):
    """A two-day synthetic archive (with a few broken files) in a fresh moto bucket."""
    from plumenet.jobs.synth_archive import write_archive

    bucket = make_bucket(None)
    truth = write_archive(
        f"{bucket}/archive",
        layout="flat",
        start=pd.Timestamp(START, tz="UTC"),
        end=pd.Timestamp(LAST_DAY, tz="UTC") + pd.Timedelta(days=1),
        cadence=CADENCE,
        seed=21,
        broken=2,
        size=(160, 120),
        fields={"CAM": "faultcam"},
        camera="FAULT",
        storage_options=s3_storage_options,
    )
    return bucket, truth


def _run(tmp_path, name, bucket, model, storage_options):
    from flows.pipeline import backfill

    out = tmp_path / name
    out.mkdir()
    store = f"{bucket}/{name}.zarr"
    config = write_config(
        out, archive=f"{bucket}/archive", model=model, cadence=CADENCE, start=START,
        camera="FAULT", fields={"CAM": "faultcam"}, store=store,
        storage_options=storage_options,
    )  # fmt: skip
    report = backfill(config=str(config), start=START, end=LAST_DAY, cluster="local")
    return report, store


def _no_retry(storage_options, endpoint):
    return {
        **storage_options,
        "client_kwargs": {"endpoint_url": endpoint},
        "config_kwargs": {"retries": {"total_max_attempts": 1}},
    }


def test_backfill_through_s3_faults_equals_a_clean_run(
    prefect_harness, moto_server, s3_storage_options, s3_archive, tiny_model_dir, tmp_path
):
    bucket, truth = s3_archive
    clean, clean_store = _run(tmp_path, "clean", bucket, tiny_model_dir, s3_storage_options)
    assert clean["units_failed"] == [] and clean["fetch_retries"] == 0

    frames = truth.fractions
    good = frames[frames["broken"].fillna("") == ""]["url"]
    denied = str(good.iloc[len(good) // 2])
    plan = FaultPlan(rate=0.08, kinds=("500", "503", "drop"), max_faults=40, seed=3,
                     match="/archive/", deny=(denied.split("/archive/", 1)[1],))  # fmt: skip
    with fault_proxy(moto_server, plan, lifetime_s=300) as proxy:
        options = _no_retry(s3_storage_options, proxy.url)
        faulty, faulty_store = _run(tmp_path, "faulty", bucket, tiny_model_dir, options)
        faults = proxy.counts()
    denials = faults.pop("403", 0)
    print(f"faults injected {faults}, 403s {denials}, per-file retries {faulty['fetch_retries']}")
    assert sum(faults.values()) >= 3, f"too few faults injected to test anything: {faults}"
    assert denials >= 1
    assert faulty["units_failed"] == []
    assert faulty["frames"] == clean["frames"]
    # the 500s and drops reached the per-file retry (s3fs itself absorbs 503 SlowDown)
    assert faulty["fetch_retries"] >= faults.get("500", 0)
    assert faulty["fetch_retries"] == sum(f["retries"] for f in faulty["retried_files"])
    # the object answering 403 is one unreadable frame, with its reason; nothing else differs
    reasons = {f["path"]: f["reason"] for f in faulty["unreadable_files"]}
    clean_reasons = {f["path"]: f["reason"] for f in clean["unreadable_files"]}
    assert set(reasons) - set(clean_reasons) == {denied}
    assert reasons[denied].startswith("permission denied (HTTP 403)")
    a = read_arrays(clean_store, "FAULT", s3_storage_options)
    b = read_arrays(faulty_store, "FAULT", s3_storage_options)
    slot = int(np.flatnonzero(b["source"] == denied)[0])
    assert b["status"][slot] == 2 and a["status"][slot] in (1, 3)
    keep = np.arange(len(a["status"])) != slot
    for name in DATA_VARS:
        np.testing.assert_array_equal(a[name][keep], b[name][keep], err_msg=name)

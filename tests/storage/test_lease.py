"""The store lease: one driver at a time, renewed while it runs, taken over when its holder
died or let it expire; on local disk (flock) and on S3 (moto, conditional puts)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plumenet.errors import StoreError
from storage.lease import LeaseHeldError, LeaseRecord, StoreLease, store_lease
from storage.lease_objects import LEASE_KEY, FsspecLeaseBackend, LeaseConflictError, lease_backend
from tests.helpers.driver import day, run_driver, start_driver, write_setup


def _wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if text in line:
            return
        if proc.poll() is not None:
            raise AssertionError(f"driver ended before {text!r}: {proc.stderr.read()}")  # type: ignore[union-attr]
    raise TimeoutError(text)


@pytest.mark.slow
def test_second_driver_exits_with_one_line_naming_the_holder(tmp_path):
    config = write_setup(tmp_path)
    first = start_driver(config, day(0), day(1), env={"DRIVER_HOLD_S": "4"})
    try:
        _wait_for_line(first, "holding")
        second = run_driver(config, day(0), day(1), env={"PLUMENET_LEASE_WAIT_S": "0"})
    finally:
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert lines[0].startswith(f"error: store {tmp_path / 'plumenet.zarr'} is in use by ")
    host = socket.gethostname()
    assert f"plumenet test driver on {host} (pid {first.pid}), lease until 20" in lines[0]
    assert "wait for that run to finish" in lines[0]
    assert json.loads(out)["units_run"] == 2


@pytest.mark.slow
def test_second_driver_waits_for_the_first_and_finds_the_work_done(tmp_path):
    config = write_setup(tmp_path)
    first = start_driver(config, day(0), day(1), env={"DRIVER_HOLD_S": "2"})
    _wait_for_line(first, "holding")
    second = start_driver(config, day(0), day(1), env={"PLUMENET_LEASE_WAIT_S": "60"})
    out1, err1 = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert (first.returncode, second.returncode) == (0, 0), err1 + err2
    assert json.loads(out1)["units_run"] == 2
    assert json.loads(out2)["units_run"] == 0, "the second driver ran after the first"
    assert not (tmp_path / "plumenet.zarr" / LEASE_KEY).exists(), "released at the end"


@pytest.mark.slow
def test_killed_driver_lease_is_taken_over(tmp_path):
    config = write_setup(tmp_path)
    victim = start_driver(config, day(0), day(1), env={"DRIVER_HOLD_S": "120"})
    _wait_for_line(victim, "holding")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    record = json.loads((tmp_path / "plumenet.zarr" / LEASE_KEY).read_text())
    assert record["pid"] == victim.pid and record["expires"] > time.time()
    rerun = run_driver(config, day(0), day(1), env={"PLUMENET_LEASE_WAIT_S": "0"})
    assert rerun.returncode == 0, rerun.stderr
    assert "is dead; taking over" in rerun.stderr
    assert json.loads(rerun.stdout)["units_run"] == 2


def _foreign_lease(url: str, expires_in: float) -> None:
    """A lease held by a driver on another host (its liveness cannot be checked here)."""
    rec = LeaseRecord(
        "plumenet backfill", "elsewhere", 1, "t0", time.time(), time.time() + expires_in
    )
    lease_backend(url, None).create(rec.encode())


def test_expired_lease_of_another_host_is_taken_over_only_after_expiry(tmp_path):
    url = str(tmp_path / "store.zarr")
    _foreign_lease(url, expires_in=1.5)
    with pytest.raises(LeaseHeldError, match=r"in use by plumenet backfill on elsewhere \(pid 1\)"):
        StoreLease(url, wait_s=0).acquire()
    started = time.monotonic()
    with store_lease(url, wait_s=10, owner="me") as lease:
        assert time.monotonic() - started >= 1.0
        record = LeaseRecord.decode(lease.backend.read()[0])  # type: ignore[index]
        assert record is not None and record.owner == "me" and record.pid == os.getpid()


def test_lease_is_renewed_while_held_and_reentrant(tmp_path):
    url = str(tmp_path / "store.zarr")
    with store_lease(url, ttl_s=0.6, owner="long run") as lease:
        first = LeaseRecord.decode(lease.backend.read()[0])  # type: ignore[index]
        time.sleep(1.5)  # longer than the ttl: only renewal keeps it
        with pytest.raises(LeaseHeldError, match="in use by long run"):
            StoreLease(url, wait_s=0).acquire()
        with store_lease(url) as inner:  # the same process: re-entrant, no deadlock
            assert inner is lease
        now = LeaseRecord.decode(lease.backend.read()[0])  # type: ignore[index]
        assert now.expires > first.expires and not lease.lost  # type: ignore[union-attr]
    assert lease_backend(url, None).read() is None


def test_garbled_lease_object_is_taken_over(tmp_path):
    url = str(tmp_path / "store.zarr")
    Path(url).mkdir()
    (Path(url) / LEASE_KEY).write_text("{not json")
    with store_lease(url, wait_s=0) as lease:
        assert not lease.lost


_GRAB = """
import sys, time
from storage.lease import StoreLease, LeaseHeldError
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
lease = StoreLease(sys.argv[1], wait_s=0, owner=sys.argv[3])
try:
    lease.acquire()
except LeaseHeldError:
    print("refused"); sys.exit(0)
print("won"); sys.stdout.flush(); time.sleep(2); lease.release()
"""


@pytest.mark.slow
def test_four_processes_grab_a_free_lease_at_one_instant_one_wins(tmp_path):
    url = str(tmp_path / "store.zarr")
    at = time.time() + 2.0
    procs = [
        subprocess.Popen([sys.executable, "-c", _GRAB, url, str(at), f"p{i}"],
                         stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
        for i in range(4)
    ]  # fmt: skip
    results = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert results == ["refused", "refused", "refused", "won"]


def test_s3_lease_takes_renews_refuses_and_releases(s3_bucket, s3_storage_options):
    url = f"{s3_bucket}/plumenet.zarr"
    backend = lease_backend(url, s3_storage_options)
    assert isinstance(backend, FsspecLeaseBackend) and backend.conditional
    with store_lease(url, s3_storage_options, ttl_s=0.9, owner="s3 driver") as lease:
        etag = lease.etag
        time.sleep(1.2)
        assert lease.etag != etag and not lease.lost, "renewed with a conditional put"
        with pytest.raises(LeaseHeldError, match="in use by s3 driver"):
            StoreLease(url, s3_storage_options, wait_s=0).acquire()
    assert backend.read() is None


def test_s3_conditional_puts_refuse_a_stale_writer(s3_bucket, s3_storage_options):
    backend = lease_backend(f"{s3_bucket}/x.zarr", s3_storage_options)
    backend.create(b"first")
    with pytest.raises(LeaseConflictError, match="exists already"):
        backend.create(b"second")  # If-None-Match: * on an existing object
    data, etag = backend.read()  # type: ignore[misc]
    assert data == b"first"
    backend.replace(b"third", etag)
    with pytest.raises(LeaseConflictError, match="changed since it was read"):
        backend.replace(b"fourth", etag)  # If-Match on an etag that is gone
    assert backend.read()[0] == b"third"  # type: ignore[index]


def test_unwritable_store_location_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=r"cannot create the store folder .*file/store.zarr"):
        StoreLease(str(blocker / "store.zarr"), wait_s=0).acquire()


@pytest.mark.slow
@pytest.mark.server
def test_real_backfill_flow_refuses_while_another_driver_holds_the_lease(prefect_harness, tmp_path):
    """The lease is wired into the backfill flow: ``plumenet backfill`` ends with the line."""
    config = write_setup(tmp_path)
    holder = start_driver(config, day(0), day(1), env={"DRIVER_HOLD_S": "120"})
    try:
        _wait_for_line(holder, "holding")
        cli = subprocess.run(
            [sys.executable, "-m", "plumenet.cli", "backfill", "--config", str(config),
             "--start", day(0), "--end", day(1)],
            env={**os.environ, "PREFECT_API_URL": prefect_harness, "PLUMENET_LEASE_WAIT_S": "0"},
            capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2],
        )  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert cli.returncode == 2, cli.stderr[-2000:]
    errors = [line for line in cli.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [errors[-1]] and f"(pid {holder.pid})" in errors[0]
    assert f"is in use by plumenet test driver on {socket.gethostname()}" in errors[0]
    assert not (tmp_path / "plumenet.zarr" / "zarr.json").exists(), "nothing was written"

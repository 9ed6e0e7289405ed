"""The shared fetch-and-decode pool: real S3 faults retried per file, order, unreadable frames
kept apart, and the decode budget.

The S3 faults are real: a fault-injecting proxy (tests/helpers/fault_proxy.py) on 127.0.0.1
answers 500s or drops connections in front of moto's S3 server. botocore's own retries are
switched off (``total_max_attempts: 1``) so that every fault reaches our per-file retry (aiohttp
still resends a request once when its connection is dropped).
"""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from plumenet.inference.decode import DecodeBudget, decode_cost
from plumenet.jobs import frames
from tests.helpers.fault_proxy import FaultPlan, fault_proxy


def _jpeg(rng, size):
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _png(rng, side, mode="RGB"):
    channels = {"RGB": 3, "RGBA": 4}[mode]
    buf = io.BytesIO()
    img = Image.fromarray(rng.integers(0, 255, (side, side, channels), dtype=np.uint8), mode)
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


@pytest.fixture
def s3_object(make_bucket, s3_storage_options, rng):
    """One JPEG in a fresh bucket on moto: ``(bucket name, key, bytes)``."""
    import s3fs

    bucket = make_bucket(None).removeprefix("s3://")
    data = _jpeg(rng, (20, 30))
    fs = s3fs.S3FileSystem(**s3_storage_options, skip_instance_cache=True)
    fs.pipe(f"{bucket}/cam/x.jpg", data)
    fs.pipe(f"{bucket}/cam/secret.jpg", data)
    return bucket, data


def _proxied_fs(s3_storage_options, proxy_url):
    """s3fs through the proxy, botocore retries off: each fault reaches ``frames.fetch``."""
    options = {
        **s3_storage_options,
        "client_kwargs": {"endpoint_url": proxy_url},
        "config_kwargs": {"retries": {"total_max_attempts": 1}},
        "skip_instance_cache": True,
    }
    return frames.filesystem("s3://any", options)


@pytest.mark.parametrize(("kind", "faults", "expected_retries"), [("500", 2, 2), ("drop", 4, 2)])
def test_real_transient_s3_faults_are_retried_per_file(
    moto_server, s3_storage_options, s3_object, kind, faults, expected_retries
):
    bucket, data = s3_object
    path = f"{bucket}/cam/x.jpg"
    plan = FaultPlan(rate=0.0, flaky=((path, faults, kind),))
    with fault_proxy(moto_server, plan, lifetime_s=60) as proxy:
        fs = _proxied_fs(s3_storage_options, proxy.url)
        sleeps: list[float] = []
        got, retries = frames.fetch(fs, path, attempts=4, sleep=sleeps.append)
        assert got == data
        assert retries == expected_retries and len(sleeps) == retries
        assert 0.2 <= sleeps[0] <= 0.4 and 0.4 <= sleeps[1] <= 0.8  # backoff with jitter
        assert proxy.counts() == {kind: faults}


def test_a_fault_that_outlasts_the_attempts_is_raised_for_the_unit(
    moto_server, s3_storage_options, s3_object
):
    bucket, _ = s3_object
    path = f"{bucket}/cam/x.jpg"
    with fault_proxy(moto_server, FaultPlan(rate=0.0, flaky=((path, 50, "500"),))) as proxy:
        fs = _proxied_fs(s3_storage_options, proxy.url)
        with pytest.raises(OSError, match="injected internal error") as info:
            frames.fetch(fs, path, attempts=3, sleep=lambda s: None)
        assert frames.is_transient(info.value)
        assert any("still failing after 3 attempts" in n for n in info.value.__notes__)
        # and the pool raises it, so the unit fails (never a status=2 for an outage)
        with pytest.raises(OSError, match="injected internal error"):
            frames.load_one(fs, 0, path, 32, 1, False)
        assert proxy.counts() == {"500": 4}, "3 attempts, then 1"


def test_s3_403_is_one_unreadable_frame_without_retries(moto_server, s3_storage_options, s3_object):
    bucket, _ = s3_object
    path = f"{bucket}/cam/secret.jpg"
    with fault_proxy(moto_server, FaultPlan(rate=0.0, deny=("secret.jpg",))) as proxy:
        fs = _proxied_fs(s3_storage_options, proxy.url)
        loaded = frames.load_one(fs, 7, path, 32, 4, False)
        assert loaded.frame is None and loaded.key == 7
        assert loaded.error.startswith("permission denied (HTTP 403)")
        assert proxy.counts() == {"403": 1}, "a 403 is not retried"
        ok = frames.load_one(fs, 8, f"{bucket}/cam/x.jpg", 32, 4, False)
        assert ok.frame.shape == (32, 32, 3) and ok.error is None


def test_local_file_errors_are_file_errors(tmp_path, rng):
    loop = tmp_path / "loop.jpg"
    loop.symlink_to(loop)
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    fs = frames.filesystem(str(tmp_path), {})
    reasons = {
        name: frames.load_one(fs, 0, str(tmp_path / name), 32, 4, False).error
        for name in ("loop.jpg", "folder.jpg", "gone.jpg")
    }
    assert reasons["loop.jpg"].startswith("I/O error (ELOOP)")
    assert reasons["folder.jpg"] == "is a directory, not a file"
    assert reasons["gone.jpg"] == "file vanished"


def test_errors_that_concern_the_unit_are_raised(tmp_path):
    class Broken:
        def cat_file(self, path):
            raise RuntimeError("no credentials configured")

    with pytest.raises(RuntimeError, match="no credentials"):
        frames.load_one(Broken(), 0, "x", 32, 4, False)
    assert frames.file_error_reason(RuntimeError("x")) is None


def test_decoded_batches_keep_order_and_report_unreadable_frames(tmp_path, rng):
    paths = []
    for i in range(7):
        path = tmp_path / f"f{i}.jpg"
        path.write_bytes(b"not a jpeg" if i in (2, 5) else _jpeg(rng, (40, 60)))
        paths.append(str(path))
    paths.append(str(tmp_path / "gone.jpg"))
    skipped: list[str] = []
    batches = list(frames.decoded_batches(paths, 32, {}, 2, skipped, threads=3))
    rows = [r for batch_rows, _ in batches for r in batch_rows]
    assert rows == [0, 1, 3, 4, 6]
    assert all(stack.shape == (len(r), 32, 32, 3) for r, stack in batches)
    assert [len(r) for r, _ in batches] == [2, 2, 1]
    assert len(skipped) == 3
    assert skipped[0].startswith(paths[2]) and skipped[-1] == f"{paths[7]}: file vanished"


def test_decode_budget_never_holds_more_than_its_limit():
    budget = DecodeBudget(100)
    running, peak = [0], [0]
    lock = threading.Lock()

    def work(cost):
        with budget.hold(cost):
            with lock:
                running[0] += cost
                peak[0] = max(peak[0], running[0])
            time.sleep(0.01)
            with lock:
                running[0] -= cost

    threads = [threading.Thread(target=work, args=(c,)) for c in [60, 60, 30, 150, 40, 60] * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    # one over-limit decode (150) runs alone; everything else fits in 100
    assert peak[0] == 150 and budget.peak == 150 and budget.in_use == 0
    with pytest.raises(ValueError, match="must be positive"):
        DecodeBudget(0)


def test_decode_cost_is_read_from_the_header(rng):
    big = _png(rng, 2100)  # >= 4x the 518 target: reduced right after loading
    small = _png(rng, 600)
    assert decode_cost(big, 518) == 2100 * 2100 * 10
    assert decode_cost(small, 518) == 600 * 600 * 12
    assert decode_cost(small, None) == 600 * 600 * 12
    assert decode_cost(_png(rng, 600, "RGBA"), None) == 600 * 600 * 32
    assert decode_cost(b"not an image", 518) == 0
    # a JPEG decodes at its draft scale: 2072 px at 1/4 scale is 518 px
    assert decode_cost(_jpeg(rng, (2072, 2072)), 518) == 518 * 518 * 12


_MEMORY_CHILD = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from PIL import Image
from plumenet.inference.decode import DecodeBudget
from plumenet.jobs.frames import filesystem, prefetched

paths, limit_mb = json.loads(sys.argv[1]), float(sys.argv[2])
Image.MAX_IMAGE_PIXELS = 6_000_000  # these frames are near the (lowered) bomb limit
fs = filesystem(paths[0], {})
budget = DecodeBudget(int(limit_mb * 2**20))

def vm(key):
    with open("/proc/self/status") as fh:
        return int(next(line for line in fh if line.startswith(key)).split()[1]) / 1024

with ThreadPoolExecutor(max_workers=len(paths)) as pool:
    list(prefetched(pool, fs, [(0, paths[0])], 518, attempts=1, window=1, budget=budget))
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # peak RSS := current RSS
    base = vm("VmRSS")
    loaded = list(prefetched(pool, fs, list(enumerate(paths)), 518, attempts=1,
                             window=len(paths), budget=budget))
print(json.dumps({"peak_mb": vm("VmHWM") - base, "budget_peak_mb": budget.peak / 2**20,
                  "ok": sum(f.frame is not None for f in loaded)}))
"""


@pytest.mark.slow
def test_near_limit_images_stay_under_the_decode_budget(tmp_path):
    """Peak RSS of decoding 4 near-limit PNGs on 4 threads: bounded by the budget, not by 4x."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    side = 2400  # 5.8 Mpx: just under the child's lowered Image.MAX_IMAGE_PIXELS
    yy, xx = np.mgrid[0:side, 0:side]
    rgba = np.stack([xx % 256, yy % 256, (xx + yy) % 256, np.full_like(xx, 200)], -1)
    paths = []
    for i in range(4):
        path = tmp_path / f"huge{i}.png"
        Image.fromarray(((rgba + i) % 256).astype(np.uint8), "RGBA").save(path, compress_level=1)
        paths.append(str(path))
    cost_mb = decode_cost(Path(paths[0]).read_bytes(), 518) / 2**20
    repo = Path(__file__).resolve().parents[2]

    env = dict(os.environ)

    def peak(limit_mb: float) -> dict:
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, json.dumps(paths), str(limit_mb)],
            capture_output=True, text=True, timeout=120, cwd=repo, check=True, env=env,
        )  # fmt: skip
        return json.loads(out.stdout.strip().splitlines()[-1])

    bounded = peak(1.2 * cost_mb)  # room for one decode at a time
    unbounded = peak(100 * cost_mb)
    assert bounded["ok"] == unbounded["ok"] == 4
    assert bounded["budget_peak_mb"] == pytest.approx(cost_mb)
    assert unbounded["budget_peak_mb"] > 2 * cost_mb  # the 4 threads did decode together
    # one decode's estimate (plus 25 MB: fetched bytes, arrays, allocator) bounds the peak
    assert bounded["peak_mb"] < cost_mb + 25, (bounded, cost_mb)
    assert unbounded["peak_mb"] > 1.8 * bounded["peak_mb"], (bounded, unbounded)

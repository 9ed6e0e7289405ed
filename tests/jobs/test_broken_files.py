"""Every kind of broken frame is one ``status=2`` slot with its reason, never a failed unit.

Each kind is caused for real: a symlink loop, a directory where a frame should be, a file
the kernel refuses to read (``/proc/self/mem``), a file vanished after listing, bytes that
are empty / truncated / not an image, a file with mode 000 read by an unprivileged process
(as root, a child process without CAP_DAC_OVERRIDE reads it, via ``setpriv``), and an S3
object answering 403 through the fault proxy in front of moto.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plumenet.jobs.workunit import UnitJob, run_unit
from tests.helpers.fault_proxy import FaultPlan, fault_proxy

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    from plumenet.model.registry import build_model
    from plumenet.model.weights import save_model

    out = tmp_path_factory.mktemp("bf") / "tiny"
    save_model(build_model("tiny", seed=0), out, model_id="tiny-broken-files")
    return str(out)


def _jpeg(rng: np.random.Generator, shape=(60, 80)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _grid_and_store(tmp_path: Path):
    from plumenet.config import CameraConfig
    from storage.zarr_store import ensure_camera

    camera = CameraConfig(
        id="BF", archive=str(tmp_path), template="flat", fields={"CAM": "bf"},
        cadence="1h", grid_start=pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime(),
    )  # fmt: skip
    store = str(tmp_path / "s.zarr")
    grid = ensure_camera(
        store, camera, pd.Timestamp("2024-01-01", tz="UTC"),
        pd.Timestamp("2024-01-02", tz="UTC"), grid_shape=(37, 37),
    )  # fmt: skip
    return grid, store


def _unit(grid, paths: list[str]):
    from storage.grid import WorkUnit

    frames = tuple((k, p, grid.slot_time(k)) for k, p in enumerate(paths))
    slot0, slot1 = grid.unit_range(0)
    return WorkUnit("BF", 0, slot0, slot1, frames)


def _local_kinds(root: Path, rng) -> dict[str, str]:
    """name -> path of each locally caused broken kind (plus two good frames)."""
    good = _jpeg(rng)
    (root / "good0.jpg").write_bytes(good)
    (root / "good1.jpg").write_bytes(_jpeg(rng))
    (root / "empty.jpg").write_bytes(b"")
    (root / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "not_image.jpg").write_bytes(b"<html>404</html>")
    (root / "loop.jpg").symlink_to(root / "loop.jpg")
    (root / "folder.jpg").mkdir()
    return {
        "good0": str(root / "good0.jpg"),
        "empty": str(root / "empty.jpg"),
        "truncated": str(root / "truncated.jpg"),
        "not_image": str(root / "not_image.jpg"),
        "symlink_loop": str(root / "loop.jpg"),
        "directory": str(root / "folder.jpg"),
        "kernel_refuses": "/proc/self/mem",
        "vanished": str(root / "gone.jpg"),
        "good1": str(root / "good1.jpg"),
    }


EXPECTED_REASON = {
    "empty": "empty file",
    "truncated": "truncated",
    "not_image": "not an image",
    "symlink_loop": "I/O error (ELOOP)",
    "directory": "is a directory",
    "kernel_refuses": "I/O error (E",
    "vanished": "file vanished",
    "permission_000": "permission denied (EACCES)",
    "s3_403": "permission denied (HTTP 403)",
}


def test_local_broken_kinds_are_status_2_and_the_unit_is_written(tmp_path, rng, tiny_dir):
    import zarr

    grid, store = _grid_and_store(tmp_path)
    kinds = _local_kinds(tmp_path, rng)
    unit = _unit(grid, list(kinds.values()))
    job = UnitJob(store=store, camera="BF", model=tiny_dir, model_index=0, batch_size=4)
    summary = run_unit(unit, job)

    status = zarr.open_group(store, mode="r")["BF"]["status"][: len(kinds)]
    by_path = dict(summary.unreadable_files)
    recorded = []
    for slot, (name, path) in enumerate(kinds.items()):
        if name.startswith("good"):
            assert status[slot] in (1, 3), name
            continue
        assert status[slot] == 2, name
        assert by_path[path].startswith(EXPECTED_REASON[name]), (name, by_path[path])
        recorded.append(name)
    assert summary.unreadable == len(recorded) == 7
    assert summary.ok + summary.unusable == 2


_CHILD = """
import json, sys
from plumenet.jobs.frames import filesystem, load_one
path = sys.argv[1]
loaded = load_one(filesystem(path, {}), 0, path, 32, 4, False)
print(json.dumps({"error": loaded.error}))
"""


def test_unreadable_permissions_are_status_2_for_an_unprivileged_reader(rng):
    folder = Path(tempfile.mkdtemp(prefix="plumenet-perm-"))
    try:
        folder.chmod(0o755)
        path = folder / "locked.jpg"
        path.write_bytes(_jpeg(rng))
        path.chmod(0o000)
        # root reads anything through CAP_DAC_OVERRIDE: the child drops it (and DAC_READ_SEARCH)
        drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
        prefix = drop if os.geteuid() == 0 else []
        out = subprocess.run(
            [*prefix, sys.executable, "-c", _CHILD, str(path)],
            capture_output=True, text=True, timeout=120, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["error"].startswith(EXPECTED_REASON["permission_000"]), result
    finally:
        path.chmod(0o644)
        path.unlink()
        folder.rmdir()


def test_s3_object_answering_403_is_one_status_2_frame(
    tmp_path, rng, tiny_dir, moto_server, s3_storage_options, s3_bucket
):
    import s3fs
    import zarr

    fs = s3fs.S3FileSystem(**s3_storage_options, skip_instance_cache=True)
    bucket = s3_bucket.removeprefix("s3://")
    paths = [f"s3://{bucket}/cam/f{k}.jpg" for k in range(5)]
    for path in paths:
        fs.pipe(path.removeprefix("s3://"), _jpeg(rng))
    grid, store = _grid_and_store(tmp_path)
    with fault_proxy(moto_server, FaultPlan(rate=0.0, deny=("cam/f2.jpg",)), 120) as proxy:
        options = {**s3_storage_options, "client_kwargs": {"endpoint_url": proxy.url}}
        job = UnitJob(
            store=store, camera="BF", model=tiny_dir, model_index=0, batch_size=2,
            storage_options=options,
        )  # fmt: skip
        summary = run_unit(_unit(grid, paths), job)
        assert proxy.counts() == {"403": 1}
    status = zarr.open_group(store, mode="r")["BF"]["status"][:5]
    assert status[2] == 2 and set(status[[0, 1, 3, 4]]) <= {1, 3}
    assert [p for p, _ in summary.unreadable_files] == [paths[2]]
    assert summary.unreadable_files[0][1].startswith(EXPECTED_REASON["s3_403"])

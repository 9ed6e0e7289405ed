"""Store damage: each kind is found by ``plumenet verify`` (and, where the cheap check can
see it, by the next backfill before it writes anything); ``--repair`` marks exactly the
damaged units for reprocessing, and the next backfill restores arrays equal to a clean run.
What cannot be repaired (the group's ``zarr.json``, which holds the ``models`` table) is one
clear ``error:`` line, and nothing is rewritten."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from plumenet.cli import main
from storage.axis import TIME_ARRAYS
from tests.helpers import driver
from tests.helpers.driver import CAMERA, assert_same_store, day, store_arrays, write_setup
from tests.helpers.flows import chunk_snapshot

REPO = Path(__file__).resolve().parents[2]

#: The range of every run here: three one-day units.
RANGE = (day(0), day(2))


@pytest.fixture(scope="module")
def clean_store(tmp_path_factory) -> tuple[Path, Path]:
    """A finished store over three units and its archive (copied by each test)."""
    root = tmp_path_factory.mktemp("clean")
    config = write_setup(root)
    assert driver.main(["driver", str(config), *RANGE]) == 0
    return root / "plumenet.zarr", root / "archive"


@pytest.fixture
def store(clean_store, tmp_path) -> tuple[Path, Path]:
    """``(config, store)``: a copy of the clean store, over the same archive."""
    clean, archive = clean_store
    config = write_setup(tmp_path, archive=archive)
    shutil.copytree(clean, tmp_path / "plumenet.zarr")
    return config, tmp_path / "plumenet.zarr"


def verify(config: Path, *args: str):
    return CliRunner().invoke(main, ["verify", "--config", str(config), *args])


def backfill(config: Path, capsys) -> tuple[int, str, dict | None]:
    """The driver, in this process: (exit code, stderr, summary)."""
    capsys.readouterr()
    code = driver.main(["driver", str(config), *RANGE])
    out = capsys.readouterr()
    return code, out.err, json.loads(out.out) if code == 0 else None


def _unit_status(store: Path) -> np.ndarray:
    status = zarr.open_group(str(store), mode="r", use_consolidated=False)[CAMERA]["status"][:]
    return np.array([status[u * 24 : (u + 1) * 24].any() for u in range(3)])


def _repaired_and_redone(config, store, clean_store, capsys, *, redo: int) -> str:
    """Repair, verify clean, backfill: exactly ``redo`` units redone, same arrays as a clean
    run. Returns what the repair said (whitespace collapsed)."""
    repaired = verify(config, "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "repaired: " in repaired.output
    assert verify(config).exit_code == 0
    code, err, summary = backfill(config, capsys)
    assert code == 0, err
    assert summary["units_run"] == redo, "exactly the damaged units are redone"
    assert_same_store(store_arrays(str(store)), store_arrays(str(clean_store[0])))
    return " ".join(repaired.output.split())


def test_clean_store_verifies(store):
    config, _ = store
    result = verify(config)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{CAMERA}: ok"


@pytest.mark.parametrize(
    ("array", "key"),
    [("probability", "c/1/0/0/0"), ("fraction", "c/1/0")],
    ids=["probability-shard", "fraction-chunk"],
)
def test_deleted_chunk_is_caught_before_the_backfill_and_repaired(
    store, clean_store, capsys, array, key
):
    config, path = store
    (path / CAMERA / array / key).unlink()
    code, err, _ = backfill(config, capsys)
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert f"is damaged: {CAMERA}: missing chunk at {CAMERA}/{array} (unit 1)" in err
    # the fix names this config file, so it can be pasted as it is
    assert f"plumenet verify --config {config} --camera {CAMERA} --repair" in err
    found = verify(config)
    assert found.exit_code == 1
    assert f"missing chunk at {CAMERA}/{array} (unit 1): status says ok" in found.output
    said = _repaired_and_redone(config, path, clean_store, capsys, redo=1)
    # the repair says which span to backfill: unit 1 is the second day
    assert f"a backfill over {day(1)}T00:00 .. {day(2)}T00:00 UTC redoes them" in said


@pytest.mark.parametrize("keep", [100, "half"])
def test_truncated_shard_is_caught_before_the_backfill_and_repaired(
    store, clean_store, capsys, keep
):
    """The cheap check reads each shard's index (it ends the shard, under a checksum): a
    truncated probability shard stops the backfill before it writes, not "nothing to do"."""
    config, path = store
    shard = path / CAMERA / "probability" / "c" / "2" / "0" / "0" / "0"
    size = shard.stat().st_size
    shard.write_bytes(shard.read_bytes()[: size // 2 if keep == "half" else keep])
    before = chunk_snapshot(path, content=True)
    code, err, _ = backfill(config, capsys)
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert f"is damaged: {CAMERA}: unreadable chunk at {CAMERA}/probability (unit 2)" in err
    assert f"run `plumenet verify --config {config} --camera {CAMERA} --repair`" in err
    assert chunk_snapshot(path, content=True) == before, "nothing written"
    found = verify(config)
    assert found.exit_code == 1
    assert f"unreadable chunk at {CAMERA}/probability (unit 2)" in found.output
    _repaired_and_redone(config, path, clean_store, capsys, redo=1)


def test_garbled_chunk_is_found_and_repaired(store, clean_store, capsys, rng):
    config, path = store
    chunk = path / CAMERA / "fraction" / "c" / "0" / "0"
    chunk.write_bytes(rng.integers(0, 256, chunk.stat().st_size, dtype=np.uint8).tobytes())
    found = verify(config)
    assert found.exit_code == 1
    assert f"unreadable chunk at {CAMERA}/fraction (unit 0)" in found.output
    _repaired_and_redone(config, path, clean_store, capsys, redo=1)


def test_garbled_status_chunk_is_removed_and_its_unit_redone(store, clean_store, capsys):
    config, path = store
    (path / CAMERA / "status" / "c" / "1").write_bytes(b"\x00garbage")
    assert f"unreadable chunk at {CAMERA}/status (unit 1)" in verify(config).output
    _repaired_and_redone(config, path, clean_store, capsys, redo=1)


def test_garbled_array_metadata_is_a_clear_error_and_rewritten(store, clean_store, capsys):
    config, path = store
    (path / CAMERA / "fraction" / "zarr.json").write_text('{"zarr_format": 3, "shape": [')
    code, err, _ = backfill(config, capsys)
    assert code == 2 and "JSONDecodeError" not in err.split(":")[1]
    assert f"the metadata of array `fraction` ({CAMERA}/fraction/zarr.json) is damaged" in err
    # the fix names this config file, so it can be pasted as it is
    assert err.strip().endswith(
        f"— run `plumenet verify --config {config} --camera {CAMERA} --repair`, then rerun"
    ), err
    assert f"damaged metadata at {CAMERA}/fraction/zarr.json" in verify(config).output
    _repaired_and_redone(config, path, clean_store, capsys, redo=0)


def test_deleted_array_metadata_is_recreated_keeping_its_chunks(store, clean_store, capsys):
    config, path = store
    (path / CAMERA / "probability" / "zarr.json").unlink()
    assert f"missing metadata at {CAMERA}/probability/zarr.json" in verify(config).output
    code, err, summary = backfill(config, capsys)  # the driver finishes it on open
    assert code == 0, err
    assert summary["units_run"] == 0, "the chunks were kept: nothing to redo"
    assert_same_store(store_arrays(str(path)), store_arrays(str(clean_store[0])))
    assert verify(config).exit_code == 0


@pytest.mark.parametrize("damage", ["garbled", "deleted"])
def test_root_metadata_damage_is_rewritten(store, clean_store, capsys, damage):
    config, path = store
    if damage == "garbled":
        (path / "zarr.json").write_text("{garbled")
    else:
        (path / "zarr.json").unlink()
    kind = "damaged" if damage == "garbled" else "missing"
    assert f"{kind} metadata at zarr.json" in verify(config).output
    if damage == "garbled":  # the driver stops before it writes, with a command to paste
        code, err, _ = backfill(config, capsys)
        assert code == 2, err
        assert f"is damaged — run `plumenet verify --config {config} --repair` to rewrite" in err
    _repaired_and_redone(config, path, clean_store, capsys, redo=0)


@pytest.mark.parametrize("damage", ["deleted", "garbled"])
def test_group_metadata_damage_is_one_error_and_nothing_is_rewritten(store, capsys, damage):
    config, path = store
    meta = path / CAMERA / "zarr.json"
    if damage == "deleted":
        meta.unlink()
    else:
        meta.write_text('{"zarr_format": 3, "attributes": {"models": "[')
    before = meta.read_bytes() if meta.exists() else None
    code, err, _ = backfill(config, capsys)
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    want = "is missing but its arrays are in the store" if damage == "deleted" else "is damaged"
    assert want in err and "restore that file from a backup" in err
    for args in ((), ("--repair",)):
        result = verify(config, *args)
        assert result.exit_code == 2
        assert result.output.strip().splitlines()[-1].startswith("error: ")
    assert (meta.read_bytes() if meta.exists() else None) == before, "never rewritten"


def test_time_resized_alone_longer_is_grown_everywhere_never_shrunk(store, clean_store, capsys):
    config, path = store
    time_arr = zarr.open_group(str(path), mode="r+", use_consolidated=False)[CAMERA]["time"]
    n = time_arr.shape[0]
    time_arr.resize((n + 24,))
    found = verify(config)
    assert found.exit_code == 1 and "length mismatch" in found.output
    repaired = verify(config, "--repair")
    assert repaired.exit_code == 0, repaired.output
    got, want = store_arrays(str(path)), store_arrays(str(clean_store[0]))
    assert got["n_slots"] == n + 24
    for name in TIME_ARRAYS:
        assert got[name].shape[0] == n + 24, name
        np.testing.assert_array_equal(got[name][:n], want[name], err_msg=name)
    assert (got["time"][n:] == 3600 * np.arange(n, n + 24)).all()
    assert (got["status"][n:] == 0).all()


def test_time_resized_alone_shorter_is_restored_by_the_next_backfill(store, clean_store, capsys):
    config, path = store
    time_arr = zarr.open_group(str(path), mode="r+", use_consolidated=False)[CAMERA]["time"]
    time_arr.resize((24,))  # zarr deletes the time chunks outside: the values are rebuilt
    assert "length mismatch" in verify(config).output
    code, err, summary = backfill(config, capsys)  # the driver finishes it on open
    assert code == 0, err
    assert summary["units_run"] == 0
    assert_same_store(store_arrays(str(path)), store_arrays(str(clean_store[0])))


def _without_root_overrides(cmd: list[str]) -> list[str]:
    """``cmd`` so that mode bits bind it: as it is for a user, under ``setpriv`` without the
    capabilities that let root write anywhere (chmod alone does not stop root)."""
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root without setpriv: nothing here can make a folder read-only to root")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", *cmd]


def _set_writable(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


def test_verify_of_a_read_only_store_checks_it_and_repair_refuses(store):
    """A mounted backup: plain verify finds the damage without the store lease (one `note:`
    line), exit 1; --repair is one error line, exit 2; nothing in the store changes."""
    config, path = store
    (path / CAMERA / "fraction" / "c" / "0" / "0").unlink()
    before = chunk_snapshot(path, content=True)
    meta = {p: p.read_bytes() for p in path.rglob("zarr.json")}
    verify_cmd = [sys.executable, "-m", "plumenet.cli", "verify", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    _set_writable(path, False)
    try:
        runs = [
            subprocess.run(_without_root_overrides(verify_cmd + extra), capture_output=True,
                           text=True, env=env, cwd=path.parent, timeout=120, check=False)
            for extra in ([], ["--repair"])
        ]  # fmt: skip
    finally:
        _set_writable(path, True)
    plain, repair = runs
    assert plain.returncode == 1, plain.stdout + plain.stderr
    assert "Traceback" not in plain.stderr
    lines = plain.stdout.splitlines()
    assert lines[0] == (
        f"note: store {path}: the folder is not writable by this user; checked read-only, "
        "without the store lease (a backfill writing to it meanwhile may show as damage)"
    )
    assert lines[1].startswith(f"{CAMERA}: missing chunk at {CAMERA}/fraction (unit 0)")
    assert repair.returncode == 2, repair.stdout + repair.stderr
    assert (repair.stdout + repair.stderr).strip() == (
        f"error: store {path}: the folder is not writable by this user, and --repair rewrites "
        "it — run the repair where the store is writable, or leave out --repair to only check it"
    )
    assert chunk_snapshot(path, content=True) == before, "no chunk written, no lease left"
    assert {p: p.read_bytes() for p in path.rglob("zarr.json")} == meta
    # writable again: verify takes the lease as before, and the repair goes through
    assert verify(config, "--repair").exit_code == 0


def test_verify_json_lists_each_damage(store, tmp_path):
    config, path = store
    (path / CAMERA / "fraction" / "c" / "0" / "0").unlink()
    out = tmp_path / "damage.json"
    assert verify(config, "--json", str(out)).exit_code == 1
    found = json.loads(out.read_text())
    assert [(d["kind"], d["where"], d["units"]) for d in found] == [
        ("missing chunk", f"{CAMERA}/fraction", [0])
    ]


@pytest.mark.slow
@pytest.mark.server
def test_deleted_shard_on_s3_is_found_repaired_and_redone(
    clean_store, tmp_path, capsys, s3_bucket, s3_storage_options
):
    import s3fs

    url = f"{s3_bucket}/plumenet.zarr"
    config = write_setup(tmp_path, archive=clean_store[1], store=url,
                         storage_options=s3_storage_options)  # fmt: skip
    code, err, summary = backfill(config, capsys)
    assert code == 0, err
    fs = s3fs.S3FileSystem(**s3_storage_options, skip_instance_cache=True)
    fs.rm_file(f"{url}/{CAMERA}/probability/c/1/0/0/0")
    found = verify(config)
    assert found.exit_code == 1
    assert f"missing chunk at {CAMERA}/probability (unit 1)" in found.output
    assert verify(config, "--repair").exit_code == 0
    code, err, summary = backfill(config, capsys)
    assert code == 0, err
    assert summary["units_run"] == 1
    got = store_arrays(url, storage_options=s3_storage_options)
    assert_same_store(got, store_arrays(str(clean_store[0])))
    assert not fs.exists(f"{url}/.plumenet-lease.json"), "the lease is released"

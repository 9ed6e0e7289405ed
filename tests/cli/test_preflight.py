"""Every user-caused error of ``plumenet backfill`` stops it before any work and any write.

Each case is a real bad input (a real moto bucket, a real dead port, real files); each must
end with exit code 2, exactly one ``error:`` line, no traceback, and nothing written: no
store, no object in the bucket, the archive untouched.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from plumenet.cli import main
from tests.helpers.flows import free_port

START = "2024-01-01"


def _camera(archive: Path, **extra) -> dict:
    return {
        "id": "PF.01", "archive": str(archive), "template": "flat", "fields": {"CAM": "pf"},
        "cadence": "1h", "grid_start": START, **extra,
    }  # fmt: skip


def _png(path: Path, array: np.ndarray) -> str:
    Image.fromarray(array).save(path)
    return str(path)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def layout(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "JPEG")
    (archive / "pf_20240101_000000.jpg").write_bytes(buf.getvalue())
    return tmp_path, archive


def _run(tmp_path: Path, doc, *args: str, text: str | None = None):
    path = tmp_path / "cameras.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(doc, sort_keys=False))
    before = _files(tmp_path)
    result = CliRunner().invoke(
        main, ["backfill", "--config", str(path), "--start", START, "--end", START, *args]
    )
    return result, _files(tmp_path) - before


def _assert_one_line(result, match: str) -> None:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert match in errors[0], errors[0]
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def _local_cases(root: Path, archive: Path) -> dict[str, tuple]:
    """name -> (config doc or None, raw text or None, extra CLI args, expected message)."""
    store = str(root / "new.zarr")
    (root / "a_file").write_text("x")
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "data.csv").write_text("a,b\n")
    garbled = root / "garbled.zarr"
    garbled.mkdir()
    (garbled / "zarr.json").write_text("{not json")
    other_zarr = root / "other.zarr"
    (other_zarr / "stuff").mkdir(parents=True)
    (other_zarr / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group"}))
    (other_zarr / "stuff" / "zarr.json").write_text(
        json.dumps({"zarr_format": 3, "node_type": "group"})
    )
    black = _png(root / "black.png", np.zeros((100, 100), np.uint8))
    tiny = _png(root / "tiny.png", np.full((10, 10), 255, np.uint8))
    (root / "roi.txt").write_text("not an image")

    def doc(store_url=store, **cam):
        return {"store": store_url, "model": "demo", "cameras": [_camera(archive, **cam)]}

    return {
        "id '.'": (doc(id="."), None, (), "cannot name the camera's group"),
        "id '..'": (doc(id=".."), None, (), "cannot name the camera's group"),
        "id 'zarr.json'": (doc(id="zarr.json"), None, (), "cannot name the camera's group"),
        "id '__x'": (doc(id="__x"), None, (), "cannot name the camera's group"),
        "empty config": (None, "", (), "no cameras"),
        "comment-only config": (None, "# nothing here\n", (), "no cameras"),
        "store under a file": (doc(str(root / "a_file" / "s.zarr")), None, (), "is a file"),
        "store is a file": (doc(str(root / "a_file")), None, (), "is a file, not a directory"),
        # mode bits say writable to root; only a write tells
        "store where nothing can be written": (
            doc("/proc/plumenet.zarr"), None, (), "cannot write in /proc",
        ),
        "unknown protocol": (doc("nosuch://x/s.zarr"), None, (), "protocol 'nosuch'"),
        "foreign directory": (doc(str(foreign)), None, (), "not a plumenet store"),
        "foreign zarr group": (doc(str(other_zarr)), None, (), "not a plumenet store"),
        "garbled zarr.json": (  # with the repair command to paste, naming this config
            doc(str(garbled)), None, (),
            f"— run `plumenet verify --config {root / 'cameras.yaml'} --repair` to rewrite it",
        ),
        "roi missing": (doc(roi=str(root / "nope.png")), None, (), "not found"),
        "roi all black": (doc(roi=black), None, (), "all black"),
        "roi not an image": (doc(roi=str(root / "roi.txt")), None, (), "is not an image"),
        "roi 10x10": (doc(roi=tiny), None, (), "too small"),
        "anomaly model missing": (
            doc(anomaly_model=str(root / "nope-padim")), None, (), "anomaly_model",
        ),
        "archive missing": (
            {**doc(), "cameras": [_camera(root / "no-archive")]}, None, (), "does not exist",
        ),
        "batch size 0": (doc(), None, ("--batch-size", "0"), "--batch-size"),
        "device bogus": (doc(), None, ("--device", "gpu0"), "--device 'gpu0'"),
    }  # fmt: skip


def test_each_local_bad_input_is_one_line_and_writes_nothing(layout):
    root, archive = layout
    cases = _local_cases(root, archive)
    caught = []
    for name, (doc, text, args, match) in cases.items():
        result, written = _run(root, doc, *args, text=text)
        if name == "batch size 0":  # click's own usage error: exit 2, its own format
            assert result.exit_code == 2 and "--batch-size" in result.output, result.output
        else:
            _assert_one_line(result, match)
        assert written == set(), (name, written)
        caught.append(name)
    assert len(caught) == len(cases) == 21


def test_remote_store_problems_are_one_line_and_write_nothing(
    layout, s3_storage_options, make_bucket
):
    import s3fs

    root, archive = layout
    fs = s3fs.S3FileSystem(**s3_storage_options, skip_instance_cache=True)
    bucket = make_bucket(None)
    dead = {
        **s3_storage_options,
        "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{free_port()}"},
    }
    cases = {
        "missing bucket": ("s3://no-such-bucket-pf/s.zarr", s3_storage_options, "does not exist"),
        "dead endpoint": (f"{bucket}/s.zarr", dead, "cannot be reached"),
    }
    for name, (store, options, match) in cases.items():
        doc = {"store": store, "model": "demo", "storage_options": options,
               "cameras": [_camera(archive)]}  # fmt: skip
        result, written = _run(root, doc)
        _assert_one_line(result, match)
        assert written == set(), (name, written)
    assert fs.ls(bucket.removeprefix("s3://")) == []
    # and a good bucket passes pre-flight without leaving its write probe behind
    from plumenet.jobs.preflight import check_store_location

    check_store_location(f"{bucket}/good.zarr", s3_storage_options)
    fs.invalidate_cache()
    assert fs.ls(bucket.removeprefix("s3://")) == []


@pytest.mark.slow
def test_a_store_error_inside_the_flow_is_one_line(prefect_harness, layout):
    """Pre-flight cannot know the store's grid drifted from the config: the flow finds it.

    A real ``plumenet`` process (Prefect's console handler writes to the process's stderr,
    which an in-process runner would not see); ``-v`` brings the traceback back.
    """
    import os
    import subprocess
    import sys

    import pandas as pd

    from plumenet.config import CameraConfig
    from storage.zarr_store import ensure_camera

    root, archive = layout
    store = root / "s.zarr"
    old = CameraConfig(**{**_camera(archive), "cadence": "30min"})
    ensure_camera(str(store), old, pd.Timestamp(START, tz="UTC"),
                  pd.Timestamp("2024-01-02", tz="UTC"), grid_shape=(37, 37))  # fmt: skip
    config = root / "cameras.yaml"
    doc = {"store": str(store), "model": "demo", "cameras": [_camera(archive)]}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    outputs = {}
    for flags in ((), ("-v",)):
        cmd = [sys.executable, "-m", "plumenet.cli", *flags, "backfill", "--config", str(config),
               "--start", START, "--end", START]  # fmt: skip
        outputs[flags] = subprocess.run(
            cmd, capture_output=True, text=True, env=env, cwd=root, timeout=300, check=False
        )
    quiet = outputs[()]
    assert quiet.returncode == 2, quiet.stderr[-3000:]
    output = quiet.stdout + quiet.stderr
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "cadence is '30min' in the store" in errors[0], output
    # no traceback, no other error record (Prefect may still warn while flushing events)
    assert "Traceback" not in output and " ERROR " not in output, output
    verbose = outputs[("-v",)]
    assert verbose.returncode == 2
    assert "Traceback" in verbose.stderr and "StoreError" in verbose.stderr


def test_report_file_problems_are_found_without_writing(tmp_path):
    """The one check behind every ``--json`` / ``--csv``: what would fail the write, found
    before it; an existing report is left as it is (the new one replaces it at the end)."""
    from plumenet.jobs.preflight import output_file_problem

    (tmp_path / "a_file").write_text("x")
    old = tmp_path / "old.json"
    old.write_text('{"kept": true}')
    stamp = old.stat().st_mtime_ns
    assert output_file_problem(tmp_path) == "is a directory, not a file"
    assert (
        output_file_problem(tmp_path / "no" / "r.json")
        == f"folder {tmp_path / 'no'} does not exist"
    )
    assert output_file_problem(tmp_path / "a_file" / "r.json") == (
        f"{tmp_path / 'a_file'} is a file, not a folder"
    )
    assert output_file_problem(Path("/proc/r.json")).startswith("cannot write in folder /proc")
    assert output_file_problem(tmp_path / "new.json") is None
    assert output_file_problem(old) is None
    assert old.read_text() == '{"kept": true}' and old.stat().st_mtime_ns == stamp
    assert _files(tmp_path) == {"a_file", "old.json"}, "the probes leave nothing behind"


def test_report_paths_are_checked_before_any_work(layout):
    """``backfill`` / ``nightly`` / ``verify --json`` and ``list --csv`` refuse a report they
    could not write in one line, exit 2, before running (a cron job would otherwise run the
    whole backfill and end in a traceback, exit 1)."""
    root, archive = layout
    config = root / "cameras.yaml"
    doc = {"store": str(root / "new.zarr"), "model": "demo", "cameras": [_camera(archive)]}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    span = ["--start", START, "--end", START]
    missing = root / "no-such-dir" / "r.json"
    commands = {
        "backfill": ["backfill", "--config", str(config), *span, "--json", str(missing)],
        "nightly": ["nightly", "--config", str(config), "--json", str(missing)],
        "verify": ["verify", "--config", str(config), "--json", str(missing)],
        "list": ["list", "--config", str(config), "--camera", "PF.01", *span, "--csv",
                 str(missing)],
    }  # fmt: skip
    before = _files(root)
    for name, args in commands.items():
        result = CliRunner().invoke(main, args)
        option = "--csv" if name == "list" else "--json"
        _assert_one_line(result, f"error: {option} {missing}: folder {missing.parent} does not")
        assert _files(root) == before, name
    # a folder given as the report is click's one line (the option takes a file)
    result = CliRunner().invoke(main, [*commands["verify"][:-1], str(root)])
    assert result.exit_code == 2 and "is a directory" in result.output, result.output


def test_list_checks_the_archive_as_backfill_does(layout):
    """An archive that is a regular file: the same one line from ``list`` as from
    ``backfill`` (not a NotADirectoryError traceback)."""
    root, _ = layout
    (root / "a_file").write_text("x")
    doc = {"store": str(root / "new.zarr"), "model": "demo",
           "cameras": [_camera(root / "a_file")]}  # fmt: skip
    result, written = _run(root, doc)
    _assert_one_line(result, "archive")
    listed = CliRunner().invoke(
        main, ["list", "--config", str(root / "cameras.yaml"), "--camera", "PF.01",
               "--start", START, "--end", START],
    )  # fmt: skip
    _assert_one_line(listed, f"camera 'PF.01': archive {root / 'a_file'} does not exist or is")
    assert listed.output == result.output
    assert written == set()

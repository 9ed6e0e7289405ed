"""Synthetic archives: layouts, broken files, truth files and their round trip, QuakeML, CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from plumenet.classes import EMISSION_CLASSES, MODEL_CLASSES
from plumenet.cli import main
from plumenet.errors import ConfigError
from plumenet.jobs.synth_archive import BROKEN_KINDS, read_truth, write_archive
from plumenet.synthetic.timeline import make_timeline

SMALL = (96, 72)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("arch") / "flat"
    truth = write_archive(
        str(root),
        layout="flat",
        start="2024-02-01",
        end="2024-02-03",
        cadence="20min",
        seed=3,
        broken=4,
        size=SMALL,
        camera="SYN",
    )
    return root, truth


@pytest.mark.parametrize(
    ("layout", "camera", "expected"),
    [
        ("geonet", "WIZ.01", "2024/WIZ/WIZ.01/2024.032/2024.032.1230.00.WIZ.01.jpg"),
        ("avo", "SPCP", "SPCP/2024/032/SPCP-20240201T123000Z.jpg"),
        ("flat", "SYN", "SYN_20240201_123000.jpg"),
    ],
)
def test_layout_paths_are_exact(tmp_path: Path, layout: str, camera: str, expected: str):
    truth = write_archive(
        str(tmp_path),
        layout=layout,
        start="2024-02-01T12:30",
        end="2024-02-01T12:40",
        size=SMALL,
        camera=camera,
        jitter_s=0,
        missing=0.0,
    )
    assert truth.fractions["path"].tolist() == [expected]
    with Image.open(tmp_path / expected) as img:
        assert img.size == SMALL
        exif = img.getexif().get_ifd(0x8769)
    assert exif[0x9003] == "2024:02:01 12:30:00"


def test_path_times_follow_the_camera_time_zone(tmp_path: Path):
    truth = write_archive(
        str(tmp_path),
        layout="geonet",
        start="2024-02-01T12:30",
        end="2024-02-01T12:40",
        size=SMALL,
        camera="WIZ.01",
        tz="Pacific/Auckland",
        jitter_s=0,
        missing=0.0,
    )
    # 12:30 UTC is 01:30 NZDT the next day; the stored time stays UTC
    assert truth.fractions["path"].iloc[0] == (
        "2024/WIZ/WIZ.01/2024.033/2024.033.0130.00.WIZ.01.jpg"
    )
    assert truth.fractions["time"].iloc[0] == pd.Timestamp("2024-02-01T12:30")
    assert bool(truth.fractions["night"].iloc[0])


def test_frames_jitter_and_go_missing(archive):
    _, truth = archive
    f = truth.fractions
    offset = (f["time"] - f["slot"]).dt.total_seconds()
    assert offset.between(0, 7).all() and offset.nunique() > 1
    slots = pd.date_range("2024-02-01", "2024-02-03", freq="20min", inclusive="left")
    assert len(f) <= len(slots)
    assert set(f["slot"]) <= set(slots)


def test_broken_files_are_planted_and_recorded(archive):
    root, truth = archive
    kinds = dict((kind, path) for path, kind in truth.broken)
    assert sorted(kinds) == sorted(BROKEN_KINDS)
    meta = json.loads((root / "truth" / "truth.json").read_text())
    assert sorted((b["path"], b["kind"]) for b in meta["broken"]) == sorted(truth.broken)

    assert (root / kinds["empty"]).stat().st_size == 0
    data = (root / kinds["truncated"]).read_bytes()
    assert data.startswith(b"\xff\xd8") and not data.endswith(b"\xff\xd9")
    with pytest.raises(OSError, match=r"(?i)truncated|broken data stream"):
        Image.open(io.BytesIO(data)).load()
    not_image = (root / kinds["not_image"]).read_bytes()
    with pytest.raises(OSError, match="cannot identify image file"):
        Image.open(io.BytesIO(not_image))
    assert kinds["not_image"].endswith(".jpg")
    assert kinds["misnamed"].endswith(".jpeg.tmp")
    with Image.open(root / kinds["misnamed"]) as img:
        assert img.size == SMALL

    broken_rows = truth.fractions[truth.fractions["broken"] != ""]
    assert len(broken_rows) == 4
    assert broken_rows[list(MODEL_CLASSES)].isna().all().all()


def test_fractions_match_activity(archive):
    _, truth = archive
    f = truth.fractions[truth.fractions["broken"] == ""]
    sums = f[list(MODEL_CLASSES)].sum(axis=1)
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    quiet = f[f["active"] == ""]
    assert (quiet[list(EMISSION_CLASSES)] == 0).all().all()
    assert (f[list(EMISSION_CLASSES)].sum(axis=1) > 0).any()
    hidden = f[f["obstructed"]]
    assert (hidden["background"] == 1.0).all()


def test_truth_files_round_trip(archive):
    root, truth = archive
    assert sorted(p.name for p in (root / "truth").iterdir()) == [
        "episodes.csv",
        "events.csv",
        "events.xml",
        "fractions.csv",
        "rsam.csv",
        "truth.json",
    ]
    back = read_truth(str(root / "truth"))
    pd.testing.assert_frame_equal(back.episodes, truth.episodes, check_dtype=False)
    assert back.fractions["path"].tolist() == truth.fractions["path"].tolist()
    assert back.rsam_lag_s == truth.rsam_lag_s == 1800.0
    assert back.template == "{CAM}_{year}{month}{day}_{HH}{MM}{SS}.jpg"
    assert sorted(back.broken) == sorted(truth.broken)


def test_read_truth_without_truth_json_says_where(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"no truth\.json under"):
        read_truth(str(tmp_path))


def test_quakeml_has_the_same_events(archive):
    from obspy import read_events

    root, truth = archive
    catalog = read_events(str(root / "truth" / "events.xml"))
    csv = pd.read_csv(root / "truth" / "events.csv", parse_dates=["time"])
    assert len(catalog) == len(csv) == len(truth.events) > 0
    mags = sorted(round(ev.magnitudes[0].mag, 1) for ev in catalog)
    assert mags == sorted(csv["magnitude"].round(1).tolist())


def test_bad_arguments_are_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="neither a built-in layout"):
        write_archive(str(tmp_path), layout="nope", start="2024-01-01", end="2024-01-02")
    with pytest.raises(ConfigError, match="is not after start"):
        write_archive(str(tmp_path), layout="flat", start="2024-01-02", end="2024-01-01")
    with pytest.raises(ConfigError, match="lower --broken"):
        write_archive(
            str(tmp_path),
            layout="flat",
            start="2024-01-01T00:00",
            end="2024-01-01T00:30",
            broken=10,
            size=SMALL,
        )
    with pytest.raises(ConfigError, match="is not a duration"):
        make_timeline("2024-01-01", "2024-01-02", "often", 0)


def test_cli_writes_an_archive(tmp_path: Path):
    out = tmp_path / "cam"
    result = CliRunner().invoke(
        main,
        [
            "synth",
            "--out",
            str(out),
            "--layout",
            "avo",
            "--start",
            "2024-02-01",
            "--end",
            "2024-02-01",
            "--cadence",
            "2h",
            "--size",
            "80x60",
            "--broken",
            "1",
            "--camera",
            "SPCP",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "frames (1 broken)" in result.output and "truth" in result.output
    meta = json.loads((out / "truth" / "truth.json").read_text())
    # a date-only --end includes that whole day
    assert meta["end"] == "2024-02-02T00:00:00" and meta["slots"] == 12
    assert len(list((out / "SPCP" / "2024" / "032").iterdir())) == meta["frames"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "big"], "error: --size 'big' is not WIDTHxHEIGHT"),
        (["--storage-option", "novalue"], "error: --storage-option 'novalue' is not KEY=VALUE"),
        (["--end", "yesterday"], "error: cannot read 'yesterday' as a time"),
        # pandas reads a bare 10 as 10 ns: 8.6e12 frames a day, 63 TiB allocated
        (["--cadence", "10"], "error: --cadence '10' has no unit — give one, e.g. 10min"),
        (["--cadence", "-1h"], "error: --cadence '-1h' must be longer than zero"),
    ],
)
def test_cli_bad_arguments_exit_2(tmp_path: Path, args: list[str], message: str):
    base = ["synth", "--out", str(tmp_path), "--start", "2024-02-01", "--end", "2024-02-02"]
    result = CliRunner().invoke(main, base + args)
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert list(tmp_path.iterdir()) == [], "nothing written"


def test_cli_out_that_cannot_be_a_folder_is_one_line(tmp_path: Path):
    """``--out`` an existing file (or a path under one): one line, not FileExistsError."""
    existing = tmp_path / "frames.tar"
    existing.write_bytes(b"keep me")
    span = ["--start", "2024-02-01", "--end", "2024-02-01", "--cadence", "2h"]
    for out, what in [
        (existing, "is a file, not a directory"),
        (existing / "cam", f"{existing} is a file, so no folder can be created under it"),
    ]:
        result = CliRunner().invoke(main, ["synth", "--out", str(out), *span])
        assert result.exit_code == 2, result.output
        assert result.output.strip() == (
            f"error: --out {out}: {what} — give a new or existing folder this user can write in"
        )
    assert existing.read_bytes() == b"keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["frames.tar"]


@pytest.mark.server
def test_write_archive_to_s3(s3_bucket: str, s3_storage_options: dict):
    import s3fs

    url = f"{s3_bucket}/cams"
    truth = write_archive(
        url,
        layout="geonet",
        start="2024-02-01T00:00",
        end="2024-02-01T01:00",
        size=SMALL,
        camera="WIZ.01",
        broken=1,
        storage_options=s3_storage_options,
    )
    fs = s3fs.S3FileSystem(**s3_storage_options, skip_instance_cache=True)
    found = sorted(fs.find(url))
    bucket = s3_bucket.removeprefix("s3://")
    for path in truth.fractions["path"]:
        assert f"{bucket}/cams/{path}" in found
    assert f"{bucket}/cams/truth/truth.json" in found
    back = read_truth(f"{url}/truth", s3_storage_options)
    assert back.broken == truth.broken

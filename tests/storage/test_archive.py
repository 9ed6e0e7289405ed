"""Archive listing against local folders and a real (moto) S3 server."""

from __future__ import annotations

import io
import logging
from datetime import date, datetime, timedelta

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

import storage.archive as archive
from plumenet.config import CameraConfig
from plumenet.errors import ArchiveError
from storage.layouts import format_path

FIELDS = {"SITE": "WIZ", "VC": "01", "CAM": "spurr"}


def jpeg(exif: Image.Exif | None = None) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", (8, 8), (90, 100, 110))
    if exif is None:
        img.save(buf, "JPEG")
    else:
        img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def make_camera(archive_url: str, layout: str, **kw: object) -> CameraConfig:
    args = {
        "id": "CAM.1",
        "archive": archive_url,
        "template": layout,
        "fields": {k: v for k, v in FIELDS.items() if "{" + k + "}" in _tpl(layout)},
        "cadence": "10min",
        "grid_start": "2000-01-01",
    }
    args.update(kw)
    return CameraConfig(**args)


def _tpl(layout: str) -> str:
    from storage.layouts import resolve_template

    return resolve_template(layout)


def put(fs, path: str, data: bytes) -> None:
    if "://" not in path:
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, data)


def write_frames(fs, root: str, layout: str, local_times: list[datetime], data: bytes) -> list[str]:
    paths = []
    for t in local_times:
        path = f"{root}/{format_path(layout, t, FIELDS)}"
        put(fs, path, data)
        paths.append(path)
    return paths


def local_fs():
    import fsspec

    return fsspec.filesystem("file")


TIMES = [datetime(2024, 3, 1, 23, 50) + timedelta(minutes=10 * i) for i in range(4)]


@pytest.mark.parametrize("layout", ["geonet", "avo", "flat"])
def test_local_layouts(tmp_path, layout, caplog):
    fs = local_fs()
    root = str(tmp_path / "arch")
    paths = write_frames(fs, root, layout, TIMES, jpeg())
    folder = paths[1].rsplit("/", 1)[0]
    put(fs, f"{folder}/readme.txt", b"not a frame")
    put(fs, f"{folder}/latest.jpg", jpeg())
    cam = make_camera(root, layout)
    with caplog.at_level(logging.WARNING):
        df = archive.list_frames(cam, "2024-03-02", "2024-03-03")
    assert list(df.columns) == ["time", "path", "size"]
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert list(df["time"]) == [pd.Timestamp(t, tz="UTC") for t in TIMES[1:]]
    assert list(df["path"]) == paths[1:]
    assert (df["size"] == len(jpeg())).all()
    assert len(df.attrs["skipped"]) == 2
    assert any("readme.txt: not an image" in s for s in df.attrs["skipped"])
    assert any("latest.jpg: does not match template" in s for s in df.attrs["skipped"])
    assert "skipped 2 file(s)" in caplog.text


@pytest.mark.server
@pytest.mark.parametrize("layout", ["geonet", "avo", "flat"])
def test_s3_layouts(s3_bucket, s3_storage_options, layout):
    import fsspec

    fs, _ = fsspec.core.url_to_fs(s3_bucket, **s3_storage_options)
    root = f"{s3_bucket}/camera/images"
    paths = write_frames(fs, root, layout, TIMES, jpeg())
    cam = make_camera(root, layout)
    df = archive.list_frames(cam, "2024-03-01", "2024-03-03", storage_options=s3_storage_options)
    assert list(df["path"]) == paths
    assert all(p.startswith("s3://") for p in df["path"])
    assert list(df["time"]) == [pd.Timestamp(t, tz="UTC") for t in TIMES]
    # A frame uploaded after a listing is seen by the next one (no stale listings cache).
    late = write_frames(fs, root, layout, [datetime(2024, 3, 2, 0, 30)], jpeg())
    df2 = archive.list_frames(cam, "2024-03-01", "2024-03-03", storage_options=s3_storage_options)
    assert late[0] in list(df2["path"])
    assert len(df2) == len(df) + 1


def test_pruning_lists_one_day_of_a_year(tmp_path, monkeypatch):
    fs = local_fs()
    root = str(tmp_path / "arch")
    day0 = datetime(2023, 1, 1)
    times = [day0 + timedelta(days=d, hours=h) for d in range(365) for h in (6, 18)]
    write_frames(fs, root, "geonet", times, b"\xff\xd8tiny")
    listed: list[str] = []
    real_ls = archive._ls

    def recording(fs_, path):
        listed.append(path)
        return real_ls(fs_, path)

    monkeypatch.setattr(archive, "_ls", recording)
    cam = make_camera(root, "geonet")
    df = archive.list_frames(cam, "2023-06-10", "2023-06-11")
    assert len(df) == 2
    assert listed == [f"{root}/2023/WIZ/WIZ.01/2023.161"]

    # Without the camera fields, the site levels are listed but still only that day's dates.
    listed.clear()
    cam = make_camera(root, "geonet", fields={})
    df = archive.list_frames(cam, "2023-06-10", "2023-06-11")
    assert len(df) == 2
    assert listed == [f"{root}/2023", f"{root}/2023/WIZ", f"{root}/2023/WIZ/WIZ.01/2023.161"]


def test_unpadded_day_of_year(tmp_path):
    fs = local_fs()
    root = str(tmp_path / "arch")
    put(fs, f"{root}/2024/5/x-2024.5.0630.jpg", jpeg())
    cam = make_camera(root, "{year}/{doy}/x-{year}.{doy}.{HH}{MM}.jpg")
    df = archive.list_frames(cam, "2024-01-05", "2024-01-06")
    assert list(df["time"]) == [pd.Timestamp("2024-01-05T06:30", tz="UTC")]


def test_impossible_date_is_skipped_or_fatal(tmp_path):
    fs = local_fs()
    root = str(tmp_path / "arch")
    put(fs, f"{root}/spurr_20240230_000000.jpg", jpeg())
    cam = make_camera(root, "flat")
    with pytest.raises(ArchiveError, match=r"every matching name has an impossible date"):
        archive.list_frames(cam, "2024-02-01", "2024-03-01")
    put(fs, f"{root}/spurr_20240210_000000.jpg", jpeg())
    df = archive.list_frames(cam, "2024-02-01", "2024-03-01")
    assert len(df) == 1
    assert any("impossible date" in s for s in df.attrs["skipped"])


def test_missing_archive(tmp_path):
    cam = make_camera(str(tmp_path / "nowhere"), "flat")
    with pytest.raises(ArchiveError, match=r"does not exist — check `archive`"):
        archive.list_frames(cam, "2024-02-01", "2024-03-01")


def test_dst_transitions(tmp_path):
    """Pacific/Auckland: clocks go back 2024-04-07 03:00 and forward 2024-09-29 02:00."""
    fs = local_fs()
    root = str(tmp_path / "arch")
    walls = [datetime(2024, 4, 7, h, 30) for h in (1, 2, 3)]
    walls += [datetime(2024, 9, 29, h, 30) for h in (1, 2)]
    write_frames(fs, root, "avo", walls, jpeg())
    cam = make_camera(root, "avo", timezone="Pacific/Auckland")
    df = archive.list_frames(cam, "2024-04-06T00:00", "2024-04-07T00:00")
    assert list(df["time"]) == [
        pd.Timestamp("2024-04-06T12:30", tz="UTC"),  # 01:30 NZDT (+13)
        pd.Timestamp("2024-04-06T13:30", tz="UTC"),  # 02:30 ambiguous -> first (NZDT, fold=0)
        pd.Timestamp("2024-04-06T15:30", tz="UTC"),  # 03:30 NZST (+12)
    ]
    df = archive.list_frames(cam, "2024-09-28T00:00", "2024-09-29T00:00")
    assert list(df["time"]) == [
        pd.Timestamp("2024-09-28T13:30", tz="UTC"),  # 01:30 NZST (+12)
        pd.Timestamp("2024-09-28T14:30", tz="UTC"),  # 02:30 does not exist -> 03:30 NZDT
    ]
    # A UTC range listing a local day's neighbour: 2024-04-06 UTC reaches into local 04-07.
    only = archive.list_frames(cam, "2024-04-06T13:00", "2024-04-06T14:00")
    assert list(only["time"]) == [pd.Timestamp("2024-04-06T13:30", tz="UTC")]


def test_local_days_in_zone():
    from zoneinfo import ZoneInfo

    days = archive.local_days(
        pd.Timestamp("2024-03-01T00:00", tz="UTC"),
        pd.Timestamp("2024-03-02T00:00", tz="UTC"),
        ZoneInfo("Pacific/Auckland"),
    )
    assert days == [date(2024, 3, 1), date(2024, 3, 2)]


def exif_jpeg(stamp: str, offset: str | None = None) -> bytes:
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = stamp
    if offset:
        sub[0x9011] = offset
    return jpeg(exif)


def test_exif_fallback(tmp_path):
    fs = local_fs()
    root = str(tmp_path / "arch")
    put(fs, f"{root}/spurr/img_0001.jpg", exif_jpeg("2024:03:01 12:00:00", "+13:00"))
    put(fs, f"{root}/spurr/img_0002.jpg", exif_jpeg("2024:03:01 12:10:00"))
    cam = make_camera(root, "{CAM}/{*}.jpg", fields={"CAM": "spurr"}, timezone="Pacific/Auckland")
    df = archive.list_frames(cam, "2024-02-29", "2024-03-02")
    assert list(df["time"]) == [
        pd.Timestamp("2024-02-29T23:00", tz="UTC"),  # explicit offset +13:00
        pd.Timestamp("2024-02-29T23:10", tz="UTC"),  # camera zone (NZDT, +13)
    ]
    put(fs, f"{root}/spurr/img_0003.jpg", jpeg())
    with pytest.raises(ArchiveError, match=r"img_0003.jpg: no time in the file name .* no EXIF"):
        archive.list_frames(cam, "2024-02-29", "2024-03-02")


@pytest.mark.server
def test_cli_list_s3_hides_credentials(tmp_path, s3_bucket, s3_storage_options, caplog):
    import fsspec

    from plumenet.cli import main

    fs, _ = fsspec.core.url_to_fs(s3_bucket, **s3_storage_options)
    root = f"{s3_bucket}/imgs"
    write_frames(fs, root, "flat", TIMES, jpeg())
    put(fs, f"{root}/notes.txt", b"x")
    cfg = tmp_path / "cameras.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "storage_options": s3_storage_options,
                "cameras": [
                    {
                        "id": "CAM.1",
                        "archive": root,
                        "template": "flat",
                        "fields": {"CAM": "spurr"},
                        "cadence": "10min",
                        "grid_start": "2000-01-01",
                    }
                ],
            }
        )
    )
    csv = tmp_path / "m.csv"
    with caplog.at_level(logging.INFO):
        result = CliRunner().invoke(
            main,
            [
                "-v",
                "list",
                "--config",
                str(cfg),
                "--camera",
                "CAM.1",
                "--start",
                "2024-03-02",
                "--end",
                "2024-03-02",
                "--csv",
                str(csv),
            ],
        )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("2024-03-02T00:00:00Z  s3://")
    assert "3 frame(s)" in lines[-1]
    assert "1 file(s) skipped" in lines[-1]
    manifest = pd.read_csv(csv)
    assert len(manifest) == 3
    for text in (result.output, caplog.text, csv.read_text()):
        assert s3_storage_options["secret"] not in text
        assert s3_storage_options["key"] not in text

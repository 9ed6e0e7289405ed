"""cameras.yaml validation: every problem at once, each with camera, field and a fix."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from plumenet.config import Config, load_config, parse_config
from plumenet.errors import ConfigError
from plumenet.timeutil import parse_end, parse_range, parse_start

GOOD_CAMERA = {
    "id": "WIZ.01",
    "archive": "archive",
    "template": "geonet",
    "fields": {"SITE": "WIZ", "VC": "01"},
    "timezone": "Pacific/Auckland",
    "cadence": "10min",
    "grid_start": "2000-01-01",
    "site": {"volcano": "Whakaari", "lat": -37.52, "lon": 177.18},
}


def write(tmp_path: Path, doc: object, name: str = "cameras.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def camera(**changes: object) -> dict:
    cam = dict(GOOD_CAMERA)
    for key, value in changes.items():
        if value is None:
            cam.pop(key, None)
        else:
            cam[key] = value
    return cam


def test_good_config_resolves_relative_paths(tmp_path):
    path = write(
        tmp_path,
        {"store": "out/plumenet.zarr", "cameras": [camera(roi="masks/wiz.png")]},
    )
    config = load_config(path)
    cam = config.camera("WIZ.01")
    assert config.store == str(tmp_path / "out" / "plumenet.zarr")
    assert cam.archive == str(tmp_path / "archive")
    assert cam.roi == str(tmp_path / "masks" / "wiz.png")
    assert cam.grid_start_ts == pd.Timestamp("2000-01-01", tz="UTC")
    assert cam.cadence_td == pd.Timedelta("10min")
    assert cam.chunk_td == pd.Timedelta("7D")  # the unit from the cadence: 1,008 slots
    assert config.model is None  # no silent demo model: segmenting asks for `model:`
    with pytest.raises(ConfigError, match=r"no `model:` — .*`model: demo` for the bundled demo"):
        config.segmentation_model()


def test_remote_paths_kept(tmp_path):
    path = write(tmp_path, {"store": "s3://b/p.zarr", "cameras": [camera(archive="s3://a/img")]})
    config = load_config(path)
    assert config.store == "s3://b/p.zarr"
    assert config.cameras[0].archive == "s3://a/img"


def test_storage_options_hidden(tmp_path, caplog):
    secret = "very-secret-value-123"
    path = write(tmp_path, {"storage_options": {"secret": secret}, "cameras": [camera()]})
    config = load_config(path)
    assert config.storage_options == {"secret": secret}
    logging.getLogger("test").warning("config: %s %r", config, config)
    for text in (
        repr(config),
        str(config),
        config.model_dump_json(),
        str(config.model_dump()),
        str(config.public_dict()),
        caplog.text,
    ):
        assert secret not in text
    assert "storage_options" not in config.public_dict()


def test_unknown_camera_lists_known(tmp_path):
    config = load_config(write(tmp_path, {"cameras": [camera()]}))
    with pytest.raises(ConfigError, match=r"no camera 'NOPE'.*known cameras: 'WIZ.01'"):
        config.camera("NOPE")


BAD = [
    (
        {"cameras": [camera(timezone="Mars/Base")]},
        r"camera 'WIZ.01': field 'timezone': unknown time zone 'Mars/Base' — use an IANA name",
    ),
    ({"cameras": [camera(cadence="7min")]}, r"field 'cadence': .*does not divide a day"),
    ({"cameras": [camera(cadence="0s")]}, r"field 'cadence': .*longer than zero"),
    ({"cameras": [camera(cadence="often")]}, r"field 'cadence': cadence 'often' is not a duration"),
    ({"cameras": [camera(cadence="600")]}, r"field 'cadence': cadence '600' has no unit"),
    ({"cameras": [camera(chunk="25min")]}, r"not a whole multiple of cadence"),
    ({"cameras": [camera(id="bad id")]}, r"camera 'bad id': field 'id': .*letters, digits"),
    (
        {"cameras": [camera(template="{year}/{hour}.jpg")]},
        r"field 'template': unknown template fields \['\{hour\}'\]",
    ),
    ({"cameras": [camera(grid_start="someday")]}, r"field 'grid_start': cannot read 'someday'"),
    ({"cameras": [camera(cadence=None)]}, r"field 'cadence': is required but missing"),
    (
        {"cameras": [camera(tilling=3)]},
        r"field 'tilling': is not a known field — did you mean 'tiling'",
    ),
    ({"cameras": [camera(), camera()]}, r"^\S+: camera 'WIZ.01': field 'id': appears 2 times"),
    ({"cameras": [camera(fields={"site": "x"})]}, r"field 'fields': .*not UPPERCASE"),
    ({"cameras": [camera(tiling={"tile": 10, "stride": 20})]}, r"stride 20 is larger than tile 10"),
    ({"cameras": [camera(id=12)]}, r"camera #1: field 'id': input should be a valid string"),
    ({"bogus": 1, "cameras": [camera()]}, r"field 'bogus': is not a known field"),
    ([1, 2], r"expected a mapping"),
]


@pytest.mark.parametrize(("doc", "message"), BAD)
def test_bad_config(tmp_path, doc, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, doc))


def test_every_problem_reported_at_once(tmp_path):
    doc = {
        "cameras": [camera(timezone="Mars/Base", cadence="7min"), camera(id="B", template="{x}")]
    }
    with pytest.raises(ConfigError, match=r"3 problems") as info:
        load_config(write(tmp_path, doc))
    lines = str(info.value).splitlines()
    assert len(lines) == 4
    assert any("camera 'B': field 'template'" in line for line in lines)


def test_yaml_syntax_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras: [\n  - id: x\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"config file .*nope.yaml not found"):
        load_config(tmp_path / "nope.yaml")
    # a date YAML reads as a timestamp but that does not exist: its line, not a traceback
    bad.write_text("store: s.zarr\ncameras:\n  - id: A\n    grid_start: 2024-02-30\n")
    with pytest.raises(ConfigError, match=r"bad.yaml at line 4, column 17: '2024-02-30' is "
                       r"not a real date or time: day is out of range"):  # fmt: skip
        load_config(bad)


def test_empty_document_is_default_config():
    config = parse_config(None)
    assert isinstance(config, Config)
    assert config.store == "./plumenet.zarr"
    assert config.cameras == []


def test_cli_bad_config_exits_2_with_one_error_line(tmp_path):
    from plumenet.cli import main

    path = write(tmp_path, {"cameras": [camera(timezone="Mars/Base")]})
    result = CliRunner().invoke(
        main,
        [
            "list",
            "--config",
            str(path),
            "--camera",
            "WIZ.01",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-01",
        ],
    )
    assert result.exit_code == 2
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert "Mars/Base" in result.output
    assert "Traceback" not in result.output


def test_time_parsing():
    assert parse_start("2024-03-01") == pd.Timestamp("2024-03-01", tz="UTC")
    assert parse_end("2024-03-01") == pd.Timestamp("2024-03-02", tz="UTC")
    assert parse_end("2024-03-01T06:00") == pd.Timestamp("2024-03-01T06:00", tz="UTC")
    assert parse_start("2024-03-01T13:00+13:00") == pd.Timestamp("2024-03-01T00:00", tz="UTC")
    assert parse_end(pd.Timestamp("2024-03-01").date()) == pd.Timestamp("2024-03-02", tz="UTC")
    with pytest.raises(ConfigError, match=r"cannot read 'yesterdayish' as a time"):
        parse_start("yesterdayish")
    with pytest.raises(ConfigError, match=r"time range is empty"):
        parse_range("2024-03-02", "2024-03-01")

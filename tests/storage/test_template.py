"""The checked-in store template is what the schema writes today, for a camera that is
what the config would give."""

from __future__ import annotations

import json
from pathlib import Path

from plumenet.config import CameraConfig
from storage import template


def test_checked_in_template_is_current(tmp_path):
    checked = Path(template.__file__).parent / "templates" / "sample_camera"
    fresh = tmp_path / "fresh"
    files = template.write_template(fresh)
    checked_files = sorted(p.relative_to(checked) for p in checked.rglob("zarr.json"))
    assert sorted(files) == checked_files
    for rel in files:
        assert json.loads((fresh / rel).read_text()) == json.loads((checked / rel).read_text()), (
            f"{rel} differs from the checked-in template: run storage.template.write_template"
        )


def test_sample_camera_is_what_the_config_gives():
    """The template's camera, described without plumenet.config, is the same camera a
    ``cameras.yaml`` entry with its values gives (so the checked-in attributes stay real)."""
    sample = template.SAMPLE_CAMERA
    config = CameraConfig(
        id=sample.id,
        archive=sample.archive,
        template=sample.template,
        fields=sample.fields,
        timezone=sample.timezone,
        cadence=sample.cadence,
        grid_start=sample.grid_start,
        unit=sample.unit,
        site=sample.site,
    )
    assert sample.public_dict() == config.public_dict()
    for name in ("id", "cadence", "chunk", "cadence_td", "chunk_td", "grid_start_ts"):
        assert getattr(sample, name) == getattr(config, name), name
    assert str(sample.grid_start_ts.tz) == "UTC"

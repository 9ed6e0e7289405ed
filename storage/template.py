"""The checked-in store template: the empty group of a sample camera, metadata only.

:func:`write_template` creates the store that :func:`storage.zarr_store.ensure_camera`
makes for :data:`SAMPLE_CAMERA` (one day, a 37x37 probability grid) and keeps only its
``zarr.json`` files, formatted stably; they are checked in under
``storage/templates/sample_camera`` so any change to the layout (:mod:`storage.schema`)
shows up as a diff. The sample camera is a plain dataclass that fits
:class:`storage.camera.StoreCamera`; its description matches what ``cameras.yaml`` would
give for the same camera (a test checks that against ``plumenet.config``).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from plumenet.timeutil import default_unit, to_utc
from storage.zarr_store import ensure_camera


@dataclass(frozen=True)
class SampleCamera:
    """A camera as the store reads it, described without ``plumenet.config``."""

    id: str
    archive: str
    template: str
    cadence: str
    grid_start: str
    timezone: str = "UTC"
    unit: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    site: dict[str, Any] = field(default_factory=dict)

    @property
    def cadence_td(self) -> pd.Timedelta:
        """The grid step."""
        return pd.Timedelta(self.cadence)

    @property
    def chunk(self) -> str:
        """One work unit's length: ``unit``, else sized from the cadence (as the config)."""
        return self.unit or default_unit(self.cadence)

    @property
    def chunk_td(self) -> pd.Timedelta:
        """One work unit's length."""
        return pd.Timedelta(self.chunk)

    @property
    def grid_start_ts(self) -> pd.Timestamp:
        """Origin of the time grid (naive = UTC), tz-aware UTC."""
        return to_utc(self.grid_start)

    def public_dict(self) -> dict[str, Any]:
        """The camera's description as a ``cameras.yaml`` entry dumps it (every key, the
        options this camera leaves unset as ``None``)."""
        return {
            "id": self.id,
            "archive": self.archive,
            "template": self.template,
            "fields": dict(self.fields),
            "timezone": self.timezone,
            "cadence": self.cadence,
            "grid_start": self.grid_start_ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "unit": self.unit,
            "roi": None,
            "site": dict(self.site),
            "tiling": None,
            "anomaly_model": None,
            "geometry": None,
        }


#: The camera whose empty group is checked in as the store template.
SAMPLE_CAMERA = SampleCamera(
    id="SAMPLE.01",
    archive="s3://example-bucket/camera/volcano/images",
    template="geonet",
    fields={"SITE": "WIZ", "VC": "01"},
    timezone="Pacific/Auckland",
    cadence="10min",
    grid_start="2000-01-01",
    site={"volcano": "Whakaari", "lat": -37.52, "lon": 177.18},
)


#: Stands for the creation time in the checked-in template's ``history``.
TEMPLATE_TIME = "YYYY-MM-DDTHH:MM:SSZ"
_UTC_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def write_template(path: str | Path) -> list[Path]:
    """Write the empty store's metadata (``zarr.json`` files only) for :data:`SAMPLE_CAMERA`
    under ``path``; returns the files written, relative to ``path``."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    ensure_camera(str(path), SAMPLE_CAMERA, "2000-01-01", "2000-01-02", grid_shape=(37, 37))
    files = []
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.name != "zarr.json":
            f.unlink()
        elif f.is_file():
            # Stable formatting (and a fixed `history` time) so the checked-in files diff
            # cleanly.
            meta = json.loads(f.read_text())
            attrs = meta.get("attributes", {})
            if isinstance(attrs.get("history"), str):
                attrs["history"] = _UTC_STAMP.sub(TEMPLATE_TIME, attrs["history"])
            f.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            files.append(f.relative_to(path))
    for d in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    return files

"""The two top-level models of ``cameras.yaml``: one camera (:class:`CameraConfig`) and
the whole file (:class:`Config`). Frozen and strict; ``storage_options`` never leaves them
except through :meth:`Config.public_dict` (which drops it)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from plumenet.config.sections import (
    CameraGeometry,
    ClusterConfig,
    InferenceConfig,
    TilingConfig,
    parse_duration,
)
from plumenet.errors import ConfigError
from plumenet.timeutil import default_unit
from storage.layouts import BUILTIN_TEMPLATES, DATE_FIELDS, resolve_template, template_fields

_ID_PATTERN = r"^[A-Za-z0-9._-]+$"
_CAMERA_FIELD = re.compile(r"^[A-Z][A-Z0-9_]*$")
_DAY = pd.Timedelta(days=1)


def is_remote_path(path: str) -> bool:
    return "://" in path or path.startswith("hf:")



class CameraConfig(BaseModel):
    """One fixed camera: where its frames are, how they are named, and its time grid."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    id: str = Field(pattern=_ID_PATTERN)
    archive: str = Field(min_length=1)
    template: str = Field(min_length=1)
    fields: dict[str, str] = Field(default_factory=dict)
    timezone: str = "UTC"
    cadence: str
    grid_start: datetime
    # one work unit = one chunk/shard along time; default from the cadence (`chunk`: old name)
    unit: str | None = Field(default=None, validation_alias=AliasChoices("unit", "chunk"))
    roi: str | None = None
    site: dict[str, Any] = Field(default_factory=dict)
    tiling: TilingConfig | None = None
    anomaly_model: str | None = None
    geometry: CameraGeometry | None = None

    @field_validator("id")
    @classmethod
    def _zarr_node_name(cls, value: str) -> str:
        # the id names the camera's Zarr group: '.', '..' and '__*' are not node names, and
        # plumenet keeps its own objects (lease, probes, zarr.json) beside the groups
        if value.startswith((".", "__")) or value.lower() == "zarr.json":
            raise ValueError(
                f"{value!r} cannot name the camera's group in the Zarr store — start the id "
                "with a letter or digit (e.g. 'WIZ.01') and do not call it zarr.json"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(
                f"unknown time zone {value!r} — use an IANA name such as 'Pacific/Auckland' "
                "or 'UTC'"
            ) from err
        return value

    @field_validator("cadence")
    @classmethod
    def _valid_cadence(cls, value: str) -> str:
        td = parse_duration(value, "cadence")
        if td % pd.Timedelta(seconds=1):
            raise ValueError(f"cadence {value!r} is not a whole number of seconds — e.g. '10s'")
        if _DAY % td:
            raise ValueError(
                f"cadence {value!r} does not divide a day, so slots would drift from midnight "
                "— use e.g. '10s', '1min', '5min', '10min', '15min' or '1h'"
            )
        return value

    @field_validator("unit")
    @classmethod
    def _valid_unit(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value, "unit")
        return value

    @field_validator("grid_start", mode="before")
    @classmethod
    def _utc_start(cls, value: object) -> datetime:
        if isinstance(value, date | str | datetime):
            try:
                ts = pd.Timestamp(value)
            except ValueError as err:
                raise ValueError(f"cannot read {value!r} as a date — use e.g. 2000-01-01") from err
            if not pd.isna(ts):
                ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
                return ts.to_pydatetime()
        raise ValueError(f"expected a date such as 2000-01-01, got {value!r}")

    @field_validator("fields")
    @classmethod
    def _uppercase_fields(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not _CAMERA_FIELD.match(k)]
        if bad:
            raise ValueError(
                f"field names {bad} are not UPPERCASE — camera fields are written like "
                "{SITE} in the template and SITE here"
            )
        return value

    @field_validator("template")
    @classmethod
    def _known_template_fields(cls, value: str) -> str:
        template = resolve_template(value)
        try:
            names = template_fields(template)
        except ValueError as err:
            raise ValueError(
                f"template {value!r} has unbalanced braces ({err}) — write fields as {{year}}"
            ) from err
        unknown = [
            n for n in names if n not in DATE_FIELDS and n != "*" and not _CAMERA_FIELD.match(n)
        ]
        if unknown:
            raise ValueError(
                f"unknown template fields {['{' + n + '}' for n in unknown]} — date fields are "
                + " ".join("{" + f + "}" for f in DATE_FIELDS)
                + ", {*} matches anything, UPPERCASE names are camera fields; built-in layouts: "
                + ", ".join(BUILTIN_TEMPLATES)
            )
        if template.startswith("/"):
            raise ValueError("template must be relative to `archive` — remove the leading '/'")
        return value

    @field_validator("site")
    @classmethod
    def _site_position(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, bound in (("lat", 90), ("lon", 180)):
            v = value.get(key)
            if key in value and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise ValueError(f"site {key} {v!r} is not a number — give degrees, e.g. -37.52")
            if key in value and not -bound <= v <= bound:
                raise ValueError(f"site {key} {v} is outside [-{bound}, {bound}] degrees")
        return value

    @model_validator(mode="after")
    def _chunk_multiple_of_cadence(self) -> CameraConfig:
        if self.chunk_td % self.cadence_td:
            raise ValueError(
                f"unit {self.chunk!r} is not a whole multiple of cadence {self.cadence!r} — "
                "use e.g. unit '1D', or leave it out to size it from the cadence"
            )
        return self

    @property
    def cadence_td(self) -> pd.Timedelta:
        """The grid step."""
        return pd.Timedelta(self.cadence)

    @property
    def chunk(self) -> str:
        """One work unit's length: ``unit`` as written, else sized from the cadence."""
        return self.unit or default_unit(self.cadence)

    @property
    def chunk_td(self) -> pd.Timedelta:
        """The length of one work unit (and of one chunk along time)."""
        return pd.Timedelta(self.chunk)

    @property
    def grid_start_ts(self) -> pd.Timestamp:
        """Origin of the time grid as a UTC timestamp."""
        return pd.Timestamp(self.grid_start).tz_convert("UTC").as_unit("ns")

    @property
    def path_template(self) -> str:
        """The literal template (a built-in layout name resolved)."""
        return resolve_template(self.template)

    def public_dict(self) -> dict[str, Any]:
        """JSON-ready description for store attributes and logs (cameras hold no secrets)."""
        return self.model_dump(mode="json")


class Config(BaseModel):
    """The whole ``cameras.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    store: str = "./plumenet.zarr"
    #: The segmentation model; no default, so that nothing is silently made with the demo
    #: model (``model: demo`` names it). Read it with :meth:`segmentation_model`.
    model: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict, repr=False, exclude=True)
    cameras: list[CameraConfig] = Field(default_factory=list)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    #: Where the file was read from (``load_config`` passes it as validation context), so
    #: that fix-it hints can name it: ``plumenet verify --config <this> …``.
    _source: str = PrivateAttr(default="cameras.yaml")

    @model_validator(mode="after")
    def _remember_source(self, info: ValidationInfo) -> Config:
        if info.context and info.context.get("source"):
            self._source = str(info.context["source"])
        return self

    @property
    def source(self) -> str:
        """The config's path or URL as the user gave it (``cameras.yaml`` if unknown)."""
        return self._source

    @model_validator(mode="after")
    def _unique_ids(self) -> Config:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(
                f"camera ids {dupes} appear more than once — give each camera its own id"
            )
        return self

    def __repr__(self) -> str:
        return (
            f"Config(store={self.store!r}, model={self.model!r}, storage_options=<hidden>, "
            f"cameras={[c.id for c in self.cameras]!r})"
        )

    __str__ = __repr__

    def public_dict(self) -> dict[str, Any]:
        """Everything but ``storage_options``, JSON-ready."""
        return self.model_dump(mode="json")

    def segmentation_model(self) -> str:
        """``model:``, required by everything that segments frames."""
        if not self.model:
            raise ConfigError(
                "the config has no `model:` — set it to a model directory, a TorchScript file "
                "or hf:OWNER/REPO (or `model: demo` for the bundled demo model, synthetic "
                "scenes: demo/test only)"
            )
        return self.model

    def camera(self, camera_id: str) -> CameraConfig:
        """The camera named ``camera_id``; an unknown id lists the known ones."""
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        known = ", ".join(repr(c.id) for c in self.cameras) or "none"
        raise ConfigError(f"no camera {camera_id!r} in the config — known cameras: {known}")


# --- loading -------------------------------------------------------------------------------



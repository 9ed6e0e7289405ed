"""``cameras.yaml``: frozen, strict pydantic models and a loader that reports every problem.

``load_config`` validates the whole file at once and raises one :class:`ConfigError`
whose message is a header line plus one line per problem, each naming the camera, the
field and how to fix it. ``storage_options`` (credentials, endpoints) is kept out of
``repr``, ``str``, ``model_dump`` and JSON: use :meth:`Config.public_dict` for anything
that is written or logged.
"""

from __future__ import annotations

import difflib
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from plumenet.errors import ConfigError
from storage.layouts import BUILTIN_TEMPLATES, DATE_FIELDS, resolve_template, template_fields

_ID_PATTERN = r"^[A-Za-z0-9._-]+$"
_CAMERA_FIELD = re.compile(r"^[A-Z][A-Z0-9_]*$")
_DAY = pd.Timedelta(days=1)


def _is_remote(path: str) -> bool:
    return "://" in path or path.startswith("hf:")


def _parse_duration(value: object, what: str) -> pd.Timedelta:
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as '10min' or '1h', got {value!r}")
    try:
        td = pd.Timedelta(value)
    except ValueError as err:
        raise ValueError(
            f"cannot read {value!r} as a {what} — use a pandas duration such as '10s', "
            "'10min', '1h' or '1D'"
        ) from err
    if pd.isna(td) or td <= pd.Timedelta(0):
        raise ValueError(f"{what} {value!r} must be longer than zero — e.g. '10min'")
    return td


class TilingConfig(BaseModel):
    """Run frames larger than the model input as overlapping tiles (pixels of the frame)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    tile: int = Field(gt=0)
    stride: int = Field(gt=0)

    @model_validator(mode="after")
    def _stride_not_above_tile(self) -> TilingConfig:
        if self.stride > self.tile:
            raise ValueError(
                f"stride {self.stride} is larger than tile {self.tile}, which leaves gaps — "
                "use a stride <= tile"
            )
        return self


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
    chunk: str = "1D"
    roi: str | None = None
    site: dict[str, Any] = Field(default_factory=dict)
    tiling: TilingConfig | None = None
    anomaly_model: str | None = None

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
        td = _parse_duration(value, "cadence")
        if td % pd.Timedelta(seconds=1):
            raise ValueError(f"cadence {value!r} is not a whole number of seconds — e.g. '10s'")
        if _DAY % td:
            raise ValueError(
                f"cadence {value!r} does not divide a day, so slots would drift from midnight "
                "— use e.g. '10s', '1min', '5min', '10min', '15min' or '1h'"
            )
        return value

    @field_validator("chunk")
    @classmethod
    def _valid_chunk(cls, value: str) -> str:
        _parse_duration(value, "chunk")
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

    @model_validator(mode="after")
    def _chunk_multiple_of_cadence(self) -> CameraConfig:
        if self.chunk_td % self.cadence_td:
            raise ValueError(
                f"chunk {self.chunk!r} is not a whole multiple of cadence {self.cadence!r} — "
                "use e.g. chunk '1D'"
            )
        return self

    @property
    def cadence_td(self) -> pd.Timedelta:
        """The grid step."""
        return pd.Timedelta(self.cadence)

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
    model: str = "demo"
    storage_options: dict[str, Any] = Field(default_factory=dict, repr=False, exclude=True)
    cameras: list[CameraConfig] = Field(default_factory=list)

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

    def camera(self, camera_id: str) -> CameraConfig:
        """The camera named ``camera_id``; an unknown id lists the known ones."""
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        known = ", ".join(repr(c.id) for c in self.cameras) or "none"
        raise ConfigError(f"no camera {camera_id!r} in the config — known cameras: {known}")


# --- loading -------------------------------------------------------------------------------


def _fields_of(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _error_line(err: dict[str, Any], raw: dict[str, Any]) -> str:
    """One human line for one pydantic error: where, what, how to fix."""
    loc = list(err["loc"])
    where = ""
    model: type[BaseModel] = Config
    if len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
        index = loc[1]
        cams = raw.get("cameras")
        cam_id = None
        if isinstance(cams, list) and index < len(cams) and isinstance(cams[index], dict):
            cam_id = cams[index].get("id")
        where = f"camera {cam_id!r}: " if isinstance(cam_id, str) else f"camera #{index + 1}: "
        loc = loc[2:]
        model = CameraConfig
    if loc and loc[0] == "tiling":
        model = TilingConfig if len(loc) > 1 else model
    field = ".".join(str(p) for p in loc)
    kind = err["type"]
    name = str(loc[-1]) if loc else ""
    if kind == "missing":
        what = "is required but missing — add it"
        if name == "cadence":
            what += " (e.g. `cadence: 10min`)"
        elif name == "grid_start":
            what += " (e.g. `grid_start: 2000-01-01`)"
        elif name == "template":
            what += f" (a literal template or one of {', '.join(BUILTIN_TEMPLATES)})"
    elif kind == "extra_forbidden":
        valid = _fields_of(model if model is not TilingConfig else TilingConfig)
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        what = f"is not a known field — {hint}valid fields: {', '.join(valid)}"
    elif kind == "string_pattern_mismatch":
        what = f"{err.get('input')!r} is not allowed — use only letters, digits, '.', '_' and '-'"
    elif kind == "value_error":
        what = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        what = f"{err['msg'].lower()}, got {err.get('input')!r} — fix the value's type"
    else:
        what = f"{err['msg']} (got {err.get('input')!r})"
    if field:
        return f"{where}field {field!r}: {what}"
    return f"{where}{what}"


def _prechecks(raw: dict[str, Any]) -> list[str]:
    """Problems pydantic would report only after everything else validates."""
    problems = []
    cams = raw.get("cameras")
    if isinstance(cams, list):
        ids = [c.get("id") for c in cams if isinstance(c, dict) and isinstance(c.get("id"), str)]
        for dup in sorted({i for i in ids if ids.count(i) > 1}):
            problems.append(
                f"camera {dup!r}: field 'id': appears {ids.count(dup)} times — "
                "give each camera its own id"
            )
    return problems


def _resolve_relative(raw: dict[str, Any], base: str) -> dict[str, Any]:
    """Relative local paths (store, model dir, archive, roi, anomaly_model) -> under ``base``."""

    def fix(value: object) -> object:
        if not isinstance(value, str) or not value or _is_remote(value):
            return value
        if Path(value).expanduser().is_absolute():
            return str(Path(value).expanduser())
        if "://" in base:
            return base.rstrip("/") + "/" + value
        return str((Path(base) / value).resolve())

    out = dict(raw)
    if "store" in out:
        out["store"] = fix(out["store"])
    else:
        out["store"] = fix(Config.model_fields["store"].default)
    model = out.get("model")
    if isinstance(model, str) and model != "demo":
        out["model"] = fix(model)
    cams = out.get("cameras")
    if isinstance(cams, list):
        new = []
        for cam in cams:
            if isinstance(cam, dict):
                cam = dict(cam)
                for key in ("archive", "roi", "anomaly_model"):
                    if key in cam:
                        cam[key] = fix(cam[key])
            new.append(cam)
        out["cameras"] = new
    return out


def parse_config(raw: object, *, source: str = "config", base_dir: str | None = None) -> Config:
    """Validate an already-parsed YAML document; every problem in one :class:`ConfigError`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping with `store`, `model` and `cameras`, "
            f"got {type(raw).__name__} — see the example cameras.yaml in the README"
        )
    if base_dir is not None:
        raw = _resolve_relative(raw, base_dir)
    problems = _prechecks(raw)
    try:
        config = Config.model_validate(raw)
    except ValidationError as err:
        problems += [_error_line(e, raw) for e in err.errors(include_url=False)]
    else:
        if not problems:
            return config
    seen: list[str] = []
    for p in problems:
        if p not in seen:
            seen.append(p)
    raise ConfigError(
        f"{source}: {len(seen)} problem{'s' if len(seen) > 1 else ''}:\n"
        + "\n".join(f"  - {p}" for p in seen)
    )


def load_config(path_or_url: str | Path) -> Config:
    """Read and validate ``cameras.yaml`` (local path or fsspec URL)."""
    import fsspec
    import yaml

    source = str(path_or_url)
    try:
        with fsspec.open(source, "r", encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError as err:
        raise ConfigError(
            f"config file {source} not found — pass the path of your cameras.yaml with --config"
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {source} cannot be read ({err}) — check the path") from err
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"{source}: not valid YAML{at} ({problem}) — fix the syntax") from err
    if "://" in source and not source.startswith("file://"):
        base = source.rsplit("/", 1)[0]
    else:
        base = str(Path(source.removeprefix("file://")).expanduser().resolve().parent)
    return parse_config(raw, source=source, base_dir=base)

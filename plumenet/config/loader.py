"""Reading ``cameras.yaml``: every problem of a file reported at once, one line each.

:func:`load_config` reads a local path or fsspec URL; :func:`parse_config` validates an
already-parsed mapping. Either raises one :class:`~plumenet.errors.ConfigError` whose
message is a header line plus one line per problem (camera, field, how to fix it).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import fsspec
import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from plumenet.config.models import CameraConfig, Config, is_remote_path
from plumenet.config.sections import (
    AdaptConfig,
    CameraGeometry,
    ClusterConfig,
    TilingConfig,
)
from plumenet.errors import ConfigError
from storage.layouts import BUILTIN_TEMPLATES


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
    if loc and loc[0] == "geometry":
        model = CameraGeometry if len(loc) > 1 else model
    if loc and loc[0] == "tiling":
        model = TilingConfig if len(loc) > 1 else model
    if loc and loc[0] == "cluster" and len(loc) > 1:
        model = AdaptConfig if loc[1] == "adapt" and len(loc) > 2 else ClusterConfig
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


def _repeats_duplicate_ids(err: Any) -> bool:
    """Is this pydantic error ``Config``'s own duplicate-id check (``_prechecks`` has it)?"""
    return err.get("type") == "value_error" and "appear more than once" in str(err.get("ctx"))


def _resolve_relative(raw: dict[str, Any], base: str) -> dict[str, Any]:
    """Relative local paths (store, model dir, archive, roi, anomaly_model) -> under ``base``."""

    def fix(value: object) -> object:
        if not isinstance(value, str) or not value or is_remote_path(value):
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


def parse_config(
    raw: object, *, source: str = "cameras.yaml", base_dir: str | None = None
) -> Config:
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
        config = Config.model_validate(raw, context={"source": source})
    except ValidationError as err:
        problems += [
            _error_line(e, raw)
            for e in err.errors(include_url=False)
            if not (problems and _repeats_duplicate_ids(e))  # the precheck said it per camera
        ]
    else:
        if not problems:
            return config
    seen: list[str] = []
    for p in problems:
        if p not in seen:
            seen.append(p)
    if len(seen) == 1:  # one problem, one line
        raise ConfigError(f"{source}: {seen[0]}")
    raise ConfigError(f"{source}: {len(seen)} problems:\n" + "\n".join(f"  - {p}" for p in seen))


class _ConfigLoader(yaml.SafeLoader):
    """YAML's safe loader, with dates that do not exist (2024-02-30) reported at their line
    instead of as a bare ValueError."""


def _timestamp(loader: _ConfigLoader, node: yaml.ScalarNode) -> object:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as err:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a real date or time: {err}", node.start_mark
        ) from err


_ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def load_config(path_or_url: str | Path) -> Config:
    """Read and validate ``cameras.yaml`` (local path or fsspec URL)."""
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
        raw = yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        if isinstance(err, yaml.constructor.ConstructorError):
            raise ConfigError(f"{source}{at}: {problem} — fix the value") from err
        raise ConfigError(f"{source}: not valid YAML{at} ({problem}) — fix the syntax") from err
    if raw is None or (isinstance(raw, dict) and not raw.get("cameras")):
        raise ConfigError(
            f"{source}: no cameras — the config is empty or has no `cameras:` list; add at "
            "least one camera (see the example cameras.yaml in the README)"
        )
    if "://" in source and not source.startswith("file://"):
        base = source.rsplit("/", 1)[0]
    else:
        base = str(Path(source.removeprefix("file://")).expanduser().resolve().parent)
    return parse_config(raw, source=source, base_dir=base)

"""Opening the Zarr v3 store and changing its metadata: create or extend a camera group,
register a model, consolidate.

Metadata changes are the driver's: :func:`ensure_camera` creates ``camera``'s group or grows
its ``time`` axis at the end (never moves or shrinks it), :func:`register_model` adds a model
to the group's ``models`` attribute, :func:`consolidate` gathers all metadata into the root
after the workers' region writes (:mod:`storage.regions`). Stores are addressed by URL (local
path or any fsspec URL) plus ``storage_options``; each function opens what it needs, so
nothing but strings crosses process boundaries. The layout itself is :mod:`storage.schema`.
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

import pandas as pd
import zarr
from zarr.storage import FsspecStore, LocalStore

from plumenet.classes import CLASS_COLORS
from plumenet.encoding import MODEL_NONE
from plumenet.errors import StoreError
from plumenet.timeutil import TimeLike, to_utc
from storage import schema
from storage.axis import (
    COMMITTED_ATTR,
    CONFIG_HINT,
    GROUP_ARRAYS,
    crash_point,
    create_arrays,
    finish_group,
    grow_group,
    needs_finish,
    repair_command,
)
from storage.camera import StoreCamera
from storage.grid import CameraGrid, grid_for, grid_from_attrs
from storage.lease import metadata_lease

logger = logging.getLogger(__name__)

#: Warnings zarr gives while walking a store that are not problems here: consolidated
#: metadata is used on purpose, and the store lease is an object zarr does not know.
_QUIET_WARNINGS = (".*[Cc]onsolidated metadata.*", ".*not recognized as a component of a Zarr.*")


def is_local(url: str) -> bool:
    """Whether ``url`` is a local path (no protocol, or ``file://``)."""
    return "://" not in url or url.startswith("file://")


def zarr_store_for(url: str, storage_options: dict[str, Any] | None, *, read_only: bool) -> Any:
    """A zarr store object for ``url`` (local paths without fsspec)."""
    if is_local(url):
        return LocalStore(url.removeprefix("file://"), read_only=read_only)
    return FsspecStore.from_url(
        url, storage_options=dict(storage_options or {}), read_only=read_only
    )


def open_store(
    url: str,
    *,
    storage_options: dict[str, Any] | None = None,
    mode: str = "a",
    config_hint: str = CONFIG_HINT,
) -> zarr.Group:
    """The store's root group (``mode`` as in :func:`zarr.open_group`; never consolidated
    metadata, so shapes and attributes are current); ``config_hint`` is the config a repair
    command in an error names."""
    store = zarr_store_for(url, storage_options, read_only=mode == "r")
    try:
        return zarr.open_group(store, mode=mode, zarr_format=3, use_consolidated=False)
    except FileNotFoundError as err:
        raise StoreError(
            f"no store at {url} — run a backfill first, or check `store` in the config"
        ) from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise StoreError(
            f"the store's root metadata ({url}/zarr.json) is damaged — run "
            f"{repair_command(config_hint)} to rewrite it"
        ) from err


def camera_group(
    url: str, camera_id: str, storage_options: dict[str, Any] | None, mode: str
) -> zarr.Group:
    """A camera's group (``mode`` as in :func:`zarr.open_group`); a clear
    :class:`StoreError` when the camera has none."""
    store = zarr_store_for(url, storage_options, read_only=mode == "r")
    try:
        return zarr.open_group(
            store, path=camera_id, mode=mode, zarr_format=3, use_consolidated=False
        )
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
        if has_orphan_arrays(store, camera_id):
            raise group_metadata_lost(url, camera_id) from err
        raise StoreError(
            f"camera {camera_id!r} has no group in store {url} — run a backfill for it first"
        ) from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise group_metadata_damaged(url, camera_id) from err


def group_metadata_lost(url: str, camera_id: str) -> StoreError:
    """The error for a camera whose group ``zarr.json`` is gone but whose arrays remain."""
    return StoreError(
        f"camera {camera_id!r}: its group metadata ({url}/{camera_id}/zarr.json) is missing but "
        "its arrays are in the store; it holds the `models` table, which cannot be rebuilt — "
        "restore that file from a backup (nothing was written)"
    )


def group_metadata_damaged(url: str, camera_id: str) -> StoreError:
    """The error for a camera whose group ``zarr.json`` is not valid JSON."""
    return StoreError(
        f"camera {camera_id!r}: its group metadata ({url}/{camera_id}/zarr.json) is damaged "
        "(not valid JSON); it holds the `models` table, which cannot be rebuilt — restore that "
        "file from a backup (nothing was written)"
    )


def has_orphan_arrays(store: Any, camera_id: str) -> bool:
    """Whether arrays of ``camera_id`` exist although its group metadata does not."""
    for name in GROUP_ARRAYS:
        try:
            zarr.open_array(store, path=f"{camera_id}/{name}", mode="r", zarr_format=3)
        except (FileNotFoundError, KeyError, ValueError, TypeError):
            continue
        return True
    return False


def is_consolidated(url: str, storage_options: dict[str, Any] | None) -> bool:
    """Whether the root carries consolidated metadata (then metadata changes refresh it)."""
    store = zarr_store_for(url, storage_options, read_only=True)
    with warnings.catch_warnings():
        for message in _QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        root = zarr.open_group(store, mode="r", zarr_format=3, use_consolidated=None)
    return root.metadata.consolidated_metadata is not None


def refresh_consolidated(url: str, storage_options: dict[str, Any] | None) -> None:
    """Keep consolidated metadata (if the store has it) in step with a metadata change."""
    if is_consolidated(url, storage_options):
        consolidate(url, storage_options=storage_options)


def consolidate(url: str, *, storage_options: dict[str, Any] | None = None) -> None:
    """Consolidate all groups' metadata into the root (driver only, after writes)."""
    with warnings.catch_warnings():
        for message in _QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        zarr.consolidate_metadata(zarr_store_for(url, storage_options, read_only=False))


def _now_iso() -> str:
    return pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _create_camera(
    root: zarr.Group, camera: StoreCamera, grid: CameraGrid, grid_shape: tuple[int, int]
) -> None:
    attrs = {
        "title": schema.title(camera.id),
        "history": schema.history_line(_now_iso(), f"created camera group {camera.id}"),
        "camera": schema.json_attr(camera.public_dict()),
        "cadence": camera.cadence,
        "grid_start": grid.grid_start.isoformat(),
        "chunk": camera.chunk,
        "chunk_len": grid.chunk_len,
        "grid_shape": list(grid_shape),
        "models": schema.json_attr([]),
        "class_colors": schema.json_attr({k: list(v) for k, v in CLASS_COLORS.items()}),
        "class_names": " ".join(schema.CLASS_NAMES),
        "emission_names": " ".join(schema.EMISSION_NAMES),
        "schema_version": schema.SCHEMA_VERSION,
        "Conventions": schema.CONVENTIONS,
        COMMITTED_ATTR: 0,  # set to the length once every array is there (storage.axis)
    }
    g = root.create_group(camera.id, attributes=attrs)
    create_arrays(g, camera.id, GROUP_ARRAYS[:2], grid.n_slots)
    crash_point("create_group")
    create_arrays(g, camera.id, GROUP_ARRAYS[2:], grid.n_slots)
    finish_group(g, camera.id)


def _drift(
    camera: StoreCamera, attrs: dict[str, Any], shape: tuple[int, ...], grid_shape: tuple[int, int]
) -> list[str]:
    """Every way the config or model disagrees with the existing camera group."""
    problems = []
    stored_start = pd.Timestamp(attrs.get("grid_start")).tz_convert("UTC")
    if stored_start != camera.grid_start_ts:
        problems.append(
            f"grid_start is {stored_start.isoformat()} in the store but "
            f"{camera.grid_start_ts.isoformat()} in the config — grid_start never moves; "
            "restore it in the config"
        )
    if pd.Timedelta(attrs.get("cadence")) != camera.cadence_td:
        problems.append(
            f"cadence is {attrs.get('cadence')!r} in the store but {camera.cadence!r} in the "
            "config — restore it, or use a new store or camera id"
        )
    if pd.Timedelta(attrs.get("chunk")) != camera.chunk_td:
        problems.append(
            f"chunk is {attrs.get('chunk')!r} in the store but {camera.chunk!r} in the config "
            "— restore it, or use a new store or camera id"
        )
    if tuple(shape[2:]) != tuple(grid_shape):
        problems.append(
            f"probability grid is {shape[2]}x{shape[3]} in the store but the model's grid is "
            f"{grid_shape[0]}x{grid_shape[1]} — use the same model input size, or a new store"
        )
    return problems


def ensure_camera(
    url: str,
    camera: StoreCamera,
    start: TimeLike,
    end: TimeLike,
    *,
    grid_shape: tuple[int, int],
    storage_options: dict[str, Any] | None = None,
    config_hint: str = CONFIG_HINT,
) -> CameraGrid:
    """Create ``camera``'s group covering ``[start, end)``, or grow its time axis at the end.

    Driver only (writes metadata). The axis starts at ``grid_start`` and is padded to
    whole units; it never shrinks or moves. Raises :class:`StoreError` for a range before
    ``grid_start`` and for any drift between config/model and the existing group (all
    problems listed); a repair command in an error names ``config_hint``.
    """
    t0, t1 = to_utc(start), to_utc(end)
    if t0 < camera.grid_start_ts:
        raise StoreError(
            f"camera {camera.id!r}: range starts {t0.isoformat()}, before grid_start "
            f"{camera.grid_start_ts.isoformat()} — the time axis only grows at the end; start "
            "at or after grid_start"
        )
    if t1 <= t0:
        raise StoreError(f"camera {camera.id!r}: empty range [{t0}, {t1}) — give end > start")
    grid = grid_for(camera)
    needed = grid.slots_to_cover(t1)
    with metadata_lease(url, storage_options):
        root = open_store(url, storage_options=storage_options, mode="a", config_hint=config_hint)
        if root.attrs.get("schema_version") is None:
            root.attrs.update(
                {
                    "schema_version": schema.SCHEMA_VERSION,
                    "Conventions": schema.CONVENTIONS,
                    "title": "plumenet webcam segmentation store (one group per camera)",
                }
            )
        existing = _existing_group(root, url, camera.id)
        if existing is None:
            grid = grid_for(camera, needed)
            _create_camera(root, camera, grid, grid_shape)
            logger.info("camera %s: created group with %d slots", camera.id, needed)
        else:
            grid = _extend_camera(existing, url, camera, needed, grid_shape, config_hint)
        refresh_consolidated(url, storage_options)
    return grid


def _existing_group(root: zarr.Group, url: str, camera_id: str) -> zarr.Group | None:
    """The camera's group, ``None`` if it has none; a clear error if its metadata is gone
    or damaged while its arrays remain (never recreated with an empty ``models`` table)."""
    try:
        existing = root.get(camera_id)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise group_metadata_damaged(url, camera_id) from err
    if existing is None and has_orphan_arrays(root.store, camera_id):
        raise group_metadata_lost(url, camera_id)
    if existing is not None and not isinstance(existing, zarr.Group):
        raise StoreError(
            f"store {url}: {camera_id!r} is an array, not a camera group — use another store"
        )
    return existing


def _extend_camera(
    g: zarr.Group,
    url: str,
    camera: StoreCamera,
    needed: int,
    grid_shape: tuple[int, int],
    config_hint: str,
) -> CameraGrid:
    """Check drift, finish any half-done change, then grow the axis to ``needed`` slots."""
    attrs = dict(g.attrs)
    stored_shape = (0, 0, *(int(v) for v in attrs.get("grid_shape", grid_shape)))
    problems = _drift(camera, attrs, stored_shape, grid_shape)
    if problems:
        raise StoreError(
            f"camera {camera.id!r} in store {url} does not match: " + "; ".join(problems)
        )
    _migrate(g, camera.id)
    if needs_finish(g, camera.id, config_hint):
        n = finish_group(g, camera.id)
        logger.warning("camera %s: finished a half-done metadata change (%d slots)", camera.id, n)
    n_old = g["time"].shape[0]
    n_new = grow_group(g, camera.id, needed)
    if n_new > n_old:
        line = schema.history_line(_now_iso(), f"extended time axis to {n_new} slots")
        history = g.attrs.get("history")
        g.attrs["history"] = f"{history}\n{line}" if history else line
        logger.info("camera %s: extended time axis %d -> %d slots", camera.id, n_old, n_new)
    return grid_for(camera, n_new)


def _migrate(g: zarr.Group, camera_id: str) -> None:
    """Bring a group of an older schema to this one (docs/store.md, "Schema versions"):
    version 1 -> 2 adds the plume and solar variables, all NaN until a unit writes them."""
    version = int(g.attrs.get("schema_version", 1))
    if version >= schema.SCHEMA_VERSION:
        return
    missing = tuple(name for name in schema.PLUME_VARIABLES if name not in g)
    if missing:
        create_arrays(g, camera_id, missing, g["time"].shape[0])
    what = f"migrated schema version {version} -> {schema.SCHEMA_VERSION}"
    line = schema.history_line(_now_iso(), f"{what} (added {', '.join(missing) or 'nothing'})")
    history = g.attrs.get("history")
    g.attrs.update(
        {
            "history": f"{history}\n{line}" if history else line,
            "emission_names": " ".join(schema.EMISSION_NAMES),
            "schema_version": schema.SCHEMA_VERSION,
        }
    )
    logger.info("camera %s: %s", camera_id, what)


def camera_grid(
    url: str, camera_id: str, *, storage_options: dict[str, Any] | None = None
) -> CameraGrid:
    """The grid of an existing camera group (as stored)."""
    g = camera_group(url, camera_id, storage_options, "r")
    return grid_from_attrs(camera_id, dict(g.attrs), g["time"].shape[0])


def register_model(
    url: str,
    camera_id: str,
    *,
    model_id: str,
    digest: str,
    backbone: str,
    storage_options: dict[str, Any] | None = None,
) -> int:
    """Index of this model in the camera's ``models`` attribute, added if new (driver only).

    Appended under the store lease, from a fresh read of the group, so two drivers never
    both get one index and a stale copy never overwrites a newer table.
    """
    with metadata_lease(url, storage_options):
        return _register_model(url, camera_id, model_id, digest, backbone, storage_options)


def _register_model(
    url: str,
    camera_id: str,
    model_id: str,
    digest: str,
    backbone: str,
    storage_options: dict[str, Any] | None,
) -> int:
    g = camera_group(url, camera_id, storage_options, "r+")
    entry = {"id": model_id, "digest": digest, "backbone": backbone}
    models = list(schema.parse_json_attr(g.attrs.get("models", "[]")))
    for i, m in enumerate(models):
        if m == entry:
            return i
    if len(models) >= MODEL_NONE:
        raise StoreError(
            f"camera {camera_id!r}: {len(models)} models are registered, the most the uint8 "
            "`model` index holds — start a new store"
        )
    models.append(entry)
    g.attrs["models"] = schema.json_attr(models)
    refresh_consolidated(url, storage_options)
    return len(models) - 1

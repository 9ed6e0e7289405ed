"""Crash-safe shape changes of a camera group: create its arrays, grow its time axis, and
finish what a killed driver left half-done.

Every change is ordered so that any prefix of it is finished by :func:`finish_group`:

- a new group is created with ``n_slots = 0`` (its committed length) and only then gets its
  arrays, ``time`` values and ``class`` names; ``n_slots`` is set last;
- the axis grows by resizing every time array up to the new length, then writing the new
  ``time`` values, then setting ``n_slots`` — arrays are never resized down (zarr's
  ``resize`` deletes the chunks outside the new shape).

:func:`finish_group` takes the longest length any array or ``n_slots`` records (in whole
units), creates arrays whose metadata is missing, grows every shorter array, rewrites the
``time`` values from the shortest committed length on, and commits. It never shrinks and
never deletes a chunk. The caller holds the store lease (:mod:`storage.lease`).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.storage import MemoryStore

from plumenet.errors import StoreError
from storage import schema
from storage.grid import CameraGrid, grid_from_attrs

logger = logging.getLogger(__name__)

#: Arrays along ``time`` (all must have one length).
TIME_ARRAYS: tuple[str, ...] = ("time", *schema.DATA_VARIABLES, *schema.LEDGER_VARIABLES)
#: Every array of a camera group.
GROUP_ARRAYS: tuple[str, ...] = (*TIME_ARRAYS, "class")
#: Group attribute: the axis length whose ``time`` values are written and whose arrays all
#: have that length (0 while the group is being created).
COMMITTED_ATTR = "n_slots"
#: Test hook: a driver with this variable set to a step name exits at that step.
CRASH_ENV = "PLUMENET_TEST_CRASH_AT"
CRASH_EXIT_CODE = 17

_NS_PER_S = 1_000_000_000


def crash_point(step: str) -> None:
    """Exit at once (no cleanup) when the test hook names ``step``."""
    if os.environ.get(CRASH_ENV) == step:
        logger.warning("test hook %s=%s: exiting", CRASH_ENV, step)
        os._exit(CRASH_EXIT_CODE)


def _start_iso(grid: CameraGrid) -> str:
    return grid.grid_start.tz_convert("UTC").tz_localize(None).isoformat()


def array_specs(attrs: dict[str, Any], camera_id: str, n: int) -> dict[str, dict[str, Any]]:
    """``create_array`` arguments of every array of a group with these attributes."""
    grid = grid_from_attrs(camera_id, attrs, n)
    start_iso = _start_iso(grid)
    cl = grid.chunk_len
    gy, gx = (int(v) for v in attrs["grid_shape"])
    k = len(schema.CLASS_NAMES)
    blosc = BloscCodec(**schema.BLOSC)
    zstd = ZstdCodec(level=schema.BLOSC["clevel"])
    specs: dict[str, dict[str, Any]] = {
        "time": {
            "shape": (n,), "dtype": "int64", "chunks": (cl * schema.TIME_COORD_UNITS_PER_CHUNK,),
            "fill_value": 0, "compressors": (blosc,), "dimension_names": ["time"],
            "attributes": schema.time_attrs(start_iso),
        },
        "class": {
            "shape": (k,), "dtype": str, "chunks": (k,), "fill_value": "",
            "compressors": (zstd,), "dimension_names": ["class"],
            "attributes": schema.class_attrs(),
        },
    }  # fmt: skip
    for spec in schema.variable_specs(start_iso):
        shape: tuple[int, ...] = (n,)
        chunks: tuple[int, ...] = (cl,)
        shards = None
        if spec.dims == ("time", "class"):
            shape, chunks = (n, k), (cl, k)
        elif spec.dims == ("time", "emission"):  # schema 2: plume geometry per kind
            e = len(schema.EMISSION_NAMES)
            shape, chunks = (n, e), (cl, e)
        elif spec.dims == ("time", "class", "y", "x"):
            shape, chunks, shards = (n, k, gy, gx), (1, k, gy, gx), (cl, k, gy, gx)
        specs[spec.name] = {
            "shape": shape,
            "dtype": str if spec.dtype == "str" else spec.dtype,
            "chunks": chunks,
            "shards": shards,
            "fill_value": spec.fill,
            "compressors": (zstd,) if spec.dtype == "str" else (blosc,),
            "dimension_names": list(spec.dims),
            "attributes": spec.attrs,
        }
    return specs


def create_arrays(g: zarr.Group, camera_id: str, names: tuple[str, ...], n: int) -> None:
    """Create ``names`` in ``g`` with ``n`` slots (metadata only; values come later)."""
    specs = array_specs(dict(g.attrs), camera_id, n)
    for name in names:
        g.create_array(name, **specs[name])


def array_metadata(attrs: dict[str, Any], camera_id: str, name: str, n: int) -> bytes:
    """The ``zarr.json`` that array ``name`` of a group with ``attrs`` has at ``n`` slots
    (built in memory, so a damaged one can be rewritten without touching its chunks)."""
    scratch = zarr.open_group(MemoryStore(), mode="w", zarr_format=3)
    scratch.create_array(name, **array_specs(attrs, camera_id, n)[name])
    meta = scratch[name].metadata.to_dict()
    return json.dumps(meta, indent=2).encode()


def time_values(grid: CameraGrid, slot0: int, slot1: int) -> np.ndarray:
    """Stored ``time`` values (seconds since ``grid_start``) of slots ``[slot0, slot1)``."""
    step = int(grid.cadence.value // _NS_PER_S)
    return np.arange(slot0, slot1, dtype=np.int64) * step


def write_time(arr: zarr.Array, grid: CameraGrid, slot0: int, slot1: int) -> None:
    """Write ``time`` values for slots ``[slot0, slot1)`` one coordinate chunk at a time
    (a long 10-s axis would not fit in memory at once)."""
    step = arr.chunks[0]
    for a in range(slot0, slot1, step):
        b = min(slot1, (a // step + 1) * step)
        arr[a:b] = time_values(grid, a, b)


#: What a repair command names as its config when the caller has none (a placeholder).
CONFIG_HINT = "cameras.yaml"


def repair_command(config_hint: str = CONFIG_HINT, camera_id: str | None = None) -> str:
    """The ``plumenet verify ... --repair`` command an error tells the user to run, naming the
    config the run was given so that it can be pasted as it is."""
    camera = f" --camera {shlex.quote(camera_id)}" if camera_id else ""
    return f"`plumenet verify --config {shlex.quote(config_hint)}{camera} --repair`"


def open_arrays(
    g: zarr.Group, camera_id: str, config_hint: str = CONFIG_HINT
) -> dict[str, zarr.Array | None]:
    """Every array of the group, ``None`` where its metadata is missing; a clear error where
    it is damaged (its fix names ``config_hint``, the config the run was given)."""
    out: dict[str, zarr.Array | None] = {}
    for name in GROUP_ARRAYS:
        try:
            out[name] = g[name]  # type: ignore[assignment]
        except KeyError:
            out[name] = None
        except (ValueError, TypeError) as err:
            raise StoreError(
                f"camera {camera_id!r}: the metadata of array `{name}` ({camera_id}/{name}/"
                f"zarr.json) is damaged ({type(err).__name__}) — run "
                f"{repair_command(config_hint, camera_id)}, then rerun"
            ) from err
    return out


def committed_length(g: zarr.Group) -> int | None:
    """The group's committed axis length (``None`` for groups made before it was recorded)."""
    value = g.attrs.get(COMMITTED_ATTR)
    return None if value is None else int(value)


def needs_finish(g: zarr.Group, camera_id: str, config_hint: str = CONFIG_HINT) -> bool:
    """Whether a change was left half-done: an array missing, lengths that disagree, or
    a length other than the committed one."""
    arrays = open_arrays(g, camera_id, config_hint)
    if any(a is None for a in arrays.values()):
        return True
    lengths = {arrays[name].shape[0] for name in TIME_ARRAYS}  # type: ignore[union-attr]
    committed = committed_length(g)
    return len(lengths) > 1 or (committed is not None and lengths != {committed})


def _whole_units(n: int, chunk_len: int) -> int:
    return max(1, -(-n // chunk_len)) * chunk_len


def finish_group(g: zarr.Group, camera_id: str) -> int:
    """Finish a half-made group or a half-grown axis; returns the committed length."""
    attrs = dict(g.attrs)
    grid = grid_from_attrs(camera_id, attrs, 0)
    arrays = open_arrays(g, camera_id)
    lengths = {n: a.shape[0] for n, a in arrays.items() if a is not None and n in TIME_ARRAYS}
    committed = committed_length(g)
    target = _whole_units(max([*lengths.values(), committed or 0]), grid.chunk_len)
    # slots whose time values may be missing or wrong: from the shortest committed length on
    floor = min([*lengths.values(), target]) if lengths else 0
    lo = floor if committed is None else min(committed, floor)
    missing = tuple(n for n, a in arrays.items() if a is None)
    if missing:
        create_arrays(g, camera_id, missing, target)
        logger.warning("camera %s: created missing arrays %s", camera_id, ", ".join(missing))
        if "time" in missing:
            lo = 0
    for name, n in lengths.items():
        if n < target:
            arr = g[name]
            arr.resize((target, *arr.shape[1:]))  # type: ignore[union-attr]
            logger.warning("camera %s: grew `%s` %d -> %d slots", camera_id, name, n, target)
    cls = g["class"]
    if list(np.asarray(cls[:], dtype=object)) != list(schema.CLASS_NAMES):  # type: ignore[index]
        cls[:] = np.array(schema.CLASS_NAMES, dtype=object)  # type: ignore[index]
    write_time(g["time"], grid_from_attrs(camera_id, attrs, target), lo, target)  # type: ignore[arg-type]
    g.attrs[COMMITTED_ATTR] = target
    return target


def grow_group(g: zarr.Group, camera_id: str, needed: int) -> int:
    """Grow every time array to ``needed`` slots (never shrink); returns the new length."""
    n_old = g["time"].shape[0]  # type: ignore[union-attr]
    if needed <= n_old:
        return n_old
    for name in TIME_ARRAYS:
        arr = g[name]
        if arr.shape[0] < needed:  # type: ignore[union-attr]
            arr.resize((needed, *arr.shape[1:]))  # type: ignore[union-attr]
        crash_point("grow_axis")
    grid = grid_from_attrs(camera_id, dict(g.attrs), needed)
    write_time(g["time"], grid, n_old, needed)  # type: ignore[arg-type]
    g.attrs[COMMITTED_ATTR] = needed
    return needed


def time_axis_problems(g: zarr.Group, camera_id: str, slot0: int, slot1: int) -> list[int]:
    """Slots in ``[slot0, slot1)`` whose ``time`` value is not the grid's."""
    arr = g["time"]
    n = arr.shape[0]  # type: ignore[union-attr]
    s1 = min(slot1, n)
    if s1 <= slot0:
        return []
    grid = grid_from_attrs(camera_id, dict(g.attrs), n)
    got = np.asarray(arr[slot0:s1])  # type: ignore[index]
    bad = np.flatnonzero(got != time_values(grid, slot0, s1))
    return (bad + slot0).tolist()

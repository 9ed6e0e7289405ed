"""Finding damage in a camera group: metadata, lengths, ``time`` values, chunks, ledger.

:func:`verify_camera` lists every :class:`Damage` of one camera over some units:

- metadata: the root's, the group's (not repairable: it holds the ``models`` table) and
  each array's ``zarr.json`` (missing or not valid JSON);
- lengths: time arrays that disagree with each other or with the committed ``n_slots``;
- ``time`` values that are not the grid's;
- chunks: a unit whose ``status`` says ok (1) but whose data chunk/shard is missing
  (zarr would silently read NaN/fill for it); with ``deep``, every chunk of the unit is
  also read and decoded (truncated shards, garbled chunks) and ok slots without data are
  found inside chunks that exist.

The cheap check (``deep=False``: metadata, lengths, ``time`` in range, one listing per
array, the ledger, and the index of each ``probability`` shard, which a truncated shard
fails) runs at the start of every backfill for the units it touches
(:func:`check_units`); ``plumenet verify`` runs the deep one. Repairs are
:mod:`storage.repair`'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import zarr

from plumenet.encoding import PROBABILITY_FILL, STATUS_NONE, STATUS_OK
from plumenet.errors import StoreError
from storage import schema
from storage.axis import (
    CONFIG_HINT,
    GROUP_ARRAYS,
    TIME_ARRAYS,
    committed_length,
    repair_command,
    time_axis_problems,
)
from storage.grid import grid_from_attrs
from storage.zarr_store import camera_group, open_store

#: Arrays an ok slot (status 1) always has data in.
OK_DATA = ("fraction", "probability", "frame_time", "source", "brightness", "model")


@dataclass(frozen=True)
class Damage:
    """One problem found in a camera group."""

    camera: str
    kind: str
    where: str
    detail: str
    units: tuple[int, ...] = ()
    repairable: bool = True

    def line(self) -> str:
        units = ""
        if self.units:
            shown = ", ".join(str(u) for u in self.units[:8])
            more = f" and {len(self.units) - 8} more" if len(self.units) > 8 else ""
            units = f" (unit{'s' if len(self.units) > 1 else ''} {shown}{more})"
        return f"{self.camera}: {self.kind} at {self.where}{units}: {self.detail}"


def store_fs(url: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    """The fsspec filesystem and root path of the store (for listings and raw keys)."""
    fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    return fs, root.rstrip("/")


def _root_damage(url: str, camera_id: str, so: dict[str, Any] | None) -> list[Damage]:
    try:
        open_store(url, storage_options=so, mode="r")
    except StoreError as err:
        if "damaged" in str(err):
            detail = "the root's zarr.json is not valid JSON; it is rewritten (no camera data)"
            return [Damage(camera_id, "damaged metadata", "zarr.json", detail)]
        camera_group(url, camera_id, so, "r")  # no root and no camera: the error says so
        detail = "the root's zarr.json is missing; it is rewritten (no camera data)"
        return [Damage(camera_id, "missing metadata", "zarr.json", detail)]
    return []


def open_group_or_damage(
    url: str, camera_id: str, so: dict[str, Any] | None
) -> tuple[zarr.Group | None, list[Damage]]:
    """The camera's group, or the unrepairable damage that keeps it from opening."""
    try:
        return camera_group(url, camera_id, so, "r"), []
    except StoreError as err:
        if "has no group" in str(err):
            raise
        return None, [Damage(camera_id, "group metadata", f"{camera_id}/zarr.json", str(err),
                             repairable=False)]  # fmt: skip


def array_damage(g: zarr.Group, camera_id: str) -> tuple[dict[str, zarr.Array], list[Damage]]:
    """The arrays that open, and the metadata damage of the others."""
    arrays: dict[str, zarr.Array] = {}
    found = []
    for name in GROUP_ARRAYS:
        where = f"{camera_id}/{name}/zarr.json"
        try:
            arrays[name] = g[name]  # type: ignore[assignment]
        except KeyError:
            found.append(Damage(camera_id, "missing metadata", where, "the array's zarr.json "
                                "is missing; it is rewritten from the schema"))  # fmt: skip
        except (ValueError, TypeError, UnicodeDecodeError):
            found.append(Damage(camera_id, "damaged metadata", where, "the array's zarr.json is "
                                "not valid; it is rewritten from the schema"))  # fmt: skip
    return arrays, found


def length_damage(g: zarr.Group, camera_id: str, arrays: dict[str, zarr.Array]) -> list[Damage]:
    """Time arrays whose lengths disagree (with each other or with ``n_slots``)."""
    lengths = {n: a.shape[0] for n, a in arrays.items() if n in TIME_ARRAYS}
    committed = committed_length(g)
    values = set(lengths.values()) | ({committed} if committed is not None else set())
    if len(values) <= 1:
        return []
    shown = ", ".join(f"{n}={v}" for n, v in sorted(lengths.items()))
    return [Damage(camera_id, "length mismatch", f"{camera_id}/*", f"time arrays have "
                   f"different lengths ({shown}; committed {committed}); every array is grown to "
                   "the longest (never shrunk)")]  # fmt: skip


#: Up to this many units, chunk keys are looked up one by one; beyond, listed per array.
LOOKUP_UNITS = 16


def _unit_key(arr: zarr.Array, unit: int) -> str:
    coords = (unit, *([0] * (len(arr.shape) - 1)))
    return arr.metadata.encode_chunk_key(coords)  # type: ignore[union-attr]


def _chunk_keys(
    fs: Any, root: str, camera_id: str, name: str, arr: zarr.Array, units: list[int]
) -> set[str]:
    """The chunk keys of ``units`` that exist (a lookup per key for a few units, one
    listing of the array for many)."""
    base = f"{root}/{camera_id}/{name}"
    if len(units) <= LOOKUP_UNITS:
        keys = [_unit_key(arr, u) for u in units]
        return {k for k in keys if fs.exists(f"{base}/{k}")}
    try:
        found = fs.find(f"{base}/c")
    except FileNotFoundError:
        return set()
    return {p.removeprefix(f"{base}/") for p in found}


def _unit_status(arr: zarr.Array, grid: Any, units: list[int]) -> dict[int, np.ndarray | None]:
    """Each unit's ``status`` (``None`` where its chunk does not decode): one read for the
    whole span, per unit only when that fails."""
    if not units:
        return {}
    s0, s1 = grid.unit_range(units[0])[0], grid.unit_range(units[-1])[1]
    try:
        span = np.asarray(arr[s0:s1])
    except Exception:  # noqa: BLE001 - find the chunk that does not decode, unit by unit
        out: dict[int, np.ndarray | None] = {}
        for u in units:
            a, b = grid.unit_range(u)
            try:
                out[u] = np.asarray(arr[a:b])
            except Exception:  # noqa: BLE001 - any decoding error is damage of this chunk
                out[u] = None
        return out
    return {u: span[grid.unit_range(u)[0] - s0 : grid.unit_range(u)[1] - s0] for u in units}


def _unopenable_shards(arr: zarr.Array, slots: dict[int, int]) -> list[int]:
    """Units whose shard does not open, reading one slot of each (``slots``: unit -> slot):
    that reads the shard's index, which ends the shard under a checksum (16 bytes a slot),
    and one frame's chunk, all at once, where decoding the units would read them whole.
    A truncated shard fails there; a garbled frame inside one is left to the deep check."""
    if not slots:
        return []
    try:
        arr.oindex[sorted(slots.values())]
    except Exception:  # noqa: BLE001 - find the shard that does not open, unit by unit
        bad = []
        for unit, slot in slots.items():
            try:
                arr[slot]
            except Exception:  # noqa: BLE001 - any decoding error is damage of this shard
                bad.append(unit)
        return bad
    return []


def _read_unit(arr: zarr.Array, s0: int, s1: int) -> np.ndarray:
    return np.asarray(arr[s0:s1])


def _first_slot(grid: Any, unit: int, status: np.ndarray) -> int:
    """The slot of ``unit``'s first ok frame (its first slot if none is ok), from the unit's
    ``status`` as :func:`_unit_status` read it."""
    ok = np.flatnonzero(status == STATUS_OK)
    return grid.unit_range(unit)[0] + (int(ok[0]) if len(ok) else 0)


def _ok_without_data(name: str, values: np.ndarray, ok: np.ndarray) -> bool:
    """Whether an ok slot holds no data in this array's unit."""
    if name == "fraction":
        return bool(np.isnan(values[ok]).all(axis=1).any())
    if name == "probability":
        return bool((values[ok] == PROBABILITY_FILL).all(axis=(1, 2, 3)).any())
    return False


def chunk_damage(
    g: zarr.Group,
    camera_id: str,
    arrays: dict[str, zarr.Array],
    units: Iterable[int],
    fs: Any,
    root: str,
    *,
    deep: bool,
) -> list[Damage]:
    """Missing or unreadable chunks of ``units``, and ok slots without data."""
    grid = grid_from_attrs(camera_id, dict(g.attrs), 0)
    n = min(a.shape[0] for name, a in arrays.items() if name in TIME_ARRAYS)
    names = [k for k in (*schema.DATA_VARIABLES, *schema.LEDGER_VARIABLES) if k in arrays]
    units = [u for u in sorted(set(units)) if grid.unit_range(u)[1] <= n]
    if "status" not in arrays or not units:
        return []
    statuses = _unit_status(arrays["status"], grid, units)
    busy = [u for u, st in statuses.items() if st is None or (st != STATUS_NONE).any()]
    keys = {name: _chunk_keys(fs, root, camera_id, name, arrays[name], busy) for name in names}
    missing: dict[str, list[int]] = {}
    unreadable: dict[str, list[int]] = {}
    empty: list[int] = []
    for u in busy:
        s0, s1 = grid.unit_range(u)
        status = statuses[u]
        if status is None:
            unreadable.setdefault("status", []).append(u)
            continue
        ok = status == STATUS_OK
        for name in names:
            key = _unit_key(arrays[name], u)
            present = key in keys[name]
            if name in OK_DATA and ok.any() and not present:
                missing.setdefault(name, []).append(u)
            if not (deep and present) or name == "status":
                continue
            try:
                values = _read_unit(arrays[name], s0, s1)
            except Exception:  # noqa: BLE001 - any decoding error is damage of this chunk
                unreadable.setdefault(name, []).append(u)
                continue
            if _ok_without_data(name, values, ok):
                empty.append(u)
    if not deep:  # the deep check reads these shards whole
        for name in names:
            arr = arrays[name]
            if arr.shards is None:
                continue
            slots: dict[int, int] = {}
            for u in busy:
                status = statuses[u]
                if status is not None and _unit_key(arr, u) in keys[name]:
                    slots[u] = _first_slot(grid, u, status)
            for u in _unopenable_shards(arr, slots):
                unreadable.setdefault(name, []).append(u)
    found = [
        Damage(camera_id, "missing chunk", f"{camera_id}/{name}", "status says ok but the "
               "chunk is missing (reads as no data); --repair marks the units for reprocessing",
               tuple(us))
        for name, us in sorted(missing.items())
    ]  # fmt: skip
    found += [
        Damage(camera_id, "unreadable chunk", f"{camera_id}/{name}", "the chunk does not "
               "decode (truncated or garbled); --repair removes it and marks the units for "
               "reprocessing", tuple(us))
        for name, us in sorted(unreadable.items())
    ]  # fmt: skip
    if empty:
        found.append(Damage(camera_id, "status without data", f"{camera_id}/fraction|probability",
                            "slots with status ok hold no data; --repair marks the units for "
                            "reprocessing", tuple(sorted(set(empty)))))  # fmt: skip
    return found


def verify_camera(
    url: str,
    camera_id: str,
    *,
    storage_options: dict[str, Any] | None = None,
    units: Iterable[int] | None = None,
    deep: bool = True,
) -> list[Damage]:
    """Every damage of ``camera_id`` over ``units`` (default: the whole axis)."""
    found = _root_damage(url, camera_id, storage_options)
    g, group_found = open_group_or_damage(url, camera_id, storage_options)
    found += group_found
    if g is None:
        return found
    arrays, meta_found = array_damage(g, camera_id)
    found += meta_found + length_damage(g, camera_id, arrays)
    time_arrays = [a for n, a in arrays.items() if n in TIME_ARRAYS]
    if not time_arrays:
        return found
    grid = grid_from_attrs(camera_id, dict(g.attrs), min(a.shape[0] for a in time_arrays))
    wanted = sorted(set(range(grid.n_units) if units is None else units))
    if "time" in arrays and wanted:
        s0, s1 = grid.unit_range(wanted[0])[0], grid.unit_range(wanted[-1])[1]
        try:
            bad = time_axis_problems(g, camera_id, s0, s1)
        except Exception:  # noqa: BLE001 - a time chunk that does not decode
            bad = [s0]
        if bad:
            found.append(Damage(camera_id, "time values", f"{camera_id}/time", f"{len(bad)} "
                                "slot times are not the grid's (first slot "
                                f"{bad[0]}); they are rewritten"))  # fmt: skip
    fs, root = store_fs(url, storage_options)
    return found + chunk_damage(g, camera_id, arrays, wanted, fs, root, deep=deep)


def check_units(
    url: str,
    camera_id: str,
    units: Iterable[int],
    *,
    storage_options: dict[str, Any] | None = None,
    config_hint: str = CONFIG_HINT,
) -> None:
    """The cheap check a backfill runs for the units it touches: a :class:`StoreError`
    naming the first damage (and how many more) if there is any; nothing is written."""
    found = verify_camera(url, camera_id, storage_options=storage_options, units=units,
                          deep=False)  # fmt: skip
    if not found:
        return
    more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    fix = (
        f"run {repair_command(config_hint, camera_id)}, then rerun"
        if all(d.repairable for d in found)
        else "restore the damaged file from a backup"
    )
    raise StoreError(f"store {url} is damaged: {found[0].line()}{more} — {fix}")


def damage_json(found: list[Damage]) -> str:
    """The damage list as JSON (for ``plumenet verify --json``)."""
    return json.dumps([d.__dict__ | {"units": list(d.units)} for d in found], indent=2)

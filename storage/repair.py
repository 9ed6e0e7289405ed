"""Repairing what :mod:`storage.verify` finds, so the next backfill redoes exactly the
damaged units.

- the root's ``zarr.json``: rewritten (it holds only the store's attributes);
- an array's ``zarr.json`` (missing or garbled): rewritten from the schema and the group's
  attributes, without touching its chunks;
- lengths and ``time`` values: :func:`storage.axis.finish_group` (grow every array to the
  longest, rewrite ``time``; never shrink);
- a missing or unreadable chunk of a unit: the unreadable chunk is removed and the unit's
  ``status`` goes back to 0 (no frame), so planning redoes the unit and the worker rewrites
  all of its chunks;
- the group's ``zarr.json`` is never rebuilt: it holds the ``models`` table.

Runs under the store lease; consolidated metadata is refreshed at the end.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import zarr

from plumenet.errors import StoreError
from storage import schema
from storage.axis import TIME_ARRAYS, array_metadata, committed_length, finish_group
from storage.grid import grid_from_attrs
from storage.lease import metadata_lease
from storage.verify import Damage, store_fs, verify_camera
from storage.zarr_store import camera_group, refresh_consolidated

logger = logging.getLogger(__name__)


def _rewrite_root(fs: Any, root: str) -> str:
    meta = {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {
            "schema_version": schema.SCHEMA_VERSION,
            "Conventions": schema.CONVENTIONS,
            "title": "plumenet webcam segmentation store (one group per camera)",
        },
    }
    fs.pipe_file(f"{root}/zarr.json", json.dumps(meta, indent=2).encode())
    return "rewrote the root's zarr.json"


def _rewrite_array_metadata(g: zarr.Group, camera_id: str, fs: Any, root: str, name: str) -> str:
    attrs = dict(g.attrs)
    lengths = []
    for other in TIME_ARRAYS:
        try:
            lengths.append(g[other].shape[0])  # type: ignore[union-attr]
        except (KeyError, ValueError, TypeError, UnicodeDecodeError):
            continue
    n = max([*lengths, committed_length(g) or 0])
    if n == 0:
        n = grid_from_attrs(camera_id, attrs, 0).chunk_len
    data = array_metadata(attrs, camera_id, name, n)
    fs.pipe_file(f"{root}/{camera_id}/{name}/zarr.json", data)
    return f"rewrote {camera_id}/{name}/zarr.json from the schema ({n} slots)"


def _redo_units(g: zarr.Group, camera_id: str, fs: Any, root: str, damage: Damage) -> str:
    """Remove the damaged chunks of the units and set their status back to 0."""
    name = damage.where.rsplit("/", 1)[-1]
    grid = grid_from_attrs(camera_id, dict(g.attrs), 0)
    for u in damage.units:
        if damage.kind == "unreadable chunk":
            arr = g[name]
            coords = (u, *([0] * (len(arr.shape) - 1)))  # type: ignore[union-attr]
            key = arr.metadata.encode_chunk_key(coords)  # type: ignore[union-attr]
            fs.rm_file(f"{root}/{camera_id}/{name}/{key}")
        if not (damage.kind == "unreadable chunk" and name == "status"):
            s0, s1 = grid.unit_range(u)
            g["status"][s0:s1] = 0  # type: ignore[index]
    what = f"{damage.kind} in {name}"
    first = grid.slot_time(grid.unit_range(min(damage.units))[0])
    last = grid.slot_time(grid.unit_range(max(damage.units))[1])
    return (
        f"marked {len(damage.units)} unit(s) of {camera_id} for reprocessing ({what}); a "
        f"backfill over {first:%Y-%m-%dT%H:%M} .. {last:%Y-%m-%dT%H:%M} UTC redoes them"
    )


def _repair_pass(url: str, camera_id: str, so: dict[str, Any] | None) -> list[str]:
    """One round: fix what verify finds first (metadata before lengths before chunks)."""
    found = verify_camera(url, camera_id, storage_options=so)
    bad = [d for d in found if not d.repairable]
    if bad:
        raise StoreError(f"cannot repair automatically: {bad[0].line()}")
    fs, root = store_fs(url, so)
    done = []
    if any(d.where == "zarr.json" for d in found):
        done.append(_rewrite_root(fs, root))
    meta = [d for d in found if d.kind in ("missing metadata", "damaged metadata")
            and d.where != "zarr.json"]  # fmt: skip
    g = camera_group(url, camera_id, so, "r+")
    for d in meta:
        done.append(_rewrite_array_metadata(g, camera_id, fs, root, d.where.split("/")[-2]))
    if meta:
        return done  # lengths and chunks are judged again with the metadata back
    if any(d.kind in ("length mismatch", "time values") for d in found):
        n = finish_group(g, camera_id)
        done.append(f"grew every time array of {camera_id} to {n} slots and rewrote `time`")
        return done
    for d in found:
        if d.units:
            done.append(_redo_units(g, camera_id, fs, root, d))
    return done


def repair_camera(
    url: str, camera_id: str, *, storage_options: dict[str, Any] | None = None
) -> list[str]:
    """Repair ``camera_id`` until verify finds nothing; returns what was done (one line
    each). Raises :class:`StoreError` for what cannot be repaired automatically."""
    done: list[str] = []
    with metadata_lease(url, storage_options):
        for _ in range(6):
            step = _repair_pass(url, camera_id, storage_options)
            if not step:
                break
            done += step
        else:
            left = verify_camera(url, camera_id, storage_options=storage_options)
            if left:
                raise StoreError(f"repair did not converge: {left[0].line()}")
        if done:
            refresh_consolidated(url, storage_options)
    for line in done:
        logger.warning("%s", line)
    return done

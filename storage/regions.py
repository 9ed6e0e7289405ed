"""Region writes of one work unit and the ledger they leave: what workers touch.

A unit is one camera x one chunk along ``time``. :func:`unit_arrays` gives a worker the
unit's arrays filled with "no frame"; :func:`write_unit` writes them as whole chunks/shards,
data variables first and the ledger (``status``, ``model``) last, with no metadata writes,
so units run concurrently without locks and a unit killed half-way is planned again
(:func:`storage.grid.plan_units` reads :func:`read_ledger`). The group must already cover
the unit (the driver's :func:`storage.zarr_store.ensure_camera`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from plumenet.encoding import MODEL_NONE, PROBABILITY_FILL, STATUS_NONE, quantize_probability
from plumenet.errors import StoreError
from storage import schema
from storage.grid import CameraGrid, grid_from_attrs
from storage.zarr_store import camera_group

_NS_PER_MS = 1_000_000


def unit_arrays(n: int, grid_shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Arrays of one unit (``n`` slots) filled with "no frame"; a worker fills its rows."""
    gy, gx = grid_shape
    k = len(schema.CLASS_NAMES)
    return {
        "fraction": np.full((n, k), np.nan, dtype=np.float32),
        "probability": np.full((n, k, gy, gx), PROBABILITY_FILL, dtype=np.uint8),
        "frame_time": np.full(n, np.datetime64("NaT", "ns")),
        "source": np.full(n, "", dtype=object),
        "brightness": np.full(n, np.nan, dtype=np.float32),
        "anomaly": np.full(n, np.nan, dtype=np.float32),
        **{
            name: np.full((n, len(schema.EMISSION_NAMES)), np.nan, dtype=np.float32)
            for name in schema.PLUME_VARIABLES
            if name != "solar_elevation"
        },
        "solar_elevation": np.full(n, np.nan, dtype=np.float32),
        "status": np.full(n, STATUS_NONE, dtype=np.uint8),
        "model": np.full(n, MODEL_NONE, dtype=np.uint8),
    }


def read_ledger(
    url: str,
    camera_id: str,
    slot0: int,
    slot1: int,
    *,
    storage_options: dict[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """``slot``, ``status``, ``model`` and ``source`` for slots ``[slot0, slot1)`` (clipped
    to the axis)."""
    g = camera_group(url, camera_id, storage_options, "r")
    n = g["status"].shape[0]
    s0, s1 = max(0, slot0), min(slot1, n)
    s1 = max(s0, s1)
    return {
        "slot": np.arange(s0, s1, dtype=np.int64),
        "status": np.asarray(g["status"][s0:s1]),
        "model": np.asarray(g["model"][s0:s1]),
        "source": np.asarray(g["source"][s0:s1], dtype=object),
    }


def _encode(name: str, value: Any, n: int, shape: tuple[int, ...], grid: CameraGrid) -> np.ndarray:
    """One variable of a unit as stored (dtype, fill, CF encoding)."""
    want = (n, *shape[1:])
    if name == "probability":
        arr = np.asarray(value)
        arr = quantize_probability(arr) if arr.dtype.kind == "f" else arr.astype(np.uint8)
    elif name == "frame_time":
        ts = pd.DatetimeIndex(pd.to_datetime(np.asarray(value).ravel(), utc=True)).as_unit("ns")
        ms = (ts.asi8 - grid.grid_start.value) // _NS_PER_MS
        arr = np.where(ts.isna(), schema.FRAME_TIME_FILL, ms).astype(np.int64)
    elif name == "source":
        arr = np.array(
            ["" if v is None else str(v) for v in np.asarray(value, dtype=object).ravel()],
            dtype=object,
        )
    elif name in ("status", "model"):
        arr = np.asarray(value).astype(np.uint8)
    else:
        arr = np.asarray(value, dtype=np.float32)
    if arr.shape != want:
        raise StoreError(
            f"camera {grid.camera_id!r}: `{name}` for a unit must have shape {want}, got "
            f"{arr.shape} — build the arrays with storage.regions.unit_arrays"
        )
    return arr


def _write_unit(
    url: str,
    camera_id: str,
    slot0: int,
    slot1: int,
    arrays: dict[str, np.ndarray],
    *,
    storage_options: dict[str, Any] | None = None,
    ledger: bool = True,
) -> None:
    g = camera_group(url, camera_id, storage_options, "r+")
    grid = grid_from_attrs(camera_id, dict(g.attrs), 0)
    n = slot1 - slot0
    if slot0 % grid.chunk_len or n != grid.chunk_len:
        raise StoreError(
            f"camera {camera_id!r}: a unit write must cover one whole chunk of "
            f"{grid.chunk_len} slots starting at a multiple of it; got [{slot0}, {slot1}) — "
            "use CameraGrid.unit_range"
        )
    missing = [k for k in schema.LEDGER_VARIABLES if k not in arrays]
    unknown = sorted(set(arrays) - set(schema.DATA_VARIABLES) - set(schema.LEDGER_VARIABLES))
    if missing or unknown:
        raise StoreError(
            f"camera {camera_id!r}: unit arrays missing {missing} / unknown {unknown} — "
            "build them with storage.regions.unit_arrays"
        )
    gy, gx = g["probability"].shape[2:]
    fills = unit_arrays(n, (gy, gx))
    names = (*schema.DATA_VARIABLES, *schema.LEDGER_VARIABLES) if ledger else schema.DATA_VARIABLES
    for name in names:
        arr = g[name]
        if slot1 > arr.shape[0]:
            raise StoreError(
                f"camera {camera_id!r}: slots [{slot0}, {slot1}) lie beyond the time axis "
                f"({arr.shape[0]} slots) — the driver must call ensure_camera first"
            )
        value = _encode(name, arrays.get(name, fills[name]), n, arr.shape, grid)
        arr[slot0:slot1] = value


def write_unit(
    url: str,
    camera_id: str,
    slot0: int,
    slot1: int,
    arrays: dict[str, np.ndarray],
    *,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Write one unit's whole chunk/shard: data variables first, ``status``/``model`` last.

    ``arrays`` as from :func:`unit_arrays` (``status`` and ``model`` required; missing data
    variables are written as fill). ``probability`` may be uint8 (stored form) or float in
    [0, 1] (quantized here). Writes no metadata, so units may run concurrently.
    """
    _write_unit(url, camera_id, slot0, slot1, arrays, storage_options=storage_options)

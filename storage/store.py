"""The Zarr v3 store: create/extend a camera group, plan work units from its ledger, region
writes of one unit, consolidation and reads.

Protocol (see ``docs/`` and design section 7):

1. the driver calls :func:`ensure_camera` (creates the group or grows ``time`` at the end),
   :func:`register_model`, lists frames over :meth:`CameraGrid.listing_window` of the
   requested units, :func:`assign_slots`, :func:`read_ledger` and :func:`plan_units`;
2. each worker calls :func:`write_unit` for its unit only (whole chunks/shards, data first,
   ``status``/``model`` last; no metadata writes, so units run concurrently without locks);
3. the driver calls :func:`consolidate`.

Stores are addressed by URL (local path or any fsspec URL) plus ``storage_options``;
functions open what they need, so nothing but strings crosses process boundaries.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from plumenet.classes import CLASS_COLORS
from plumenet.errors import StoreError
from plumenet.timeutil import TimeLike, to_utc
from storage import schema

if TYPE_CHECKING:
    import xarray as xr
    import zarr

    from plumenet.config import CameraConfig

logger = logging.getLogger(__name__)

_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000


# --- the grid (pure) -----------------------------------------------------------------------


@dataclass(frozen=True)
class CameraGrid:
    """A camera's regular time axis: slot ``k`` is at ``grid_start + k * cadence``."""

    camera_id: str
    grid_start: pd.Timestamp
    cadence: pd.Timedelta
    chunk_len: int
    n_slots: int

    @property
    def _c(self) -> int:
        return int(self.cadence.value)

    @property
    def n_units(self) -> int:
        """Work units (chunks) on the axis."""
        return self.n_slots // self.chunk_len

    def slot_of(self, times: Any) -> np.ndarray:
        """Nearest slot of each time (a half-cadence tie goes to the later slot)."""
        idx = pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(times), utc=True)).as_unit("ns")
        delta = idx.asi8 - self.grid_start.value
        return (delta + self._c // 2) // self._c

    def slot_time(self, k: int) -> pd.Timestamp:
        """Time of slot ``k``."""
        return self.grid_start + int(k) * self.cadence

    def slot_times(self, slot0: int, slot1: int) -> pd.DatetimeIndex:
        """Times of slots ``slot0 .. slot1 - 1``."""
        return pd.DatetimeIndex(self.grid_start + np.arange(slot0, slot1) * self.cadence)

    def unit_of_slot(self, k: int) -> int:
        """The unit (chunk index) holding slot ``k``."""
        return int(k) // self.chunk_len

    def unit_range(self, unit: int) -> tuple[int, int]:
        """Slots ``[slot0, slot1)`` of ``unit``."""
        return unit * self.chunk_len, (unit + 1) * self.chunk_len

    def units_for(self, start: TimeLike, end: TimeLike) -> list[int]:
        """Units holding the slots whose times lie in ``[start, end)``.

        A day-aligned range is exactly its days' units; a frame a few minutes before
        midnight whose nearest slot is the next day's first belongs to the next day's unit
        (list the archive over :meth:`listing_window` to find every frame of a unit).
        """
        t0, t1 = to_utc(start), to_utc(end)
        first = max(0, math.ceil((t0 - self.grid_start) / self.cadence))
        last = math.ceil((t1 - self.grid_start) / self.cadence) - 1
        if last < first:
            return []
        return list(range(first // self.chunk_len, last // self.chunk_len + 1))

    def listing_window(self, units: Sequence[int]) -> tuple[pd.Timestamp, pd.Timestamp]:
        """Frame times ``[t0, t1)`` that land in ``units`` (list the archive over this).

        A unit is rewritten whole, so its manifest must hold every frame of its slots,
        including those a half cadence before its first slot.
        """
        half = pd.Timedelta(self._c // 2, "ns")
        return (
            self.slot_time(self.unit_range(min(units))[0]) - half,
            self.slot_time(self.unit_range(max(units))[1]) - half,
        )

    def slots_to_cover(self, end: TimeLike) -> int:
        """Slots needed (whole units) so frames before ``end`` have a slot."""
        last = int(self.slot_of(to_utc(end) - pd.Timedelta(1, "ns"))[0])
        return max(1, math.ceil((last + 1) / self.chunk_len)) * self.chunk_len


def grid_for(camera: CameraConfig, n_slots: int = 0) -> CameraGrid:
    """The grid a camera's config defines (``n_slots`` as given)."""
    return CameraGrid(
        camera_id=camera.id,
        grid_start=camera.grid_start_ts,
        cadence=camera.cadence_td,
        chunk_len=int(camera.chunk_td // camera.cadence_td),
        n_slots=n_slots,
    )


# --- slots and planning (pure) -------------------------------------------------------------


def assign_slots(manifest: pd.DataFrame, grid: CameraGrid) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give each frame its nearest slot; ``(assigned, rejected)``.

    ``assigned``: the manifest's columns plus ``slot`` (int64), one frame per slot, sorted by
    slot. ``rejected`` (same columns plus ``reason``): frames that lost their slot to a
    nearer frame (ties: the earlier path wins), or fall outside the grid.
    """
    df = manifest.copy()
    if df.empty:
        df["slot"] = pd.Series([], dtype="int64")
        rej = df.copy()
        rej["reason"] = pd.Series([], dtype=object)
        return df.reset_index(drop=True), rej.reset_index(drop=True)
    times = pd.DatetimeIndex(pd.to_datetime(df["time"], utc=True)).as_unit("ns")
    df["slot"] = grid.slot_of(times)
    dist = np.abs(times.asi8 - (grid.grid_start.value + df["slot"].to_numpy() * grid._c))
    df["_dist"] = dist
    outside = (df["slot"] < 0) | (df["slot"] >= grid.n_slots)
    rejected = df[outside].copy()
    rejected["reason"] = np.where(
        rejected["slot"] < 0,
        "before grid_start",
        "beyond the end of the store's time axis (extend it with ensure_camera)",
    )
    inside = df[~outside].sort_values(["slot", "_dist", "path"], kind="stable")
    first = ~inside["slot"].duplicated(keep="first")
    winners = inside[first]
    losers = inside[~first].copy()
    winner_path = dict(zip(winners["slot"], winners["path"], strict=True))
    losers["reason"] = [
        f"slot {s} already holds the nearer frame {winner_path[s]}" for s in losers["slot"]
    ]
    if len(losers):
        logger.warning(
            "camera %s: %d frame(s) lost their slot to a nearer frame", grid.camera_id, len(losers)
        )
    rejected = pd.concat([rejected, losers])
    assigned = winners.drop(columns="_dist").reset_index(drop=True)
    rejected = rejected.drop(columns="_dist").sort_values("time").reset_index(drop=True)
    return assigned, rejected


@dataclass(frozen=True)
class WorkUnit:
    """Everything a worker needs for one camera x one chunk (small and picklable).

    ``frames``: ``(slot, path, frame_time)`` with ``slot0 <= slot < slot1``; write the unit's
    arrays with row ``slot - slot0``.
    """

    camera: str
    unit: int
    slot0: int
    slot1: int
    frames: tuple[tuple[int, str, pd.Timestamp], ...]


def plan_units(
    grid: CameraGrid,
    assigned: pd.DataFrame,
    ledger: dict[str, np.ndarray],
    model_index: int,
    *,
    overwrite: bool = False,
    units: Iterable[int] | None = None,
) -> list[WorkUnit]:
    """Units that need (re)writing.

    A slot is done when ``status != 0``, ``model == model_index`` and ``source`` equals the
    manifest path. A unit is planned when any of its slots that has a manifest frame is
    not done (or ``overwrite``); units without frames are never planned. ``ledger`` is
    :func:`read_ledger`'s output over (at least) the units concerned; ``units`` restricts
    the plan (default: every unit with a frame in ``assigned``).
    """
    if assigned.empty:
        return []
    slots = assigned["slot"].to_numpy(dtype=np.int64)
    unit_of = slots // grid.chunk_len
    wanted = set(units) if units is not None else set(unit_of.tolist())
    lslots = np.asarray(ledger.get("slot", np.array([], dtype=np.int64)), dtype=np.int64)
    l0 = int(lslots[0]) if lslots.size else 0
    plan = []
    paths = assigned["path"].to_numpy(dtype=object)
    times = pd.DatetimeIndex(pd.to_datetime(assigned["time"], utc=True))
    for u in sorted(wanted):
        sel = np.flatnonzero(unit_of == u)
        if sel.size == 0:
            continue
        if not overwrite:
            pos = slots[sel] - l0
            inside = (pos >= 0) & (pos < lslots.size)
            done = np.zeros(sel.size, dtype=bool)
            p = pos[inside]
            done[inside] = (
                (ledger["status"][p] != schema.STATUS_NONE)
                & (ledger["model"][p] == model_index)
                & (np.asarray(ledger["source"][p], dtype=object) == paths[sel][inside])
            )
            if done.all():
                continue
        slot0, slot1 = grid.unit_range(u)
        frames = tuple((int(slots[i]), str(paths[i]), times[i]) for i in sel)
        plan.append(WorkUnit(grid.camera_id, u, slot0, slot1, frames))
    return plan


def unit_arrays(n: int, grid_shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Arrays of one unit (``n`` slots) filled with "no frame"; a worker fills its rows."""
    gy, gx = grid_shape
    k = len(schema.CLASS_NAMES)
    return {
        "fraction": np.full((n, k), np.nan, dtype=np.float32),
        "probability": np.full((n, k, gy, gx), schema.PROBABILITY_FILL, dtype=np.uint8),
        "frame_time": np.full(n, np.datetime64("NaT", "ns")),
        "source": np.full(n, "", dtype=object),
        "brightness": np.full(n, np.nan, dtype=np.float32),
        "anomaly": np.full(n, np.nan, dtype=np.float32),
        "status": np.full(n, schema.STATUS_NONE, dtype=np.uint8),
        "model": np.full(n, schema.MODEL_NONE, dtype=np.uint8),
    }


# --- opening -------------------------------------------------------------------------------


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _zstore(url: str, storage_options: dict[str, Any] | None, *, read_only: bool) -> Any:
    """A zarr store object for ``url``."""
    from zarr.storage import FsspecStore, LocalStore

    if _is_local(url):
        return LocalStore(url.removeprefix("file://"), read_only=read_only)
    return FsspecStore.from_url(
        url, storage_options=dict(storage_options or {}), read_only=read_only
    )


def open_store(
    url: str, *, storage_options: dict[str, Any] | None = None, mode: str = "a"
) -> zarr.Group:
    """The store's root group (``mode`` as in :func:`zarr.open_group`; never consolidated
    metadata, so shapes and attributes are current)."""
    import zarr

    store = _zstore(url, storage_options, read_only=mode == "r")
    try:
        return zarr.open_group(store, mode=mode, zarr_format=3, use_consolidated=False)
    except FileNotFoundError as err:
        raise StoreError(
            f"no store at {url} — run a backfill first, or check `store` in the config"
        ) from err


def _camera_group(
    url: str, camera_id: str, storage_options: dict[str, Any] | None, mode: str
) -> zarr.Group:
    import zarr

    store = _zstore(url, storage_options, read_only=mode == "r")
    try:
        return zarr.open_group(
            store, path=camera_id, mode=mode, zarr_format=3, use_consolidated=False
        )
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
        raise StoreError(
            f"camera {camera_id!r} has no group in store {url} — run a backfill for it first"
        ) from err


def _is_consolidated(url: str, storage_options: dict[str, Any] | None) -> bool:
    import zarr

    store = _zstore(url, storage_options, read_only=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        root = zarr.open_group(store, mode="r", zarr_format=3, use_consolidated=None)
    return root.metadata.consolidated_metadata is not None


def _refresh_consolidated(url: str, storage_options: dict[str, Any] | None) -> None:
    """Keep consolidated metadata (if the store has it) in step with a metadata change."""
    if _is_consolidated(url, storage_options):
        consolidate(url, storage_options=storage_options)


def consolidate(url: str, *, storage_options: dict[str, Any] | None = None) -> None:
    """Consolidate all groups' metadata into the root (driver only, after writes)."""
    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(_zstore(url, storage_options, read_only=False))


# --- creating and extending ----------------------------------------------------------------


def _grid_from_attrs(camera_id: str, attrs: dict[str, Any], n_slots: int) -> CameraGrid:
    return CameraGrid(
        camera_id=camera_id,
        grid_start=pd.Timestamp(attrs["grid_start"]).tz_convert("UTC").as_unit("ns"),
        cadence=pd.Timedelta(attrs["cadence"]),
        chunk_len=int(attrs["chunk_len"]),
        n_slots=n_slots,
    )


def _iso(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").tz_localize(None).isoformat()


def _time_values(grid: CameraGrid, slot0: int, slot1: int) -> np.ndarray:
    step = int(grid.cadence.value // _NS_PER_S)
    return np.arange(slot0, slot1, dtype=np.int64) * step


def _write_time(arr: zarr.Array, grid: CameraGrid, slot0: int, slot1: int) -> None:
    """Write ``time`` values for slots ``[slot0, slot1)`` one coordinate chunk at a time
    (a long 10-s axis would not fit in memory at once)."""
    step = arr.chunks[0]
    for a in range(slot0, slot1, step):
        b = min(slot1, (a // step + 1) * step)
        arr[a:b] = _time_values(grid, a, b)


def _create_camera(
    root: zarr.Group, camera: CameraConfig, grid: CameraGrid, grid_shape: tuple[int, int]
) -> None:
    from zarr.codecs import BloscCodec, ZstdCodec

    start_iso = _iso(grid.grid_start)
    attrs = {
        "camera": camera.public_dict(),
        "cadence": camera.cadence,
        "grid_start": grid.grid_start.isoformat(),
        "chunk": camera.chunk,
        "chunk_len": grid.chunk_len,
        "grid_shape": list(grid_shape),
        "models": [],
        "class_colors": {k: list(v) for k, v in CLASS_COLORS.items()},
        "schema_version": schema.SCHEMA_VERSION,
        "Conventions": schema.CONVENTIONS,
    }
    g = root.create_group(camera.id, attributes=attrs)
    n, cl = grid.n_slots, grid.chunk_len
    gy, gx = grid_shape
    k = len(schema.CLASS_NAMES)
    blosc = BloscCodec(**schema.BLOSC)
    zstd = ZstdCodec(level=schema.BLOSC["clevel"])
    time = g.create_array(
        "time",
        shape=(n,),
        dtype="int64",
        chunks=(cl * schema.TIME_COORD_UNITS_PER_CHUNK,),
        fill_value=0,
        compressors=(blosc,),
        dimension_names=["time"],
        attributes={
            "standard_name": "time",
            "long_name": "slot time (UTC)",
            "units": schema.time_units(start_iso),
            "calendar": "proleptic_gregorian",
        },
    )
    _write_time(time, grid, 0, n)
    cls = g.create_array(
        "class",
        shape=(k,),
        dtype=str,
        chunks=(k,),
        fill_value="",
        compressors=(zstd,),
        dimension_names=["class"],
        attributes={"long_name": "model class"},
    )
    cls[:] = np.array(schema.CLASS_NAMES, dtype=object)
    for spec in schema.variable_specs(start_iso):
        shape: tuple[int, ...] = (n,)
        chunks: tuple[int, ...] = (cl,)
        shards = None
        if spec.dims == ("time", "class"):
            shape, chunks = (n, k), (cl, k)
        elif spec.dims == ("time", "class", "y", "x"):
            shape, chunks, shards = (n, k, gy, gx), (1, k, gy, gx), (cl, k, gy, gx)
        g.create_array(
            spec.name,
            shape=shape,
            dtype=str if spec.dtype == "str" else spec.dtype,
            chunks=chunks,
            shards=shards,
            fill_value=spec.fill,
            compressors=(zstd,) if spec.dtype == "str" else (blosc,),
            dimension_names=list(spec.dims),
            attributes=spec.attrs,
        )


def _drift(
    camera: CameraConfig, attrs: dict[str, Any], shape: tuple[int, ...], grid_shape: tuple[int, int]
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
    camera: CameraConfig,
    start: TimeLike,
    end: TimeLike,
    *,
    grid_shape: tuple[int, int],
    storage_options: dict[str, Any] | None = None,
) -> CameraGrid:
    """Create ``camera``'s group covering ``[start, end)``, or grow its time axis at the end.

    Driver only (writes metadata). The axis starts at ``grid_start`` and is padded to
    whole units; it never shrinks or moves. Raises :class:`StoreError` for a range before
    ``grid_start`` and for any drift between config/model and the existing group (all
    problems listed).
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
    root = open_store(url, storage_options=storage_options, mode="a")
    if root.attrs.get("schema_version") is None:
        root.attrs.update(
            {"schema_version": schema.SCHEMA_VERSION, "Conventions": schema.CONVENTIONS}
        )
    existing = root.get(camera.id)
    if existing is None:
        grid = grid_for(camera, needed)
        _create_camera(root, camera, grid, grid_shape)
        logger.info("camera %s: created group with %d slots", camera.id, needed)
    else:
        attrs = dict(existing.attrs)
        prob = existing["probability"]
        problems = _drift(camera, attrs, prob.shape, grid_shape)
        if problems:
            raise StoreError(
                f"camera {camera.id!r} in store {url} does not match: " + "; ".join(problems)
            )
        n_old = existing["time"].shape[0]
        grid = grid_for(camera, max(n_old, needed))
        if needed > n_old:
            for name in ("time", *schema.DATA_VARIABLES, *schema.LEDGER_VARIABLES):
                arr = existing[name]
                arr.resize((needed, *arr.shape[1:]))
            _write_time(existing["time"], grid, n_old, needed)
            logger.info("camera %s: extended time axis %d -> %d slots", camera.id, n_old, needed)
    _refresh_consolidated(url, storage_options)
    return grid


def camera_grid(
    url: str, camera_id: str, *, storage_options: dict[str, Any] | None = None
) -> CameraGrid:
    """The grid of an existing camera group (as stored)."""
    g = _camera_group(url, camera_id, storage_options, "r")
    return _grid_from_attrs(camera_id, dict(g.attrs), g["time"].shape[0])


def register_model(
    url: str,
    camera_id: str,
    *,
    model_id: str,
    digest: str,
    backbone: str,
    storage_options: dict[str, Any] | None = None,
) -> int:
    """Index of this model in the camera's ``models`` attribute, added if new (driver only)."""
    g = _camera_group(url, camera_id, storage_options, "r+")
    entry = {"id": model_id, "digest": digest, "backbone": backbone}
    models = list(g.attrs.get("models", []))
    for i, m in enumerate(models):
        if m == entry:
            return i
    if len(models) >= schema.MODEL_NONE:
        raise StoreError(
            f"camera {camera_id!r}: {len(models)} models are registered, the most the uint8 "
            "`model` index holds — start a new store"
        )
    models.append(entry)
    g.attrs["models"] = models
    _refresh_consolidated(url, storage_options)
    return len(models) - 1


# --- ledger and unit writes ----------------------------------------------------------------


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
    g = _camera_group(url, camera_id, storage_options, "r")
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
        arr = schema.quantize_probability(arr) if arr.dtype.kind == "f" else arr.astype(np.uint8)
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
            f"{arr.shape} — build the arrays with storage.store.unit_arrays"
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
    g = _camera_group(url, camera_id, storage_options, "r+")
    grid = _grid_from_attrs(camera_id, dict(g.attrs), 0)
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
            "build them with storage.store.unit_arrays"
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


# --- reading -------------------------------------------------------------------------------


def open_camera(
    url: str,
    camera_id: str,
    *,
    storage_options: dict[str, Any] | None = None,
    chunks: Any = None,
) -> xr.Dataset:
    """A camera's group as a decoded, lazy dataset: ``probability`` as float32 in [0, 1]
    (NaN: no frame), times as datetime64.

    ``chunks=None`` (default) gives lazily indexed arrays without dask, the fastest for
    selections (one frame's map, a year of fractions); pass ``chunks={}`` for dask arrays
    on the store's chunks. (``xr.open_zarr`` directly decodes ``probability`` as float64,
    because JSON attributes cannot say the scale factor is float32.)
    """
    import xarray as xr

    so = None if _is_local(url) else storage_options
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            raw = xr.open_zarr(
                url,
                group=camera_id,
                storage_options=so,
                zarr_format=3,
                chunks=chunks,
                decode_cf=False,
            )
    except (FileNotFoundError, KeyError) as err:
        raise StoreError(
            f"camera {camera_id!r} has no group in store {url} — run a backfill for it first"
        ) from err
    if "probability" in raw:
        raw["probability"].attrs["scale_factor"] = np.float32(1.0 / schema.PROBABILITY_SCALE)
    return xr.decode_cf(raw)


def open_tree(url: str, *, storage_options: dict[str, Any] | None = None) -> xr.DataTree:
    """The whole store as a DataTree (one child per camera)."""
    import xarray as xr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        return xr.open_datatree(
            url,
            engine="zarr",
            storage_options=None if _is_local(url) else storage_options,
            zarr_format=3,
        )


def write_activity(
    url: str,
    camera_id: str,
    name: str,
    ds: xr.Dataset,
    *,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Replace the subgroup ``<camera>/activity/<name>`` with ``ds`` (e.g. ``episodes``,
    ``activity_1h``, ``activity_1d``).

    ``ds`` must not reuse the camera's dimension names ``time``/``class`` with other
    coordinates (DataTree requires children to align with parents): name binned axes e.g.
    ``time_1h``.
    """
    g = _camera_group(url, camera_id, storage_options, "r+")
    if not name or "/" in name:
        raise StoreError(f"activity name {name!r} must be one path segment, e.g. 'activity_1h'")
    clash = []
    for dim in ("time", "class"):
        if dim in ds.dims:
            stored = np.asarray(g[dim][:])
            if dim == "class":
                ok = list(map(str, stored)) == list(map(str, ds[dim].values))
            else:
                ok = False
            if not ok:
                clash.append(dim)
    if clash:
        raise StoreError(
            f"camera {camera_id!r}: activity dataset {name!r} uses dimension(s) {clash} with "
            "coordinates that differ from the camera's — rename them (e.g. 'time' -> 'time_1h')"
        )
    g.require_group("activity")
    ds.to_zarr(
        _zstore(url, storage_options, read_only=False),
        group=f"{camera_id}/activity/{name}",
        mode="w",
        zarr_format=3,
        consolidated=False,
    )
    _refresh_consolidated(url, storage_options)


# --- template ------------------------------------------------------------------------------


def sample_camera() -> CameraConfig:
    """The camera whose empty group is checked in as the store template."""
    from plumenet.config import CameraConfig

    return CameraConfig(
        id="SAMPLE.01",
        archive="s3://example-bucket/camera/volcano/images",
        template="geonet",
        fields={"SITE": "WIZ", "VC": "01"},
        timezone="Pacific/Auckland",
        cadence="10min",
        grid_start="2000-01-01",
        site={"volcano": "Whakaari", "lat": -37.52, "lon": 177.18},
    )


def write_template(path: str | Path) -> list[Path]:
    """Write the empty store's metadata (``zarr.json`` files only) for :func:`sample_camera`
    under ``path``; returns the files written, relative to ``path``."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    cam = sample_camera()
    ensure_camera(str(path), cam, "2000-01-01", "2000-01-02", grid_shape=(37, 37))
    files = []
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.name != "zarr.json":
            f.unlink()
        elif f.is_file():
            # Stable formatting so the checked-in files diff cleanly.
            f.write_text(json.dumps(json.loads(f.read_text()), indent=2, sort_keys=True) + "\n")
            files.append(f.relative_to(path))
    for d in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    return files

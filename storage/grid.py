"""A camera's time grid and the planning of work units: pure arithmetic, no I/O.

:class:`CameraGrid` maps times to slots (slot ``k`` is at ``grid_start + k * cadence``) and
slots to units (one unit is one chunk along ``time``); :func:`assign_slots` gives each
listed frame its nearest slot; :func:`plan_units` compares the assignment with the store's
ledger (:func:`storage.regions.read_ledger`) and returns the :class:`WorkUnit` s that need
(re)writing. Nothing here opens the store, so the planning is tested without one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from plumenet.encoding import STATUS_NONE
from plumenet.timeutil import TimeLike, to_utc
from storage.camera import StoreCamera

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CameraGrid:
    """A camera's regular time axis: slot ``k`` is at ``grid_start + k * cadence``."""

    camera_id: str
    grid_start: pd.Timestamp
    cadence: pd.Timedelta
    chunk_len: int
    n_slots: int

    @property
    def cadence_ns(self) -> int:
        """The cadence in nanoseconds."""
        return int(self.cadence.value)

    @property
    def n_units(self) -> int:
        """Work units (chunks) on the axis."""
        return self.n_slots // self.chunk_len

    def slot_of(self, times: Any) -> np.ndarray:
        """Nearest slot of each time (a half-cadence tie goes to the later slot)."""
        idx = pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(times), utc=True)).as_unit("ns")
        delta = idx.asi8 - self.grid_start.value
        return (delta + self.cadence_ns // 2) // self.cadence_ns

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
        half = pd.Timedelta(self.cadence_ns // 2, "ns")
        return (
            self.slot_time(self.unit_range(min(units))[0]) - half,
            self.slot_time(self.unit_range(max(units))[1]) - half,
        )

    def slots_to_cover(self, end: TimeLike) -> int:
        """Slots needed (whole units) so frames before ``end`` have a slot."""
        last = int(self.slot_of(to_utc(end) - pd.Timedelta(1, "ns"))[0])
        return max(1, math.ceil((last + 1) / self.chunk_len)) * self.chunk_len


def grid_for(camera: StoreCamera, n_slots: int = 0) -> CameraGrid:
    """The grid a camera's config defines (``n_slots`` as given)."""
    return CameraGrid(
        camera_id=camera.id,
        grid_start=camera.grid_start_ts,
        cadence=camera.cadence_td,
        chunk_len=int(camera.chunk_td // camera.cadence_td),
        n_slots=n_slots,
    )


def grid_from_attrs(camera_id: str, attrs: dict[str, Any], n_slots: int) -> CameraGrid:
    """The grid a camera group's attributes record (``n_slots`` as given)."""
    return CameraGrid(
        camera_id=camera_id,
        grid_start=pd.Timestamp(attrs["grid_start"]).tz_convert("UTC").as_unit("ns"),
        cadence=pd.Timedelta(attrs["cadence"]),
        chunk_len=int(attrs["chunk_len"]),
        n_slots=n_slots,
    )


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
    dist = np.abs(times.asi8 - (grid.grid_start.value + df["slot"].to_numpy() * grid.cadence_ns))
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


FrameRow = tuple[int, str, pd.Timestamp]


class UnitFrames(Sequence[FrameRow]):
    """A unit's frames as three arrays that read as ``(slot, path, frame_time)`` rows.

    Thousands of small tuples per unit cost the driver ~30-40 us per frame to ship: pickle,
    and Prefect walking every element of a task's parameters on submit and again on the
    worker. Three arrays are leaves to Prefect and pickle in one piece each.
    """

    __slots__ = ("paths", "slots", "times")

    def __init__(self, slots: Any, paths: Any, times: Any) -> None:
        self.slots = np.asarray(slots, dtype=np.int64)
        self.paths = np.asarray(paths, dtype=object)
        if isinstance(times, np.ndarray) and times.dtype.kind == "M":  # already UTC, naive
            self.times = times.astype("datetime64[ns]")
        else:
            stamps = pd.DatetimeIndex(pd.to_datetime(times, utc=True))
            self.times = stamps.tz_convert(None).to_numpy(dtype="datetime64[ns]")
        if not (len(self.slots) == len(self.paths) == len(self.times)):
            raise ValueError("slots, paths and times must have one entry per frame")

    @classmethod
    def from_rows(cls, rows: Iterable[FrameRow]) -> UnitFrames:
        rows = list(rows)
        if not rows:
            return cls(np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, "datetime64[ns]"))
        slots, paths, times = zip(*rows, strict=True)
        return cls(slots, [str(p) for p in paths], list(times))

    def __len__(self) -> int:
        return len(self.slots)

    def __iter__(self) -> Iterator[FrameRow]:
        stamps = pd.DatetimeIndex(self.times, tz="UTC")  # one boxing for the unit
        return iter(zip(self.slots.tolist(), self.paths.tolist(), stamps, strict=True))

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return UnitFrames(self.slots[index], self.paths[index], self.times[index])
        i = range(len(self))[index]
        return (int(self.slots[i]), str(self.paths[i]), pd.Timestamp(self.times[i], tz="UTC"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UnitFrames):
            return NotImplemented
        return (
            np.array_equal(self.slots, other.slots)
            and np.array_equal(self.times, other.times)
            and self.paths.tolist() == other.paths.tolist()
        )

    def __hash__(self) -> int:
        return hash((self.slots.tobytes(), self.times.tobytes()))

    def __repr__(self) -> str:
        return f"UnitFrames({len(self)} frames)"


@dataclass(frozen=True)
class WorkUnit:
    """Everything a worker needs for one camera x one chunk (small and picklable).

    ``frames``: ``(slot, path, frame_time)`` rows with ``slot0 <= slot < slot1`` (a
    :class:`UnitFrames`; any sequence of rows is converted); write the unit's arrays with
    row ``slot - slot0``.
    """

    camera: str
    unit: int
    slot0: int
    slot1: int
    frames: UnitFrames

    def __post_init__(self) -> None:
        if not isinstance(self.frames, UnitFrames):
            object.__setattr__(self, "frames", UnitFrames.from_rows(self.frames))


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
    :func:`storage.regions.read_ledger`'s output over (at least) the units concerned;
    ``units`` restricts the plan (default: every unit with a frame in ``assigned``).
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
                (ledger["status"][p] != STATUS_NONE)
                & (ledger["model"][p] == model_index)
                & (np.asarray(ledger["source"][p], dtype=object) == paths[sel][inside])
            )
            if done.all():
                continue
        slot0, slot1 = grid.unit_range(u)
        frames = UnitFrames(slots[sel], paths[sel], times[sel])
        plan.append(WorkUnit(grid.camera_id, u, slot0, slot1, frames))
    return plan

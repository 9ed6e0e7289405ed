"""Driver-side steps of a backfill, as plain functions: cover, then plan window by window.

:func:`prepare_backfill` makes the store cover the range (metadata only, whatever its length);
:func:`iter_windows` then lists and plans one window (a month per camera, at most
:data:`WINDOW_SLOTS` slots) at a time, so the driver's memory and its time to the first unit
do not grow with the range. The Prefect flows in ``flows/`` only sequence these and dispatch
``plumenet.jobs.workunit.run_unit``. Nothing here touches image bytes: the driver works on
manifests and the store's ledger.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from plumenet.errors import ConfigError, StoreError
from plumenet.jobs.plume import site_position
from plumenet.jobs.report import BackfillReport  # noqa: F401 - re-exported (flows import it here)
from plumenet.jobs.workunit import UnitJob
from plumenet.timeutil import parse_duration_text
from storage.archive import list_frames
from storage.grid import CameraGrid, WorkUnit, assign_slots, plan_units
from storage.regions import read_ledger
from storage.verify import check_units
from storage.zarr_store import camera_group, consolidate, ensure_camera, register_model

if TYPE_CHECKING:
    from plumenet.config import CameraConfig, Config


logger = logging.getLogger(__name__)

#: Time one planning window covers per camera (also bounded by WINDOW_SLOTS).
WINDOW = "31D"
#: Most slots one planning window holds (its manifest and ledger are in memory at once).
WINDOW_SLOTS = 50_000
#: Skipped files and slot collisions kept as examples per camera (counts are complete).
MAX_EXAMPLES = 200


@dataclass(frozen=True)
class ModelIdentity:
    """What the store records about the model (its provenance), read without a GPU."""

    spec: str
    model_id: str
    digest: str
    backbone: str
    grid: tuple[int, int]
    is_demo: bool


@dataclass
class CameraPlan:
    """One camera of a run: its grid and job, and tallies that grow as windows are planned.

    The lists of skipped files and slot collisions keep the first examples only (their counts
    are complete), so a decade of planning holds no more than a window's worth of data.
    """

    camera: str
    job: UnitJob
    grid: CameraGrid
    model_index: int
    unit_ids: range
    frames_listed: int = 0
    skipped_files: list[str] = field(default_factory=list)
    n_skipped: int = 0
    collisions: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_collisions: int = 0
    units_planned: int = 0

    @property
    def units_in_range(self) -> int:
        return len(self.unit_ids)


@dataclass
class BackfillPlan:
    """What a run covers; its units are planned a window at a time (:func:`iter_windows`)."""

    start: pd.Timestamp
    end: pd.Timestamp
    model: ModelIdentity
    overwrite: bool = False
    window: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(WINDOW))
    cameras: list[CameraPlan] = field(default_factory=list)
    #: units planned eagerly by :func:`plan_backfill` (empty for a streaming run)
    planned: list[tuple[WorkUnit, UnitJob]] = field(default_factory=list)

    @property
    def units_in_range(self) -> int:
        return sum(c.units_in_range for c in self.cameras)

    @property
    def units(self) -> list[tuple[WorkUnit, UnitJob]]:
        return list(self.planned)


@dataclass(frozen=True)
class Window:
    """The units one planning step produced for one camera (``done``: found finished)."""

    camera: CameraPlan
    unit_ids: range
    units: list[WorkUnit]

    @property
    def done(self) -> int:
        return len(self.unit_ids) - len(self.units)


@functools.lru_cache(maxsize=8)
def identify_model(spec: str) -> ModelIdentity:
    """Load the model once on the driver's CPU to learn its id, digest and output grid.

    Cached per process: the CLI checks the weights before starting a server, and the flow
    asks again.
    """
    # torch is imported when a model is identified, not when the driver imports this module.
    from plumenet.model.weights import load_model  # noqa: PLC0415

    loaded = load_model(spec, device="cpu")
    grid = loaded.model.config.grid_size
    return ModelIdentity(
        spec=spec,
        model_id=loaded.model_id,
        digest=loaded.digest,
        backbone=loaded.backbone,
        grid=(grid, grid),
        is_demo=loaded.is_demo,
    )


def check_request(
    config: Config, start: pd.Timestamp, end: pd.Timestamp, cameras: list[str] | None = None
) -> None:
    """Fail before any work on what the user can fix: unknown cameras, empty or early ranges."""
    if end <= start:
        raise ConfigError(
            f"empty range: --end {end.isoformat()} is not after --start {start.isoformat()} — "
            "give an --end later than --start (a date-only --end includes that whole day, so "
            "--end is shown here as the next midnight)"
        )
    for camera in [config.camera(c) for c in cameras] if cameras else config.cameras:
        if start < camera.grid_start_ts:
            raise ConfigError(
                f"camera {camera.id!r}: --start {start.isoformat()} is before its grid_start "
                f"{camera.grid_start_ts.isoformat()}; the time axis never moves — start at or "
                "after grid_start, or give the camera an earlier grid_start in a new store"
            )


def lookback_range(lookback: str, now: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[midnight of ``now - lookback``, ``now``): what a nightly run covers."""
    try:
        span = parse_duration_text(lookback, "--lookback")
    except ValueError as err:
        raise ConfigError(f"{err} (how far back a nightly run looks, e.g. 2D)") from None
    return (now - span).floor("1D"), now


def window_units(grid: CameraGrid, window: pd.Timedelta) -> int:
    """Units per planning window: ``window`` of time, at most :data:`WINDOW_SLOTS` slots,
    at least one unit (a month at 1-min cadence, ~6 days at 10 s)."""
    by_time = -(-window // (grid.cadence * grid.chunk_len))
    return max(1, min(int(by_time), WINDOW_SLOTS // grid.chunk_len))


def parse_window(window: str | pd.Timedelta | None) -> pd.Timedelta:
    """The planning window (default :data:`WINDOW`); a bad one is one clear error."""
    try:
        return parse_duration_text(window if window is not None else WINDOW, "--window")
    except ValueError as err:
        raise ConfigError(f"{err} (the planning window, e.g. 31D or 7D)") from None


def camera_as_stored(camera: CameraConfig, attrs: dict[str, Any] | None, url: str) -> CameraConfig:
    """``camera`` with the unit its store group was created with (a store keeps its chunking).

    A config without ``unit`` takes the store's; a ``unit`` that disagrees with it is an error.
    """
    stored = (attrs or {}).get("chunk")
    if stored is None or pd.Timedelta(stored) == camera.chunk_td:
        return camera
    if camera.unit is not None:
        raise ConfigError(
            f"camera {camera.id!r}: `unit: {camera.unit}` in the config, but store {url} was "
            f"created with {stored} units ({attrs.get('chunk_len') if attrs else '?'} slots) "
            f"and keeps them — set `unit: {stored}` or remove `unit`, or use a new store or "
            "camera id"
        )
    return camera.model_copy(update={"unit": str(stored)})


def _stored_attrs(config: Config, camera_id: str) -> dict[str, Any] | None:
    try:
        group = camera_group(config.store, camera_id, config.storage_options, "r")
    except StoreError:
        return None
    return dict(group.attrs)


def prepare_backfill(
    config: Config,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    cameras: list[str] | None = None,
    overwrite: bool = False,
    model: ModelIdentity | None = None,
    device: str | None = None,
    batch_size: int = 16,
    window: str | pd.Timedelta | None = None,
) -> BackfillPlan:
    """Make the store cover the range and register the model; list nothing yet.

    Costs a few metadata writes per camera whatever the range, so the first window can be
    planned and dispatched at once.
    """
    check_request(config, start, end, cameras)
    model = model or identify_model(config.segmentation_model())
    span = parse_window(window)
    plan = BackfillPlan(start=start, end=end, model=model, overwrite=overwrite, window=span)
    selected = [config.camera(c) for c in cameras] if cameras else list(config.cameras)
    for configured in selected:
        camera = camera_as_stored(configured, _stored_attrs(config, configured.id), config.store)
        grid = ensure_camera(
            config.store,
            camera,
            start,
            end,
            grid_shape=model.grid,
            storage_options=config.storage_options,
            config_hint=config.source,
        )
        model_index = register_model(
            config.store,
            camera.id,
            model_id=model.model_id,
            digest=model.digest,
            backbone=model.backbone,
            storage_options=config.storage_options,
        )
        ids = grid.units_for(start, end)
        job = UnitJob(
            store=config.store,
            camera=camera.id,
            model=config.segmentation_model(),
            model_index=model_index,
            model_digest=model.digest,
            storage_options=dict(config.storage_options),
            roi=str(camera.roi) if camera.roi else None,
            tile=camera.tiling.tile if camera.tiling else None,
            tile_stride=camera.tiling.stride if camera.tiling else None,
            anomaly_model=str(camera.anomaly_model) if camera.anomaly_model else None,
            site=site_position(camera.site),
            geometry=camera.geometry.model_dump() if camera.geometry else None,
            device=device,
            batch_size=batch_size,
            cuda_batch_size=config.inference.cuda_batch_size,
            gpu_decode=config.inference.gpu_decode,
            compile=config.inference.compile,
        )
        unit_ids = range(ids[0], ids[-1] + 1) if ids else range(0)
        plan.cameras.append(CameraPlan(camera.id, job, grid, model_index, unit_ids))
    return plan


def plan_window(config: Config, plan: BackfillPlan, cam: CameraPlan, unit_ids: range) -> Window:
    """List the frames of ``unit_ids`` (one window), read their ledger, plan the undone units."""
    grid = cam.grid
    camera = config.camera(cam.camera)
    # a unit is rewritten whole: list every frame that lands in its slots
    t0, t1 = grid.listing_window([unit_ids[0], unit_ids[-1]])
    manifest = list_frames(camera, t0, t1, storage_options=config.storage_options)
    assigned, collisions = assign_slots(manifest, grid)
    unit_of = assigned["slot"] // grid.chunk_len
    assigned = assigned[(unit_of >= unit_ids[0]) & (unit_of <= unit_ids[-1])]
    skipped = list(manifest.attrs.get("skipped", []))
    cam.frames_listed += len(manifest)
    cam.n_skipped += len(skipped)
    cam.skipped_files += skipped[: max(0, MAX_EXAMPLES - len(cam.skipped_files))]
    if len(collisions):
        cam.n_collisions += len(collisions)
        if len(cam.collisions) < MAX_EXAMPLES:
            cam.collisions = pd.concat([cam.collisions, collisions]).head(MAX_EXAMPLES)
    slot0, slot1 = grid.unit_range(unit_ids[0])[0], grid.unit_range(unit_ids[-1])[1]
    # cheap store check of the units this window touches (a clear error, nothing written)
    check_units(
        config.store,
        cam.camera,
        unit_ids,
        storage_options=config.storage_options,
        config_hint=config.source,
    )
    ledger = read_ledger(
        config.store, cam.camera, slot0, slot1, storage_options=config.storage_options
    )
    units = plan_units(
        grid, assigned, ledger, cam.model_index, overwrite=plan.overwrite, units=unit_ids
    )
    cam.units_planned += len(units)
    logger.info(
        "camera %s: units %d-%d: %d frames listed, %d units to process",
        cam.camera,
        unit_ids[0],
        unit_ids[-1],
        len(manifest),
        len(units),
    )
    return Window(cam, unit_ids, units)


def iter_windows(config: Config, plan: BackfillPlan) -> Iterator[Window]:
    """Plan the run a window at a time, cameras in turn (the oldest window of each first)."""
    steps = [
        [
            c.unit_ids[i : i + window_units(c.grid, plan.window)]
            for i in range(0, len(c.unit_ids), window_units(c.grid, plan.window))
        ]
        for c in plan.cameras
    ]
    for w in range(max((len(s) for s in steps), default=0)):
        for cam, windows in zip(plan.cameras, steps, strict=True):
            if w < len(windows):
                yield plan_window(config, plan, cam, windows[w])


def plan_backfill(
    config: Config,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    cameras: list[str] | None = None,
    overwrite: bool = False,
    model: ModelIdentity | None = None,
    device: str | None = None,
    batch_size: int = 16,
    window: str | pd.Timedelta | None = None,
) -> BackfillPlan:
    """The whole plan at once (every window planned; for benchmarks and small ranges)."""
    plan = prepare_backfill(
        config,
        start,
        end,
        cameras=cameras,
        overwrite=overwrite,
        model=model,
        device=device,
        batch_size=batch_size,
        window=window,
    )
    for win in iter_windows(config, plan):
        plan.planned += [(u, win.camera.job) for u in win.units]
    return plan


def finish_backfill(config: Config) -> None:
    """After the units: consolidate the store's metadata so readers open it in one request."""
    consolidate(config.store, storage_options=config.storage_options)

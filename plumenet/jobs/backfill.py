"""Driver-side steps of a backfill, as plain functions: list, cover, plan, summarise.

The Prefect flows in ``flows/`` only sequence these and dispatch
``plumenet.jobs.workunit.run_unit``.
Nothing here touches image bytes: the driver works on manifests and the store's ledger.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from plumenet.jobs.workunit import UnitJob, UnitSummary

if TYPE_CHECKING:
    from plumenet.config import Config
    from storage.store import WorkUnit

logger = logging.getLogger(__name__)


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
    camera: str
    frames_listed: int
    skipped_files: list[str]
    collisions: pd.DataFrame
    units: list[WorkUnit]
    job: UnitJob
    units_in_range: int


@dataclass
class BackfillPlan:
    start: pd.Timestamp
    end: pd.Timestamp
    model: ModelIdentity
    cameras: list[CameraPlan] = field(default_factory=list)

    @property
    def units(self) -> list[tuple[WorkUnit, UnitJob]]:
        return [(u, c.job) for c in self.cameras for u in c.units]


@functools.lru_cache(maxsize=8)
def identify_model(spec: str) -> ModelIdentity:
    """Load the model once on the driver's CPU to learn its id, digest and output grid.

    Cached per process: the CLI checks the weights before starting a server, and the flow
    asks again.
    """
    from plumenet.model.weights import load_model

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
    from plumenet.errors import ConfigError

    if end <= start:
        raise ConfigError(
            f"empty range: --end {end.isoformat()} is not after --start {start.isoformat()}"
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
    from plumenet.errors import ConfigError

    try:
        span = pd.Timedelta(lookback)
    except ValueError as err:
        raise ConfigError(
            f"--lookback {lookback!r} is not a duration: use e.g. 2D, 36h, 90min"
        ) from err
    if span <= pd.Timedelta(0):
        raise ConfigError(f"--lookback {lookback!r} must be positive, e.g. 2D")
    return (now - span).floor("1D"), now


def check_cluster(cluster: str | None) -> str:
    """``local`` (default), ``local-cuda`` or a scheduler address; anything else is an error."""
    from plumenet.errors import ConfigError

    cluster = cluster or "local"
    if cluster == "local-cuda":
        try:
            import dask_cuda  # noqa: F401
        except ImportError as err:
            raise ConfigError(
                "--cluster local-cuda needs dask-cuda: install it with `pip install "
                "'plumenet[gpu]'` on a machine with NVIDIA GPUs"
            ) from err
    if cluster in ("local", "local-cuda") or "://" in cluster:
        return cluster
    raise ConfigError(
        f"unknown cluster {cluster!r}: use 'local', 'local-cuda' or a scheduler address "
        "such as tcp://host:8786"
    )


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
) -> BackfillPlan:
    """List each camera's frames, make the store cover the range, and plan the undone units."""
    from storage.archive import list_frames
    from storage.store import assign_slots, ensure_camera, plan_units, read_ledger, register_model

    check_request(config, start, end, cameras)
    model = model or identify_model(config.model)
    plan = BackfillPlan(start=start, end=end, model=model)
    selected = [config.camera(c) for c in cameras] if cameras else list(config.cameras)
    for camera in selected:
        grid = ensure_camera(
            config.store,
            camera,
            start,
            end,
            grid_shape=model.grid,
            storage_options=config.storage_options,
        )
        model_index = register_model(
            config.store,
            camera.id,
            model_id=model.model_id,
            digest=model.digest,
            backbone=model.backbone,
            storage_options=config.storage_options,
        )
        unit_ids = grid.units_for(start, end)
        # a unit is rewritten whole: list every frame that lands in its slots
        t0, t1 = grid.listing_window(unit_ids) if unit_ids else (start, start)
        manifest = list_frames(camera, t0, t1, storage_options=config.storage_options)
        assigned, collisions = assign_slots(manifest, grid)
        assigned = assigned[(assigned["slot"] // grid.chunk_len).isin(unit_ids)]
        if len(collisions):
            logger.warning(
                "camera %s: %d frames share a slot with a nearer frame and were not used",
                camera.id,
                len(collisions),
            )
        slot0 = grid.unit_range(unit_ids[0])[0] if unit_ids else 0
        slot1 = grid.unit_range(unit_ids[-1])[1] if unit_ids else 0
        ledger = read_ledger(
            config.store, camera.id, slot0, slot1, storage_options=config.storage_options
        )
        units = plan_units(grid, assigned, ledger, model_index, overwrite=overwrite, units=unit_ids)
        job = UnitJob(
            store=config.store,
            camera=camera.id,
            model=config.model,
            model_index=model_index,
            storage_options=dict(config.storage_options),
            roi=str(camera.roi) if camera.roi else None,
            tile=camera.tiling.tile if camera.tiling else None,
            tile_stride=camera.tiling.stride if camera.tiling else None,
            anomaly_model=str(camera.anomaly_model) if camera.anomaly_model else None,
            device=device,
            batch_size=batch_size,
        )
        plan.cameras.append(
            CameraPlan(
                camera=camera.id,
                frames_listed=len(manifest),
                skipped_files=list(getattr(manifest, "attrs", {}).get("skipped", [])),
                collisions=collisions,
                units=units,
                job=job,
                units_in_range=len(unit_ids),
            )
        )
        logger.info(
            "camera %s: %d frames listed, %d of %d units to process",
            camera.id,
            len(manifest),
            len(units),
            len(unit_ids),
        )
    return plan


@dataclass
class BackfillReport:
    """The outcome of a run, for the terminal, the Prefect artifacts and the tests."""

    plan: BackfillPlan
    summaries: list[UnitSummary] = field(default_factory=list)
    failed: list[tuple[str, int, str]] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.summaries)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def table(self) -> list[dict[str, Any]]:
        """One row per camera: units, frames, statuses, errors, frames/s."""
        rows = []
        for cam in self.plan.cameras:
            mine = [s for s in self.summaries if s.camera == cam.camera]
            infer = sum(s.infer_s for s in mine)
            frames = sum(s.frames for s in mine)
            rows.append(
                {
                    "camera": cam.camera,
                    "units_in_range": cam.units_in_range,
                    "units_run": len(mine),
                    "units_failed": sum(1 for f in self.failed if f[0] == cam.camera),
                    "frames_listed": cam.frames_listed,
                    "frames_processed": frames,
                    "ok": sum(s.ok for s in mine),
                    "unreadable": sum(s.unreadable for s in mine),
                    "unusable": sum(s.unusable for s in mine),
                    "skipped_files": len(cam.skipped_files),
                    "slot_collisions": len(cam.collisions),
                    "model_frames_per_s": round(frames / infer, 2) if infer > 0 else None,
                }
            )
        return rows

    def unreadable_files(self) -> list[tuple[str, str]]:
        return [f for s in self.summaries for f in s.unreadable_files]

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.plan.start.isoformat(),
            "end": self.plan.end.isoformat(),
            "model": {
                "id": self.plan.model.model_id,
                "digest": self.plan.model.digest,
                "demo": self.plan.model.is_demo,
            },
            "cameras": self.table(),
            "units_run": len(self.summaries),
            "units_failed": [{"camera": c, "unit": u, "error": e} for c, u, e in self.failed],
            "frames": self.frames,
            "frames_per_s": round(self.frames_per_s, 3),
            "unit_seconds": {
                part: round(sum(getattr(u, f"{part}_s") for u in self.summaries), 3)
                for part in ("fetch", "decode", "infer", "write", "total")
            },
            "wall_s": round(self.wall_s, 3),
            "unreadable_files": [{"path": p, "reason": r} for p, r in self.unreadable_files()],
        }

    def markdown(self) -> str:
        """The table and the unreadable files as markdown (Prefect artifact, docs)."""
        rows = self.table()
        lines = []
        if rows:
            keys = list(rows[0])
            lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
        lines.append("")
        lines.append(
            f"{self.frames} frames in {self.wall_s:.1f} s ({self.frames_per_s:.2f} frames/s)"
        )
        if self.failed:
            lines += ["", "**Units left undone** (rerun the same command to retry them):"]
            lines += [f"- {c} unit {u}: {e}" for c, u, e in self.failed]
        bad = self.unreadable_files()
        if bad:
            lines += ["", f"**Unreadable files** ({len(bad)}, recorded as status=2):"]
            lines += [f"- `{p}`: {r}" for p, r in bad[:500]]
        if self.plan.model.is_demo:
            lines += ["", "_Made with the bundled demo model (synthetic scenes): demo/test only._"]
        return "\n".join(lines)

"""The outcome of a backfill, tallied as units finish (for the terminal, JSON, Prefect artifacts).

A streaming run may finish tens of thousands of units, so the report keeps running totals per
camera, not every unit's summary; the lists it shows (unreadable files, units left undone,
unit timings) are capped, with their full counts beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plumenet.jobs.workunit import UnitSummary

if TYPE_CHECKING:
    from plumenet.jobs.backfill import BackfillPlan

#: Unreadable files listed by name (the count is always complete).
MAX_LISTED_FILES = 10_000
#: Per-unit ``(camera, unit, started_at, finished_at, worker)`` records kept (for overlap checks).
MAX_TIMINGS = 10_000
_PARTS = ("fetch", "decode", "infer", "write", "total")


@dataclass
class CameraTally:
    """Running totals of one camera's finished units."""

    units_run: int = 0
    frames: int = 0
    ok: int = 0
    unreadable: int = 0
    unusable: int = 0
    infer_s: float = 0.0


@dataclass
class BackfillReport:
    """The outcome of a run: totals per camera, failures, capped lists, wall time."""

    plan: BackfillPlan
    failed: list[tuple[str, int, str]] = field(default_factory=list)
    wall_s: float = 0.0
    first_dispatch_s: float | None = None
    cluster_wait_s: float | None = None
    max_in_flight: int = 0
    #: Tasks submitted (one unit each on CPU workers, groups of units on GPU workers).
    tasks: int = 0
    tallies: dict[str, CameraTally] = field(default_factory=dict)
    unit_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_PARTS, 0.0))
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    timings: list[tuple[str, int, float, float, str]] = field(default_factory=list)
    #: Transient fetch errors retried per file, in all, and the files retried (capped).
    fetch_retries: int = 0
    retried: list[tuple[str, int]] = field(default_factory=list)

    def add(self, summary: UnitSummary) -> None:
        """Count one finished unit."""
        tally = self.tallies.setdefault(summary.camera, CameraTally())
        tally.units_run += 1
        tally.frames += summary.frames
        tally.ok += summary.ok
        tally.unreadable += summary.unreadable
        tally.unusable += summary.unusable
        tally.infer_s += summary.infer_s
        for part in _PARTS:
            self.unit_seconds[part] += getattr(summary, f"{part}_s")
        room = MAX_LISTED_FILES - len(self.unreadable)
        self.unreadable.extend(summary.unreadable_files[: max(0, room)])
        self.fetch_retries += summary.fetch_retries
        room = MAX_LISTED_FILES - len(self.retried)
        self.retried.extend(summary.retried_files[: max(0, room)])
        if len(self.timings) < MAX_TIMINGS:
            self.timings.append(
                (
                    summary.camera,
                    summary.unit,
                    summary.started_at,
                    summary.finished_at,
                    summary.worker,
                )
            )

    @property
    def units_run(self) -> int:
        return sum(t.units_run for t in self.tallies.values())

    @property
    def frames(self) -> int:
        return sum(t.frames for t in self.tallies.values())

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def table(self) -> list[dict[str, Any]]:
        """One row per camera: units, frames, statuses, errors, frames/s."""
        rows = []
        for cam in self.plan.cameras:
            tally = self.tallies.get(cam.camera, CameraTally())
            rows.append(
                {
                    "camera": cam.camera,
                    "units_in_range": cam.units_in_range,
                    "units_run": tally.units_run,
                    "units_failed": sum(1 for f in self.failed if f[0] == cam.camera),
                    "frames_listed": cam.frames_listed,
                    "frames_processed": tally.frames,
                    "ok": tally.ok,
                    "unreadable": tally.unreadable,
                    "unusable": tally.unusable,
                    "skipped_files": cam.n_skipped,
                    "slot_collisions": cam.n_collisions,
                    "model_frames_per_s": (
                        round(tally.frames / tally.infer_s, 2) if tally.infer_s > 0 else None
                    ),
                }
            )
        return rows

    def unreadable_files(self) -> list[tuple[str, str]]:
        return list(self.unreadable)

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
            "units_run": self.units_run,
            "units_failed": [{"camera": c, "unit": u, "error": e} for c, u, e in self.failed],
            "frames": self.frames,
            "frames_per_s": round(self.frames_per_s, 3),
            "unit_seconds": {k: round(v, 3) for k, v in self.unit_seconds.items()},
            "wall_s": round(self.wall_s, 3),
            "first_dispatch_s": (
                None if self.first_dispatch_s is None else round(self.first_dispatch_s, 3)
            ),
            "cluster_wait_s": (
                None if self.cluster_wait_s is None else round(self.cluster_wait_s, 3)
            ),
            "max_in_flight": self.max_in_flight,
            "tasks": self.tasks,
            "unit_timings": [
                {"camera": c, "unit": u, "started_at": a, "finished_at": b, "worker": w}
                for c, u, a, b, w in self.timings
            ],
            "unreadable_files": [{"path": p, "reason": r} for p, r in self.unreadable],
            "unreadable_count": sum(t.unreadable for t in self.tallies.values()),
            "fetch_retries": self.fetch_retries,
            "retried_files": [{"path": p, "retries": n} for p, n in self.retried],
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
        bad = self.unreadable
        if bad:
            lines += ["", f"**Unreadable files** ({len(bad)}, recorded as status=2):"]
            lines += [f"- `{p}`: {r}" for p, r in bad[:500]]
        if self.plan.model.is_demo:
            lines += ["", "_Made with the bundled demo model (synthetic scenes): demo/test only._"]
        return "\n".join(lines)

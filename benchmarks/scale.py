"""Archive scale: time to the first dispatched unit, driver memory, units/s and per-unit
orchestration overhead for N cameras x Y years at 1-min cadence (not a test).

    python -m benchmarks.scale                         # every scenario, each in a fresh process
    python -m benchmarks.scale --scenario 1M           # one scenario (prints one JSON line)
    python -m benchmarks.scale --json out.json

The archive is never written: :class:`SyntheticArchive` is an fsspec filesystem (``synth://``)
that makes up each directory listing on the fly (AVO layout, one frame a minute per camera),
so listing, slot assignment, ledger reads and planning are the real code on a decade of
names. The model is a null model: a Prefect task that writes constant outputs for every
frame of its unit with the real region write (``storage.regions.write_unit``), on a real
``LocalCluster`` of worker processes with a temporary Prefect server, so Prefect + Dask +
planning + store writes are all real and only the image work is absent.

Per scenario, in its own process (so peak RSS is the scenario's):

- ``cover_s``: make the store cover the range (group creation, time axis), no listing;
- ``first_window_s``: cover + list and plan the first window (first camera);
- planning rate over the first ``--plan-rounds`` rounds of windows (every camera), frames/s,
  and the whole range's planning time extrapolated from it;
- dispatch (the first ``--dispatch-windows`` windows, or all of a short range): time from the
  flow's start to the first unit submitted, units/s sustained, and the per-unit overhead:
  worker-seconds outside the null unit's own work divided by units;
- driver peak RSS (``ru_maxrss``) and the RSS after imports, before any work.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
from fsspec import AbstractFileSystem, register_implementation
from prefect import task
from prefect.cache_policies import NO_CACHE

from plumenet.encoding import STATUS_OK
from plumenet.jobs.taskgroups import GPU_FRAMES_PER_TASK, run_unit_group
from plumenet.jobs.workunit import UnitJob, UnitSummary
from storage.regions import unit_arrays, write_unit

#: Days covered by each scenario (all at 1-min cadence, 10 cameras).
SCENARIOS = {"1W": 7, "1M": 30, "1Y": 365, "10Y": 3652}
CAMERAS = 10
CADENCE = "1min"
GRID = (37, 37)  # the real model's probability grid: real shard sizes
START = pd.Timestamp("2015-01-01", tz="UTC")


class SyntheticArchive(AbstractFileSystem):
    """``synth://archive/<cam>/<year>/<doy>/<cam>-<YYYYmmddTHHMMSS>Z.jpg``, made up per listing:
    ``cameras`` cameras, one frame per ``cadence`` from ``start`` to ``end``."""

    protocol = "synth"
    cachable = True

    def __init__(
        self,
        cameras: int = CAMERAS,
        cadence: str = CADENCE,
        start: str = "2015-01-01",
        end: str = "2025-01-01",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cameras = [f"cam{i:02d}" for i in range(cameras)]
        self.cadence = pd.Timedelta(cadence)
        self.start, self.end = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")

    def _dirs(self, base: str, names: list[str]) -> list[dict[str, Any]]:
        return [{"name": f"{base}/{n}", "size": 0, "type": "directory"} for n in names]

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        parts = self._strip_protocol(path).strip("/").split("/")
        if len(parts) == 1:
            out = self._dirs(parts[0], self.cameras)
        elif len(parts) == 2 and parts[1] in self.cameras:
            out = self._dirs(
                "/".join(parts), [str(y) for y in range(self.start.year, self.end.year + 1)]
            )
        elif len(parts) == 3:
            year = int(parts[2])
            days = pd.date_range(
                f"{year}-01-01", f"{year + 1}-01-01", freq="1D", inclusive="left", tz="UTC"
            )
            days = days[(days >= self.start.floor("1D")) & (days < self.end)]
            out = self._dirs("/".join(parts), [f"{d.day_of_year:03d}" for d in days])
        elif len(parts) == 4:
            day = pd.Timestamp(f"{parts[2]}-01-01", tz="UTC") + pd.Timedelta(days=int(parts[3]) - 1)
            times = pd.date_range(
                day, day + pd.Timedelta(days=1), freq=self.cadence, inclusive="left"
            )
            times = times[(times >= self.start) & (times < self.end)]
            base, cam = "/".join(parts), parts[1]
            names = times.strftime(f"{base}/{cam}-%Y%m%dT%H%M%SZ.jpg")
            out = [{"name": n, "size": 50_000, "type": "file"} for n in names]
        else:
            raise FileNotFoundError(path)
        return out if detail else [e["name"] for e in out]

    def exists(self, path: str, **kwargs: Any) -> bool:
        return True


register_implementation("synth", SyntheticArchive, clobber=True)


#: Set in the worker by ``--no-write``: the null unit returns without writing (dispatch only).
NO_WRITE_ENV = "PLUMENET_BENCH_NO_WRITE"


def null_unit(unit: Any, job: UnitJob) -> UnitSummary:
    """A null model: constant outputs for every frame, written with the real region write
    (none with ``--no-write``: the driver and Prefect + Dask alone, for a whole decade)."""
    from distributed import get_worker

    started, started_at = time.perf_counter(), time.time()
    worker = str(get_worker().name)
    if os.environ.get(NO_WRITE_ENV):
        return UnitSummary(
            camera=unit.camera, unit=unit.unit, frames=len(unit.frames), ok=len(unit.frames),
            total_s=time.perf_counter() - started, started_at=started_at,
            finished_at=time.time(), worker=worker,
        )  # fmt: skip
    n = unit.slot1 - unit.slot0
    arrays = unit_arrays(n, GRID)
    rows = np.array([slot - unit.slot0 for slot, _, _ in unit.frames], dtype=np.int64)
    arrays["fraction"][rows] = 1.0 / arrays["fraction"].shape[1]
    arrays["probability"][rows] = 42
    arrays["brightness"][rows] = 0.5
    arrays["source"][rows] = [path for _, path, _ in unit.frames]
    arrays["frame_time"][rows] = [t.tz_convert(None).to_datetime64() for _, _, t in unit.frames]
    arrays["status"][rows] = STATUS_OK
    arrays["model"][rows] = job.model_index
    t0 = time.perf_counter()
    write_unit(job.store, job.camera, unit.slot0, unit.slot1, arrays)
    write_s = time.perf_counter() - t0
    return UnitSummary(
        camera=unit.camera,
        unit=unit.unit,
        frames=len(unit.frames),
        ok=len(unit.frames),
        write_s=write_s,
        total_s=time.perf_counter() - started,
        started_at=started_at,
        finished_at=time.time(),
        worker=worker,
    )


@task(name="null-units", cache_policy=NO_CACHE)
def null_units(units: list[Any], job: UnitJob) -> list[UnitSummary]:
    """The pipeline's task shape (a group of units, each retried on its own), null model."""
    return run_unit_group(units, job, run=null_unit)


def _current_rss_mib() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def _sampling_rss(windows: Any, trace: list[float]) -> Any:
    """Pass windows through, noting the driver's current RSS (MiB) as each is planned."""
    for window in windows:
        trace.append(_current_rss_mib())
        yield window


def _gaps(timings: list[tuple[str, int, float, float, str]]) -> tuple[float, float]:
    """Idle seconds between consecutive units on each worker (steady-state overhead: task
    start, Prefect states, scheduling) and before the first / after the last (head + tail)."""
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for _, _, start, end, worker in timings:
        by_worker.setdefault(worker, []).append((start, end))
    first = min(t[2] for t in timings)
    last = max(t[3] for t in timings)
    between = edges = 0.0
    for spans in by_worker.values():
        spans.sort()
        between += sum(max(0.0, b[0] - a[1]) for a, b in itertools.pairwise(spans))
        edges += (spans[0][0] - first) + (last - spans[-1][1])
    return between, edges


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _config(root: Path, days: int) -> Any:
    from plumenet.config import parse_config
    from storage.layouts import BUILTIN_TEMPLATES

    end = START + pd.Timedelta(days=days)
    options = {
        "cameras": CAMERAS,
        "cadence": CADENCE,
        "start": str(START.date()),
        "end": str(end.date()),
    }
    cameras = [
        {
            "id": f"CAM{i:02d}",
            "archive": "synth://archive",
            "template": BUILTIN_TEMPLATES["avo"],
            "fields": {"CAM": f"cam{i:02d}"},
            "cadence": CADENCE,
            "grid_start": str(START.date()),
        }
        for i in range(CAMERAS)
    ]
    raw = {
        "store": str(root / "plumenet.zarr"),
        "model": "null",
        "storage_options": options,
        "cameras": cameras,
    }
    return parse_config(raw), end


def run_scenario(
    name: str,
    plan_rounds: int,
    dispatch_windows: int | None,
    frames_per_task: int,
    write: bool = True,
) -> dict[str, Any]:
    """One scenario in this process (see the module docstring for what is measured)."""
    from flows.pipeline import run_units
    from flows.runtime import prefect_api
    from plumenet.jobs.backfill import ModelIdentity, iter_windows, prepare_backfill
    from plumenet.jobs.cluster import resolve_cluster

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    days = SCENARIOS[name]
    model = ModelIdentity("null", "null-model", "0" * 64, "none", GRID, is_demo=False)
    out: dict[str, Any] = {
        "scenario": name,
        "cameras": CAMERAS,
        "days": days,
        "frames": CAMERAS * days * 1440,
        "rss_after_imports_mib": _rss_mib(),
        "frames_per_task": frames_per_task,
        "writes": write,
    }
    with tempfile.TemporaryDirectory() as tmp:
        cfg, end = _config(Path(tmp), days)
        t0 = time.perf_counter()
        plan = prepare_backfill(cfg, START, end, model=model)
        out["cover_s"] = time.perf_counter() - t0
        windows = iter_windows(cfg, plan)
        first = next(windows)
        out["first_window_s"] = time.perf_counter() - t0
        out["units_in_range"] = plan.units_in_range
        out["units_per_window"] = len(first.unit_ids)
        n_windows = sum(-(-c.units_in_range // len(first.unit_ids)) for c in plan.cameras)
        t1 = time.perf_counter()
        frames = sum(len(u.frames) for u in first.units)
        planned = 1
        rss_rounds: list[float] = []
        for win in _sampling_rss(itertools.islice(windows, plan_rounds * CAMERAS - 1), []):
            frames += sum(len(u.frames) for u in win.units)
            planned += 1
            if planned % CAMERAS == 0:  # one round: a window of every camera
                rss_rounds.append(_current_rss_mib())
        rate = frames / max(time.perf_counter() - t1 + out["first_window_s"] - out["cover_s"], 1e-9)
        out.update(
            planned_windows=planned,
            rss_mib_per_planned_round=rss_rounds,
            windows_in_range=n_windows,
            plan_frames_per_s=rate,
            plan_all_s_extrapolated=out["frames"] / rate,
        )
        out["rss_after_planning_mib"] = _rss_mib()
        if dispatch_windows != 0:
            cfg2, _ = _config(Path(tmp) / "dispatch", days)
            spec = resolve_cluster(
                cfg2.cluster,
                {"address": "local", "workers": 2, "frames_per_task": frames_per_task},
            )
            with prefect_api():
                t0 = time.perf_counter()
                plan2 = prepare_backfill(cfg2, START, end, model=model)
                prepared = time.perf_counter() - t0
                wins = iter_windows(cfg2, plan2)
                if dispatch_windows is not None:
                    wins = itertools.islice(wins, dispatch_windows)
                wins = _sampling_rss(wins, rss_trace := [])
                if write is False:
                    os.environ[NO_WRITE_ENV] = "1"  # LocalCluster workers inherit it
                report = run_units(cfg2, plan2, spec, task_fn=null_units, windows=wins)
            inside = report.unit_seconds["total"]
            between, edges = _gaps(report.timings)
            threads = 2
            n = report.units_run
            span = max(t[3] for t in report.timings) - min(t[2] for t in report.timings)
            out.update(
                dispatched_units=n,
                tasks=report.tasks,
                dispatched_frames=report.frames,
                cover_dispatch_run_s=prepared,
                cluster_wait_s=report.cluster_wait_s,
                time_to_first_unit_s=prepared + (report.first_dispatch_s or 0.0),
                time_to_first_unit_after_cluster_s=(
                    prepared + (report.first_dispatch_s or 0.0) - (report.cluster_wait_s or 0.0)
                ),
                dispatch_wall_s=report.wall_s,
                workers_busy_span_s=span,
                units_per_s=n / span if span else 0.0,
                unit_work_s_mean=inside / n if n else None,
                overhead_s_per_unit=(
                    (span * threads - inside) / n if n and len(report.timings) == n else None
                ),
                # the whole dispatch phase (cluster start and tail included), for capped runs
                overhead_wall_s_per_unit=(report.wall_s * threads - inside) / n if n else None,
                # timings are capped (MAX_TIMINGS): per unit of the units they hold
                steady_overhead_s_per_unit=between / len(report.timings) if n else None,
                timed_units=len(report.timings),
                head_tail_idle_s=edges,
                write_s_mean=report.unit_seconds["write"] / n if n else None,
                failed=len(report.failed),
                rss_mib_per_window=rss_trace,
                max_in_flight=report.max_in_flight,
            )
    out["peak_rss_mib"] = _rss_mib()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=list(SCENARIOS))
    parser.add_argument("--plan-rounds", type=int, default=3, help="windows per camera planned")
    parser.add_argument(
        "--dispatch-windows",
        type=int,
        default=None,
        help="windows dispatched (default: 2 for 1Y/10Y, all otherwise; 0: none)",
    )
    parser.add_argument(
        "--frames-per-task",
        type=int,
        default=GPU_FRAMES_PER_TASK,
        help="units per task until this many frames (default: the GPU default; 0: one unit)",
    )
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="null units write nothing: the driver + Prefect + Dask alone (a whole decade)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.scenario:
        dispatch = args.dispatch_windows
        if dispatch is None and SCENARIOS[args.scenario] > 31:
            dispatch = 2
        result = run_scenario(
            args.scenario, args.plan_rounds, dispatch, args.frames_per_task, not args.no_write
        )
        print(json.dumps(result))
        return
    results = []
    for name in SCENARIOS:
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.scale",
            "--scenario",
            name,
            "--plan-rounds",
            str(args.plan_rounds),
            "--frames-per-task",
            str(args.frames_per_task),
            *(["--no-write"] if args.no_write else []),
        ]
        if args.dispatch_windows is not None:
            cmd += ["--dispatch-windows", str(args.dispatch_windows)]
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    meta = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "python": platform.python_version(),
        "date": pd.Timestamp.now(tz="UTC").isoformat(timespec="minutes"),
    }
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()

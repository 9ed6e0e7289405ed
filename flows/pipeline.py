"""Backfill and nightly flows: cover -> plan a window -> dispatch a bounded number of units on
Dask (planning the next window meanwhile) -> consolidate.

Thin by design: the steps are plain functions in ``plumenet.jobs`` (``backfill`` plans,
``cluster`` says where units run, ``workunit`` is what a worker runs); this module only wires
them into Prefect and Dask.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import Any

import dask
import pandas as pd
from prefect import Task, flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.tasks import exponential_backoff
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from flows.parameters import (
    BatchSize,
    Cameras,
    Cluster,
    Duration,
    OptionalDuration,
    TimeBound,
    duration_text,
)
from flows.runners import StartedRunner
from flows.runtime import forward_project_logs, unit_timeout_s
from plumenet.config import ClusterConfig, Config, load_config
from plumenet.jobs.backfill import (
    BackfillPlan,
    BackfillReport,
    Window,
    finish_backfill,
    iter_windows,
    lookback_range,
    prepare_backfill,
)
from plumenet.jobs.cluster import in_flight_bound, resolve_cluster, wants_gpu
from plumenet.jobs.lease import driver_lease
from plumenet.jobs.preflight import preflight
from plumenet.jobs.taskgroups import (
    UnitFailure,
    UnitOutcome,
    frames_per_task,
    group_units,
    run_unit_group,
)
from plumenet.jobs.workunit import UnitJob, UnitSummary
from plumenet.timeutil import parse_end, parse_start

logger = logging.getLogger(__name__)

#: Seconds between progress log lines when there is no terminal for a bar.
PROGRESS_LOG_EVERY_S = 60.0


def _group_run_name() -> str:
    """``CAM-unit-12`` for one unit, ``CAM-units-12-27`` for a group (Prefect's UI)."""
    params = task_run.parameters
    units, job = params["units"], params["job"]
    first, last = units[0].unit, units[-1].unit
    return f"{job.camera}-unit-{first}" if first == last else f"{job.camera}-units-{first}-{last}"


#: Units a task run finished before it timed out, kept in the worker for its retry.
_FINISHED: dict[Any, dict[int, UnitSummary]] = {}


@task(
    name="process-units",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    cache_policy=NO_CACHE,
    task_run_name=_group_run_name,
)
def process_units(units: list[Any], job: UnitJob) -> list[UnitOutcome]:
    """One Prefect task per group of consecutive units of one camera (one unit on CPU
    workers; never per frame): runs on a Dask worker.

    A unit that raises is retried on its own inside (``taskgroups.run_unit_group``) and
    reported, so Prefect's retries only see what ends the whole task (a timeout); such a
    retry skips the units the earlier attempt finished.
    """
    forward_project_logs()  # this worker process's own project log lines reach the run too
    finished = _FINISHED.setdefault(task_run.id, {})
    outcomes = run_unit_group(units, job, finished=finished)
    _FINISHED.pop(task_run.id, None)
    return outcomes


class _Ahead:
    """Runs an iterator in a thread, ``depth`` items ahead of the consumer (errors re-raised)."""

    _END = object()

    def __init__(self, items: Iterable[Any], depth: int = 1) -> None:
        self._items = items
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        # the flow run's context goes along, so the planner's log lines reach the run's logs
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="plan-ahead", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(("item", item)):
                    return
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            self._put(("error", err))
            return
        self._put(("end", None))

    def _put(self, entry: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            kind, value = self._queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    def close(self) -> None:
        self._stop.set()


def _gpu_annotation(gpu: bool) -> AbstractContextManager[Any]:
    return dask.annotate(resources={"GPU": 1}) if gpu else nullcontext()


#: Seconds of past progress the bar's ETA is estimated from. Rich's default (30 s) needs
#: two updates within it, and units take minutes: the ETA stayed blank to the end.
ETA_WINDOW_S = 6 * 3600.0


def _progress(enabled: bool, total_units: int, get_time: Any = None) -> Any:
    if not enabled:
        return None
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("units  {task.fields[frames]} frames  {task.fields[rate]} frames/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        speed_estimate_period=ETA_WINDOW_S,
        get_time=get_time,
    )
    progress.start()
    task = progress.add_task("backfill", total=total_units, frames=0, rate="-")
    progress.advance(task, 0)  # a sample at the start: the first finished unit gives an ETA
    return progress


class _Dispatch:
    """Submitted tasks (groups of units) not yet finished, at most ``bound`` of them; each
    unit's outcome goes to the report."""

    def __init__(
        self,
        runner: Any,
        task_fn: Task[..., Any],
        report: BackfillReport,
        unit_timeout: float | None = None,
    ) -> None:
        self.runner, self.task_fn, self.report = runner, task_fn, report
        self.unit_timeout = unit_timeout
        self.where: dict[Any, list[tuple[str, int]]] = {}
        self.finished: queue.Queue[Any] = queue.Queue()

    def submit(self, units: list[Any], job: UnitJob) -> None:
        task_fn = self.task_fn
        if self.unit_timeout is not None:  # the timeout is per unit: a group gets its sum
            task_fn = task_fn.with_options(timeout_seconds=self.unit_timeout * len(units))
        future = self.runner.submit(task_fn, {"units": units, "job": job})
        self.report.tasks += 1
        self.where[future.task_run_id] = [(u.camera, u.unit) for u in units]
        future.add_done_callback(self.finished.put)

    def collect_one(self) -> int:
        """Wait for one task; returns how many units it held."""
        future = self.finished.get()
        units = self.where.pop(future.task_run_id)
        try:
            outcomes = future.result()
        except Exception as err:  # noqa: BLE001 - the run goes on; the units are reported
            error = f"{type(err).__name__}: {err}".splitlines()[0]
            outcomes = [UnitFailure(camera, unit, error) for camera, unit in units]
        for outcome in outcomes:
            if isinstance(outcome, UnitFailure):
                self.report.failed.append((outcome.camera, outcome.unit, outcome.error))
                logger.error(
                    "unit %s/%s failed after retries: %s",
                    outcome.camera, outcome.unit, outcome.error,
                )  # fmt: skip
            else:
                self.report.add(outcome)
        return len(units)

    def __len__(self) -> int:
        return len(self.where)


def run_units(
    config: Config,
    plan: BackfillPlan,
    spec: ClusterConfig,
    progress: bool = False,
    task_fn: Task[..., Any] = process_units,
    windows: Iterable[Window] | None = None,
    unit_timeout: float | None = None,
    started: StartedRunner | None = None,
) -> BackfillReport:
    """Plan window by window (one window ahead, in a thread), group each window's units
    into tasks (several per task on GPU workers, ``taskgroups``) and keep at most the
    cluster's in-flight bound of tasks submitted; collect small summaries as they finish.

    The task runner is entered here (or ``started`` earlier by the flow) rather than fixed
    on the flow, so that one flow serves every kind of cluster.
    """
    report = BackfillReport(plan=plan)
    began = time.perf_counter()
    bar = _progress(progress, plan.units_in_range)

    logged = {"at": began, "units": 0}

    def tick(done: int) -> None:
        if not done:
            return
        elapsed = time.perf_counter() - began
        rate = f"{report.frames / elapsed:.1f}" if elapsed > 0 else "-"
        logged["units"] += done
        if bar is not None:
            bar.update(bar.task_ids[0], advance=done, frames=report.frames, rate=rate)
        elif time.perf_counter() - logged["at"] >= PROGRESS_LOG_EVERY_S:
            # no terminal (cron, Docker, a Prefect worker): a line now and then instead
            logged["at"] = time.perf_counter()
            logger.info(
                "progress: %d/%d units, %d frames, %s frames/s, %.0f s elapsed",
                logged["units"], plan.units_in_range, report.frames, rate, elapsed,
                extra={"notice": True},  # shown on the console without -v
            )  # fmt: skip

    ahead = _Ahead(windows if windows is not None else iter_windows(config, plan))
    try:
        with nullcontext(started) if started else StartedRunner(spec) as cluster:
            runner, threads, resources, report.cluster_wait_s = cluster.ready()
            bound = in_flight_bound(spec, threads)
            report.max_in_flight = bound
            dispatch = _Dispatch(runner, task_fn, report, unit_timeout)
            gpu = wants_gpu(spec, resources)
            min_frames = frames_per_task(spec.frames_per_task, gpu)
            try:
                with _gpu_annotation(gpu):
                    for window in ahead:
                        tick(window.done)
                        for units in group_units(window.units, min_frames):
                            while len(dispatch) >= bound:
                                tick(dispatch.collect_one())
                            dispatch.submit(units, window.camera.job)
                            if report.first_dispatch_s is None:
                                report.first_dispatch_s = time.perf_counter() - began
            finally:
                while len(dispatch):  # a planning error still lets submitted units finish
                    tick(dispatch.collect_one())
    finally:
        ahead.close()
        if bar is not None:
            bar.stop()
    report.wall_s = time.perf_counter() - began
    return report


def _publish(report: BackfillReport) -> None:
    rows = report.table()
    if rows:
        create_table_artifact(
            key="backfill-units", table=rows, description="Units, frames, errors, frames/s"
        )
    create_markdown_artifact(key="backfill-summary", markdown=report.markdown())


@flow(name="backfill", log_prints=False)
def backfill(
    config: str,
    start: TimeBound,
    end: TimeBound,
    cameras: Cameras = None,
    overwrite: bool = False,
    cluster: Cluster = None,
    batch_size: BatchSize = 16,
    device: str | None = None,
    window: OptionalDuration = None,
) -> dict[str, Any]:
    """Segment every frame of ``cameras`` in [start, end) that the store does not hold yet.

    A progress bar when stderr is a terminal, a log line a minute otherwise. A task runs one
    unit (a group of units on GPU workers), each unit retried on its own; with
    ``PLUMENET_UNIT_TIMEOUT_S`` a task times out after that many seconds per unit.

    Args:
        config: Path of cameras.yaml (relative to the working directory).
        start: First time processed (inclusive): a UTC date or an ISO timestamp.
        end: End of the range (exclusive); a date includes that whole day, an ISO timestamp
            is exact (no offset = UTC).
        cameras: Camera ids to process (default: every camera of the config).
        overwrite: Recompute units already in the store.
        cluster: Where units run: local, local-cuda, a scheduler address (tcp://host:8786),
            a scheduler file or a whole `cluster:` section (default: the config's).
        batch_size: Frames per model batch.
        device: Torch device: cpu, cuda, cuda:1 ... (default: auto).
        window: Time planned per step and camera, ISO 8601 (P31D) or 31D (default 31 days).
    """
    forward_project_logs()
    progress = sys.stderr.isatty()
    unit_timeout = unit_timeout_s()
    cfg = load_config(config)
    spec = resolve_cluster(cfg.cluster, cluster)
    t_start, t_end = parse_start(start), parse_end(end)
    # deployments have no CLI in front: what the user can fix fails before the lease is written
    preflight(cfg, t_start, t_end, cameras, batch_size=batch_size, device=device, cluster=spec)
    # the store lease (held, renewed, released) covers every change this run makes
    with driver_lease(cfg, "backfill"):
        # workers start (and import the model stack) while the driver prepares the run
        with StartedRunner(spec) as cluster:
            plan = prepare_backfill(
                cfg,
                t_start,
                t_end,
                cameras=cameras,
                overwrite=overwrite,
                device=device,
                batch_size=batch_size,
                window=duration_text(window),
            )
            if plan.units_in_range:
                report = run_units(
                    cfg, plan, spec, progress, unit_timeout=unit_timeout, started=cluster
                )
            else:
                report = BackfillReport(plan=plan)
        empty = [c.camera for c in plan.cameras if c.units_in_range and not c.frames_listed]
        for camera in empty:  # a typo in a template must not read as "all done"
            logger.warning(
                "%s: no frames in the archive for [%s, %s) — check the camera's archive, "
                "template and fields in %s",
                camera, t_start.isoformat(), t_end.isoformat(), config,
                extra={"notice": True},
            )  # fmt: skip
        if not report.units_run and not report.failed:
            logger.info(
                "nothing to do: every frame in range is already in the store"
                if not empty
                else "nothing to do: every frame found is already in the store",
                extra={"notice": True},
            )
        finish_backfill(cfg)
    _publish(report)
    return report.as_dict()


@flow(name="nightly")
def nightly(
    config: str,
    lookback: Duration = timedelta(days=2),
    cameras: Cameras = None,
    cluster: Cluster = None,
    batch_size: BatchSize = 16,
    device: str | None = None,
) -> dict[str, Any]:
    """Backfill the last ``lookback`` up to now: late uploads are picked up, done slots skipped.

    Args:
        config: Path of cameras.yaml (relative to the working directory).
        lookback: How far back from now to look (from that day's midnight UTC): ISO 8601
            (P2D, PT36H) or 2D, 36h.
        cameras: Camera ids to process (default: every camera of the config).
        cluster: Where units run: local, local-cuda, a scheduler address (tcp://host:8786),
            a scheduler file or a whole `cluster:` section (default: the config's).
        batch_size: Frames per model batch.
        device: Torch device: cpu, cuda, cuda:1 ... (default: auto).
    """
    forward_project_logs()
    start, now = lookback_range(duration_text(lookback), pd.Timestamp.now(tz="UTC"))
    return backfill(
        config,
        start.isoformat(),
        now.isoformat(),
        cameras=cameras,
        cluster=cluster,
        batch_size=batch_size,
        device=device,
    )

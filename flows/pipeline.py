"""Backfill and nightly flows: list -> cover -> plan -> one task per unit on Dask -> consolidate.

Thin by design: the steps are plain functions in ``plumenet.jobs.backfill`` and
``plumenet.jobs.workunit``; this module only wires them into Prefect and Dask.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.tasks import exponential_backoff

from plumenet.jobs.backfill import BackfillPlan, BackfillReport, check_cluster, plan_backfill
from plumenet.jobs.workunit import THREADS_ENV, UnitJob, UnitSummary, run_unit

logger = logging.getLogger(__name__)

#: Worker-process settings for the default local cluster.
LOCAL_THREADS_PER_WORKER = 1


def make_task_runner(cluster: str | None) -> Any:
    """A DaskTaskRunner for ``local`` (default), ``local-cuda`` or a scheduler address."""
    from prefect_dask import DaskTaskRunner

    cluster = check_cluster(cluster)
    if cluster == "local":
        n_cpu = os.cpu_count() or 1
        n_workers = max(1, min(4, n_cpu // 4))
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs={
                "n_workers": n_workers,
                "threads_per_worker": LOCAL_THREADS_PER_WORKER,
                "processes": True,
                "dashboard_address": None,
                "env": {THREADS_ENV: str(max(1, n_cpu // n_workers))},
            },
        )
    if cluster == "local-cuda":
        return DaskTaskRunner(
            cluster_class="dask_cuda.LocalCUDACluster",
            cluster_kwargs={"resources": {"GPU": 1}, "dashboard_address": None},
        )
    return DaskTaskRunner(address=cluster)


@task(
    name="process-unit",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    cache_policy=NO_CACHE,
    task_run_name="{job.camera}-unit-{unit.unit}",
)
def process_unit(unit: Any, job: UnitJob) -> UnitSummary:
    """One Prefect task per work unit (never per frame): runs on a Dask worker."""
    return run_unit(unit, job)


def _gpu_annotation(cluster: str | None) -> AbstractContextManager[Any]:
    if cluster == "local-cuda":
        import dask

        return dask.annotate(resources={"GPU": 1})
    return nullcontext()


def _progress(enabled: bool, total_units: int) -> Any:
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("units  {task.fields[frames]} frames  {task.fields[rate]} frames/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    progress.start()
    progress.add_task("backfill", total=total_units, frames=0, rate="-")
    return progress


def run_units(plan: BackfillPlan, cluster: str | None = None, progress: bool = False) -> Any:
    """Dispatch every planned unit as one task on Dask; collect small summaries as they finish.

    The task runner is entered here rather than fixed on the flow so that one flow serves a
    local cluster, a local GPU cluster and an existing scheduler alike.
    """
    report = BackfillReport(plan=plan)
    pairs = plan.units
    started = time.perf_counter()
    bar = _progress(progress, len(pairs))
    try:
        with make_task_runner(cluster) as runner, _gpu_annotation(cluster):
            futures = [runner.submit(process_unit, {"unit": u, "job": j}) for u, j in pairs]
            where = {
                f.task_run_id: (u.camera, u.unit) for f, (u, _) in zip(futures, pairs, strict=True)
            }
            for future in as_completed(futures):
                camera, unit = where[future.task_run_id]
                try:
                    report.summaries.append(future.result())
                except Exception as err:  # noqa: BLE001 - the run goes on; the unit is reported
                    error = f"{type(err).__name__}: {err}".splitlines()[0]
                    report.failed.append((camera, unit, error))
                    logger.error("unit %s/%s failed after retries: %s", camera, unit, error)
                if bar is not None:
                    elapsed = time.perf_counter() - started
                    rate = f"{report.frames / elapsed:.1f}" if elapsed > 0 else "-"
                    bar.update(bar.task_ids[0], advance=1, frames=report.frames, rate=rate)
    finally:
        if bar is not None:
            bar.stop()
    report.wall_s = time.perf_counter() - started
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
    start: str,
    end: str,
    cameras: list[str] | None = None,
    overwrite: bool = False,
    cluster: str | None = None,
    progress: bool = False,
    batch_size: int = 16,
    device: str | None = None,
) -> dict[str, Any]:
    """Segment every frame of ``cameras`` in [start, end) that the store does not hold yet."""
    from plumenet.config import load_config
    from plumenet.timeutil import parse_end, parse_start
    from storage.store import consolidate

    check_cluster(cluster)
    cfg = load_config(config)
    t_start, t_end = parse_start(start), parse_end(end)
    plan = plan_backfill(
        cfg,
        t_start,
        t_end,
        cameras=cameras,
        overwrite=overwrite,
        device=device,
        batch_size=batch_size,
    )
    if plan.units:
        report = run_units(plan, cluster, progress)
    else:
        logger.info("nothing to do: every frame in range is already in the store")
        report = BackfillReport(plan=plan)
    consolidate(cfg.store, storage_options=cfg.storage_options)
    _publish(report)
    return report.as_dict()


@flow(name="nightly")
def nightly(
    config: str,
    lookback: str = "2D",
    cluster: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Backfill the last ``lookback`` up to now: late uploads are picked up, done slots skipped."""
    import pandas as pd

    from plumenet.jobs.backfill import lookback_range

    start, now = lookback_range(lookback, pd.Timestamp.now(tz="UTC"))
    return backfill(
        config,
        start.isoformat(),
        now.isoformat(),
        cluster=cluster,
        progress=progress,
    )

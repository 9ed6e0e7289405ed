"""Several units per task: grouping rule, per-unit retries inside a task, and the default."""

from __future__ import annotations

import pandas as pd
import pytest

from plumenet.jobs.taskgroups import (
    GPU_FRAMES_PER_TASK,
    UnitFailure,
    frames_per_task,
    group_units,
    run_unit_group,
)
from plumenet.jobs.workunit import UnitJob, UnitSummary
from storage.grid import WorkUnit

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def _units(frames: list[int], slots: int = 1440) -> list[WorkUnit]:
    out = []
    for i, n in enumerate(frames):
        rows = [(i * slots + k, f"f{i}-{k}.jpg", T0) for k in range(n)]
        out.append(WorkUnit("CAM", i, i * slots, (i + 1) * slots, rows))
    return out


def _ids(groups: list[list[WorkUnit]]) -> list[list[int]]:
    return [[u.unit for u in g] for g in groups]


def test_cpu_default_is_one_unit_per_task_and_gpu_groups():
    assert frames_per_task(None, gpu=False) == 0
    assert frames_per_task(None, gpu=True) == GPU_FRAMES_PER_TASK
    assert frames_per_task(500, gpu=False) == 500 and frames_per_task(0, gpu=True) == 0
    assert _ids(group_units(_units([10, 10, 10]), 0)) == [[0], [1], [2]]


def test_a_month_of_one_minute_days_splits_evenly_not_greedily():
    groups = group_units(_units([1440] * 31), 20_000)
    assert sorted(len(g) for g in groups) == [15, 16]  # greedy filling: 14 + 14 + 3
    assert [u.unit for g in groups for u in g] == list(range(31))  # consecutive, all kept
    assert all(sum(len(u.frames) for u in g) >= 20_000 for g in groups)


def test_groups_follow_frames_not_unit_count():
    # a sparse stretch (cameras off for a week) joins more units into one task
    sizes = [1440] * 10 + [40] * 10 + [1440] * 10
    groups = group_units(_units(sizes), 9_000)
    assert [u.unit for g in groups for u in g] == list(range(30))
    assert all(sum(len(u.frames) for u in g) >= 9_000 for g in groups)  # never short
    assert [len(g) for g in groups] == [7, 16, 7]  # the sparse units share the middle task


def test_too_few_frames_make_one_task_and_nothing_makes_none():
    assert _ids(group_units(_units([100, 200]), 20_000)) == [[0, 1]]
    assert group_units([], 20_000) == []


def _job() -> UnitJob:
    return UnitJob(store="memory://x", camera="CAM", model="demo", model_index=0)


def test_the_default_jitter_stays_within_half_the_delay():
    sleeps: list[float] = []

    def run(unit: WorkUnit, job: UnitJob) -> UnitSummary:
        raise RuntimeError("always")

    for _ in range(20):
        run_unit_group(_units([1]), _job(), run=run, sleep=sleeps.append, retries=1)
    assert all(1.0 <= s <= 3.0 for s in sleeps) and len(set(sleeps)) > 1  # jittered


def test_a_failing_unit_is_retried_alone_and_the_task_goes_on():
    calls: list[int] = []
    flaky_left = {1: 2}  # unit 1 fails twice, then works

    def run(unit: WorkUnit, job: UnitJob) -> UnitSummary:
        calls.append(unit.unit)
        if unit.unit == 2:
            raise OSError("disk full\nsecond line")
        if flaky_left.get(unit.unit, 0):
            flaky_left[unit.unit] -= 1
            raise RuntimeError("transient")
        return UnitSummary(camera=unit.camera, unit=unit.unit, frames=len(unit.frames))

    sleeps: list[float] = []
    outcomes = run_unit_group(
        _units([3, 3, 3, 3]), _job(), run=run, sleep=sleeps.append, jitter=lambda: 1.0
    )
    # unit 0 once; unit 1 three times (2 failures); unit 2 four times (never works); unit 3 once
    assert calls == [0, 1, 1, 1, 2, 2, 2, 2, 3]
    assert [type(o) for o in outcomes] == [UnitSummary, UnitSummary, UnitFailure, UnitSummary]
    assert outcomes[2] == UnitFailure("CAM", 2, "OSError: disk full")
    # exponential backoff per unit, starting again for each unit: 2, 4 (unit 1); 2, 4, 8 (unit 2)
    assert sleeps == [2.0, 4.0, 2.0, 4.0, 8.0]


def test_a_timeout_or_cancellation_is_not_swallowed():
    class Cancelled(BaseException):
        pass

    def run(unit: WorkUnit, job: UnitJob) -> UnitSummary:
        raise Cancelled("task cancelled")

    with pytest.raises(Cancelled, match="task cancelled"):
        run_unit_group(_units([1, 1]), _job(), run=run, sleep=lambda s: None)


def test_a_retried_task_skips_the_units_its_earlier_attempt_finished():
    ran: list[int] = []

    class TimedOut(BaseException):
        pass

    def run(unit: WorkUnit, job: UnitJob) -> UnitSummary:
        if unit.unit == 2 and len(ran) < 3:  # the first attempt ends (a timeout) in unit 2
            ran.append(unit.unit)
            raise TimedOut("timed out in unit 2")
        ran.append(unit.unit)
        return UnitSummary(camera=unit.camera, unit=unit.unit, frames=len(unit.frames))

    finished: dict[int, UnitSummary] = {}
    units = _units([2, 2, 2, 2])
    with pytest.raises(TimedOut, match="timed out in unit 2"):
        run_unit_group(units, _job(), run=run, finished=finished)
    assert sorted(finished) == [0, 1]
    outcomes = run_unit_group(units, _job(), run=run, finished=finished)  # Prefect's retry
    assert ran == [0, 1, 2, 2, 3]  # units 0 and 1 were not redone
    assert [o.unit for o in outcomes] == [0, 1, 2, 3]
    assert all(isinstance(o, UnitSummary) for o in outcomes)

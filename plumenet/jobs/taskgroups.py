"""Several work units per task, so orchestration stays a small share of a fast GPU's time.

A Prefect task on Dask costs ~0.3 s beyond its work (task run, state changes, scheduling).
That is nothing beside a CPU unit (a day at 1-min cadence is ~20 min of CPU inference) but
most of a GPU's: 1,440 frames take ~0.6 s at 2,500 frames/s. So on GPU workers a task runs
consecutive units of one camera until it holds :data:`GPU_FRAMES_PER_TASK` frames or more;
each unit is still planned, written (one region write), retried and reported on its own.

Plain functions: ``flows.pipeline`` groups and submits, the worker calls
:func:`run_unit_group`.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plumenet.jobs.workunit import UnitJob, UnitSummary, run_unit

if TYPE_CHECKING:
    from storage.grid import WorkUnit

logger = logging.getLogger(__name__)

#: Frames per task on GPU workers when ``cluster.frames_per_task`` is not set: at
#: 2,500 frames/s that is 8 s of work per task, so ~0.3 s of task overhead is ~4 %.
GPU_FRAMES_PER_TASK = 20_000
#: Attempts after the first for a unit that raises (as the old per-unit task had).
UNIT_RETRIES = 3
#: First retry delay in seconds; doubled per attempt, +-50 % jitter.
RETRY_DELAY_S = 2.0


@dataclass(frozen=True)
class UnitFailure:
    """A unit that raised on every attempt: the task goes on with its other units."""

    camera: str
    unit: int
    error: str


UnitOutcome = UnitSummary | UnitFailure


def frames_per_task(configured: int | None, gpu: bool) -> int:
    """The least frames a task gathers: the config's, else :data:`GPU_FRAMES_PER_TASK` on
    GPU workers and 0 (one unit per task) on CPU workers."""
    if configured is not None:
        return configured
    return GPU_FRAMES_PER_TASK if gpu else 0


def group_units(units: Sequence[WorkUnit], min_frames: int) -> list[list[WorkUnit]]:
    """Consecutive units in as many groups as keep each at ``min_frames`` frames or more,
    split about evenly by frames (fewer than ``min_frames`` in all: one group;
    ``min_frames`` 0: one unit each).

    Even splitting, not greedy filling: 31 units with room for 2 groups give 16 + 15, not
    14 + 14 + a 3-unit remainder whose task overhead would weigh 5x more.
    """
    if not units:
        return []
    if min_frames <= 0:
        return [[u] for u in units]
    sizes = [len(u.frames) for u in units]
    for n_groups in range(max(1, min(len(units), sum(sizes) // min_frames)), 0, -1):
        bounds = _even_bounds(sizes, n_groups)
        groups = [list(units[a:b]) for a, b in itertools.pairwise(bounds)]
        if n_groups == 1 or all(
            sum(sizes[a:b]) >= min_frames for a, b in itertools.pairwise(bounds)
        ):
            return groups
    raise AssertionError("unreachable: one group always fits")  # pragma: no cover


def _even_bounds(sizes: Sequence[int], n_groups: int) -> list[int]:
    """Unit indices ``0 = b0 < b1 < ... < bn = len(sizes)`` that cut the running frame
    count nearest to ``k / n_groups`` of the total."""
    cumulative = list(itertools.accumulate(sizes))
    total = cumulative[-1]
    bounds = [0]
    for k in range(1, n_groups):
        target = total * k / n_groups
        lo = bounds[-1] + 1  # every group holds a unit
        hi = len(sizes) - (n_groups - k)  # and leaves one for each group after it
        cut = min(range(lo, hi + 1), key=lambda b: abs(cumulative[b - 1] - target))
        bounds.append(cut)
    bounds.append(len(sizes))
    return bounds


def _error_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0]


def run_unit_group(
    units: Sequence[WorkUnit],
    job: UnitJob,
    *,
    run: Callable[[Any, UnitJob], UnitSummary] = run_unit,
    retries: int = UNIT_RETRIES,
    sleep: Callable[[float], None] = time.sleep,
    finished: dict[int, UnitSummary] | None = None,
    jitter: Callable[[], float] = lambda: random.uniform(0.5, 1.5),
) -> list[UnitOutcome]:
    """Run each unit in turn; a unit that raises is retried with exponential backoff and,
    if it still fails, reported as a :class:`UnitFailure` while the others go on.

    Only ``Exception`` is caught: a task timeout or cancellation (``BaseException``) still
    ends the task. ``finished`` (unit -> summary) survives such an end: when the task is
    retried with the same dict, the units it holds are not run again.
    """
    finished = {} if finished is None else finished
    outcomes: list[UnitOutcome] = []
    for unit in units:
        if unit.unit in finished:
            outcomes.append(finished[unit.unit])
            continue
        for attempt in range(retries + 1):
            try:
                finished[unit.unit] = run(unit, job)
                outcomes.append(finished[unit.unit])
                break
            except Exception as err:  # noqa: BLE001 - retried, then reported per unit
                if attempt == retries:
                    outcomes.append(UnitFailure(unit.camera, unit.unit, _error_line(err)))
                    break
                delay = RETRY_DELAY_S * 2**attempt * jitter()
                logger.warning(
                    "unit %s/%s attempt %d/%d failed: %s — retrying in %.1f s",
                    unit.camera, unit.unit, attempt + 1, retries + 1, _error_line(err), delay,
                )  # fmt: skip
                sleep(delay)
    return outcomes

"""The backfill's progress bar: an ETA from the first finished unit, however long units take."""

from __future__ import annotations


def test_eta_appears_after_the_first_unit_even_when_units_take_minutes():
    from flows.pipeline import _progress

    clock = [0.0]
    bar = _progress(True, 10, get_time=lambda: clock[0])
    try:
        task = bar.tasks[0]
        assert task.time_remaining is None  # nothing finished yet
        clock[0] = 300.0  # one unit in 5 min: rich's 30 s window would have dropped the start
        bar.update(task.id, advance=1, frames=420, rate="1.4")
        assert task.time_remaining == 9 * 300.0
        clock[0] = 500.0
        bar.update(task.id, advance=1, frames=840, rate="1.7")
        assert task.time_remaining == 8 * 250.0
    finally:
        bar.stop()

"""Streaming plans: planning a range window by window gives exactly the one-window plan, and
the first window is planned without listing (or holding) the rest of the range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plumenet.config import load_config
from plumenet.jobs.backfill import (
    ModelIdentity,
    iter_windows,
    plan_backfill,
    prepare_backfill,
    window_units,
)
from tests.helpers.flows import write_config

MODEL = ModelIdentity(
    spec="test", model_id="test", digest="0" * 64, backbone="none", grid=(4, 5), is_demo=False
)


def _touch_archive(root: Path, start: str, end: str, step: str, rng: np.random.Generator) -> int:
    """Empty files named like an AVO archive (listing never opens them)."""
    times = pd.date_range(start, end, freq=step, inclusive="left", tz="UTC")
    jitter = pd.to_timedelta(rng.integers(-600, 600, len(times)), unit="s")
    times = (times + jitter).append(times[5:8] + pd.Timedelta(seconds=30))  # shared slots
    for t in times:
        day = root / "cam" / f"{t:%Y}" / f"{t.day_of_year:03d}"
        day.mkdir(parents=True, exist_ok=True)
        (day / f"cam-{t:%Y%m%dT%H%M%S}Z.jpg").touch()
    return len(times)


def _config(tmp_path: Path, archive: Path, unit: str) -> Path:
    return write_config(
        tmp_path, archive=archive, model="demo", cadence="1h", start="2024-01-01",
        template="avo", fields={"CAM": "cam"}, unit=unit,
    )  # fmt: skip


def test_windows_plan_exactly_what_one_window_plans(tmp_path, rng):
    archive = tmp_path / "archive"
    n_files = _touch_archive(archive, "2024-01-01", "2024-04-10", "2h", rng)
    cfg = load_config(_config(tmp_path, archive, unit="2D"))
    start, end = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-04-10", tz="UTC")

    one = plan_backfill(cfg, start, end, model=MODEL, window="400D")
    many = plan_backfill(cfg, start, end, model=MODEL, window="7D")
    grid = many.cameras[0].grid
    assert window_units(grid, pd.Timedelta("7D")) == 4  # 15 windows of 4 two-day units
    assert [(u.unit, u.frames) for u, _ in many.units] == [(u.unit, u.frames) for u, _ in one.units]
    assert len(one.units) == one.units_in_range == 50
    for a, b in ((one.cameras[0], many.cameras[0]),):
        assert a.frames_listed == b.frames_listed == n_files
        assert a.n_collisions == b.n_collisions == 3


def test_first_window_lists_only_its_own_days(tmp_path, rng, monkeypatch):
    import storage.archive

    archive = tmp_path / "archive"
    _touch_archive(archive, "2024-01-01", "2024-01-20", "3h", rng)
    cfg = load_config(_config(tmp_path, archive, unit="1D"))
    listed: list[str] = []
    real_ls = storage.archive._ls

    def counting_ls(fs, path):
        listed.append(path)
        return real_ls(fs, path)

    monkeypatch.setattr(storage.archive, "_ls", counting_ls)
    start, end = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2034-01-01", tz="UTC")
    plan = prepare_backfill(cfg, start, end, model=MODEL, window="7D")
    assert listed == []  # covering ten years lists nothing
    assert plan.units_in_range == 3653
    first = next(iter_windows(cfg, plan))
    assert list(first.unit_ids) == list(range(7))
    days = {p.rsplit("/", 1)[-1] for p in listed if p.rsplit("/", 2)[-2] == "2024"}
    assert days <= {f"{d:03d}" for d in range(1, 9)}, sorted(days)  # the week (+ half a slot)
    assert len(first.units) == 7


@pytest.mark.parametrize(
    ("bad", "message"),
    [("0D", "must be longer than zero"), ("soon", "is not a duration"), ("31", "has no unit")],
)
def test_a_bad_window_is_one_clear_error(tmp_path, bad, message):
    from plumenet.errors import ConfigError

    cfg = load_config(_config(tmp_path, tmp_path, unit="1D"))
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    with pytest.raises(ConfigError, match=rf"--window '{bad}' {message}"):
        prepare_backfill(cfg, t0, t0 + pd.Timedelta("1D"), model=MODEL, window=bad)

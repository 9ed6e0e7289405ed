"""The time grid and work-unit planning: slot arithmetic, duplicates in a slot, the plan
rules against the ledger."""

from __future__ import annotations

import pandas as pd

from storage.grid import assign_slots, grid_for, plan_units
from storage.regions import read_ledger
from storage.zarr_store import camera_grid, ensure_camera
from tests.helpers.store import GRID, manifest, run_all


def test_grid_arithmetic(cam):
    g = grid_for(cam, 48)
    assert g.chunk_len == 24
    assert list(
        g.slot_of(
            pd.to_datetime(["2024-01-01T00:29", "2024-01-01T00:30", "2024-01-01T23:31"], utc=True)
        )
    ) == [0, 1, 24]
    assert g.slot_time(25) == pd.Timestamp("2024-01-02T01:00", tz="UTC")
    assert g.unit_of_slot(25) == 1
    assert g.unit_range(1) == (24, 48)
    assert g.units_for("2024-01-01", "2024-01-02") == [0]  # the day's slots only
    assert g.units_for("2024-01-01", "2024-01-02T00:01") == [0, 1]
    assert g.units_for("2024-01-01T00:30", "2024-01-01T23:00") == [0]
    assert g.units_for("2024-01-01T10:00", "2024-01-01T10:00") == []
    assert g.listing_window([1]) == (
        pd.Timestamp("2024-01-01T23:30", tz="UTC"),
        pd.Timestamp("2024-01-02T23:30", tz="UTC"),
    )
    assert g.slots_to_cover("2024-01-02") == 48


def test_duplicates_in_a_slot(cam):
    grid = grid_for(cam, 48)
    frames = manifest(
        ["2024-01-01T02:20", "2024-01-01T01:55", "2024-01-01T02:05", "2024-01-02T00:00"]
    )
    assigned, rejected = assign_slots(frames, grid)
    assert assigned["slot"].tolist() == [2, 24]
    assert assigned["path"].tolist()[0] == frames["path"][1] or assigned["time"][0] == pd.Timestamp(
        "2024-01-01T01:55", tz="UTC"
    )
    assert len(rejected) == 2
    assert all("already holds the nearer frame" in r for r in rejected["reason"])
    outside = manifest(["2023-12-31T12:00", "2024-01-03T00:00"])
    assigned, rejected = assign_slots(outside, grid)
    assert assigned.empty
    assert rejected["reason"].tolist()[0] == "before grid_start"
    assert "beyond the end" in rejected["reason"].tolist()[1]


def test_plan_rules(url, cam, rng):
    ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    frames = manifest(["2024-01-01T01:00", "2024-01-01T02:00"])
    run_all(url, cam, frames, 0, rng)
    grid = camera_grid(url, cam.id)
    assigned, _ = assign_slots(frames, grid)
    ledger = read_ledger(url, cam.id, 0, 24)
    assert plan_units(grid, assigned, ledger, 0) == []
    # A new model, a moved source, a new frame, or --overwrite replan the unit.
    assert [u.unit for u in plan_units(grid, assigned, ledger, 1)] == [0]
    assert [u.unit for u in plan_units(grid, assigned, ledger, 0, overwrite=True)] == [0]
    moved = assigned.assign(path=assigned["path"] + ".new")
    assert len(plan_units(grid, moved, ledger, 0)) == 1
    more, _ = assign_slots(
        manifest(["2024-01-01T01:00", "2024-01-01T02:00", "2024-01-01T05:00"]), grid
    )
    unit = plan_units(grid, more, ledger, 0)[0]
    assert unit.slot0 == 0 and unit.slot1 == 24
    assert [f[0] for f in unit.frames] == [1, 2, 5]
    assert unit.frames[0][2] == pd.Timestamp("2024-01-01T01:00", tz="UTC")


def test_unit_follows_the_cadence_and_a_camera_may_override_it():
    from plumenet.timeutil import default_unit
    from tests.helpers.store import make_camera

    # 500-2,000 frames per unit: 1 day at 1 min, 7 days at 10 min, 4 h at 10 s
    expected = {"10s": 1440, "1min": 1440, "5min": 576, "10min": 1008, "1h": 672}
    for cadence, slots in expected.items():
        grid = grid_for(make_camera(cadence=cadence, unit=None))
        assert grid.chunk_len == slots, cadence
    for cadence in ("1s", "10s", "30s", "1min", "2min", "10min", "15min", "30min"):
        slots = pd.Timedelta(default_unit(cadence)) // pd.Timedelta(cadence)
        assert 500 <= slots <= 2000, cadence
    assert grid_for(make_camera(cadence="10min", unit="2D")).chunk_len == 288
    older = make_camera(cadence="10min").model_dump(exclude={"unit"}) | {"chunk": "1D"}
    assert type(make_camera()).model_validate(older).chunk == "1D"  # the older spelling


def test_a_store_keeps_its_units_and_a_conflicting_config_is_one_clear_error(url):
    import pytest

    from plumenet.errors import ConfigError
    from plumenet.jobs.backfill import camera_as_stored
    from storage.zarr_store import camera_group
    from tests.helpers.store import make_camera

    old = make_camera(cadence="10min", unit="1D")  # a store made before units followed cadence
    ensure_camera(url, old, "2024-01-01", "2024-01-03", grid_shape=GRID)
    attrs = dict(camera_group(url, old.id, None, "r").attrs)

    default = camera_as_stored(make_camera(cadence="10min", unit=None), attrs, url)
    assert default.chunk == "1D"  # not the 7D a new store would get
    grid = ensure_camera(url, default, "2024-01-01", "2024-01-20", grid_shape=GRID)
    assert grid.chunk_len == 144
    assert camera_grid(url, old.id).n_slots % 144 == 0

    with pytest.raises(ConfigError, match=r"`unit: 7D` in the config, but store .* 1D units"):
        camera_as_stored(make_camera(cadence="10min", unit="7D"), attrs, url)
    assert camera_as_stored(make_camera(cadence="10min", unit="24h"), attrs, url).chunk == "24h"
    assert camera_as_stored(make_camera(cadence="10min", unit=None), None, url).chunk == "7D"


def test_unit_frames_read_as_rows_and_ship_as_three_arrays():
    import pickle

    from prefect.utilities.collections import visit_collection

    from storage.grid import UnitFrames, WorkUnit

    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    rows = [(k, f"cam/2024/001/f{k:04d}.jpg", t0 + pd.Timedelta(minutes=k)) for k in range(1440)]
    unit = WorkUnit("CAM", 0, 0, 1440, rows)  # rows are converted
    assert isinstance(unit.frames, UnitFrames) and len(unit.frames) == 1440
    assert list(unit.frames) == rows and unit.frames[-1] == rows[-1]
    assert sorted(unit.frames)[:2] == rows[:2] and list(unit.frames[10:12]) == rows[10:12]
    # naive times are UTC, as everywhere in the store
    naive = WorkUnit("CAM", 0, 0, 2, [(0, "a.jpg", pd.Timestamp("2024-01-01 00:01"))])
    assert naive.frames[0][2] == pd.Timestamp("2024-01-01 00:01", tz="UTC")
    back = pickle.loads(pickle.dumps(unit))
    assert back == unit and list(back.frames) == rows
    # what the driver ships per task: Prefect walks task parameters on submit and on the
    # worker; the frames must be one leaf to it, not 4,320 tuple elements
    visited: list[object] = []
    visit_collection({"units": [unit]}, lambda x: visited.append(x) or x, return_data=True)
    assert sum(isinstance(v, UnitFrames) for v in visited) == 1
    assert not any(
        isinstance(v, (str, pd.Timestamp)) and v in ("cam/2024/001/f0000.jpg",) for v in visited
    )
    assert len(visited) < 20
    assert UnitFrames.from_rows([]) == WorkUnit("CAM", 0, 0, 1, ()).frames

"""Schema 1 -> 2: a store written before the plume and solar variables opens, and its next
backfill adds them (NaN) without touching what is stored; new frames fill them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import zarr

from plumenet.encoding import STATUS_OK
from plumenet.science.observability import DARK, observability_reasons
from storage import schema
from storage.grid import assign_slots, plan_units
from storage.reads import open_camera
from storage.regions import read_ledger, unit_arrays, write_unit
from storage.zarr_store import camera_grid, ensure_camera
from tests.helpers.store import GRID, manifest, run_all


def _make_schema_1_store(url: str, cam, rng) -> dict:
    """A store as schema 1 left it: written units, no plume/solar arrays, version 1."""
    ensure_camera(url, cam, "2024-01-01", "2024-01-03", grid_shape=GRID)
    frames = manifest([f"2024-01-01T{h:02d}:00" for h in range(0, 24, 3)])
    _, written, _ = run_all(url, cam, frames, 0, rng)
    g = zarr.open_group(url, path=cam.id, mode="r+")
    for name in schema.PLUME_VARIABLES:
        shutil.rmtree(Path(url) / cam.id / name)
    g.attrs["schema_version"] = 1
    del g.attrs["emission_names"]
    return written


def test_schema_1_store_opens_and_reads_as_before(url, cam, rng):
    written = _make_schema_1_store(url, cam, rng)
    ds = open_camera(url, cam.id)
    assert not set(schema.PLUME_VARIABLES) & set(ds.data_vars)
    np.testing.assert_allclose(ds["fraction"].values[:24], written[0]["fraction"])
    # the catalogue's observability works on it: no sun, so brightness alone decides
    ds["brightness"][:] = 0.01
    reasons = observability_reasons(ds)
    assert (reasons.values[ds["status"].values == STATUS_OK] == DARK).all()


def test_next_backfill_migrates_and_keeps_every_stored_value(url, cam, rng):
    written = _make_schema_1_store(url, cam, rng)
    before = open_camera(url, cam.id)
    fraction, probability = before["fraction"].values, before["probability"].values

    grid = ensure_camera(url, cam, "2024-01-01", "2024-01-05", grid_shape=GRID)  # and grow
    g = zarr.open_group(url, path=cam.id, mode="r")
    assert g.attrs["schema_version"] == schema.SCHEMA_VERSION == 2
    assert g.attrs["emission_names"] == "any_emission eruption_column"
    assert "migrated schema version 1 -> 2 (added plume_top_row" in g.attrs["history"]
    ds = open_camera(url, cam.id)
    assert ds.sizes["time"] == grid.n_slots > 72  # grown at the same time
    for name in schema.PLUME_VARIABLES:
        assert name in ds and np.isnan(ds[name].values).all(), name
    assert ds["plume_height_m"].dims == ("time", "emission")
    assert ds["plume_height_m"].attrs["units"] == "m"
    assert ds["solar_elevation"].attrs["standard_name"] == "solar_elevation_angle"
    np.testing.assert_array_equal(ds["fraction"].values[:72], fraction)
    np.testing.assert_array_equal(ds["probability"].values[:72], probability)
    np.testing.assert_array_equal(ds["status"].values[:24], written[0]["status"])

    # a second backfill changes nothing more (no second history line, same version)
    ensure_camera(url, cam, "2024-01-01", "2024-01-05", grid_shape=GRID)
    history = zarr.open_group(url, path=cam.id, mode="r").attrs["history"]
    assert history.count("migrated schema version") == 1


def test_done_units_refill_only_on_overwrite_and_new_frames_carry_the_new_values(url, cam, rng):
    _make_schema_1_store(url, cam, rng)
    grid = ensure_camera(url, cam, "2024-01-01", "2024-01-03", grid_shape=GRID)
    frames = manifest([f"2024-01-01T{h:02d}:00" for h in range(0, 24, 3)])
    assigned, _ = assign_slots(frames, camera_grid(url, cam.id))
    ledger = read_ledger(url, cam.id, 0, grid.n_slots)
    assert plan_units(grid, assigned, ledger, 0, overwrite=False, units=[0]) == []
    (unit,) = plan_units(grid, assigned, ledger, 0, overwrite=True, units=[0])

    arrays = unit_arrays(unit.slot1 - unit.slot0, GRID)
    for slot, path, frame_time in unit.frames:
        arrays["status"][slot] = STATUS_OK
        arrays["model"][slot] = 0
        arrays["source"][slot] = path
        arrays["frame_time"][slot] = frame_time.tz_convert(None).to_datetime64()
        arrays["plume_height_m"][slot] = [1200.0, 800.0]
        arrays["solar_elevation"][slot] = 42.0
    write_unit(url, cam.id, unit.slot0, unit.slot1, arrays)
    ds = open_camera(url, cam.id)
    slots = [s for s, _, _ in unit.frames]
    np.testing.assert_allclose(ds["plume_height_m"].values[slots], [[1200.0, 800.0]] * len(slots))
    np.testing.assert_allclose(ds["solar_elevation"].values[slots], 42.0)
    assert np.isnan(np.delete(ds["solar_elevation"].values[:24], slots)).all()

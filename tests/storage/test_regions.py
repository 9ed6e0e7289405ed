"""Region writes of work units and reading them back (tonik's checklist: gaps,
out-of-sequence, overwrite, half-written units, concurrent writers)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from plumenet.errors import StoreError
from storage import regions
from storage.grid import assign_slots, plan_units
from storage.reads import open_camera, open_tree
from storage.regions import read_ledger, unit_arrays, write_unit
from storage.schema import parse_json_attr
from storage.zarr_store import camera_grid, consolidate, ensure_camera, register_model
from tests.helpers.store import GRID, fill_unit, manifest, run_all


def test_write_read_roundtrip_and_dequantization(url, cam, rng):
    ensure_camera(url, cam, "2024-01-01", "2024-01-03", grid_shape=GRID)
    model = register_model(url, cam.id, model_id="demo", digest="d1", backbone="vits14-reg")
    assert model == 0
    frames = manifest(["2024-01-01T03:00:10", "2024-01-01T05:00", "2024-01-02T10:00"])
    plan, written, rejected = run_all(url, cam, frames, model, rng)
    assert [u.unit for u in plan] == [0, 1]
    assert rejected.empty
    consolidate(url)
    ds = open_camera(url, cam.id)
    for unit in plan:
        arrays = written[unit.unit]
        sl = slice(unit.slot0, unit.slot1)
        np.testing.assert_array_equal(ds["fraction"][sl].values, arrays["fraction"])
        q = arrays["probability"].astype(np.float32)
        expected = np.where(q == 255, np.nan, q / 254)
        np.testing.assert_allclose(ds["probability"][sl].values, expected, rtol=1e-6)
        np.testing.assert_array_equal(ds["status"][sl].values, arrays["status"])
        expected_model = np.where(arrays["model"] == 255, np.nan, arrays["model"])
        np.testing.assert_array_equal(ds["model"][sl].values, expected_model)
        np.testing.assert_array_equal(ds["frame_time"][sl].values, arrays["frame_time"])
        assert ds["source"][sl].values.tolist() == arrays["source"].tolist()
    assert ds["probability"].dtype == np.float32
    assert ds["frame_time"].sel(time="2024-01-01T03:00").values == np.datetime64(
        "2024-01-01T03:00:10"
    )
    # Gaps between frames stay empty; unit 2 was never written.
    assert np.isnan(ds["fraction"].sel(time="2024-01-01T04:00").values).all()
    assert (ds["status"][48:].values == 0).all()
    # Both generic readers work.
    tree = xr.open_datatree(url, engine="zarr")
    assert cam.id in tree.children
    np.testing.assert_array_equal(tree[cam.id]["status"].values, ds["status"].values)
    assert parse_json_attr(open_tree(url)[cam.id].attrs["models"])[0]["digest"] == "d1"


def test_out_of_order_units_and_rerun_writes_nothing(url, cam, rng):
    ensure_camera(url, cam, "2024-01-01", "2024-01-04", grid_shape=GRID)
    late = manifest(["2024-01-03T12:00"], "/a/late")
    early = manifest(["2024-01-01T01:00"], "/a/early")
    plan_late, _, _ = run_all(url, cam, late, 0, rng)
    plan_early, _, _ = run_all(url, cam, early, 0, rng)
    assert [u.unit for u in plan_late] == [2]
    assert [u.unit for u in plan_early] == [0]
    ds = open_camera(url, cam.id)
    assert int(ds["status"].sum().values) == 2
    both = pd.concat([early, late], ignore_index=True)
    again, _, _ = run_all(url, cam, both, 0, rng)
    assert again == []


def test_half_written_unit_is_redone(url, cam, rng):
    ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    grid = camera_grid(url, cam.id)
    assigned, _ = assign_slots(manifest(["2024-01-01T01:00"]), grid)
    unit = plan_units(grid, assigned, read_ledger(url, cam.id, 0, 24), 0)[0]
    arrays = fill_unit(grid, unit, 0, rng)
    regions._write_unit(url, cam.id, 0, 24, arrays, ledger=False)  # killed before status/model
    ds = open_camera(url, cam.id)
    assert not np.isnan(ds["fraction"][1].values).any()
    assert int(ds["status"][1].values) == 0
    replanned = plan_units(grid, assigned, read_ledger(url, cam.id, 0, 24), 0)
    assert [u.unit for u in replanned] == [0]


def test_status_is_the_last_write_of_a_unit(url, cam, rng, monkeypatch):
    """Data first, then ``model``, then ``status``: a unit killed anywhere before the last
    write leaves status 0 (redone), never status ok without its model."""
    ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    grid = camera_grid(url, cam.id)
    assigned, _ = assign_slots(manifest(["2024-01-01T01:00"]), grid)
    unit = plan_units(grid, assigned, read_ledger(url, cam.id, 0, 24), 0)[0]
    arrays = fill_unit(grid, unit, 0, rng)
    order: list[str] = []
    real = zarr.Array.__setitem__

    def recording(self, selection, value):
        order.append(self.basename)
        return real(self, selection, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", recording)
    write_unit(url, cam.id, 0, 24, arrays)
    assert order[-2:] == ["model", "status"], order
    assert set(order[:-2]) >= {"fraction", "probability", "source", "frame_time"}


def test_overwrite_is_byte_identical(url, cam, rng, store_path):
    ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    grid = camera_grid(url, cam.id)
    assigned, _ = assign_slots(manifest(["2024-01-01T01:00", "2024-01-01T07:00"]), grid)
    unit = plan_units(grid, assigned, read_ledger(url, cam.id, 0, 24), 0)[0]
    arrays = fill_unit(grid, unit, 0, rng)
    write_unit(url, cam.id, 0, 24, arrays)
    chunk_files = sorted(
        p
        for p in (store_path / cam.id).rglob("*")
        if p.is_file() and "c" in p.relative_to(store_path).parts
    )
    before = {p: p.read_bytes() for p in chunk_files}
    assert any("probability" in str(p) for p in before)
    # A different write in between, then the same data again (--overwrite).
    other = fill_unit(grid, unit, 0, rng)
    write_unit(url, cam.id, 0, 24, other)
    assert (
        store_path / cam.id / "probability" / "c" / "0" / "0" / "0" / "0"
    ).read_bytes() != before[store_path / cam.id / "probability" / "c" / "0" / "0" / "0" / "0"]
    write_unit(url, cam.id, 0, 24, arrays)
    after = {p: p.read_bytes() for p in chunk_files}
    assert after == before


def test_write_unit_guards(url, cam):
    ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    arrays = unit_arrays(24, GRID)
    with pytest.raises(StoreError, match=r"one whole chunk of 24 slots"):
        write_unit(url, cam.id, 1, 25, arrays)
    with pytest.raises(StoreError, match=r"beyond the time axis .* ensure_camera first"):
        write_unit(url, cam.id, 48, 72, arrays)
    bad = dict(arrays, fraction=np.zeros((24, 5), np.float32))
    with pytest.raises(StoreError, match=r"`fraction` for a unit must have shape \(24, 6\)"):
        write_unit(url, cam.id, 0, 24, bad)
    with pytest.raises(StoreError, match=r"missing \['status'\]"):
        write_unit(url, cam.id, 0, 24, {k: v for k, v in arrays.items() if k != "status"})
    with pytest.raises(StoreError, match=r"camera 'NOPE' has no group"):
        read_ledger(url, "NOPE", 0, 24)


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from storage.regions import unit_arrays, write_unit
    url, cam_id, unit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    arrays = unit_arrays(24, (4, 5))
    arrays["fraction"][:] = unit
    arrays["probability"][:] = unit
    arrays["source"][:] = f"unit{unit}"
    arrays["status"][:] = 1
    arrays["model"][:] = 0
    for _ in range(5):
        write_unit(url, cam_id, unit * 24, unit * 24 + 24, arrays)
    """
)


@pytest.mark.slow
def test_two_processes_write_different_units(url, cam):
    ensure_camera(url, cam, "2024-01-01", "2024-01-04", grid_shape=GRID)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, cam.id, str(u)], stderr=subprocess.PIPE, text=True
        )
        for u in (0, 2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    ds = open_camera(url, cam.id)
    assert (ds["fraction"][0:24].values == 0).all()
    assert (ds["fraction"][48:72].values == 2).all()
    assert (ds["status"][24:48].values == 0).all()
    assert set(ds["source"][48:72].values.tolist()) == {"unit2"}
    assert (ds["status"].values == 1).sum() == 48

"""The Zarr store: schema, region writes, ledger planning, extension, concurrency (tonik's
checklist: gaps, out-of-sequence, duplicates, overwrite, extension, prepend rejected)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from plumenet.classes import CLASS_COLORS, MODEL_CLASSES
from plumenet.config import CameraConfig
from plumenet.errors import StoreError
from storage import schema
from storage import store as st

GRID = (4, 5)


def make_camera(**kw: object) -> CameraConfig:
    args = {
        "id": "WIZ.01",
        "archive": "s3://bucket/images",
        "template": "flat",
        "fields": {"CAM": "wiz"},
        "cadence": "1h",
        "grid_start": "2024-01-01",
        "site": {"volcano": "Whakaari"},
    }
    args.update(kw)
    return CameraConfig(**args)


def manifest(times: list[str], prefix: str = "/arch/f") -> pd.DataFrame:
    t = pd.to_datetime(times, utc=True, format="ISO8601").as_unit("ns")
    return pd.DataFrame(
        {"time": t, "path": [f"{prefix}{i}_{x}.jpg" for i, x in enumerate(times)], "size": 10}
    )


def fill_unit(grid: st.CameraGrid, unit: st.WorkUnit, model: int, rng) -> dict[str, np.ndarray]:
    """What a worker would produce: random outputs for every frame of the unit."""
    arrays = st.unit_arrays(unit.slot1 - unit.slot0, GRID)
    for slot, path, frame_time in unit.frames:
        i = slot - unit.slot0
        p = rng.random((6, *GRID)).astype(np.float32)
        p /= p.sum(axis=0)
        arrays["probability"][i] = schema.quantize_probability(p)
        arrays["fraction"][i] = rng.random(6).astype(np.float32)
        arrays["frame_time"][i] = frame_time.tz_convert(None).to_datetime64()
        arrays["source"][i] = path
        arrays["brightness"][i] = np.float32(0.5)
        arrays["status"][i] = schema.STATUS_OK
        arrays["model"][i] = model
    return arrays


def run_all(url, cam, frames: pd.DataFrame, model: int, rng, *, overwrite=False, **so):
    grid = st.camera_grid(url, cam.id, **so)
    assigned, rejected = st.assign_slots(frames, grid)
    units = sorted(set((assigned["slot"] // grid.chunk_len).tolist()))
    ledger = st.read_ledger(url, cam.id, 0, grid.n_slots, **so)
    plan = st.plan_units(grid, assigned, ledger, model, overwrite=overwrite, units=units)
    written = {}
    for unit in plan:
        arrays = fill_unit(grid, unit, model, rng)
        st.write_unit(url, cam.id, unit.slot0, unit.slot1, arrays, **so)
        written[unit.unit] = arrays
    return plan, written, rejected


@pytest.fixture
def cam() -> CameraConfig:
    return make_camera()


@pytest.fixture
def url(store_path: Path) -> str:
    return str(store_path)


def test_grid_arithmetic(cam):
    g = st.grid_for(cam, 48)
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


def test_schema_matches_design(url, cam):
    grid = st.ensure_camera(url, cam, "2024-01-01", "2024-01-03", grid_shape=GRID)
    assert grid.n_slots == 48 + 24  # 2024-01-02T23:30.. lands in slot 48 -> 3 units
    ds = xr.open_zarr(url, group=cam.id)
    assert dict(ds.sizes) == {"time": 72, "class": 6, "y": 4, "x": 5}
    expected = {
        "fraction": (("time", "class"), np.float32),
        "probability": (("time", "class", "y", "x"), np.float64),
        "frame_time": (("time",), np.dtype("datetime64[ns]")),
        "status": (("time",), np.uint8),
        "model": (("time",), np.uint8),
        "brightness": (("time",), np.float32),
        "anomaly": (("time",), np.float32),
    }
    for name, (dims, dtype) in expected.items():
        assert ds[name].dims == dims, name
        assert ds[name].dtype == dtype, name
    assert ds["source"].dims == ("time",)
    assert ds["source"].dtype.kind in "OUT"
    assert list(map(str, ds["class"].values)) == list(MODEL_CLASSES)
    assert ds["time"].values[0] == np.datetime64("2024-01-01T00:00")
    assert (np.diff(ds["time"].values) == np.timedelta64(1, "h")).all()
    enc = ds["probability"].encoding
    assert enc["dtype"] == np.uint8
    assert enc["scale_factor"] == pytest.approx(1 / 254)
    assert enc["_FillValue"] == 255
    assert enc["shards"] == (24, 6, 4, 5)
    assert enc["chunks"] == (1, 6, 4, 5)
    assert ds["fraction"].encoding["chunks"] == (24, 6)
    assert ds["status"].encoding["chunks"] == (24,)
    assert "zstd" in str(ds["fraction"].encoding["compressors"])
    assert ds["time"].encoding["units"] == "seconds since 2024-01-01T00:00:00"
    attrs = ds.attrs
    assert attrs["Conventions"] == "CF-1.10"
    assert attrs["schema_version"] == schema.SCHEMA_VERSION
    assert attrs["cadence"] == "1h"
    assert attrs["chunk"] == "1D"
    assert pd.Timestamp(attrs["grid_start"]) == pd.Timestamp("2024-01-01", tz="UTC")
    assert attrs["models"] == []
    assert attrs["class_colors"] == {k: list(v) for k, v in CLASS_COLORS.items()}
    assert attrs["camera"]["id"] == cam.id
    assert attrs["camera"]["site"] == {"volcano": "Whakaari"}
    # Empty slots read as "no frame".
    assert np.isnan(ds["fraction"].values).all()
    assert np.isnan(ds["probability"][:2].values).all()
    assert np.isnat(ds["frame_time"].values).all()
    assert (ds["status"].values == 0).all()
    assert (ds["model"].values == 255).all()
    assert set(ds["source"].values.tolist()) == {""}


def test_checked_in_template_is_current(tmp_path):
    checked = Path(st.__file__).parent / "templates" / "sample_camera"
    fresh = tmp_path / "fresh"
    files = st.write_template(fresh)
    checked_files = sorted(p.relative_to(checked) for p in checked.rglob("zarr.json"))
    assert sorted(files) == checked_files
    for rel in files:
        assert json.loads((fresh / rel).read_text()) == json.loads((checked / rel).read_text()), (
            f"{rel} differs from the checked-in template: run storage.store.write_template"
        )


def test_write_read_roundtrip_and_dequantization(url, cam, rng):
    st.ensure_camera(url, cam, "2024-01-01", "2024-01-03", grid_shape=GRID)
    model = st.register_model(url, cam.id, model_id="demo", digest="d1", backbone="vits14-reg")
    assert model == 0
    frames = manifest(["2024-01-01T03:00:10", "2024-01-01T05:00", "2024-01-02T10:00"])
    plan, written, rejected = run_all(url, cam, frames, model, rng)
    assert [u.unit for u in plan] == [0, 1]
    assert rejected.empty
    st.consolidate(url)
    ds = st.open_camera(url, cam.id)
    for unit in plan:
        arrays = written[unit.unit]
        sl = slice(unit.slot0, unit.slot1)
        np.testing.assert_array_equal(ds["fraction"][sl].values, arrays["fraction"])
        q = arrays["probability"].astype(np.float32)
        expected = np.where(q == 255, np.nan, q / 254)
        np.testing.assert_allclose(ds["probability"][sl].values, expected, rtol=1e-6)
        np.testing.assert_array_equal(ds["status"][sl].values, arrays["status"])
        np.testing.assert_array_equal(ds["model"][sl].values, arrays["model"])
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
    assert st.open_tree(url)[cam.id].attrs["models"][0]["digest"] == "d1"


def test_out_of_order_units_and_rerun_writes_nothing(url, cam, rng):
    st.ensure_camera(url, cam, "2024-01-01", "2024-01-04", grid_shape=GRID)
    late = manifest(["2024-01-03T12:00"], "/a/late")
    early = manifest(["2024-01-01T01:00"], "/a/early")
    plan_late, _, _ = run_all(url, cam, late, 0, rng)
    plan_early, _, _ = run_all(url, cam, early, 0, rng)
    assert [u.unit for u in plan_late] == [2]
    assert [u.unit for u in plan_early] == [0]
    ds = st.open_camera(url, cam.id)
    assert int(ds["status"].sum().values) == 2
    both = pd.concat([early, late], ignore_index=True)
    again, _, _ = run_all(url, cam, both, 0, rng)
    assert again == []


def test_duplicates_in_a_slot(cam):
    grid = st.grid_for(cam, 48)
    frames = manifest(
        ["2024-01-01T02:20", "2024-01-01T01:55", "2024-01-01T02:05", "2024-01-02T00:00"]
    )
    assigned, rejected = st.assign_slots(frames, grid)
    assert assigned["slot"].tolist() == [2, 24]
    assert assigned["path"].tolist()[0] == frames["path"][1] or assigned["time"][0] == pd.Timestamp(
        "2024-01-01T01:55", tz="UTC"
    )
    assert len(rejected) == 2
    assert all("already holds the nearer frame" in r for r in rejected["reason"])
    outside = manifest(["2023-12-31T12:00", "2024-01-03T00:00"])
    assigned, rejected = st.assign_slots(outside, grid)
    assert assigned.empty
    assert rejected["reason"].tolist()[0] == "before grid_start"
    assert "beyond the end" in rejected["reason"].tolist()[1]


def test_plan_rules(url, cam, rng):
    st.ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    frames = manifest(["2024-01-01T01:00", "2024-01-01T02:00"])
    run_all(url, cam, frames, 0, rng)
    grid = st.camera_grid(url, cam.id)
    assigned, _ = st.assign_slots(frames, grid)
    ledger = st.read_ledger(url, cam.id, 0, 24)
    assert st.plan_units(grid, assigned, ledger, 0) == []
    # A new model, a moved source, a new frame, or --overwrite replan the unit.
    assert [u.unit for u in st.plan_units(grid, assigned, ledger, 1)] == [0]
    assert [u.unit for u in st.plan_units(grid, assigned, ledger, 0, overwrite=True)] == [0]
    moved = assigned.assign(path=assigned["path"] + ".new")
    assert len(st.plan_units(grid, moved, ledger, 0)) == 1
    more, _ = st.assign_slots(
        manifest(["2024-01-01T01:00", "2024-01-01T02:00", "2024-01-01T05:00"]), grid
    )
    unit = st.plan_units(grid, more, ledger, 0)[0]
    assert unit.slot0 == 0 and unit.slot1 == 24
    assert [f[0] for f in unit.frames] == [1, 2, 5]
    assert unit.frames[0][2] == pd.Timestamp("2024-01-01T01:00", tz="UTC")


def test_half_written_unit_is_redone(url, cam, rng):
    st.ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    grid = st.camera_grid(url, cam.id)
    assigned, _ = st.assign_slots(manifest(["2024-01-01T01:00"]), grid)
    unit = st.plan_units(grid, assigned, st.read_ledger(url, cam.id, 0, 24), 0)[0]
    arrays = fill_unit(grid, unit, 0, rng)
    st._write_unit(url, cam.id, 0, 24, arrays, ledger=False)  # killed before status/model
    ds = st.open_camera(url, cam.id)
    assert not np.isnan(ds["fraction"][1].values).any()
    assert int(ds["status"][1].values) == 0
    replanned = st.plan_units(grid, assigned, st.read_ledger(url, cam.id, 0, 24), 0)
    assert [u.unit for u in replanned] == [0]


def test_overwrite_is_byte_identical(url, cam, rng, store_path):
    st.ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    grid = st.camera_grid(url, cam.id)
    assigned, _ = st.assign_slots(manifest(["2024-01-01T01:00", "2024-01-01T07:00"]), grid)
    unit = st.plan_units(grid, assigned, st.read_ledger(url, cam.id, 0, 24), 0)[0]
    arrays = fill_unit(grid, unit, 0, rng)
    st.write_unit(url, cam.id, 0, 24, arrays)
    chunk_files = sorted(
        p
        for p in (store_path / cam.id).rglob("*")
        if p.is_file() and "c" in p.relative_to(store_path).parts
    )
    before = {p: p.read_bytes() for p in chunk_files}
    assert any("probability" in str(p) for p in before)
    # A different write in between, then the same data again (--overwrite).
    other = fill_unit(grid, unit, 0, rng)
    st.write_unit(url, cam.id, 0, 24, other)
    assert (
        store_path / cam.id / "probability" / "c" / "0" / "0" / "0" / "0"
    ).read_bytes() != before[store_path / cam.id / "probability" / "c" / "0" / "0" / "0" / "0"]
    st.write_unit(url, cam.id, 0, 24, arrays)
    after = {p: p.read_bytes() for p in chunk_files}
    assert after == before


def test_extend_at_end_and_guards(url, cam, rng):
    st.ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    run_all(url, cam, manifest(["2024-01-01T05:00"]), 0, rng)
    before = st.open_camera(url, cam.id).load()
    grid = st.ensure_camera(url, cam, "2024-01-05", "2024-01-06", grid_shape=GRID)
    assert grid.n_slots == 6 * 24
    ds = st.open_camera(url, cam.id)
    assert ds.sizes["time"] == 144
    assert ds["time"].values[-1] == np.datetime64("2024-01-06T23:00")
    xr.testing.assert_identical(ds.isel(time=slice(0, before.sizes["time"])).load(), before)
    assert (ds["status"][48:].values == 0).all()
    # Asking again for an earlier range never shrinks the axis.
    assert st.ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID).n_slots == 144
    with pytest.raises(StoreError, match=r"before grid_start .* start at or after grid_start"):
        st.ensure_camera(url, cam, "2023-12-31", "2024-01-02", grid_shape=GRID)
    with pytest.raises(
        StoreError, match=r"probability grid is 4x5 in the store but the model's grid is 37x37"
    ):
        st.ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=(37, 37))
    drifted = make_camera(cadence="30min", grid_start="2023-01-01")
    with pytest.raises(StoreError, match=r"grid_start is .* never moves; .*cadence is '1h'"):
        st.ensure_camera(url, drifted, "2024-01-01", "2024-01-02", grid_shape=GRID)


def test_write_unit_guards(url, cam):
    st.ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    arrays = st.unit_arrays(24, GRID)
    with pytest.raises(StoreError, match=r"one whole chunk of 24 slots"):
        st.write_unit(url, cam.id, 1, 25, arrays)
    with pytest.raises(StoreError, match=r"beyond the time axis .* ensure_camera first"):
        st.write_unit(url, cam.id, 48, 72, arrays)
    bad = dict(arrays, fraction=np.zeros((24, 5), np.float32))
    with pytest.raises(StoreError, match=r"`fraction` for a unit must have shape \(24, 6\)"):
        st.write_unit(url, cam.id, 0, 24, bad)
    with pytest.raises(StoreError, match=r"missing \['status'\]"):
        st.write_unit(url, cam.id, 0, 24, {k: v for k, v in arrays.items() if k != "status"})
    with pytest.raises(StoreError, match=r"camera 'NOPE' has no group"):
        st.read_ledger(url, "NOPE", 0, 24)


def test_register_model_idempotent(url, cam):
    st.ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    a = st.register_model(url, cam.id, model_id="demo", digest="x", backbone="b")
    b = st.register_model(url, cam.id, model_id="hf:repo", digest="y", backbone="b")
    assert (a, b) == (0, 1)
    assert st.register_model(url, cam.id, model_id="demo", digest="x", backbone="b") == 0
    st.consolidate(url)
    # Consolidated metadata follows later metadata changes.
    st.register_model(url, cam.id, model_id="other", digest="z", backbone="b")
    assert len(xr.open_zarr(url, group=cam.id).attrs["models"]) == 3


def test_activity_subgroup(url, cam):
    st.ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    hourly = xr.Dataset(
        {"frames": (("time_1h",), np.arange(3, dtype=np.int32))},
        coords={"time_1h": pd.date_range("2024-01-01", periods=3, freq="1h")},
    )
    st.write_activity(url, cam.id, "activity_1h", hourly)
    st.consolidate(url)
    back = xr.open_zarr(url, group=f"{cam.id}/activity/activity_1h")
    np.testing.assert_array_equal(back["frames"].values, [0, 1, 2])
    tree = xr.open_datatree(url, engine="zarr")
    assert "activity_1h" in tree[cam.id]["activity"].children
    bad = hourly.rename(time_1h="time")
    with pytest.raises(StoreError, match=r"uses dimension\(s\) \['time'\].*'time' -> 'time_1h'"):
        st.write_activity(url, cam.id, "activity_1h", bad)


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from storage import store as st
    url, cam_id, unit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    arrays = st.unit_arrays(24, (4, 5))
    arrays["fraction"][:] = unit
    arrays["probability"][:] = unit
    arrays["source"][:] = f"unit{unit}"
    arrays["status"][:] = 1
    arrays["model"][:] = 0
    for _ in range(5):
        st.write_unit(url, cam_id, unit * 24, unit * 24 + 24, arrays)
    """
)


@pytest.mark.slow
def test_two_processes_write_different_units(url, cam):
    st.ensure_camera(url, cam, "2024-01-01", "2024-01-04", grid_shape=GRID)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, cam.id, str(u)], stderr=subprocess.PIPE, text=True
        )
        for u in (0, 2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    ds = st.open_camera(url, cam.id)
    assert (ds["fraction"][0:24].values == 0).all()
    assert (ds["fraction"][48:72].values == 2).all()
    assert (ds["status"][24:48].values == 0).all()
    assert set(ds["source"][48:72].values.tolist()) == {"unit2"}
    assert (ds["status"].values == 1).sum() == 48


@pytest.mark.server
def test_s3_store_hides_credentials(s3_bucket, s3_storage_options, cam, rng, caplog):
    import fsspec

    url = f"{s3_bucket}/plumenet.zarr"
    so = {"storage_options": s3_storage_options}
    with caplog.at_level(logging.INFO):
        st.ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID, **so)
        model = st.register_model(url, cam.id, model_id="demo", digest="d", backbone="b", **so)
        plan, written, _ = run_all(
            url, cam, manifest(["2024-01-01T03:00"], "s3://img/f"), model, rng, **so
        )
        st.consolidate(url, **so)
    assert len(plan) == 1
    ds = st.open_camera(url, cam.id, **so)
    np.testing.assert_array_equal(ds["status"].values[:24], written[0]["status"])
    tree = st.open_tree(url, **so)
    assert cam.id in tree.children
    fs, root = fsspec.core.url_to_fs(url, **s3_storage_options)
    files = fs.find(root)
    assert any(f.endswith("probability/c/0/0/0/0") for f in files)
    blob = b"".join(fs.cat_file(f) for f in files)
    for secret in (s3_storage_options["key"], s3_storage_options["secret"]):
        assert secret.encode() not in blob
        assert secret not in caplog.text

"""Creating and extending camera groups: the schema as written, extension at the end and its
guards (prepend and drift rejected), the model registry, a store on S3."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from plumenet.classes import CLASS_COLORS, MODEL_CLASSES
from plumenet.errors import StoreError
from storage import schema
from storage.reads import open_camera, open_tree
from storage.zarr_store import consolidate, ensure_camera, register_model
from tests.helpers.store import GRID, make_camera, manifest, run_all


def test_schema_matches_design(url, cam):
    grid = ensure_camera(url, cam, "2024-01-01", "2024-01-03", grid_shape=GRID)
    assert grid.n_slots == 48 + 24  # 2024-01-02T23:30.. lands in slot 48 -> 3 units
    ds = xr.open_zarr(url, group=cam.id)
    assert dict(ds.sizes) == {"time": 72, "class": 6, "y": 4, "x": 5, "emission": 2}
    expected = {
        "fraction": (("time", "class"), np.float32),
        "probability": (("time", "class", "y", "x"), np.float64),
        "frame_time": (("time",), np.dtype("datetime64[ns]")),
        "status": (("time",), np.uint8),
        "model": (("time",), np.float32),  # CF _FillValue 255 decodes to NaN
        "brightness": (("time",), np.float32),
        "anomaly": (("time",), np.float32),
        "plume_top_row": (("time", "emission"), np.float32),
        "plume_height_m": (("time", "emission"), np.float32),
        "plume_drift_m": (("time", "emission"), np.float32),
        "solar_elevation": (("time",), np.float32),
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
    assert attrs["Conventions"] == "CF-1.11"
    assert attrs["schema_version"] == schema.SCHEMA_VERSION
    assert attrs["cadence"] == "1h"
    assert attrs["chunk"] == "1D"
    assert pd.Timestamp(attrs["grid_start"]) == pd.Timestamp("2024-01-01", tz="UTC")
    assert schema.parse_json_attr(attrs["models"]) == []
    colors = schema.parse_json_attr(attrs["class_colors"])
    assert colors == {k: list(v) for k, v in CLASS_COLORS.items()}
    assert schema.parse_json_attr(attrs["camera"])["id"] == cam.id
    assert schema.parse_json_attr(attrs["camera"])["site"] == {"volcano": "Whakaari"}
    # Empty slots read as "no frame".
    assert np.isnan(ds["fraction"].values).all()
    assert np.isnan(ds["probability"][:2].values).all()
    assert np.isnat(ds["frame_time"].values).all()
    assert (ds["status"].values == 0).all()
    assert np.isnan(ds["model"].values).all()
    assert ds["model"].encoding["_FillValue"] == 255
    assert set(ds["source"].values.tolist()) == {""}


def test_extend_at_end_and_guards(url, cam, rng):
    ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    run_all(url, cam, manifest(["2024-01-01T05:00"]), 0, rng)
    before = open_camera(url, cam.id).load()
    grid = ensure_camera(url, cam, "2024-01-05", "2024-01-06", grid_shape=GRID)
    assert grid.n_slots == 6 * 24
    ds = open_camera(url, cam.id)
    assert ds.sizes["time"] == 144
    assert ds["time"].values[-1] == np.datetime64("2024-01-06T23:00")
    head = ds.isel(time=slice(0, before.sizes["time"])).load()
    assert head.attrs.pop("history").endswith("plumenet: extended time axis to 144 slots")
    assert head.attrs.pop("history", None) is None
    before.attrs.pop("history")
    assert (head.attrs.pop("n_slots"), before.attrs.pop("n_slots")) == (144, 48)
    xr.testing.assert_identical(head, before)
    assert (ds["status"][48:].values == 0).all()
    # Asking again for an earlier range never shrinks the axis.
    assert ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID).n_slots == 144
    with pytest.raises(StoreError, match=r"before grid_start .* start at or after grid_start"):
        ensure_camera(url, cam, "2023-12-31", "2024-01-02", grid_shape=GRID)
    with pytest.raises(
        StoreError, match=r"probability grid is 4x5 in the store but the model's grid is 37x37"
    ):
        ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=(37, 37))
    drifted = make_camera(cadence="30min", grid_start="2023-01-01")
    with pytest.raises(StoreError, match=r"grid_start is .* never moves; .*cadence is '1h'"):
        ensure_camera(url, drifted, "2024-01-01", "2024-01-02", grid_shape=GRID)


def test_dask_chunks_follow_the_unit(url, cam, rng):
    """``chunks={}`` chunks every variable by one unit along time, ``probability`` by its
    shard rather than its one-frame inner chunk, so ``ds.chunks`` is defined."""
    ensure_camera(url, cam, "2024-01-01", "2024-01-03", grid_shape=GRID)
    run_all(url, cam, manifest(["2024-01-01T05:00", "2024-01-02T07:00"]), 0, rng)
    lazy = open_camera(url, cam.id).load()
    ds = open_camera(url, cam.id, chunks={})
    assert ds.chunks["time"] == (24, 24, 24)
    assert ds["probability"].chunks == ((24, 24, 24), (6,), (4,), (5,))
    assert ds["fraction"].chunks == ((24, 24, 24), (6,))
    xr.testing.assert_identical(ds.load(), lazy)
    wider = open_camera(url, cam.id, chunks={"time": 48})
    assert wider.chunksizes["time"] == (48, 24)


def test_register_model_idempotent(url, cam):
    ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    a = register_model(url, cam.id, model_id="demo", digest="x", backbone="b")
    b = register_model(url, cam.id, model_id="hf:repo", digest="y", backbone="b")
    assert (a, b) == (0, 1)
    assert register_model(url, cam.id, model_id="demo", digest="x", backbone="b") == 0
    consolidate(url)
    # Consolidated metadata follows later metadata changes.
    register_model(url, cam.id, model_id="other", digest="z", backbone="b")
    assert len(schema.parse_json_attr(xr.open_zarr(url, group=cam.id).attrs["models"])) == 3


@pytest.mark.server
def test_s3_store_hides_credentials(s3_bucket, s3_storage_options, cam, rng, caplog):
    import fsspec

    url = f"{s3_bucket}/plumenet.zarr"
    so = {"storage_options": s3_storage_options}
    with caplog.at_level(logging.INFO):
        ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID, **so)
        model = register_model(url, cam.id, model_id="demo", digest="d", backbone="b", **so)
        plan, written, _ = run_all(
            url, cam, manifest(["2024-01-01T03:00"], "s3://img/f"), model, rng, **so
        )
        consolidate(url, **so)
    assert len(plan) == 1
    ds = open_camera(url, cam.id, **so)
    np.testing.assert_array_equal(ds["status"].values[:24], written[0]["status"])
    tree = open_tree(url, **so)
    assert cam.id in tree.children
    fs, root = fsspec.core.url_to_fs(url, **s3_storage_options)
    files = fs.find(root)
    assert any(f.endswith("probability/c/0/0/0/0") for f in files)
    blob = b"".join(fs.cat_file(f) for f in files)
    for secret in (s3_storage_options["key"], s3_storage_options["secret"]):
        assert secret.encode() not in blob
        assert secret not in caplog.text

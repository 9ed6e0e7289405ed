"""The store as CF-1.11 readers and other Zarr implementations see it: complete attributes on
every variable and group (activity included), a real netCDF file written from the opened
store and read back, and the numeric arrays read by a second Zarr v3 implementation."""

from __future__ import annotations

import json
import warnings

import netCDF4
import numpy as np
import pytest
import tensorstore as ts
import xarray as xr
import zarr

from plumenet.classes import MODEL_CLASSES
from plumenet.config import load_config
from plumenet.jobs.catalogue import run_catalogue
from plumenet.science.episodes import find_episodes
from storage import schema
from storage.reads import open_camera
from storage.zarr_store import consolidate, ensure_camera, register_model
from tests.helpers.catalogue import CAMERA, make_store
from tests.helpers.store import GRID, manifest, run_all

#: Arrays of a camera group whose values are numbers (``class``/``source`` are strings).
NUMERIC = ("time", "fraction", "probability", "frame_time", "brightness", "anomaly", "status")


@pytest.fixture
def written(url, cam, rng) -> str:
    """A store with one camera, two units written, a registered model, consolidated."""
    ensure_camera(url, cam, "2024-01-01", "2024-01-03", grid_shape=GRID)
    model = register_model(url, cam.id, model_id="demo", digest="d1", backbone="vits14-reg")
    run_all(url, cam, manifest(["2024-01-01T03:00:10", "2024-01-02T10:00"]), model, rng)
    consolidate(url)
    return url


@pytest.fixture(scope="module")
def catalogued(tmp_path_factory) -> str:
    """A store with a synthetic camera and its activity products written by the catalogue."""
    tmp = tmp_path_factory.mktemp("cf")
    cfg_path, _ = make_store(tmp, np.random.default_rng(7), days=4)
    run_catalogue(cfg_path, out=tmp / "out", figures=False)
    return load_config(cfg_path).store


def _open(url: str, group: str) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        return xr.open_zarr(url, group=group, consolidated=False)


def test_camera_group_attributes_are_cf(written, cam):
    ds = _open(written, cam.id)
    attrs = ds.attrs
    assert attrs["Conventions"] == "CF-1.11"
    assert attrs["title"] == f"plumenet webcam segmentation of camera {cam.id}"
    assert attrs["history"].split(" ", 1)[1] == f"plumenet: created camera group {cam.id}"
    # Nested attributes are JSON strings any reader parses (no nested dicts for netCDF).
    for name in schema.JSON_ATTRIBUTES:
        assert isinstance(attrs[name], str), name
    assert json.loads(attrs["camera"])["id"] == cam.id
    assert json.loads(attrs["models"]) == [{"id": "demo", "digest": "d1", "backbone": "vits14-reg"}]
    assert list(json.loads(attrs["class_colors"])) == sorted(MODEL_CLASSES)
    # The class order without the variable-length string data type.
    assert attrs["class_names"].split() == list(MODEL_CLASSES)
    assert ds["class"].attrs["class_names"].split() == list(map(str, ds["class"].values))
    assert ds["time"].attrs["axis"] == "T"
    assert ds["time"].attrs["standard_name"] == "time"
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name"), f"{name} has no long_name"
        assert "missing_index" not in var.attrs, name
    for name in ("fraction", "probability", "brightness", "anomaly"):
        assert ds[name].attrs["units"] == "1", name
    assert ds["model"].encoding["_FillValue"] == schema.MODEL_NONE
    status = ds["status"].attrs
    assert len(status["flag_meanings"].split()) == len(status["flag_values"])
    root = zarr.open_group(written, mode="r", use_consolidated=False).attrs
    assert root["Conventions"] == "CF-1.11" and root["title"]


def test_extension_appends_history(written, cam):
    ensure_camera(written, cam, "2024-01-01", "2024-01-06", grid_shape=GRID)
    lines = _open(written, cam.id).attrs["history"].splitlines()
    assert len(lines) == 2
    assert lines[1].endswith("plumenet: extended time axis to 144 slots")


def test_netcdf_file_from_opened_store_round_trips(written, cam, tmp_path):
    """``xr.open_zarr(...).to_netcdf()`` works on a real file, and reads back equal."""
    ds = _open(written, cam.id)
    path = tmp_path / "camera.nc"
    ds.to_netcdf(path)
    with xr.open_dataset(path, engine="netcdf4") as back:
        xr.testing.assert_equal(back.load(), ds.load())
        assert back.attrs["Conventions"] == "CF-1.11"
        assert json.loads(back.attrs["models"])[0]["digest"] == "d1"
        assert back["time"].attrs["axis"] == "T"
    # Our own reader gives flag_values the variable's dtype, so the file keeps it (CF §3.5).
    typed = tmp_path / "typed.nc"
    open_camera(written, cam.id).to_netcdf(typed)
    with netCDF4.Dataset(typed) as nc:
        flags = nc["status"].getncattr("flag_values")
        assert flags.dtype == np.uint8 == nc["status"].dtype
        np.testing.assert_array_equal(flags, [0, 1, 2, 3])
        # probability stays packed (uint8 with a float32 scale_factor: CF-1.11 §8.1).
        assert nc["probability"].dtype == np.uint8
        assert nc["probability"].getncattr("scale_factor").dtype == np.float32
    with xr.open_dataset(typed, engine="netcdf4") as back:
        np.testing.assert_array_equal(
            back["probability"].values, open_camera(written, cam.id)["probability"].values
        )


def test_activity_products_are_cf_and_write_to_netcdf(catalogued, tmp_path):
    episodes = _open(catalogued, f"{CAMERA}/activity")
    assert episodes.sizes["episode"] > 0
    assert episodes["duration_s"].attrs["units"] == "s"
    assert episodes["onset_uncertainty_s"].attrs["units"] == "s"
    for name, var in episodes.variables.items():
        assert var.attrs.get("long_name"), f"episodes.{name} has no long_name"
    assert episodes.attrs["Conventions"] == "CF-1.11" and episodes.attrs["title"]
    for label in ("1h", "1d"):
        act = _open(catalogued, f"{CAMERA}/activity/activity_{label}")
        assert act[f"time_{label}"].attrs["axis"] == "T"
        assert act.attrs["class_names"].split() == list(map(str, act["activity_class"].values))
        for name, var in act.variables.items():
            assert var.attrs.get("long_name"), f"activity_{label}.{name} has no long_name"
            if var.dtype.kind in "fiu":
                units = "m" if name == "height_max_m" else "1"  # plume height: metres
                assert var.attrs.get("units") == units, f"activity_{label}.{name}"
        path = tmp_path / f"activity_{label}.nc"
        act.to_netcdf(path)
        with xr.open_dataset(path, engine="netcdf4") as back:
            xr.testing.assert_equal(back.load(), act.load())
    path = tmp_path / "episodes.nc"
    episodes.to_netcdf(path)
    with xr.open_dataset(path, engine="netcdf4") as back:
        xr.testing.assert_equal(back.load(), episodes.load())


def test_tensorstore_reads_the_numeric_arrays_as_zarr_python(written, cam, catalogued):
    """A second Zarr v3 implementation (tensorstore, C++) reads every numeric array,
    sharded ``probability`` included, bit for bit as zarr-python does."""

    def compare(url: str, group: str, names: tuple[str, ...]) -> None:
        g = zarr.open_group(url, path=group, mode="r", use_consolidated=False)
        for name in names:
            spec = {
                "driver": "zarr3",
                "kvstore": {"driver": "file", "path": f"{url}/{group}/{name}/"},
            }
            other = ts.open(spec, read=True).result().read().result()
            mine = g[name][...]
            assert other.dtype == mine.dtype, name
            np.testing.assert_array_equal(other, mine, err_msg=name)

    compare(written, cam.id, (*NUMERIC, "model"))
    g = zarr.open_group(written, path=cam.id, mode="r", use_consolidated=False)
    assert (g["status"][...] == 1).sum() == 2  # the compared arrays hold written frames
    compare(catalogued, f"{CAMERA}/activity", ("duration_s", "peak_fraction", "onset"))
    compare(catalogued, f"{CAMERA}/activity/activity_1h", ("frames", "mean_fraction"))


def test_old_stores_with_dict_attributes_still_work(written, cam):
    """Stores written before CF-1.11 kept nested attributes as JSON objects;
    :func:`register_model` takes both forms."""
    g = zarr.open_group(written, path=cam.id, mode="r+", use_consolidated=False)
    g.attrs.update(
        {"models": json.loads(g.attrs["models"]), "camera": json.loads(g.attrs["camera"])}
    )
    consolidate(written)
    assert isinstance(open_camera(written, cam.id).attrs["camera"], dict)
    assert register_model(written, cam.id, model_id="demo", digest="d1", backbone="vits14-reg") == 0
    assert register_model(written, cam.id, model_id="new", digest="d2", backbone="b") == 1
    g = zarr.open_group(written, path=cam.id, mode="r", use_consolidated=False)
    assert isinstance(g.attrs["models"], str)  # rewritten in the new form
    assert [m["id"] for m in schema.parse_json_attr(g.attrs["models"])] == ["demo", "new"]


def test_episode_finder_reads_the_camera_id_from_either_form(catalogued):
    ds = open_camera(catalogued, CAMERA)
    assert isinstance(ds.attrs["camera"], str)
    table = find_episodes(ds)
    assert len(table) > 0
    assert (table["camera"] == CAMERA).all()
    ds.attrs["camera"] = json.loads(ds.attrs["camera"])  # an old store's dict
    assert (find_episodes(ds)["camera"] == CAMERA).all()

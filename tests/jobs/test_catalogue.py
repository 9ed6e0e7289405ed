"""The catalogue job on a small real store: empty tables, parameter errors, plume heights
in the files and the store, and schema-1 stores without them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from plumenet.jobs.catalogue import load_camera, run_catalogue
from plumenet.science.activity import bin_activity
from plumenet.science.episodes import EPISODE_COLUMNS, find_episodes
from plumenet.science.observability import DARK, OBSTRUCTED, observability_reasons
from plumenet.science.plume import EPISODE_HEIGHT_COLUMNS
from storage.reads import open_camera
from tests.helpers.catalogue import CAMERA, make_store


def test_catalogue_without_episodes_still_writes(tmp_path, rng):
    """A quiet camera gives empty tables, not an error."""
    cfg_path, _ = make_store(tmp_path, rng, days=1)
    paths = run_catalogue(cfg_path, out=tmp_path / "out", on=0.99, off=0.98, figures=False)
    episodes = pd.read_parquet(paths[CAMERA]["episodes_parquet"])
    assert episodes.empty
    assert list(episodes.columns) == list(EPISODE_COLUMNS)
    with pytest.raises(ValueError, match=r"unknown catalogue parameter\(s\) \['bogus'\]"):
        run_catalogue(cfg_path, out=tmp_path / "out", bogus=1)


def test_catalogue_files_and_store_carry_plume_heights(tmp_path, rng):
    cfg_path, ds = make_store(tmp_path, rng, days=4)
    paths = run_catalogue(cfg_path, out=tmp_path / "out", figures=False)[CAMERA]
    episodes = pd.read_parquet(paths["episodes_parquet"])
    expected = find_episodes(ds, camera=CAMERA)
    assert expected["height_max_m"].notna().sum() >= 3
    np.testing.assert_allclose(episodes["height_max_m"], expected["height_max_m"])
    np.testing.assert_allclose(episodes["top_row_median_px"], expected["top_row_median_px"])
    csv = pd.read_csv(paths["episodes_csv"])
    np.testing.assert_allclose(csv["height_median_m"], expected["height_median_m"], rtol=1e-9)
    hourly = pd.read_parquet(paths["activity_1h_parquet"])
    want = bin_activity(ds, "1h")["height_max_m"].sel({"class": "eruption_column"}).values
    np.testing.assert_allclose(hourly["height_max_m_eruption_column"], want)
    group = xr.open_zarr(
        str(tmp_path / "p.zarr"), group=f"{CAMERA}/activity", zarr_format=3, consolidated=False
    )
    assert group["height_max_m"].attrs["units"] == "m"
    np.testing.assert_allclose(group["height_max_m"].values, expected["height_max_m"])
    daily = xr.open_zarr(
        str(tmp_path / "p.zarr"), group=f"{CAMERA}/activity/activity_1d", zarr_format=3,
        consolidated=False,
    )  # fmt: skip
    assert daily["height_max_m"].dims == ("time_1d", "activity_class")
    assert daily["height_max_m"].attrs["units"] == "m"
    assert np.isfinite(daily["height_max_m"].values).any()


def test_schema_1_store_still_catalogues_with_heights_nan(tmp_path, rng):
    cfg_path, ds = make_store(tmp_path, rng, days=2, schema_1=True)
    assert "plume_height_m" not in open_camera(str(tmp_path / "p.zarr"), CAMERA)
    paths = run_catalogue(cfg_path, out=tmp_path / "out")[CAMERA]
    episodes = pd.read_parquet(paths["episodes_parquet"])
    assert len(episodes) > 0
    assert episodes["onset"].tolist() == find_episodes(ds, camera=CAMERA)["onset"].tolist()
    assert list(episodes.columns) == list(EPISODE_COLUMNS)
    assert episodes[list(EPISODE_HEIGHT_COLUMNS)].isna().all().all()
    hourly = pd.read_parquet(paths["activity_1h_parquet"])
    assert hourly["height_max_m_any_emission"].isna().all()
    assert Path(paths["timeline_png"]).is_file()


def test_load_camera_keeps_the_sun_so_a_dark_noon_is_obstructed(tmp_path, rng):
    """The catalogue reads ``solar_elevation``: dark frames with the sun up are not night."""
    make_store(tmp_path, rng, days=1)
    g = zarr.open_group(str(tmp_path / "p.zarr"), path=CAMERA, mode="r+")
    g["solar_elevation"][:] = 30.0  # the sun always up: no frame can be night
    loaded = load_camera(str(tmp_path / "p.zarr"), CAMERA)
    assert {"solar_elevation", "plume_height_m", "plume_top_row"} <= set(loaded.data_vars)
    reasons = observability_reasons(loaded).values
    dark = loaded["brightness"].values < 0.12
    assert dark.any() and (reasons[dark] == OBSTRUCTED).all() and not (reasons == DARK).any()

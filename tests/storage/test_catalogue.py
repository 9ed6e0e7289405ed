"""The store's activity subgroups (DataTree-safe dimension names)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from plumenet.errors import StoreError
from storage.catalogue import write_activity
from storage.zarr_store import consolidate, ensure_camera
from tests.helpers.store import GRID


def test_activity_subgroup(url, cam):
    ensure_camera(url, cam, "2024-01-01", "2024-01-02", grid_shape=GRID)
    hourly = xr.Dataset(
        {"frames": (("time_1h",), np.arange(3, dtype=np.int32))},
        coords={"time_1h": pd.date_range("2024-01-01", periods=3, freq="1h")},
    )
    write_activity(url, cam.id, "activity_1h", hourly)
    consolidate(url)
    back = xr.open_zarr(url, group=f"{cam.id}/activity/activity_1h")
    np.testing.assert_array_equal(back["frames"].values, [0, 1, 2])
    tree = xr.open_datatree(url, engine="zarr")
    assert "activity_1h" in tree[cam.id]["activity"].children
    bad = hourly.rename(time_1h="time")
    with pytest.raises(StoreError, match=r"uses dimension\(s\) \['time'\].*'time' -> 'time_1h'"):
        write_activity(url, cam.id, "activity_1h", bad)

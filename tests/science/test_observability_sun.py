"""Night from the sun: a dark frame is "dark (night)" only with the sun down; dark by day
is "obstructed"; without a solar elevation, darkness alone still means night."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from plumenet.classes import MODEL_CLASSES
from plumenet.science import observability as ob
from plumenet.science.daylight import solar_elevation

#: Whakaari: the sample camera's site.
LAT, LON = -37.52, 177.18


def _day_of_frames(brightness: np.ndarray, *, with_sun: bool) -> xr.Dataset:
    """One day of 10-min frames at Whakaari, land clearly in view in every frame."""
    time = pd.date_range("2024-01-10", periods=144, freq="10min")  # UTC
    frac = np.zeros((144, 6), dtype=np.float32)
    frac[:, MODEL_CLASSES.index("background")] = 0.6
    frac[:, MODEL_CLASSES.index("land")] = 0.4
    data = {
        "fraction": (("time", "class"), frac),
        "status": ("time", np.ones(144, np.uint8)),
        "brightness": ("time", brightness.astype(np.float32)),
    }
    if with_sun:
        data["solar_elevation"] = ("time", solar_elevation(time.values, LAT, LON))
    return xr.Dataset(data, coords={"time": time.values, "class": list(MODEL_CLASSES)})


def test_dark_at_noon_is_obstructed_and_dark_at_night_is_night():
    sun = solar_elevation(pd.date_range("2024-01-10", periods=144, freq="10min").values, LAT, LON)
    assert (sun > 30).any() and (sun < -18).any()  # summer day at the site: noon and night
    brightness = np.full(144, 0.05)  # a dark frame in every slot: storm, night, covered lens
    reasons = ob.observability_reasons(_day_of_frames(brightness, with_sun=True), baseline=0.4)
    night = sun < -6
    assert (reasons.values[night] == ob.DARK).all()
    assert (reasons.values[~night] == ob.OBSTRUCTED).all()
    assert reasons.attrs["night_sun_elevation"] == -6.0


def test_without_solar_elevation_brightness_alone_decides():
    brightness = np.full(144, 0.05)
    reasons = ob.observability_reasons(_day_of_frames(brightness, with_sun=False), baseline=0.4)
    assert (reasons.values == ob.DARK).all()


def test_bright_frames_at_night_stay_observable_and_the_threshold_is_configurable():
    sun = solar_elevation(pd.date_range("2024-01-10", periods=144, freq="10min").values, LAT, LON)
    brightness = np.where(sun < 0, 0.05, 0.5)
    brightness[np.argmin(sun)] = 0.5  # a lit frame at the darkest hour (glow, moon)
    ds = _day_of_frames(brightness, with_sun=True)
    reasons = ob.observability_reasons(ds, baseline=0.4).values
    assert reasons[np.argmin(sun)] == ob.OBSERVABLE
    twilight = (sun < 0) & (sun >= -6)  # dark, sun below the horizon but above civil twilight
    assert twilight.any()
    assert (reasons[twilight] == ob.OBSTRUCTED).all()
    # night from sunset on: the same frames are night
    at_sunset = ob.observability_reasons(ds, baseline=0.4, night_sun_elevation=0.0).values
    assert (at_sunset[twilight] == ob.DARK).all()


def test_nan_sun_falls_back_to_brightness_frame_by_frame():
    brightness = np.full(144, 0.05)
    ds = _day_of_frames(brightness, with_sun=True)
    sun = ds["solar_elevation"].values.copy()
    noon = int(np.argmax(sun))
    sun[noon] = np.nan  # e.g. a slot written before the store had a site
    ds["solar_elevation"] = ("time", sun)
    reasons = ob.observability_reasons(ds, baseline=0.4).values
    assert reasons[noon] == ob.DARK and reasons[noon + 1] == ob.OBSTRUCTED

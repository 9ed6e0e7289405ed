"""Solar elevation: known geometry at solstice and equinox, an independent implementation
(astral) over many dates and places, NaT in, NaN out."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from plumenet.science.daylight import solar_elevation


def _day_minutes(day: str) -> np.ndarray:
    return np.datetime64(day) + np.arange(24 * 60).astype("timedelta64[m]")


@pytest.mark.parametrize(
    ("day", "lat", "lon", "expected"),
    [
        # June solstice 2024 (20 June 20:51 UTC): declination +23.44, sun overhead at noon
        ("2024-06-20", 23.44, 0.0, 90.0),
        # March equinox 2024 (20 March 03:06 UTC): overhead at the equator at noon
        ("2024-03-20", 0.0, 0.0, 90.0),
        # December solstice at Greenwich: 90 - 51.4769 - 23.44 = 15.08 (declination -23.44)
        ("2023-12-22", 51.4769, -0.0005, 15.08),
        # Whakaari (37.52 S) at the December solstice: 90 - 37.52 + 23.44 = 75.92
        ("2023-12-22", -37.52, 177.18, 75.92),
    ],
)
def test_noon_elevation_matches_the_known_value(day, lat, lon, expected):
    elevation = solar_elevation(_day_minutes(day), lat, lon)
    assert float(np.nanmax(elevation)) == pytest.approx(expected, abs=0.5)


def test_midnight_sun_and_polar_night():
    # 70 N at the June solstice: sun never sets; at the December solstice it never rises
    june = solar_elevation(_day_minutes("2024-06-21"), 70.0, 20.0)
    december = solar_elevation(_day_minutes("2024-12-21"), 70.0, 20.0)
    assert june.min() > 0 > december.max()


def test_matches_astral_over_many_dates_and_places(rng):
    from astral import Observer
    from astral.sun import elevation

    n = 200
    seconds = rng.integers(0, 60 * 365 * 86_400, n)
    times = np.datetime64("1980-01-01") + seconds.astype("timedelta64[s]")
    lats, lons = rng.uniform(-85, 85, n), rng.uniform(-180, 180, n)
    ours = np.array([solar_elevation(times[i : i + 1], lats[i], lons[i])[0] for i in range(n)])
    theirs = np.array(
        [
            elevation(
                Observer(lats[i], lons[i]),
                times[i].astype(dt.datetime).replace(tzinfo=dt.UTC),
                with_refraction=False,
            )
            for i in range(n)
        ]
    )
    np.testing.assert_allclose(ours, theirs, atol=0.01)


def test_vectorised_over_a_year_and_nat_gives_nan():
    times = np.datetime64("2024-01-01") + np.arange(0, 366 * 144).astype("timedelta64[m]") * 10
    times[5] = np.datetime64("NaT")
    elevation = solar_elevation(times, -37.52, 177.18)
    assert elevation.shape == times.shape and elevation.dtype == np.float32
    assert np.isnan(elevation[5]) and np.isfinite(np.delete(elevation, 5)).all()
    # about half of all slots are in daylight, and civil twilight adds a little
    assert 0.48 < float(np.mean(elevation > 0)) < 0.53


def test_site_outside_the_globe_is_refused():
    with pytest.raises(ValueError, match=r"site lat 95.0, lon 0.0 outside"):
        solar_elevation(np.array(["2024-01-01"], dtype="datetime64[ns]"), 95.0, 0.0)

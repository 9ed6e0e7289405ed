"""The bundled comparison: JSON-ready results, None for parts without input, and the
height series (``series="height"``) in place of the activity share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plumenet.science import compare
from plumenet.science.activity import catalogue
from tests.helpers.catalogue import synthetic_camera


def test_compare_bundles_json_ready_results(rng):
    index = pd.date_range("2024-01-01", periods=24 * 20, freq="1h")
    act = pd.Series(rng.uniform(0, 1, index.size), index=index)
    rsam = pd.Series(
        np.exp(rng.standard_normal(index.size * 6)),
        index=pd.date_range("2024-01-01", periods=index.size * 6, freq="10min", tz="UTC"),
    )
    episodes = pd.DataFrame(
        {"class": ["any_emission"] * 3, "onset": pd.to_datetime(
            ["2024-01-05", "2024-01-09", "2024-01-15"], utc=True)}
    )  # fmt: skip
    events = pd.DataFrame(
        {"time": pd.to_datetime(["2024-01-04 23:00", "2024-01-12 00:00"], utc=True)}
    )
    out = compare.compare(act, rsam, events, episodes, n_surrogates=49, n_shuffles=49)
    assert set(out["xcorr"]) >= {"best_lag_s", "r", "p_value"}
    assert len(out["coincidence"]) == 9
    assert out["epoch"]["n_onsets"] == 3
    assert set(out["tables"]) == {"xcorr", "coincidence", "epoch"}
    none = compare.compare(act, None, None, None)
    assert none["xcorr"] is None and none["coincidence"] is None


def _rsam_leading(height: pd.Series, lead: pd.Timedelta, rng) -> pd.Series:
    """10-min RSAM that rises with the plume height ``lead`` earlier (seismic leads)."""
    driver = height.fillna(0.0)
    fine = (
        driver.resample("10min")
        .ffill()
        .reindex(pd.date_range(driver.index[0], periods=driver.size * 6, freq="10min"))
        .ffill()
    )
    values = np.exp(fine.to_numpy() / 500.0) * (1 + 0.05 * rng.random(fine.size))
    return pd.Series(values, index=(fine.index - lead).tz_localize("UTC"))


def test_compare_on_height_recovers_the_injected_lag(rng):
    ds, _ = synthetic_camera(rng, days=10, n_episodes=24, plume=True)
    hourly = catalogue(ds, camera="X", freqs=("1h",))["activity_1h"]
    height = hourly["height_max_m"].sel({"class": "any_emission"}).to_series()
    share = hourly["present_share"].sel({"class": "any_emission"}).to_series()
    # An RSAM made from the height, not the share: the height series must find it.
    rsam = _rsam_leading(height, pd.Timedelta("3h"), rng)
    out = compare.compare(hourly, rsam, None, None, series="height", n_surrogates=99, seed=1)
    assert out["settings"]["series"] == "height"
    assert out["settings"]["activity"] == "height_max_m_any_emission"
    assert out["xcorr"]["best_lag_s"] == 3 * 3600
    assert out["xcorr"]["p_value"] <= 0.02
    assert out["xcorr"]["r"] > 0.95
    by_share = compare.compare(hourly, rsam, None, None, n_surrogates=0)
    assert by_share["settings"]["activity"] == "present_share_any_emission"
    assert by_share["xcorr"]["r"] < out["xcorr"]["r"] - 0.1  # the share is not the height
    assert not height.equals(share)


def test_compare_on_height_refuses_what_has_no_height(rng):
    index = pd.date_range("2024-01-01", periods=48, freq="1h")
    table = pd.DataFrame(
        {"time": index, "present_share_lava": 0.1, "height_max_m_any_emission": np.nan}
    )
    with pytest.raises(ValueError, match=r"class 'lava' has no plume height"):
        compare.compare(table, None, None, None, cls="lava", series="height")
    with pytest.raises(ValueError, match=r"no plume height in metres for any_emission"):
        compare.compare(table, None, None, None, series="height")
    with pytest.raises(ValueError, match=r"unknown series 'depth'"):
        compare.compare(table, None, None, None, series="depth")

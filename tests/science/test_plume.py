"""Plume height in the catalogue: per-episode max/median, hourly max, observability mask,
cameras without geometry and schema-1 datasets without the plume variables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plumenet.science import activity
from plumenet.science.observability import observability
from plumenet.science.plume import EPISODE_HEIGHT_COLUMNS, EPISODE_HEIGHT_KIND
from tests.helpers.catalogue import ROWS_PER_METRE, VENT_ROW, synthetic_camera, true_heights


def _masked_truth(ds) -> pd.DataFrame:
    """The synthetic truth (float32 as stored), NaN on frames the catalogue cannot see."""
    truth = true_heights(ds["fraction"].values.astype(np.float64))
    obs = observability(ds).values
    cols = {
        k: np.where(obs, v.astype(np.float32).astype(np.float64), np.nan) for k, v in truth.items()
    }
    return pd.DataFrame(cols, index=pd.DatetimeIndex(ds["time"].values))


def _expected_episode(truth: pd.DataFrame, row: pd.Series) -> tuple[float, float]:
    """Max and median height over the episode's observable frames with a plume (a loop)."""
    kind = EPISODE_HEIGHT_KIND.get(row["class"])
    if kind is None:
        return np.nan, np.nan
    onset, end = row["onset"].tz_localize(None), row["end"].tz_localize(None)
    values = [v for t, v in truth[kind].items() if onset <= t <= end and np.isfinite(v)]
    return (max(values), float(np.median(values))) if values else (np.nan, np.nan)


def test_episode_heights_are_the_exact_max_and_median(rng):
    ds, _ = synthetic_camera(rng, days=6, n_episodes=10, plume=True)
    episodes = activity.catalogue(ds, camera="X")["episodes"]
    assert list(episodes.columns[-4:]) == list(EPISODE_HEIGHT_COLUMNS)
    truth = _masked_truth(ds)
    with_height = 0
    for _, row in episodes.iterrows():
        top, median = _expected_episode(truth, row)
        if np.isnan(top):
            assert np.isnan(row["height_max_m"]) and np.isnan(row["top_row_min_px"])
            continue
        with_height += 1
        assert row["height_max_m"] == pytest.approx(top, rel=1e-6)
        assert row["height_median_m"] == pytest.approx(median, rel=1e-6)
        assert row["top_row_min_px"] == pytest.approx(VENT_ROW - ROWS_PER_METRE * top, rel=1e-5)
    assert with_height >= 5
    assert set(episodes.loc[episodes["height_max_m"].notna(), "class"]) >= {"eruption_column"}
    assert episodes.loc[episodes["class"] == "lava", "height_max_m"].isna().all()


def test_hourly_max_height_is_exact_and_keeps_not_seen_apart(rng):
    ds, _ = synthetic_camera(rng, days=4, n_episodes=8, plume=True)
    hourly = activity.bin_activity(ds, "1h")
    truth = _masked_truth(ds)
    bins = truth.index.floor("1h")
    seen = pd.Series(observability(ds).values, index=truth.index).groupby(bins).sum()
    for kind in ("any_emission", "eruption_column"):
        got = hourly["height_max_m"].sel({"class": kind}).to_series()
        top = truth[kind].groupby(bins).max()
        expected = top.where(top.notna() | (seen == 0), 0.0)  # seen, no plume: 0 m
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-6)
        rows = hourly["top_row_min_px"].sel({"class": kind}).to_numpy()
        np.testing.assert_allclose(rows, (VENT_ROW - ROWS_PER_METRE * top).to_numpy(), rtol=1e-5)
    any_h = hourly["height_max_m"].sel({"class": "any_emission"}).to_numpy()
    blind = hourly["observable_frames"].to_numpy() == 0
    assert blind.any() and np.isnan(any_h[blind]).all()  # could not see: NaN, never 0
    assert (any_h[~blind] == 0).any() and (any_h[~blind] > 0).any()
    assert np.isnan(hourly["height_max_m"].sel({"class": "lava"}).to_numpy()).all()
    table = activity.activity_table(hourly)
    np.testing.assert_array_equal(
        table["height_max_m_eruption_column"].to_numpy(),
        hourly["height_max_m"].sel({"class": "eruption_column"}).to_numpy().astype(np.float64),
    )
    assert "height_max_m_lava" not in table.columns


def test_unobservable_frames_do_not_count(rng):
    ds, _ = synthetic_camera(rng, days=6, n_episodes=10, plume=True)
    base = activity.catalogue(ds, camera="X")["episodes"]
    ep = base[base["class"] == "eruption_column"].iloc[0]
    inside = np.flatnonzero(
        (ds["time"].values > ep["onset"].tz_localize(None).to_datetime64())
        & (ds["time"].values < ep["end"].tz_localize(None).to_datetime64())
    )
    k = int(inside[inside.size // 2])
    spiked = ds.copy(deep=True)
    spiked["plume_height_m"].values[k, :] = 1e6  # a wild height on one frame
    seen = activity.catalogue(spiked, camera="X")["episodes"]
    same = (seen["onset"] == ep["onset"]) & (seen["class"] == "eruption_column")
    assert seen.loc[same, "height_max_m"].item() == 1e6  # it counts...
    spiked["brightness"].values[k] = 0.01  # ...until the frame is dark (night: not seen)
    res = activity.catalogue(spiked, camera="X")
    hidden = res["episodes"]
    assert not res["observable"].values[k]
    same = (hidden["onset"] == ep["onset"]) & (hidden["class"] == "eruption_column")
    (row,) = (r for _, r in hidden[same].iterrows())
    expected, _ = _expected_episode(_masked_truth(spiked), row)
    assert row["height_max_m"] == pytest.approx(expected, rel=1e-6) and expected < 1e6
    hourly = res["activity_1h"]["height_max_m"].sel({"class": "eruption_column"})
    assert float(hourly.max()) < 1e6


def test_camera_without_geometry_reports_top_rows_only(rng):
    ds, _ = synthetic_camera(rng, days=3, n_episodes=6, plume=True)
    ds["plume_height_m"][:] = np.nan  # no geometry: the worker leaves metres NaN
    res = activity.catalogue(ds, camera="X")
    episodes = res["episodes"]
    assert episodes["height_max_m"].isna().all()
    assert episodes["top_row_min_px"].notna().any()
    hourly = res["activity_1h"]
    assert np.isnan(hourly["height_max_m"].values).all()  # no 0-filling without metres
    assert np.isfinite(hourly["top_row_min_px"].values).any()


def test_schema_1_dataset_without_plume_variables_still_catalogues(rng):
    old, _ = synthetic_camera(np.random.default_rng(5), days=3, n_episodes=6)
    new, _ = synthetic_camera(np.random.default_rng(5), days=3, n_episodes=6, plume=True)
    assert "plume_height_m" not in old
    res_old = activity.catalogue(old, camera="X")
    res_new = activity.catalogue(new, camera="X")
    ep_old, ep_new = res_old["episodes"], res_new["episodes"]
    assert len(ep_old) > 0
    assert ep_old[list(EPISODE_HEIGHT_COLUMNS)].isna().all().all()
    other = [c for c in ep_old.columns if c not in EPISODE_HEIGHT_COLUMNS]
    pd.testing.assert_frame_equal(ep_old[other], ep_new[other])  # heights change no episode
    assert np.isnan(res_old["activity_1d"]["height_max_m"].values).all()
    assert np.isnan(res_old["heights"].to_numpy()).all()

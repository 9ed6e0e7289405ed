"""Activity catalogue: observability, episodes against a known truth, binned activity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from plumenet.classes import EMISSION_CLASSES, MODEL_CLASSES
from plumenet.science import activity

STEP = pd.Timedelta("10min")


def synthetic_camera(
    rng: np.random.Generator, days: int = 20, n_episodes: int = 40, camera: str = "TST.01"
) -> tuple[xr.Dataset, pd.DataFrame]:
    """A camera dataset in the store schema with known episodes, nights, clouds and noise.

    Episodes start and end in daylight (07:00-17:00); clouds hide the view (land drops,
    emissions hidden) for 30-120 min stretches; single-frame noise spikes must not count.
    """
    time = pd.date_range("2024-03-01", periods=days * 144, freq=STEP)
    n = time.size
    hour = time.hour + time.minute / 60
    night = (hour < 6) | (hour >= 18)
    frac = np.zeros((n, len(MODEL_CLASSES)))
    land = 0.30 + rng.normal(0, 0.01, n)
    emis = rng.uniform(0, 0.004, (n, len(EMISSION_CLASSES)))
    truth = []
    day_starts = rng.choice(days, size=n_episodes, replace=True)
    busy = np.zeros((days, len(EMISSION_CLASSES)), dtype=int)
    for d in day_starts:
        c = int(rng.integers(len(EMISSION_CLASSES)))
        if busy[d, c] >= 2:
            continue
        slot = busy[d, c]
        busy[d, c] += 1
        start_h = 7 + 5 * slot + rng.uniform(0, 1.5)
        dur_h = rng.uniform(1.0, 3.0)
        onset = time[0] + pd.Timedelta(days=int(d)) + pd.Timedelta(hours=start_h)
        onset = onset.ceil(STEP)
        end = (onset + pd.Timedelta(hours=dur_h)).floor(STEP)
        sel = (time >= onset) & (time <= end)
        emis[sel, c] = rng.uniform(0.05, 0.2) * (1 + 0.3 * rng.standard_normal(sel.sum())).clip(
            0.5, 2
        )
        truth.append({"class": EMISSION_CLASSES[c], "onset": onset, "end": end})
    # Single-frame spikes above the on threshold (segmentation noise).
    spikes = rng.choice(n, size=30, replace=False)
    emis[spikes, rng.integers(len(EMISSION_CLASSES), size=30)] = 0.03
    # Clouds: hide land and emissions.
    cloud = np.zeros(n, dtype=bool)
    for s in rng.choice(n, size=days, replace=False):
        cloud[s : s + int(rng.integers(3, 12))] = True
    land[cloud] = 0.02
    emis[cloud] = 0.0
    frac[:, 1] = land
    frac[:, 2:] = emis
    frac[:, 0] = 1 - frac[:, 1:].sum(axis=1)
    status = np.ones(n, dtype=np.uint8)
    missing = rng.choice(n, size=20, replace=False)
    status[missing] = 0
    status[missing[:5]] = 2
    frac[status != 1] = np.nan
    brightness = np.where(night, 0.03, 0.6).astype(np.float32)
    brightness[status != 1] = np.nan
    ds = xr.Dataset(
        {
            "fraction": (("time", "class"), frac.astype(np.float32)),
            "status": ("time", status),
            "brightness": ("time", brightness),
        },
        coords={"time": time.values, "class": list(MODEL_CLASSES)},
        attrs={"cadence": "10min", "camera_id": camera},
    )
    truth_df = pd.DataFrame(truth).sort_values("onset", ignore_index=True)
    truth_df["onset"] = truth_df["onset"].dt.tz_localize("UTC")
    truth_df["end"] = truth_df["end"].dt.tz_localize("UTC")
    return ds, truth_df


def _match(found: pd.DataFrame, truth: pd.DataFrame) -> tuple[float, float, np.ndarray]:
    """Precision, recall, and onset error (s) of each matched truth episode."""
    hits_found = np.zeros(len(found), dtype=bool)
    errors = []
    for t in truth.itertuples():
        cand = found[
            (found["class"] == t[1]) & (found["onset"] <= t.end) & (found["end"] >= t.onset)
        ]
        if len(cand):
            hits_found[cand.index] = True
            errors.append(abs((cand["onset"].iloc[0] - t.onset).total_seconds()))
    precision = hits_found.mean() if len(found) else 0.0
    recall = len(errors) / len(truth)
    return precision, recall, np.array(errors)


def test_episodes_match_truth(rng):
    ds, truth = synthetic_camera(rng)
    found = activity.find_episodes(ds, classes=EMISSION_CLASSES)
    found = found.reset_index(drop=True)
    precision, recall, errors = _match(found, truth)
    assert precision >= 0.9, found
    assert recall >= 0.9
    assert np.mean(errors <= STEP.total_seconds()) >= 0.9
    assert list(found.columns) == list(activity.EPISODE_COLUMNS)
    assert (found["camera"] == "TST.01").all()
    assert found["episode"].is_unique


def test_cloud_shorter_than_gap_keeps_one_episode():
    time = pd.date_range("2024-01-01 08:00", periods=60, freq=STEP)
    v = np.zeros(60)
    v[10:40] = 0.1
    v[20:26] = np.nan  # one hour of cloud inside the episode
    df = pd.DataFrame({"ash_emissions": v}, index=time)
    eps = activity.episodes_from_fractions(df, classes=["ash_emissions"], max_gap="30min")
    assert len(eps) == 1
    ep = eps.iloc[0]
    assert ep["onset"] == pd.Timestamp(time[10], tz="UTC")
    assert ep["end"] == pd.Timestamp(time[39], tz="UTC")
    assert ep["n_frames"] == 24
    assert ep["observable_share"] == pytest.approx(24 / 30)
    assert ep["onset_uncertainty_s"] == pytest.approx(300.0)
    assert ep["end_uncertainty_s"] == pytest.approx(300.0)


def test_observed_quiet_stretch_longer_than_gap_splits():
    time = pd.date_range("2024-01-01 08:00", periods=60, freq=STEP)
    v = np.zeros(60)
    v[5:15] = 0.1
    v[19:30] = 0.1  # 4 observed quiet frames = 40 min > 30 min
    v[32:40] = 0.1  # 2 quiet frames = 20 min: merged with the previous
    df = pd.DataFrame({"lava": v}, index=time)
    eps = activity.episodes_from_fractions(df, classes=["lava"], max_gap="30min")
    assert len(eps) == 2
    assert eps["onset"].tolist() == [
        pd.Timestamp(time[5], tz="UTC"),
        pd.Timestamp(time[19], tz="UTC"),
    ]
    assert eps["end"].iloc[1] == pd.Timestamp(time[39], tz="UTC")


def test_onset_uncertainty_after_blind_stretch_is_half_the_interval():
    time = pd.date_range("2024-01-01 08:00", periods=30, freq=STEP)
    v = np.zeros(30)
    v[4:10] = np.nan  # could not see: onset lies somewhere in 40-100 min
    v[10:20] = 0.2
    df = pd.DataFrame({"lava": v}, index=time)
    ep = activity.episodes_from_fractions(df, classes=["lava"]).iloc[0]
    assert ep["onset"] == pd.Timestamp(time[10], tz="UTC")
    assert ep["onset_uncertainty_s"] == pytest.approx(7 * 600 / 2)


def test_hysteresis_and_min_duration():
    time = pd.date_range("2024-01-01", periods=12, freq=STEP)
    v = np.array([0, 0.03, 0.015, 0.015, 0.03, 0.005, 0, 0.03, 0, 0, 0, 0])
    df = pd.DataFrame({"lava": v}, index=time)
    eps = activity.episodes_from_fractions(
        df, classes=["lava"], on=0.02, off=0.01, max_gap="0s", min_duration="10min"
    )
    # frames 1-4 stay on through 0.015 (between off and on); frame 7 alone is too short
    assert len(eps) == 1
    assert eps["n_frames"].iloc[0] == 4
    assert eps["peak_fraction"].iloc[0] == pytest.approx(0.03)
    with pytest.raises(ValueError, match=r"on threshold 0\.01 is below off threshold 0\.02"):
        activity.episodes_from_fractions(df, classes=["lava"], on=0.01, off=0.02)


def test_observability_reasons(rng):
    ds, _ = synthetic_camera(rng, days=3, n_episodes=2)
    reasons = activity.observability_reasons(ds)
    night = (ds["brightness"].values < 0.1) & (ds["status"].values == 1)
    assert (reasons.values[night] == activity.DARK).all()
    assert (reasons.values[ds["status"].values == 0] == activity.NO_FRAME).all()
    assert (reasons.values[ds["status"].values == 2] == activity.UNREADABLE).all()
    lit = (ds["status"].values == 1) & ~night
    cloudy = lit & (ds["fraction"].sel({"class": "land"}).values < 0.1)
    assert cloudy.any()
    assert (reasons.values[cloudy] == activity.OBSTRUCTED).all()
    assert reasons.attrs["land_baseline"] == pytest.approx(0.31, abs=0.02)
    obs = activity.observability(ds)
    assert obs.dtype == bool
    assert (obs.values == (reasons.values == 0)).all()


def test_emission_in_front_of_land_is_not_an_obstruction():
    time = pd.date_range("2024-01-01 10:00", periods=4, freq=STEP)
    frac = np.zeros((4, 6), dtype=np.float32)
    frac[:, 0] = 0.7
    frac[:, 1] = [0.3, 0.3, 0.02, 0.02]
    frac[2, 3] = 0.28  # ash covers the land: a view, not a cloud
    ds = xr.Dataset(
        {
            "fraction": (("time", "class"), frac),
            "status": ("time", np.ones(4, np.uint8)),
            "brightness": ("time", np.full(4, 0.5, np.float32)),
        },
        coords={"time": time.values, "class": list(MODEL_CLASSES)},
    )
    reasons = activity.observability_reasons(ds, baseline=0.3)
    assert reasons.values.tolist() == [0, 0, 0, activity.OBSTRUCTED]


def test_bin_activity_keeps_unobservable_distinct_from_quiet(rng):
    ds, _ = synthetic_camera(rng, days=4, n_episodes=4)
    act = activity.bin_activity(ds, "1h")
    assert act.sizes["time"] == 4 * 24
    assert list(act["class"].values) == list(activity.ACTIVITY_CLASSES)
    night_bins = pd.DatetimeIndex(act["time"].values).hour < 6
    assert (act["observable_frames"].values[night_bins] == 0).all()
    assert np.isnan(act["present_share"].values[night_bins]).all()
    day = act["observable_frames"].values == 6
    assert day.any()
    assert np.isfinite(act["present_share"].values[day]).all()
    # The hourly numbers equal a direct computation on one bin.
    obs = activity.observability(ds).values
    frac = activity.activity_fractions(ds, obs)
    k = int(np.flatnonzero(day)[3])
    t0 = pd.Timestamp(act["time"].values[k])
    block = frac.loc[t0 : t0 + pd.Timedelta("50min"), "any_emission"]
    assert act["mean_fraction"].sel(time=t0, **{"class": "any_emission"}).item() == pytest.approx(
        block.mean(), rel=1e-5
    )
    assert act["present_share"].sel(time=t0, **{"class": "any_emission"}).item() == pytest.approx(
        (block >= 0.02).mean()
    )
    daily = activity.bin_activity(ds, "1D")
    assert daily.sizes["time"] == 4
    assert daily["slots"].values.tolist() == [144] * 4
    table = activity.activity_table(daily)
    assert "present_share_any_emission" in table.columns
    assert str(table["time"].dt.tz) == "UTC"


def test_catalogue_bundles_everything(rng):
    ds, _ = synthetic_camera(rng, days=2, n_episodes=3)
    out = activity.catalogue(ds, camera="X")
    assert set(out) == {"reasons", "observable", "episodes", "activity_1h", "activity_1d"}
    assert (out["episodes"]["camera"] == "X").all()


def test_max_blind_splits_at_long_unobservable_stretches():
    time = pd.date_range("2024-01-01 06:00", periods=40, freq=STEP)
    v = np.full(40, 0.1)
    v[10:30] = np.nan  # 200 min blind, active on both sides
    df = pd.DataFrame({"lava": v}, index=time)
    assert len(activity.episodes_from_fractions(df, classes=["lava"])) == 1
    eps = activity.episodes_from_fractions(df, classes=["lava"], max_blind="2h")
    assert len(eps) == 2
    assert eps["end_uncertainty_s"].iloc[0] == pytest.approx(21 * 600 / 2)


def test_per_class_thresholds():
    time = pd.date_range("2024-01-01 08:00", periods=20, freq=STEP)
    lava = np.zeros(20)
    lava[5:12] = 0.005  # small glowing flow: below the default 0.02
    df = pd.DataFrame({"lava": lava, "ash_emissions": lava}, index=time)
    assert activity.episodes_from_fractions(df, classes=["lava"]).empty
    eps = activity.episodes_from_fractions(df, on={"lava": 0.003})
    assert set(eps["class"]) == {"lava"}  # any_emission = 0.01 stays below its 0.02
    assert eps.loc[eps["class"] == "lava", "n_frames"].item() == 7
    with pytest.raises(ValueError, match=r"unknown class\(es\) \['lave'\]"):
        activity.episodes_from_fractions(df, on={"lave": 0.003})
    with pytest.raises(ValueError, match=r"below off threshold 0\.01 for lava"):
        activity.episodes_from_fractions(df, on={"lava": 0.003}, off={"lava": 0.01})
    act = activity.bin_fractions(df.assign(any_emission=2 * lava), "1h", present={"lava": 0.003})
    assert act["present_threshold"].sel({"class": "lava"}).item() == 0.003
    assert act["present_share"].sel({"class": "lava"}).max().item() == 1.0

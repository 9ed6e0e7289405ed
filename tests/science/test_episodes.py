"""Emission episodes: detection against a known truth, gaps, blind stretches, thresholds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plumenet.classes import EMISSION_CLASSES
from plumenet.science import activity, episodes
from tests.helpers.catalogue import STEP, synthetic_camera


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
    found = episodes.find_episodes(ds, classes=EMISSION_CLASSES)
    found = found.reset_index(drop=True)
    precision, recall, errors = _match(found, truth)
    assert precision >= 0.9, found
    assert recall >= 0.9
    assert np.mean(errors <= STEP.total_seconds()) >= 0.9
    assert list(found.columns) == list(episodes.EPISODE_COLUMNS)
    assert (found["camera"] == "TST.01").all()
    assert found["episode"].is_unique


def test_cloud_shorter_than_gap_keeps_one_episode():
    time = pd.date_range("2024-01-01 08:00", periods=60, freq=STEP)
    v = np.zeros(60)
    v[10:40] = 0.1
    v[20:26] = np.nan  # one hour of cloud inside the episode
    df = pd.DataFrame({"ash_emissions": v}, index=time)
    eps = episodes.episodes_from_fractions(df, classes=["ash_emissions"], max_gap="30min")
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
    eps = episodes.episodes_from_fractions(df, classes=["lava"], max_gap="30min")
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
    ep = episodes.episodes_from_fractions(df, classes=["lava"]).iloc[0]
    assert ep["onset"] == pd.Timestamp(time[10], tz="UTC")
    assert ep["onset_uncertainty_s"] == pytest.approx(7 * 600 / 2)


def test_hysteresis_and_min_duration():
    time = pd.date_range("2024-01-01", periods=12, freq=STEP)
    v = np.array([0, 0.03, 0.015, 0.015, 0.03, 0.005, 0, 0.03, 0, 0, 0, 0])
    df = pd.DataFrame({"lava": v}, index=time)
    eps = episodes.episodes_from_fractions(
        df, classes=["lava"], on=0.02, off=0.01, max_gap="0s", min_duration="10min"
    )
    # frames 1-4 stay on through 0.015 (between off and on); frame 7 alone is too short
    assert len(eps) == 1
    assert eps["n_frames"].iloc[0] == 4
    assert eps["peak_fraction"].iloc[0] == pytest.approx(0.03)
    with pytest.raises(ValueError, match=r"on threshold 0\.01 is below off threshold 0\.02"):
        episodes.episodes_from_fractions(df, classes=["lava"], on=0.01, off=0.02)


def test_max_blind_splits_at_long_unobservable_stretches():
    time = pd.date_range("2024-01-01 06:00", periods=40, freq=STEP)
    v = np.full(40, 0.1)
    v[10:30] = np.nan  # 200 min blind, active on both sides
    df = pd.DataFrame({"lava": v}, index=time)
    eps = episodes.episodes_from_fractions(df, classes=["lava"])  # default max_blind 3h
    assert len(eps) == 2
    assert eps["end_uncertainty_s"].iloc[0] == pytest.approx(21 * 600 / 2)
    assert len(episodes.episodes_from_fractions(df, classes=["lava"], max_blind="4h")) == 1
    assert len(episodes.episodes_from_fractions(df, classes=["lava"], max_blind="none")) == 1
    assert len(episodes.episodes_from_fractions(df, classes=["lava"], max_blind=None)) == 1


def test_hysteresis_state_does_not_carry_across_a_night():
    """Active at dusk, then only between off and on at dawn: no dawn episode.

    The night ends the dusk episode; the morning's 0.015 never reached ``on`` (0.02),
    so the scene seen at first light is not "still active" from the evening.
    """
    time = pd.date_range("2024-03-01 12:00", periods=180, freq=STEP)
    hours = (time - time[0]) / pd.Timedelta("1h")
    v = np.zeros(180)
    v[(hours >= 4) & (hours < 6)] = 0.05
    v[(hours >= 6) & (hours < 18)] = np.nan  # 12 h night
    v[(hours >= 18) & (hours < 21)] = 0.015
    df = pd.DataFrame({"any_emission": v}, index=time)
    eps = episodes.episodes_from_fractions(df, classes=["any_emission"], on=0.02, off=0.01)
    assert len(eps) == 1
    assert eps["peak_fraction"].iloc[0] == pytest.approx(0.05)
    # without max_blind the night does not count, and the state runs on through it
    merged = episodes.episodes_from_fractions(
        df, classes=["any_emission"], on=0.02, off=0.01, max_blind="none"
    )
    assert len(merged) == 1
    assert merged["end"].iloc[0] > pd.Timestamp("2024-03-02 06:00", tz="UTC")


def test_episode_at_dusk_and_at_dawn_stay_two_episodes():
    """Activity at last light and again at first light: the night in between ends one."""
    time = pd.date_range("2024-01-01 00:00", "2024-01-03 00:00", freq=STEP, inclusive="left")
    hour = time.hour + time.minute / 60
    v = np.where((hour >= 6) & (hour < 18), 0.0, np.nan)  # nights: unobservable
    dusk = (time >= "2024-01-01 16:30") & (time < "2024-01-01 18:00")
    dawn = (time >= "2024-01-02 06:00") & (time < "2024-01-02 07:30")
    v[dusk | dawn] = 0.1
    df = pd.DataFrame({"ash_emissions": v}, index=time)
    eps = episodes.episodes_from_fractions(df, classes=["ash_emissions"])
    assert len(eps) == 2
    truth_onsets = [
        pd.Timestamp("2024-01-01 16:30", tz="UTC"),
        pd.Timestamp("2024-01-02 06:00", tz="UTC"),
    ]
    assert eps["onset"].tolist() == truth_onsets
    assert eps["end"].tolist() == [
        pd.Timestamp("2024-01-01 17:50", tz="UTC"),
        pd.Timestamp("2024-01-02 07:20", tz="UTC"),
    ]
    # The second onset's bracket reaches back to the last frame before the night.
    assert eps["onset_uncertainty_s"].iloc[1] == pytest.approx(12 * 3600 / 2 + 300)
    merged = episodes.episodes_from_fractions(df, classes=["ash_emissions"], max_blind=None)
    assert len(merged) == 1  # the old behaviour, still available


def test_single_frame_spikes_go_before_gap_merging():
    """Two one-frame spikes 20 min apart are noise, not a 20-min episode."""
    time = pd.date_range("2024-01-01 08:00", periods=30, freq=STEP)
    v = np.zeros(30)
    v[[5, 7]] = 0.1  # max_gap 30 min would merge them into frames 5-7
    v[15:18] = 0.1  # a real three-frame episode
    df = pd.DataFrame({"lava": v}, index=time)
    eps = episodes.episodes_from_fractions(df, classes=["lava"], min_duration="10min")
    assert eps["onset"].tolist() == [pd.Timestamp(time[15], tz="UTC")]
    kept = episodes.episodes_from_fractions(df, classes=["lava"], min_duration="0s")
    assert len(kept) == 2  # with no minimum duration every frame counts


def test_onset_bracket_contains_the_true_onset(rng):
    """Onset - uncertainty*2 <= true onset <= onset, whatever the blind stretch before it."""
    for _ in range(50):
        time = pd.date_range("2024-01-01 06:00", periods=72, freq=STEP)
        true_on = int(rng.integers(20, 50))
        v = np.zeros(72)
        v[true_on : true_on + 10] = 0.1
        blind_len = int(rng.integers(0, 15))
        blind_start = true_on - blind_len + int(rng.integers(0, min(blind_len, 5) + 1))
        v[blind_start : blind_start + blind_len] = np.nan
        df = pd.DataFrame({"lava": v}, index=time)
        ep = episodes.episodes_from_fractions(df, classes=["lava"]).iloc[0]
        lo = ep["onset"] - pd.Timedelta(seconds=2 * ep["onset_uncertainty_s"])
        truth = pd.Timestamp(time[true_on], tz="UTC")
        assert lo < truth <= ep["onset"]


def test_per_class_thresholds():
    time = pd.date_range("2024-01-01 08:00", periods=20, freq=STEP)
    lava = np.zeros(20)
    lava[5:12] = 0.005  # small glowing flow: below the default 0.02
    df = pd.DataFrame({"lava": lava, "ash_emissions": lava}, index=time)
    assert episodes.episodes_from_fractions(df, classes=["lava"]).empty
    eps = episodes.episodes_from_fractions(df, on={"lava": 0.003})
    assert set(eps["class"]) == {"lava"}  # any_emission = 0.01 stays below its 0.02
    assert eps.loc[eps["class"] == "lava", "n_frames"].item() == 7
    with pytest.raises(ValueError, match=r"unknown class\(es\) \['lave'\]"):
        episodes.episodes_from_fractions(df, on={"lave": 0.003})
    with pytest.raises(ValueError, match=r"below off threshold 0\.01 for lava"):
        episodes.episodes_from_fractions(df, on={"lava": 0.003}, off={"lava": 0.01})
    act = activity.bin_fractions(df.assign(any_emission=2 * lava), "1h", present={"lava": 0.003})
    assert act["present_threshold"].sel({"class": "lava"}).item() == 0.003
    assert act["present_share"].sel({"class": "lava"}).max().item() == 1.0

"""Synthetic activity timelines: Poisson episodes, night, clouds and the cloudy interruption."""

from __future__ import annotations

import pandas as pd

from plumenet.classes import EMISSION_CLASSES
from plumenet.synthetic.timeline import make_episodes, make_timeline


def test_episodes_are_poisson_with_valid_classes():
    eps = make_episodes("2024-01-01", "2024-01-11", seed=4)
    assert list(eps.columns) == ["episode", "class", "onset", "end"]
    assert 10 <= len(eps) <= 70
    assert set(eps["class"]) <= set(EMISSION_CLASSES)
    assert (eps["end"] > eps["onset"]).all()
    dur = eps["end"] - eps["onset"]
    assert dur.max() <= pd.Timedelta("6h") and dur.median() >= pd.Timedelta("20min")
    assert eps["onset"].is_monotonic_increasing
    pd.testing.assert_frame_equal(eps, make_episodes("2024-01-01", "2024-01-11", seed=4))


def test_timeline_night_clouds_and_interruption():
    eps = pd.DataFrame(
        {
            "episode": [0],
            "class": ["eruption_column"],
            "onset": [pd.Timestamp("2024-03-01T10:00")],
            "end": [pd.Timestamp("2024-03-01T14:00")],
        }
    )
    tl = make_timeline("2024-03-01", "2024-03-02", "10min", 1, episodes=eps)
    assert len(tl) == 144 and tl.attrs["episodes"] is eps
    assert tl["cloud_cover"].between(0, 1).all()
    at = tl.set_index("time")
    assert bool(at.loc["2024-03-01T02:00", "night"]) and not bool(
        at.loc["2024-03-01T12:00", "night"]
    )
    inside = tl[(tl["time"] >= eps["onset"][0]) & (tl["time"] < eps["end"][0])]
    assert (inside["eruption_column"] > 0).all() and (inside["active"] == "0").all()
    assert inside["obstructed"].sum() >= 3  # a cloudy stretch interrupts the long episode
    outside = tl[tl["time"] < eps["onset"][0]]
    assert (outside["eruption_column"] == 0).all()
    nz = make_timeline("2024-03-01", "2024-03-02", "10min", 1, tz="Pacific/Auckland", episodes=eps)
    # 12:00 UTC is 01:00 NZDT
    assert bool(nz.set_index("time").loc["2024-03-01T12:00", "night"])

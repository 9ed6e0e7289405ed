"""The timeline figure: its panels, and the plume-height panel in metres or pixels."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.image import imread

from plumenet.science import activity, figures
from plumenet.science.observability import activity_fractions
from tests.helpers.catalogue import synthetic_camera


def _parts(ds):
    res = activity.catalogue(ds, camera="X", freqs=("1h",))
    fr = activity_fractions(ds, res["observable"].values)
    return fr, res["episodes"], res["heights"]


def test_timeline_has_a_height_panel_in_metres(rng, tmp_path):
    ds, _ = synthetic_camera(rng, days=4, n_episodes=8, plume=True)
    fr, episodes, heights = _parts(ds)
    fig = figures.timeline_figure(fr, episodes, heights=heights, title="X")
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["fraction of view", "plume top above vent (m)", "episodes"]
    lines = {line.get_label(): line for line in fig.axes[1].get_lines()}
    assert set(lines) == {"any_emission", "eruption_column"}
    np.testing.assert_array_equal(
        lines["eruption_column"].get_ydata(), heights["height_m_eruption_column"].to_numpy()
    )
    assert not fig.axes[1].yaxis_inverted()
    rsam = pd.Series(
        1.0 + rng.random(96), index=pd.date_range(ds["time"].values[0], periods=96, freq="1h")
    )
    with_rsam = figures.timeline_figure(fr, episodes, heights=heights, rsam=rsam)
    assert [ax.get_ylabel() for ax in with_rsam.axes][-1] == "RSAM" and len(with_rsam.axes) == 4
    path = figures.plot_timeline(fr, episodes, tmp_path / "t.png", heights=heights, title="X")
    assert imread(path).shape[0] == 110 * (2.2 * 3 + 0.6)  # three panels tall at 110 dpi


def test_timeline_height_panel_in_pixels_without_geometry_and_none_without_heights(rng):
    ds, _ = synthetic_camera(rng, days=2, n_episodes=4, plume=True)
    ds["plume_height_m"][:] = np.nan
    fr, episodes, heights = _parts(ds)
    fig = figures.timeline_figure(fr, episodes, heights=heights)
    assert fig.axes[1].get_ylabel() == "plume top row (px)"
    assert fig.axes[1].yaxis_inverted()  # row 0 is the frame's top: higher plumes plot higher
    old, _ = synthetic_camera(rng, days=2, n_episodes=4)
    fr, episodes, heights = _parts(old)
    assert len(figures.timeline_figure(fr, episodes, heights=heights).axes) == 2
    assert len(figures.timeline_figure(fr, episodes).axes) == 2


def test_decimated_height_panel_keeps_the_peaks(rng):
    ds, _ = synthetic_camera(rng, days=4, n_episodes=8, plume=True)
    fr, episodes, heights = _parts(ds)
    fig = figures.timeline_figure(fr, episodes, heights=heights, max_points=100)
    shown = fig.axes[1].get_lines()[0].get_ydata()
    assert len(shown) <= 100
    assert np.nanmax(shown) == np.nanmax(heights["height_m_any_emission"].to_numpy())

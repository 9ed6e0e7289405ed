"""Binned activity and the bundled catalogue: unobservable stays distinct from quiet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plumenet.science import activity, observability
from tests.helpers.catalogue import synthetic_camera


def test_bin_activity_keeps_unobservable_distinct_from_quiet(rng):
    ds, _ = synthetic_camera(rng, days=4, n_episodes=4)
    act = activity.bin_activity(ds, "1h")
    assert act.sizes["time"] == 4 * 24
    assert list(act["class"].values) == list(observability.ACTIVITY_CLASSES)
    night_bins = pd.DatetimeIndex(act["time"].values).hour < 6
    assert (act["observable_frames"].values[night_bins] == 0).all()
    assert np.isnan(act["present_share"].values[night_bins]).all()
    day = act["observable_frames"].values == 6
    assert day.any()
    assert np.isfinite(act["present_share"].values[day]).all()
    # The hourly numbers equal a direct computation on one bin.
    obs = observability.observability(ds).values
    frac = observability.activity_fractions(ds, obs)
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
    assert set(out) == {
        "reasons", "observable", "episodes", "heights", "activity_1h", "activity_1d"
    }  # fmt: skip
    assert (out["episodes"]["camera"] == "X").all()

"""Observability: reason codes per frame, the land baseline, emissions in front of land."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from plumenet.classes import MODEL_CLASSES
from plumenet.science import observability
from tests.helpers.catalogue import STEP, synthetic_camera


def test_observability_reasons(rng):
    ds, _ = synthetic_camera(rng, days=3, n_episodes=2)
    reasons = observability.observability_reasons(ds)
    night = (ds["brightness"].values < 0.1) & (ds["status"].values == 1)
    assert (reasons.values[night] == observability.DARK).all()
    assert (reasons.values[ds["status"].values == 0] == observability.NO_FRAME).all()
    assert (reasons.values[ds["status"].values == 2] == observability.UNREADABLE).all()
    lit = (ds["status"].values == 1) & ~night
    cloudy = lit & (ds["fraction"].sel({"class": "land"}).values < 0.1)
    assert cloudy.any()
    assert (reasons.values[cloudy] == observability.OBSTRUCTED).all()
    assert reasons.attrs["land_baseline"] == pytest.approx(0.31, abs=0.02)
    obs = observability.observability(ds)
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
    reasons = observability.observability_reasons(ds, baseline=0.3)
    assert reasons.values.tolist() == [0, 0, 0, observability.OBSTRUCTED]

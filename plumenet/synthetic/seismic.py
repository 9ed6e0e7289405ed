"""Synthetic seismic data that goes with a synthetic archive's episodes: RSAM and events.

:func:`make_rsam` gives an RSAM series every :data:`RSAM_STEP` (10 min) whose response to each
episode starts a given lag BEFORE its visible onset (seismic leads emissions);
:func:`make_events` gives a catalogue of events (``time, magnitude``) clustered before the
onsets; :func:`events_quakeml` writes that catalogue as QuakeML bytes (obspy). Times are
naive UTC; the functions are pure in their arguments and seed.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from obspy import UTCDateTime
from obspy.core.event import Catalog, Event, Magnitude, Origin

from plumenet.synthetic.timeline import ar1, episode_rows

#: Step of the synthetic RSAM series.
RSAM_STEP = pd.Timedelta("10min")

_RSAM_AMPLITUDE = {
    "eruption_column": 600.0,
    "ash_emissions": 350.0,
    "non_ash_emissions": 120.0,
    "lava": 250.0,
}
_SITE = (-37.52, 177.18)  # where the synthetic events are located (Whakaari-like)


def make_rsam(
    episodes: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    seed: int,
    lag: pd.Timedelta,
) -> pd.DataFrame:
    """RSAM every 10 min: lognormal background tremor plus a response to each episode that
    starts ``lag`` before its visible onset (seismic leads emissions) and ramps over 20 min."""
    rng = np.random.default_rng([seed, 5])
    times = pd.date_range(start.floor(RSAM_STEP), end, freq=RSAM_STEP, inclusive="left")
    phi = math.exp(-RSAM_STEP / pd.Timedelta("2h"))
    value = 100.0 * np.exp(ar1(rng, len(times), phi, 0.25))
    ramp = pd.Timedelta("20min")
    shifted = times + lag  # the response at t follows the visible state at t + lag
    for _ep, cls, onset, stop in episode_rows(episodes):
        amp = _RSAM_AMPLITUDE[cls] * float(rng.uniform(0.7, 1.3))
        up = ((shifted - onset) / ramp).to_numpy(dtype=float)
        down = ((stop - shifted) / ramp).to_numpy(dtype=float)
        value += amp * np.clip(np.minimum(up + 0.5, down + 0.5), 0.0, 1.0)
    return pd.DataFrame({"time": times, "value": np.round(value, 3)})


def make_events(
    episodes: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, seed: int
) -> pd.DataFrame:
    """Seismic events ``time, magnitude``: a background Poisson rate (3/day) plus 2-6 events
    in the 20 min before each episode onset; Gutenberg-Richter magnitudes (b = 1)."""
    rng = np.random.default_rng([seed, 6])
    span = end - start
    n_bg = int(rng.poisson(3.0 * span / pd.Timedelta("1D")))
    times = [start + span * float(u) for u in rng.random(n_bg)]
    mags = list(0.5 + rng.exponential(1.0 / math.log(10), n_bg))
    for _ep, _cls, onset, _end in episode_rows(episodes):
        k = int(rng.integers(2, 7))
        for _ in range(k):
            t = onset - pd.Timedelta(minutes=float(rng.uniform(0.0, 20.0)))
            if start <= t < end:
                times.append(t)
                mags.append(1.0 + rng.exponential(1.0 / math.log(10)))
    frame = pd.DataFrame(
        {"time": pd.to_datetime(times).floor("ms"), "magnitude": np.round(mags, 1)}
    )
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def events_quakeml(events: pd.DataFrame) -> bytes:
    """The events as QuakeML (obspy Catalog), located at the synthetic volcano."""

    catalog = Catalog()
    for row in events.itertuples(index=False):
        t = UTCDateTime(pd.Timestamp(row.time).to_pydatetime())
        origin = Origin(time=t, latitude=_SITE[0], longitude=_SITE[1], depth=3000.0)
        mag = Magnitude(mag=float(row.magnitude), magnitude_type="ML")
        event = Event(origins=[origin], magnitudes=[mag])
        event.preferred_origin_id = origin.resource_id
        event.preferred_magnitude_id = mag.resource_id
        catalog.append(event)
    buf = io.BytesIO()
    catalog.write(buf, format="QUAKEML")
    return buf.getvalue()

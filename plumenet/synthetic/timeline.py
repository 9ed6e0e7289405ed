"""The activity timeline behind a synthetic archive: eruptive episodes and frame slots.

:func:`make_episodes` draws eruptive episodes (``episode, class, onset, end``, model class
names) as a Poisson process over a window; :func:`make_timeline` turns them into one row per
frame slot: night by local hour, slowly varying cloud cover and wind, obstruction, the
intensity of each emission class and the active episode ids. All times are naive UTC; a
window's ``end`` is exclusive. Pure functions of their arguments and seed (numpy, pandas).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

import numpy as np
import pandas as pd

from plumenet.classes import EMISSION_CLASSES
from plumenet.errors import ConfigError
from plumenet.timeutil import naive_utc, parse_duration_text

_CLASS_PROB = {
    "eruption_column": 0.25,
    "ash_emissions": 0.3,
    "non_ash_emissions": 0.3,
    "lava": 0.15,
}
_COMPANION = {
    "eruption_column": ("ash_emissions",),
    "ash_emissions": ("eruption_column", "non_ash_emissions"),
    "non_ash_emissions": ("lava", "ash_emissions"),
    "lava": ("non_ash_emissions",),
}


def parse_cadence(cadence: str | pd.Timedelta, what: str = "cadence") -> pd.Timedelta:
    """A positive duration (``10min``, ``1h``, a Timedelta) as a ConfigError naming ``what``
    otherwise; a bare number is refused (pandas: nanoseconds, and ``10`` would make 8.6e12
    frames a day)."""
    try:
        return parse_duration_text(cadence, what)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def parse_window(
    start: str | datetime | pd.Timestamp, end: str | datetime | pd.Timestamp
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``(start, end)`` as naive UTC timestamps; an empty or reversed window is a ConfigError."""
    t0, t1 = naive_utc(start), naive_utc(end)
    if t1 <= t0:
        raise ConfigError(f"end {t1} is not after start {t0}; give an end later than the start")
    return t0, t1


def make_episodes(
    start: str | datetime | pd.Timestamp,
    end: str | datetime | pd.Timestamp,
    seed: int,
    *,
    rate_per_day: float = 3.0,
) -> pd.DataFrame:
    """Eruptive episodes as a Poisson process: ``episode, class, onset, end`` (naive UTC).

    Durations are log-uniform between 20 min and 6 h; about a third of the episodes bring a
    companion of another class that overlaps them. Ends are clipped to the window end; a
    window of an hour or more always holds at least one episode.
    """
    t0, t1 = parse_window(start, end)
    rng = np.random.default_rng([seed, 7])
    span_days = (t1 - t0) / pd.Timedelta("1D")
    count = int(rng.poisson(rate_per_day * span_days))
    if count == 0 and t1 - t0 >= pd.Timedelta("1h"):
        count = 1
    classes = list(_CLASS_PROB)
    probs = np.array([_CLASS_PROB[c] for c in classes])
    rows: list[tuple[str, pd.Timestamp, pd.Timestamp]] = []
    for _ in range(count):
        onset = t0 + (t1 - t0) * float(rng.random())
        duration = pd.Timedelta(minutes=float(np.exp(rng.uniform(np.log(20), np.log(360)))))
        cls = classes[int(rng.choice(len(classes), p=probs))]
        rows.append((cls, onset, onset + duration))
        if rng.random() < 0.35:
            options = _COMPANION[cls]
            other = options[int(rng.integers(len(options)))]
            c_onset = onset + duration * float(rng.uniform(0.0, 0.5))
            c_dur = max(duration * float(rng.uniform(0.3, 1.0)), pd.Timedelta("20min"))
            rows.append((other, c_onset, c_onset + c_dur))
    frame = pd.DataFrame(
        {
            "class": pd.Series([r[0] for r in rows], dtype=object),
            "onset": pd.to_datetime(pd.Series([r[1] for r in rows], dtype="datetime64[ns]")),
            "end": pd.to_datetime(pd.Series([r[2] for r in rows], dtype="datetime64[ns]")),
        }
    )
    frame["onset"] = frame["onset"].dt.floor("s")
    frame["end"] = frame["end"].clip(upper=t1).dt.floor("s")
    frame = frame[frame["end"] > frame["onset"]]
    frame = frame.sort_values("onset", kind="stable").reset_index(drop=True)
    frame.insert(0, "episode", np.arange(len(frame), dtype=np.int64))
    return frame


def episode_rows(episodes: pd.DataFrame) -> Iterable[tuple[int, str, pd.Timestamp, pd.Timestamp]]:
    """(episode, class, onset, end) per episode ("class" is a keyword, so no itertuples)."""
    for ep, cls, onset, stop in zip(
        episodes["episode"], episodes["class"], episodes["onset"], episodes["end"], strict=True
    ):
        yield int(ep), str(cls), pd.Timestamp(onset), pd.Timestamp(stop)


def ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """Stationary AR(1) series with marginal standard deviation ``sd``."""
    out = np.empty(n)
    eps = rng.standard_normal(n) * sd * math.sqrt(max(1.0 - phi * phi, 1e-9))
    value = rng.standard_normal() * sd
    for i in range(n):
        value = phi * value + eps[i]
        out[i] = value
    return out


def _intensity(times: pd.DatetimeIndex, onset: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """0 outside the episode; inside, ramps 0.35 -> 1 -> 0.35 over the first/last 15 %."""
    t = ((times - onset) / (end - onset)).to_numpy(dtype=float)
    inside = (t >= 0) & (t < 1)
    ramp = np.clip(np.minimum(t, 1 - t) / 0.15, 0.0, 1.0)
    return np.where(inside, 0.35 + 0.65 * ramp, 0.0)


def make_timeline(
    start: str | datetime | pd.Timestamp,
    end: str | datetime | pd.Timestamp,
    cadence: str | pd.Timedelta,
    seed: int,
    *,
    tz: str = "UTC",
    episodes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per frame slot: what the camera sees at that time.

    Columns: ``time`` (naive UTC), ``night`` (by local hour in ``tz``: before 06 or from 19),
    ``cloud_cover`` (0-1, slowly varying AR process), ``obstructed`` (cloud hides the whole
    view), ``wind`` (-1/+1), one intensity column per emission class (0 = inactive) and
    ``active`` (comma-separated episode ids). The episodes table (``make_episodes``) is in
    ``attrs["episodes"]``. The longest episode of 2 h or more is interrupted by a cloudy
    stretch of 40-60 min, so catalogues meet a gap inside an episode.
    """
    t0, t1 = parse_window(start, end)
    step = parse_cadence(cadence)
    if episodes is None:
        episodes = make_episodes(t0, t1, seed)
    times = pd.date_range(t0, t1, freq=step, inclusive="left")
    n = len(times)
    rng = np.random.default_rng([seed, 11])
    phi_cloud = math.exp(-step / pd.Timedelta("4h"))
    cover = 1.0 / (1.0 + np.exp(-(ar1(rng, n, phi_cloud, 1.3) - 0.7)))
    phi_wind = math.exp(-step / pd.Timedelta("12h"))
    wind = np.where(ar1(rng, n, phi_wind, 1.0) >= 0, 1, -1)
    try:
        local = times.tz_localize("UTC").tz_convert(tz)
    except (KeyError, ValueError) as err:
        raise ConfigError(f"time zone {tz!r} is unknown; use an IANA name such as UTC") from err
    hour = np.asarray(local.hour)
    night = (hour < 6) | (hour >= 19)
    obstructed = cover > 0.97

    durations = episodes["end"] - episodes["onset"]
    long_ones = episodes[durations >= pd.Timedelta("2h")]
    if len(long_ones):
        ep = long_ones.loc[durations[long_ones.index].idxmax()]
        mid = ep["onset"] + (ep["end"] - ep["onset"]) * float(rng.uniform(0.35, 0.55))
        gap = pd.Timedelta(minutes=float(rng.uniform(40, 60)))
        stretch = (times >= mid) & (times < mid + gap)
        obstructed = obstructed | stretch
        cover = np.where(stretch, np.maximum(cover, 0.95), cover)

    table = pd.DataFrame(
        {
            "time": times,
            "night": night,
            "cloud_cover": np.round(cover, 4),
            "obstructed": obstructed,
            "wind": wind,
        }
    )
    active: list[list[str]] = [[] for _ in range(n)]
    for cls in EMISSION_CLASSES:
        table[cls] = 0.0
    for ep, cls, onset, stop in episode_rows(episodes):
        inten = _intensity(times, onset, stop)
        table[cls] = np.maximum(table[cls].to_numpy(), inten)
        for i in np.flatnonzero(inten > 0):
            active[i].append(str(ep))
    table["active"] = [",".join(a) for a in active]
    table.attrs["episodes"] = episodes
    return table

"""Synthetic camera archives with ground truth: timelines, frames in real layouts, seismic data.

``write_archive`` renders one camera's frames (``plumenet.synthetic.scenes``) from a timeline of
eruptive episodes, writes them as JPEG files at the paths of a real archive layout
(``storage.layouts``) to any fsspec URL, and writes the ground truth beside them under
``<url>/truth/`` (or ``truth_url``):

- ``episodes.csv``: ``episode, class, onset, end`` (model class names; times UTC)
- ``fractions.csv``: one row per written file: ``time`` (frame time), ``slot``, ``path``
  (relative to the archive root), ``url``, the six model-class fractions of the true label
  resized to 518x518 (NaN for broken files), ``night``, ``cloud_cover``, ``obstructed``,
  ``active`` (episode ids), ``broken`` (kind or empty)
- ``rsam.csv``: ``time, value`` every 10 min; it rises ``rsam_lag`` BEFORE each visible onset
- ``events.csv`` (``time, magnitude``) and ``events.xml`` (the same events as QuakeML)
- ``truth.json``: layout, template, fields, cadence, start, end, seed, ``rsam_lag_s``, counts
  and the list of broken files with their kind

All times in the tables are naive timestamps in UTC. ``end`` is exclusive.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import zlib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from plumenet import timeutil
from plumenet.classes import EMISSION_CLASSES, LABEL_CLASSES, LABEL_TO_MODEL_INDEX, MODEL_CLASSES
from plumenet.errors import ConfigError
from plumenet.synthetic.scenes import SceneSpec, random_scene_spec, render_scene
from storage.layouts import BUILTIN_TEMPLATES, format_path, resolve_template, template_fields

logger = logging.getLogger(__name__)

#: Kinds of broken files ``write_archive(broken=N)`` plants, in planting order.
BROKEN_KINDS: tuple[str, ...] = ("truncated", "empty", "not_image", "misnamed")
#: Side of the square the fractions in ``fractions.csv`` are measured at (the model input).
FRACTION_SIZE = 518
#: Step of the synthetic RSAM series.
RSAM_STEP = pd.Timedelta("10min")

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
_RSAM_AMPLITUDE = {
    "eruption_column": 600.0,
    "ash_emissions": 350.0,
    "non_ash_emissions": 120.0,
    "lava": 250.0,
}
_SITE = (-37.52, 177.18)  # where the synthetic events are located (Whakaari-like)
_BATCH = 64


@dataclass
class ArchiveTruth:
    """What ``write_archive`` wrote and the ground truth to compare results with."""

    url: str
    layout: str
    template: str
    fields: dict[str, str]
    episodes: pd.DataFrame
    fractions: pd.DataFrame
    rsam: pd.DataFrame
    events: pd.DataFrame
    rsam_lag_s: float
    broken: list[tuple[str, str]] = field(default_factory=list)
    truth_url: str = ""
    camera: str = "SYN"
    cadence: str = "10min"
    tz: str = "UTC"


# --------------------------------------------------------------------------- times


def to_utc(value: str | datetime | pd.Timestamp) -> pd.Timestamp:
    """A naive UTC timestamp (the truth tables' convention); naive input is taken as UTC."""
    return timeutil.to_utc(value).tz_localize(None)


def _cadence(cadence: str | pd.Timedelta) -> pd.Timedelta:
    try:
        step = pd.Timedelta(cadence)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"cadence {cadence!r} is not a duration; use e.g. 10min or 1h") from err
    if step <= pd.Timedelta(0):
        raise ConfigError(f"cadence {cadence!r} must be positive; use e.g. 10min")
    return step


def _window(
    start: str | datetime | pd.Timestamp, end: str | datetime | pd.Timestamp
) -> tuple[pd.Timestamp, pd.Timestamp]:
    t0, t1 = to_utc(start), to_utc(end)
    if t1 <= t0:
        raise ConfigError(f"end {t1} is not after start {t0}; give an end later than the start")
    return t0, t1


# --------------------------------------------------------------------------- timeline


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
    t0, t1 = _window(start, end)
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


def _rows(episodes: pd.DataFrame) -> Iterable[tuple[int, str, pd.Timestamp, pd.Timestamp]]:
    """(episode, class, onset, end) per episode ("class" is a keyword, so no itertuples)."""
    for ep, cls, onset, stop in zip(
        episodes["episode"], episodes["class"], episodes["onset"], episodes["end"], strict=True
    ):
        yield int(ep), str(cls), pd.Timestamp(onset), pd.Timestamp(stop)


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
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
    t0, t1 = _window(start, end)
    step = _cadence(cadence)
    if episodes is None:
        episodes = make_episodes(t0, t1, seed)
    times = pd.date_range(t0, t1, freq=step, inclusive="left")
    n = len(times)
    rng = np.random.default_rng([seed, 11])
    phi_cloud = math.exp(-step / pd.Timedelta("4h"))
    cover = 1.0 / (1.0 + np.exp(-(_ar1(rng, n, phi_cloud, 1.3) - 0.7)))
    phi_wind = math.exp(-step / pd.Timedelta("12h"))
    wind = np.where(_ar1(rng, n, phi_wind, 1.0) >= 0, 1, -1)
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
    for ep, cls, onset, stop in _rows(episodes):
        inten = _intensity(times, onset, stop)
        table[cls] = np.maximum(table[cls].to_numpy(), inten)
        for i in np.flatnonzero(inten > 0):
            active[i].append(str(ep))
    table["active"] = [",".join(a) for a in active]
    table.attrs["episodes"] = episodes
    return table


# --------------------------------------------------------------------------- frames


def _episode_variants(episodes: pd.DataFrame, seed: int) -> dict[int, set[str]]:
    """Label-level look of each episode, fixed for its duration (gas type, lava kind...)."""
    out: dict[int, set[str]] = {}
    for ep, cls, _onset, _end in _rows(episodes):
        rng = np.random.default_rng([seed, 3, ep])
        if cls == "eruption_column":
            names = {"eruption_column"}
        elif cls == "ash_emissions":
            names = {"eruption_cloud"} | ({"pyroclastic_flow"} if rng.random() < 0.25 else set())
        elif cls == "non_ash_emissions":
            names = {"low_temperature_gas" if rng.random() < 0.6 else "high_temperature_gas"}
        else:
            names = {"lava_flow" if rng.random() < 0.6 else "lava_fountain"}
        out[ep] = names
    return out


def _frame_spec(
    slot: pd.Series,
    index: int,
    seed: int,
    view_seed: int,
    size: tuple[int, int],
    variants: dict[int, set[str]],
) -> SceneSpec:
    """The scene of one slot: the camera's fixed view, the slot's weather and activity."""
    names: set[str] = set()
    for ep in filter(None, str(slot["active"]).split(",")):
        names |= variants[int(ep)]
    if "low_temperature_gas" in names and "high_temperature_gas" in names:
        names.discard("high_temperature_gas")
    if "lava_flow" in names and "lava_fountain" in names:
        names.discard("lava_fountain")
    rng = np.random.default_rng([seed, 1, index])
    spec = random_scene_spec(
        rng,
        size=size,
        view_seed=view_seed,
        activity=names,
        night=bool(slot["night"]),
        cloud_cover=float(slot["cloud_cover"]),
    )
    wind = int(slot["wind"])
    changes: dict[str, Any] = {"wind": wind}
    if spec.column is not None:
        k = 0.35 + 0.65 * float(slot["eruption_column"])
        changes["column"] = replace(
            spec.column, height=spec.column.height * k, lean=abs(spec.column.lean) * wind
        )
    if spec.ash_cloud is not None:
        k = 0.4 + 0.6 * float(slot["ash_emissions"])
        changes["ash_cloud"] = replace(spec.ash_cloud, length=spec.ash_cloud.length * k)
    if spec.lava is not None:
        k = 0.5 + 0.5 * float(slot["lava"])
        changes["lava"] = replace(spec.lava, length=spec.lava.length * k)
    if bool(slot["obstructed"]):
        changes["fog"] = float(rng.uniform(0.92, 1.0))
    return replace(spec, **changes)


def _label_fractions(label8: np.ndarray) -> np.ndarray:
    """Model-class fractions of a label mask after nearest resize to 518 x 518."""
    h, w = label8.shape
    rows = ((np.arange(FRACTION_SIZE) + 0.5) * h / FRACTION_SIZE).astype(np.int64)
    cols = ((np.arange(FRACTION_SIZE) + 0.5) * w / FRACTION_SIZE).astype(np.int64)
    counts8 = np.bincount(label8[rows][:, cols].ravel(), minlength=len(LABEL_CLASSES))
    counts = np.zeros(len(MODEL_CLASSES), dtype=np.int64)
    np.add.at(counts, LABEL_TO_MODEL_INDEX, counts8)
    return counts / (FRACTION_SIZE * FRACTION_SIZE)


def _jpeg(rgb: np.ndarray, when: pd.Timestamp, quality: int = 85) -> bytes:
    """JPEG bytes with EXIF DateTimeOriginal / OffsetTimeOriginal (UTC)."""
    from PIL import Image

    img = Image.fromarray(rgb)
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
    sub[0x9011] = "+00:00"  # OffsetTimeOriginal
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, exif=exif)
    return buf.getvalue()


def _broken_bytes(kind: str, good: bytes, rng: np.random.Generator) -> bytes:
    if kind == "truncated":
        return good[: max(len(good) // 3, 16)]
    if kind == "empty":
        return b""
    if kind == "not_image":
        return b"<html><body>503 Service Unavailable</body></html>\n" + rng.bytes(64)
    return good  # misnamed: a good image under a name the template does not match


def _misnamed(path: str) -> str:
    stem = path[: -len(".jpg")] if path.endswith(".jpg") else path
    return stem + ".jpeg.tmp"


def _default_fields(template: str, camera: str) -> dict[str, str]:
    site, _, view = camera.partition(".")
    known = {"SITE": site, "VC": view or "01", "CAM": camera}
    return {
        name: known[name] for name in template_fields(template) if name in known and name.isupper()
    }


# --------------------------------------------------------------------------- seismic


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
    value = 100.0 * np.exp(_ar1(rng, len(times), phi, 0.25))
    ramp = pd.Timedelta("20min")
    shifted = times + lag  # the response at t follows the visible state at t + lag
    for _ep, cls, onset, stop in _rows(episodes):
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
    for _ep, _cls, onset, _end in _rows(episodes):
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
    from obspy import UTCDateTime
    from obspy.core.event import Catalog, Event, Magnitude, Origin

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


# --------------------------------------------------------------------------- writing


def _csv(frame: pd.DataFrame, date_format: str = "%Y-%m-%dT%H:%M:%S") -> bytes:
    return frame.to_csv(index=False, date_format=date_format).encode()


def _pipe(fs: Any, files: Mapping[str, bytes]) -> None:
    """Write a batch of files; local file systems need their folders first."""
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        for parent in {p.rsplit("/", 1)[0] for p in files if "/" in p}:
            fs.makedirs(parent, exist_ok=True)
    fs.pipe(dict(files))


def _batches(items: Iterable[tuple[str, bytes]], size: int) -> Iterable[dict[str, bytes]]:
    batch: dict[str, bytes] = {}
    for path, data in items:
        batch[path] = data
        if len(batch) >= size:
            yield batch
            batch = {}
    if batch:
        yield batch


def write_archive(
    url: str,
    *,
    layout: str,
    start: str | datetime | pd.Timestamp,
    end: str | datetime | pd.Timestamp,
    cadence: str = "10min",
    seed: int = 0,
    broken: int = 0,
    storage_options: Mapping[str, Any] | None = None,
    size: tuple[int, int] = (640, 480),
    fields: Mapping[str, str] | None = None,
    camera: str = "SYN",
    tz: str = "UTC",
    rsam_lag: str | pd.Timedelta = "30min",
    missing: float = 0.02,
    jitter_s: int = 7,
    truth_url: str | None = None,
    workers: int | None = None,
) -> ArchiveTruth:
    """Render and write one camera's archive in ``layout`` over ``[start, end)``.

    ``layout``: ``geonet``, ``avo``, ``flat`` or a literal template. Path fields default from
    ``camera`` (``WIZ.01`` -> ``SITE=WIZ, VC=01``; ``CAM=camera``). Timestamps in paths are
    the frame time in ``tz``, 0 to ``jitter_s`` seconds after the slot; about ``missing`` of
    the slots (a fraction) have no frame. ``broken`` files are planted among the frames,
    cycling through :data:`BROKEN_KINDS`. The truth goes to ``truth_url`` (default ``<url>/truth``).
    """
    import fsspec

    template = resolve_template(layout)
    if "{" not in template:
        raise ConfigError(
            f"layout {layout!r} is neither a built-in layout ({', '.join(BUILTIN_TEMPLATES)}) "
            "nor a template with {year}... fields"
        )
    t0, t1 = _window(start, end)
    step = _cadence(cadence)
    lag = _cadence(rsam_lag)
    if broken < 0:
        raise ConfigError(f"broken={broken} must be 0 or more")
    width, height = int(size[0]), int(size[1])
    if width < 16 or height < 16:
        raise ConfigError(f"frame size {width}x{height} is too small; use e.g. 640x480")
    path_fields = dict(_default_fields(template, camera))
    path_fields.update(fields or {})
    try:
        format_path(template, datetime(2000, 1, 1), path_fields)
    except (ValueError, KeyError, IndexError) as err:
        raise ConfigError(f"layout {layout!r}: {err}") from err

    options = dict(storage_options or {})
    fs, root = fsspec.core.url_to_fs(url, **options)
    root = root.rstrip("/")
    truth_root_url = truth_url or f"{url.rstrip('/')}/truth"
    tfs, troot = fsspec.core.url_to_fs(truth_root_url, **options)
    troot = troot.rstrip("/")

    episodes = make_episodes(t0, t1, seed)
    timeline = make_timeline(t0, t1, step, seed, tz=tz, episodes=episodes)
    variants = _episode_variants(episodes, seed)
    # one fixed view per (seed, camera): every frame of the camera shows the same volcano
    view_seed = int(np.random.default_rng([seed, 2, zlib.crc32(camera.encode())]).integers(2**31))

    rng = np.random.default_rng([seed, 4])
    n_slots = len(timeline)
    keep = rng.random(n_slots) >= missing
    jitter = rng.integers(0, max(int(jitter_s), 0) + 1, n_slots)
    written = np.flatnonzero(keep)
    if broken > len(written):
        raise ConfigError(
            f"broken={broken} but only {len(written)} frames are written; lower --broken "
            "or widen --start/--end"
        )
    broken_at = {
        int(i): BROKEN_KINDS[k % len(BROKEN_KINDS)]
        for k, i in enumerate(sorted(rng.choice(written, size=broken, replace=False)))
    }

    def one(i: int) -> tuple[str, bytes, dict[str, Any]]:
        slot = timeline.iloc[i]
        when = slot["time"] + pd.Timedelta(seconds=int(jitter[i]))
        local = when.tz_localize("UTC").tz_convert(tz).tz_localize(None).to_pydatetime()
        rel = format_path(template, local, path_fields)
        spec = _frame_spec(slot, i, seed, view_seed, (width, height), variants)
        rgb, label = render_scene(spec)
        data = _jpeg(rgb, when)
        kind = broken_at.get(i, "")
        fractions = _label_fractions(label)
        if kind:
            data = _broken_bytes(kind, data, np.random.default_rng([seed, 9, i]))
            fractions = np.full(len(MODEL_CLASSES), np.nan)
            if kind == "misnamed":
                rel = _misnamed(rel)
        row = {
            "time": when,
            "slot": slot["time"],
            "path": rel,
            "url": f"{url.rstrip('/')}/{rel}",
            **{c: round(float(f), 6) for c, f in zip(MODEL_CLASSES, fractions, strict=True)},
            "night": bool(slot["night"]),
            "cloud_cover": float(slot["cloud_cover"]),
            "obstructed": bool(slot["obstructed"]),
            "active": slot["active"],
            "broken": kind,
        }
        return rel, data, row

    n_workers = workers or min(4, os.cpu_count() or 1)
    rows: list[dict[str, Any]] = []

    def produce() -> Iterable[tuple[str, bytes]]:
        if n_workers == 1:
            for rel, data, row in map(one, written.tolist()):
                rows.append(row)
                yield f"{root}/{rel}", data
            return
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for rel, data, row in pool.map(one, written.tolist()):
                rows.append(row)
                yield f"{root}/{rel}", data

    for batch in _batches(produce(), _BATCH):
        _pipe(fs, batch)
    fractions = pd.DataFrame(rows)
    logger.info("wrote %d frames (%d broken) to %s", len(rows), broken, url)

    rsam = make_rsam(episodes, t0, t1, seed, lag)
    events = make_events(episodes, t0, t1, seed)
    broken_list = [(r["path"], r["broken"]) for r in rows if r["broken"]]
    meta = {
        "url": url,
        "layout": layout,
        "template": template,
        "fields": path_fields,
        "camera": camera,
        "cadence": str(cadence),
        "tz": tz,
        "start": t0.isoformat(),
        "end": t1.isoformat(),
        "time_zone_of_tables": "UTC",
        "seed": seed,
        "size": [width, height],
        "rsam_lag_s": lag.total_seconds(),
        "episodes": len(episodes),
        "slots": n_slots,
        "frames": len(rows),
        "missing": int(n_slots - len(rows)),
        "broken": [{"path": p, "kind": k} for p, k in broken_list],
    }
    truth_files = {
        f"{troot}/episodes.csv": _csv(episodes),
        f"{troot}/fractions.csv": _csv(fractions),
        f"{troot}/rsam.csv": _csv(rsam),
        f"{troot}/events.csv": _csv(events, "%Y-%m-%dT%H:%M:%S.%f"),
        f"{troot}/events.xml": events_quakeml(events),
        f"{troot}/truth.json": json.dumps(meta, indent=2).encode(),
    }
    _pipe(tfs, truth_files)
    return ArchiveTruth(
        url=url,
        layout=layout,
        template=template,
        fields=path_fields,
        episodes=episodes,
        fractions=fractions,
        rsam=rsam,
        events=events,
        rsam_lag_s=lag.total_seconds(),
        broken=broken_list,
        truth_url=truth_root_url,
        camera=camera,
        cadence=str(cadence),
        tz=tz,
    )


def read_truth(truth_url: str, storage_options: Mapping[str, Any] | None = None) -> ArchiveTruth:
    """Load the ground truth ``write_archive`` wrote at ``truth_url`` (``<url>/truth``)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(truth_url, **dict(storage_options or {}))
    root = root.rstrip("/")
    try:
        meta = json.loads(fs.cat(f"{root}/truth.json"))
    except FileNotFoundError as err:
        raise ConfigError(
            f"no truth.json under {truth_url}; point at the truth/ folder written by "
            "`plumenet synth`"
        ) from err

    def table(name: str, dates: list[str], text: tuple[str, ...] = ()) -> pd.DataFrame:
        with fs.open(f"{root}/{name}", "rb") as fh:
            return pd.read_csv(fh, parse_dates=dates, dtype=dict.fromkeys(text, object))

    fractions = table("fractions.csv", ["time", "slot"], ("active", "broken"))
    fractions["broken"] = fractions["broken"].fillna("").astype(str)
    fractions["active"] = fractions["active"].fillna("").astype(str)
    return ArchiveTruth(
        url=meta["url"],
        layout=meta["layout"],
        template=meta["template"],
        fields=meta["fields"],
        episodes=table("episodes.csv", ["onset", "end"]),
        fractions=fractions,
        rsam=table("rsam.csv", ["time"]),
        events=table("events.csv", ["time"]),
        rsam_lag_s=float(meta["rsam_lag_s"]),
        broken=[(b["path"], b["kind"]) for b in meta["broken"]],
        truth_url=truth_url,
        camera=meta["camera"],
        cadence=meta["cadence"],
        tz=meta["tz"],
    )

"""Emission episodes: hysteresis detection over the frames that were observable.

Episode thresholds (:class:`EpisodeParams`, one value or per class), the detector on
one fraction series, and the episode table (:data:`EPISODE_COLUMNS`) built either from
a plain table of fractions (:func:`episodes_from_fractions`) or from one camera's
dataset (:func:`find_episodes`). Unobservable frames neither start nor end an episode.
Rules and defaults: docs/catalogue.md, section 2.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from plumenet.classes import EMISSION_CLASSES
from plumenet.science.observability import (
    ACTIVITY_CLASSES,
    ANY_EMISSION,
    activity_fractions,
    observability,
)
from plumenet.science.plume import EPISODE_HEIGHT_COLUMNS, episode_heights, plume_heights
from plumenet.timeutil import parse_duration_text, utc_ns

#: Column order of the episode table (the contract of episodes.parquet/csv).
EPISODE_COLUMNS: tuple[str, ...] = (
    "camera",
    "episode",
    "class",
    "onset",
    "end",
    "peak_time",
    "peak_fraction",
    "mean_fraction",
    "duration_s",
    "n_frames",
    "onset_uncertainty_s",
    "end_uncertainty_s",
    "observable_share",
    *EPISODE_HEIGHT_COLUMNS,
)


#: Default episode start threshold (fraction of valid pixels); ``off`` defaults to half.
DEFAULT_ON = 0.02

#: Default longest unobservable stretch an episode is continued across. Longer than the
#: clouds of a few hours we bridge, shorter than any night: a night or a long cloud
#: ends an episode (we did not see it go on). docs/catalogue.md, section 2.
DEFAULT_MAX_BLIND = "3h"


#: A threshold for all classes, or per class (``{"lava": 0.003}``; others: the default).
Threshold = float | Mapping[str, float]


def threshold_for(value: Threshold | None, cls: str, default: float) -> float:
    """The threshold of ``cls`` from a number or a per-class mapping (``None``: default)."""
    if value is None:
        return float(default)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(ACTIVITY_CLASSES))
        if unknown:
            raise ValueError(
                f"threshold given for unknown class(es) {unknown}; classes: "
                f"{', '.join(ACTIVITY_CLASSES)}"
            )
        return float(value.get(cls, default))
    return float(value)


def class_thresholds(on: Threshold, off: Threshold | None, cls: str) -> tuple[float, float]:
    """(on, off) of ``cls``; an ``off`` not given for the class is half its ``on``."""
    a = threshold_for(on, cls, DEFAULT_ON)
    return a, threshold_for(off, cls, a / 2)


def check_thresholds(on: Threshold, off: Threshold | None) -> None:
    """``on >= off`` for every class, else ValueError naming the class."""
    for cls in ACTIVITY_CLASSES:
        a, b = class_thresholds(on, off, cls)
        if a < b:
            where = f" for {cls}" if isinstance(on, Mapping) or isinstance(off, Mapping) else ""
            raise ValueError(f"on threshold {a} is below off threshold {b}{where}; need on >= off")


@dataclass(frozen=True)
class EpisodeParams:
    """Episode detection thresholds (fractions of valid pixels, pandas durations)."""

    on: Threshold = DEFAULT_ON
    off: Threshold | None = None
    min_duration: str = "10min"
    max_gap: str = "30min"
    max_blind: str | None = DEFAULT_MAX_BLIND


def _hysteresis(
    values: np.ndarray, on: float, off: float, reset: np.ndarray | None = None
) -> np.ndarray:
    """Active state per value: on at >= on, off below off, unchanged in between.

    ``reset`` marks values that start afresh (the first frame after a long blind
    stretch): between ``off`` and ``on`` they are inactive, since the state before the
    stretch says nothing about a scene not seen for hours.
    """
    mark = np.full(values.shape, -1, dtype=np.int8)
    mark[values >= on] = 1
    mark[values < off] = 0
    if reset is not None:
        mark[reset & (mark < 0)] = 0
    idx = np.where(mark >= 0, np.arange(values.size), 0)
    np.maximum.accumulate(idx, out=idx)
    state = mark[idx]
    return state == 1  # undetermined start (-1) counts as inactive


def _detect(
    t: np.ndarray,
    v: np.ndarray,
    *,
    step_ns: int,
    on: float,
    off: float,
    min_duration_ns: int,
    max_gap_ns: int,
    max_blind_ns: int | None,
) -> list[dict]:
    """Episodes of one series. t: int64 ns grid (all slots); v: NaN where unobservable."""
    obs = np.flatnonzero(np.isfinite(v))
    if obs.size == 0:
        return []
    to, vo = t[obs], v[obs]
    blind = None
    if max_blind_ns is not None:  # a long blind stretch breaks runs and resets the state
        blind = np.diff(to) > max_blind_ns + step_ns
    active = _hysteresis(vo, on, off, None if blind is None else np.r_[False, blind])
    if not active.any():
        return []
    prev_active = np.concatenate(([False], active[:-1]))
    next_active = np.concatenate((active[1:], [False]))
    if blind is not None:
        prev_active[1:] &= ~blind
        next_active[:-1] &= ~blind
    starts = np.flatnonzero(active & ~prev_active)  # observable-index of first active frame
    ends = np.flatnonzero(active & ~next_active)  # last active frame
    if min_duration_ns > 0:  # single-frame spikes go before they can be merged
        multi = ends > starts
        starts, ends = starts[multi], ends[multi]
        if starts.size == 0:
            return []
    # Observed inactive time between runs: inactive observable frames x cadence.
    gap_ns = (starts[1:] - ends[:-1] - 1).astype(np.int64) * step_ns
    split = gap_ns > max_gap_ns
    if max_blind_ns is not None:
        # A long unobservable stretch inside the gap or the run boundary also splits.
        blind = np.diff(to)  # spacing between consecutive observable frames
        run_break = np.zeros(starts.size - 1, dtype=bool)
        big = blind > max_blind_ns + step_ns
        if big.any():
            cum = np.concatenate(([0], np.cumsum(big)))
            run_break = cum[starts[1:]] - cum[ends[:-1]] > 0
        split |= run_break
    group_first = np.concatenate(([0], np.flatnonzero(split) + 1))
    ep_start = starts[group_first]
    ep_end = ends[np.concatenate((group_first[1:] - 1, [starts.size - 1]))]
    keep = (to[ep_end] - to[ep_start]) >= min_duration_ns
    ep_start, ep_end = ep_start[keep], ep_end[keep]
    if ep_start.size == 0:
        return []
    full_start = np.searchsorted(t, to[ep_start])
    full_end = np.searchsorted(t, to[ep_end])
    csum = np.concatenate(([0.0], np.cumsum(vo)))
    out = []
    for s, e, fs, fe in zip(ep_start, ep_end, full_start, full_end, strict=True):
        seg = vo[s : e + 1]
        k = int(np.argmax(seg))
        n = e - s + 1
        onset_unc = (to[s] - to[s - 1]) / 2e9 if s > 0 else np.nan
        end_unc = (to[e + 1] - to[e]) / 2e9 if e + 1 < to.size else np.nan
        out.append(
            {
                "onset": to[s],
                "end": to[e],
                "peak_time": to[s + k],
                "peak_fraction": float(seg[k]),
                "mean_fraction": float((csum[e + 1] - csum[s]) / n),
                "duration_s": (to[e] - to[s]) / 1e9,
                "n_frames": int(n),
                "onset_uncertainty_s": float(onset_unc),
                "end_uncertainty_s": float(end_unc),
                "observable_share": n / float(fe - fs + 1),
            }
        )
    return out


def parse_max_blind(max_blind: str | None) -> int | None:
    """``max_blind`` in ns; ``None``, ``"none"`` or ``"never"``: blind stretches never split.

    A bad value is a ValueError naming ``--max-blind`` (a duration with a unit, above zero).
    """
    if max_blind is None or str(max_blind).strip().lower() in ("none", "never", ""):
        return None
    return parse_duration_text(max_blind, "--max-blind").value


def _infer_step(t: np.ndarray) -> int:
    if t.size < 2:
        return 0
    return int(np.median(np.diff(t)))


def episodes_from_fractions(
    fractions: pd.DataFrame,
    *,
    classes: tuple[str, ...] | list[str] | None = None,
    camera: str = "",
    cadence: str | None = None,
    on: Threshold = EpisodeParams.on,
    off: Threshold | None = EpisodeParams.off,
    min_duration: str = EpisodeParams.min_duration,
    max_gap: str = EpisodeParams.max_gap,
    max_blind: str | None = EpisodeParams.max_blind,
    heights: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Episodes from a plain table of fractions (index or column ``time``; NaN = unobservable).

    Columns are class names; ``any_emission`` is derived from the emission classes
    present when not given. Rows should be the regular grid (unobservable slots as
    NaN rows) so that ``observable_share`` counts the slots not seen. ``heights``:
    per-frame plume heights (:func:`plumenet.science.plume.plume_heights`, NaN where
    unobservable) for the height columns; without it they are NaN.
    """
    check_thresholds(on, off)
    df = fractions
    if "time" in df.columns:
        df = df.set_index("time")
    df = df.sort_index()
    if ANY_EMISSION not in df.columns:
        present = [c for c in EMISSION_CLASSES if c in df.columns]
        if present:
            df = df.assign(**{ANY_EMISSION: df[present].sum(axis=1, min_count=len(present))})
    if classes is None:
        classes = [c for c in ACTIVITY_CLASSES if c in df.columns]
    t = utc_ns(df.index)
    step = pd.Timedelta(cadence).value if cadence else _infer_step(t)
    params = {
        "step_ns": step,
        "min_duration_ns": pd.Timedelta(min_duration).value,
        "max_gap_ns": pd.Timedelta(max_gap).value,
        "max_blind_ns": parse_max_blind(max_blind),
    }
    rows = []
    for cls in classes:
        if cls not in df.columns:
            raise ValueError(f"no column {cls!r} in fractions; columns: {', '.join(df.columns)}")
        v = df[cls].to_numpy(dtype=np.float64, na_value=np.nan)
        on_c, off_c = class_thresholds(on, off, cls)
        for ep in _detect(t, v, on=on_c, off=off_c, **params):
            rows.append({"camera": camera, "class": cls, **ep})
    table = _episode_frame(rows)
    return table.assign(**episode_heights(table, heights))[list(EPISODE_COLUMNS)]


def _episode_frame(rows: list[dict]) -> pd.DataFrame:
    base = [c for c in EPISODE_COLUMNS if c not in ("episode", *EPISODE_HEIGHT_COLUMNS)]
    df = pd.DataFrame(rows, columns=base)
    for col in ("onset", "end", "peak_time"):
        df[col] = pd.to_datetime(df[col].to_numpy(dtype=np.int64), unit="ns", utc=True)
    df["camera"] = df["camera"].astype(str)
    df["class"] = df["class"].astype(str)
    df["n_frames"] = df["n_frames"].astype(np.int64)
    for col in (
        "peak_fraction",
        "mean_fraction",
        "duration_s",
        "onset_uncertainty_s",
        "end_uncertainty_s",
        "observable_share",
    ):
        df[col] = df[col].astype(np.float64)
    df.insert(1, "episode", np.arange(len(df), dtype=np.int64))
    return df


def find_episodes(
    ds: xr.Dataset,
    *,
    classes: tuple[str, ...] | list[str] | None = None,
    on: Threshold = EpisodeParams.on,
    off: Threshold | None = EpisodeParams.off,
    min_duration: str = EpisodeParams.min_duration,
    max_gap: str = EpisodeParams.max_gap,
    max_blind: str | None = EpisodeParams.max_blind,
    observable: xr.DataArray | np.ndarray | None = None,
    camera: str | None = None,
    **observability_params: float | None,
) -> pd.DataFrame:
    """Emission episodes of one camera (one row per episode, :data:`EPISODE_COLUMNS`).

    Hysteresis on the class fraction over observable frames only: unobservable
    frames neither start nor end an episode; an observed stretch below ``off``
    longer than ``max_gap`` does. Episodes shorter than ``min_duration``
    (last minus first active frame) are dropped. Onset/end are the first/last
    active frame; their uncertainty is half the interval to the bracketing
    observable frame (NaN at the edge of the record). Plume height per episode
    (max/median in metres, min/median top row in pixels) over its observable frames,
    from the store's ``plume_height_m``/``plume_top_row`` (NaN when absent).
    """
    if observable is None:
        observable = observability(ds, **observability_params)
    if camera is None:
        meta = ds.attrs.get("camera")
        if isinstance(meta, str) and meta.startswith("{"):
            meta = json.loads(meta)  # CF-1.11 stores keep nested attributes as JSON strings
        camera = str(
            ds.attrs.get("camera_id") or (meta.get("id", "") if isinstance(meta, dict) else "")
        )
    df = activity_fractions(ds, observable)
    cadence = ds.attrs.get("cadence")
    if not isinstance(cadence, str):
        cadence = None
    return episodes_from_fractions(
        df,
        classes=classes,
        camera=camera,
        cadence=cadence,
        on=on,
        off=off,
        min_duration=min_duration,
        max_gap=max_gap,
        max_blind=max_blind,
        heights=plume_heights(ds, observable),
    )

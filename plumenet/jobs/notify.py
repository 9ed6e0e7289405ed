"""New-episode notifications: which episodes a catalogue run found that the store's previous
catalogue did not hold, and the event that announces each.

An episode is *new* when no episode of the same class and onset was in the camera's
``<camera>/activity`` group before the run (the first catalogue of a camera announces every
episode). The flow (``flows.science.catalogue``) reads the previous tables with
:func:`stored_episodes` before it writes, and emits :func:`episode_event` for each of
:func:`new_episodes` after. Event, resource and payload: docs/deploy.md, "Notifications".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from plumenet.config import Config, load_config
from storage.catalogue import read_episodes

#: Name of the event emitted once per new episode.
EPISODE_STARTED = "plumenet.episode.started"


def stored_episodes(
    config: Config | str, cameras: list[str] | None = None
) -> dict[str, pd.DataFrame | None]:
    """Per camera, the episode table in the store now (None: never catalogued)."""
    cfg = config if isinstance(config, Config) else load_config(config)
    ids = list(cameras) if cameras else [c.id for c in cfg.cameras]
    return {cam: read_episodes(cfg.store, cam, storage_options=cfg.storage_options) for cam in ids}


def _keys(table: pd.DataFrame) -> pd.Series:
    onsets = pd.to_datetime(table["onset"], utc=True).dt.as_unit("ns").astype("int64")
    return table["class"].astype(str) + "@" + onsets.astype(str)


def new_episodes(before: pd.DataFrame | None, after: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``after`` whose (class, onset) is not in ``before``, in ``after``'s order."""
    if after.empty or before is None or before.empty:
        return after.reset_index(drop=True)
    seen = set(_keys(before))
    return after[~_keys(after).isin(seen)].reset_index(drop=True)


def _iso(value: Any) -> str | None:
    ts = pd.Timestamp(value)
    if ts is pd.NaT or pd.isna(ts):
        return None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value: Any) -> float | int | None:
    if value is None or (isinstance(value, float | np.floating) and not np.isfinite(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def episode_event(camera: str, episode: pd.Series) -> dict[str, Any]:
    """The ``emit_event`` arguments for one new episode: resource = the camera, payload =
    class, onset, peak (time and fraction), end, duration."""
    return {
        "event": EPISODE_STARTED,
        "resource": {
            "prefect.resource.id": f"plumenet.camera.{camera}",
            "prefect.resource.name": camera,
        },
        "payload": {
            "camera": camera,
            "class": str(episode["class"]),
            "onset": _iso(episode["onset"]),
            "peak_time": _iso(episode["peak_time"]),
            "peak_fraction": _number(episode["peak_fraction"]),
            "end": _iso(episode["end"]),
            "duration_s": _number(episode["duration_s"]),
        },
    }


def episode_events(
    before: dict[str, pd.DataFrame | None], tables: dict[str, str]
) -> list[dict[str, Any]]:
    """Events for the new episodes of each camera; ``tables``: camera -> the episodes
    Parquet file the run wrote."""
    events = []
    for camera, path in tables.items():
        after = pd.read_parquet(path)
        for _, row in new_episodes(before.get(camera), after).iterrows():
            events.append(episode_event(camera, row))
    return events

"""The catalogue job: one camera's store group in, catalogue files and store group out.

:func:`load_camera` reads the catalogue's variables of one camera from the store,
trimmed to the slots with frames; :func:`run_catalogue` (behind ``plumenet catalogue``
and the ``catalogue`` flow) runs :func:`plumenet.science.activity.catalogue` per camera
and writes the episode and activity tables, the timeline PNG and the store's
``<camera>/activity`` group. Output layout: docs/catalogue.md, section 4.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from plumenet.config import Config, load_config
from plumenet.encoding import STATUS_NONE
from plumenet.errors import StoreError
from plumenet.science.activity import activity_table, catalogue, split_params
from plumenet.science.figures import plot_timeline
from plumenet.science.observability import activity_fractions
from plumenet.timeutil import parse_end, parse_start
from storage import catalogue as files
from storage.reads import open_camera

log = logging.getLogger(__name__)

#: Store variables the catalogue reads; those after ``brightness`` are schema 2's (absent
#: in older stores, where observability and the heights do without them).
CATALOGUE_VARIABLES = (
    "fraction", "status", "brightness", "solar_elevation", "plume_height_m", "plume_top_row",
)  # fmt: skip


def load_camera(
    url: str,
    camera_id: str,
    *,
    storage_options: dict | None = None,
    start: object = None,
    end: object = None,
) -> xr.Dataset:
    """The catalogue's variables of one camera, loaded, trimmed to the slots with frames.

    The store's time axis starts at ``grid_start`` and is padded to whole chunks; the
    catalogue covers first to last slot that has a frame (within ``[start, end)``).
    """
    ds = open_camera(url, camera_id, storage_options=storage_options)
    keep = [v for v in CATALOGUE_VARIABLES if v in ds]
    if "fraction" not in keep or "status" not in keep:
        raise StoreError(
            f"camera {camera_id!r} in {url} lacks 'fraction'/'status' — not a plumenet store group"
        )
    ds = ds[keep]
    if start is not None or end is not None:
        t0 = parse_start(start).tz_localize(None) if start is not None else None
        t1 = parse_end(end).tz_localize(None) if end is not None else None
        ds = ds.sel(time=slice(t0, t1 - pd.Timedelta(1) if t1 is not None else None))
    status = ds["status"].values
    have = np.flatnonzero(status != STATUS_NONE)
    if have.size == 0:
        raise StoreError(
            f"camera {camera_id!r} has no processed frames in {url} for the range asked — "
            "run a backfill first"
        )
    ds = ds.isel(time=slice(int(have[0]), int(have[-1]) + 1)).load()
    ds.attrs["camera_id"] = camera_id
    return ds


def run_catalogue(
    config: object,
    cameras: list[str] | tuple[str, ...] | None = None,
    out: str | Path = "catalogue",
    *,
    start: object = None,
    end: object = None,
    write_store: bool = True,
    figures: bool = True,
    **params: object,
) -> dict[str, dict[str, str]]:
    """Catalogue every (or the named) camera of ``config`` (a Config or a cameras.yaml path).

    Writes ``<out>/<camera>/episodes|activity_1h|activity_1d`` (.parquet + .csv), the
    timeline PNG, and (``write_store``) the store's ``<camera>/activity`` subgroup.
    ``params`` are :class:`~plumenet.science.episodes.EpisodeParams` /
    :class:`~plumenet.science.observability.ObservabilityParams` fields.
    Returns, per camera, output name -> path (or store group).
    """
    cfg = config if isinstance(config, Config) else load_config(config)  # type: ignore[arg-type]
    ep, ob = split_params(dict(params))
    ids = list(cameras) if cameras else [c.id for c in cfg.cameras]
    for cam in ids:
        cfg.camera(cam)  # unknown id -> ConfigError listing the known ones
    results: dict[str, dict[str, str]] = {}
    for cam in ids:
        ds = load_camera(cfg.store, cam, storage_options=cfg.storage_options, start=start, end=end)
        res = catalogue(ds, camera=cam, episode_params=ep, observability_params=ob)
        episodes = res["episodes"]
        act = {"1h": res["activity_1h"], "1d": res["activity_1d"]}
        paths = files.write_tables(
            Path(out) / cam,
            {
                "episodes": episodes,
                "activity_1h": activity_table(act["1h"]),
                "activity_1d": activity_table(act["1d"]),
            },
        )
        written = {k: str(v) for k, v in paths.items()}
        if figures:
            fr = activity_fractions(ds, res["observable"].values)
            written["timeline_png"] = str(
                plot_timeline(
                    fr,
                    episodes,
                    Path(out) / cam / "timeline.png",
                    title=cam,
                    heights=res["heights"],
                )
            )
        if write_store:
            group = files.write_activity_store(
                cfg.store, cam, episodes, act, storage_options=cfg.storage_options
            )
            written["store_group"] = group
        results[cam] = written
        log.info("camera %s: catalogue written to %s", cam, Path(out) / cam)
    return results

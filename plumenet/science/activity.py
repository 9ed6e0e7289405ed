"""Binned activity and the whole catalogue of one camera.

Activity per time bin (:func:`bin_activity`, or :func:`bin_fractions` on a plain
table), its wide file table, and :func:`catalogue`, the pure function that computes
observability, episodes and hourly/daily activity of one camera once. Parameters
arrive as :class:`~plumenet.science.episodes.EpisodeParams` and
:class:`~plumenet.science.observability.ObservabilityParams` (:func:`split_params`
builds both from keyword options). Nothing here reads or writes files: the store and
the output files are :mod:`plumenet.jobs.catalogue`'s. docs/catalogue.md, section 3.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, fields

import numpy as np
import pandas as pd
import xarray as xr

from plumenet.encoding import STATUS_NONE
from plumenet.science.episodes import (
    DEFAULT_ON,
    EpisodeParams,
    Threshold,
    check_thresholds,
    find_episodes,
    parse_max_blind,
    threshold_for,
)
from plumenet.science.observability import (
    ACTIVITY_CLASSES,
    OBSERVABLE,
    ObservabilityParams,
    activity_fractions,
    observability,
    observability_reasons,
)
from plumenet.science.plume import (
    HEIGHT_KINDS,
    has_metres,
    height_column,
    plume_heights,
    top_row_column,
)
from plumenet.timeutil import naive_utc_index, parse_duration_text

log = logging.getLogger(__name__)


def bin_activity(
    ds: xr.Dataset,
    freq: str = "1h",
    *,
    observable: xr.DataArray | np.ndarray | None = None,
    present: Threshold = EpisodeParams.on,
    **observability_params: float | None,
) -> xr.Dataset:
    """Activity per time bin (dims ``time``, ``class`` = :data:`ACTIVITY_CLASSES`).

    ``slots`` grid slots, ``frames`` slots with a frame, ``observable_frames``;
    per class ``present_share`` (share of observable frames with fraction >=
    ``present``), ``mean_fraction`` and ``max_fraction`` over observable frames;
    ``height_max_m`` and ``top_row_min_px`` of the plume (:func:`bin_fractions`).
    Per-class values are NaN in a bin with no observable frame: not seen is not 0.
    """
    if observable is None:
        observable = observability(ds, **observability_params)
    obs = np.asarray(observable, dtype=bool)
    df = activity_fractions(ds, obs)
    status = ds["status"].values
    heights = plume_heights(ds, obs)
    return bin_fractions(df, freq, frames=status != STATUS_NONE, present=present, heights=heights)


def bin_fractions(
    fractions: pd.DataFrame,
    freq: str = "1h",
    *,
    frames: np.ndarray | None = None,
    present: Threshold = EpisodeParams.on,
    heights: pd.DataFrame | None = None,
) -> xr.Dataset:
    """:func:`bin_activity` on a plain table of per-frame fractions (NaN = unobservable).

    ``heights``: per-frame plume heights on the same rows
    (:func:`plumenet.science.plume.plume_heights`, NaN where unobservable). For the classes
    with a height (:data:`~plumenet.science.plume.HEIGHT_KINDS`), ``height_max_m`` is the
    highest plume top in the bin (metres above the vent; 0 in a bin that was seen without a
    plume; NaN with nothing observable or no camera geometry) and ``top_row_min_px`` the
    highest top in pixels (smallest row; NaN without a plume). Other classes: NaN.
    """
    df = fractions
    if "time" in df.columns:
        df = df.set_index("time")
    classes = [c for c in ACTIVITY_CLASSES if c in df.columns]
    values = df[classes].to_numpy(dtype=np.float64, na_value=np.nan)
    bins = naive_utc_index(df.index).floor(freq)
    obs = np.isfinite(values).all(axis=1)
    has_frame = obs if frames is None else np.asarray(frames, dtype=bool) | obs
    table = pd.DataFrame(
        {
            "slots": np.ones(len(df), dtype=np.int64),
            "frames": has_frame.astype(np.int64),
            "observable_frames": obs.astype(np.int64),
        },
        index=bins,
    )
    thresholds = np.array([threshold_for(present, c, DEFAULT_ON) for c in classes])
    pres = np.where(np.isfinite(values), values >= thresholds, np.nan)
    cols = {}
    for j, c in enumerate(classes):
        cols[f"p_{c}"] = pres[:, j]
        cols[f"v_{c}"] = values[:, j]
    kinds = [k for k in HEIGHT_KINDS if k in classes]
    if heights is not None:
        for k in kinds:
            cols[f"h_{k}"] = heights[height_column(k)].to_numpy(dtype=np.float64)
            cols[f"r_{k}"] = heights[top_row_column(k)].to_numpy(dtype=np.float64)
    wide = pd.DataFrame(cols, index=bins)
    counts = table.groupby(level=0, sort=True).sum()
    grouped = wide.groupby(level=0, sort=True)
    means = grouped.mean()
    maxes = grouped.max()
    full = pd.date_range(counts.index.min(), counts.index.max(), freq=freq, name="time")
    counts = counts.reindex(full, fill_value=0)
    means = means.reindex(full)
    maxes = maxes.reindex(full)
    share = np.stack([means[f"p_{c}"].to_numpy() for c in classes], axis=1)
    mean_f = np.stack([means[f"v_{c}"].to_numpy() for c in classes], axis=1)
    max_f = np.stack([maxes[f"v_{c}"].to_numpy() for c in classes], axis=1)
    height = np.full(max_f.shape, np.nan)
    top_row = np.full(max_f.shape, np.nan)
    if heights is not None:
        seen = counts["observable_frames"].to_numpy() > 0
        metres = has_metres(heights)
        mins = grouped.min().reindex(full)
        for k in kinds:
            j = classes.index(k)
            top_row[:, j] = mins[f"r_{k}"].to_numpy()
            if metres:  # seen without a plume: 0 m above the vent; not seen: NaN
                h = maxes[f"h_{k}"].to_numpy()
                height[:, j] = np.where(seen & np.isnan(h), 0.0, h)
    coords = {"time": full.values, "class": np.array(classes, dtype=object)}
    out = xr.Dataset(
        {
            "slots": ("time", counts["slots"].to_numpy()),
            "frames": ("time", counts["frames"].to_numpy()),
            "observable_frames": ("time", counts["observable_frames"].to_numpy()),
            "present_share": (("time", "class"), share.astype(np.float32)),
            "mean_fraction": (("time", "class"), mean_f.astype(np.float32)),
            "max_fraction": (("time", "class"), max_f.astype(np.float32)),
            "height_max_m": (("time", "class"), height.astype(np.float32)),
            "top_row_min_px": (("time", "class"), top_row.astype(np.float32)),
            "present_threshold": ("class", thresholds),
        },
        coords=coords,
        attrs={"freq": freq},
    )
    return out


def activity_table(activity: xr.Dataset) -> pd.DataFrame:
    """Binned activity as one wide table (``time`` UTC, counts, ``<var>_<class>``) for files.

    Heights only for the classes that have one (``height_max_m_eruption_column``, ...).
    """
    df = pd.DataFrame(
        {"time": pd.to_datetime(activity["time"].values, utc=True)}
        | {v: activity[v].values for v in ("slots", "frames", "observable_frames")}
    )
    for var in ("present_share", "mean_fraction", "max_fraction"):
        for j, c in enumerate(activity["class"].values):
            df[f"{var}_{c}"] = activity[var].values[:, j].astype(np.float64)
    classes = [str(c) for c in activity["class"].values]
    for var in ("height_max_m", "top_row_min_px"):
        if var not in activity:
            continue
        for kind in (k for k in HEIGHT_KINDS if k in classes):
            column = activity[var].values[:, classes.index(kind)].astype(np.float64)
            df[f"{var}_{kind}"] = column
    return df


def catalogue(
    ds: xr.Dataset,
    *,
    camera: str | None = None,
    episode_params: EpisodeParams | None = None,
    observability_params: ObservabilityParams | None = None,
    freqs: tuple[str, ...] = ("1h", "1D"),
) -> dict[str, object]:
    """Everything the catalogue produces for one camera, computed once.

    Returns ``observable`` (DataArray bool), ``reasons`` (DataArray uint8),
    ``episodes`` (DataFrame), ``heights`` (per-frame plume heights, NaN where
    unobservable: :func:`plumenet.science.plume.plume_heights`) and ``activity_<freq>``
    (Dataset) per frequency (keys ``activity_1h``, ``activity_1d``).
    """
    ep = episode_params or EpisodeParams()
    op = observability_params or ObservabilityParams()
    reasons = observability_reasons(ds, **asdict(op))
    observable = reasons == OBSERVABLE
    episodes = find_episodes(ds, **asdict(ep), observable=observable.values, camera=camera)
    out: dict[str, object] = {
        "reasons": reasons,
        "observable": observable,
        "episodes": episodes,
        "heights": plume_heights(ds, observable.values),
    }
    for freq in freqs:
        out[f"activity_{freq.lower()}"] = bin_activity(
            ds, freq, observable=observable.values, present=ep.on
        )
    log.info(
        "camera %s: %d episodes, %.1f %% of slots observable",
        camera,
        len(episodes),
        100.0 * float(observable.values.mean()) if observable.size else 0.0,
    )
    return out


def split_params(params: dict[str, object]) -> tuple[EpisodeParams, ObservabilityParams]:
    """Keyword parameters -> (EpisodeParams, ObservabilityParams); unknown names are an error."""
    ep_names = {f.name for f in fields(EpisodeParams)}
    ob_names = {f.name for f in fields(ObservabilityParams)}
    unknown = sorted(set(params) - ep_names - ob_names)
    if unknown:
        raise ValueError(
            f"unknown catalogue parameter(s) {unknown}; valid: {sorted(ep_names | ob_names)}"
        )
    ep = EpisodeParams(**{k: v for k, v in params.items() if k in ep_names})  # type: ignore[arg-type]
    ob = ObservabilityParams(**{k: v for k, v in params.items() if k in ob_names})  # type: ignore[arg-type]
    check_thresholds(ep.on, ep.off)
    parse_duration_text(ep.min_duration, "--min-duration", allow_zero=True)
    parse_duration_text(ep.max_gap, "--max-gap", allow_zero=True)
    parse_max_blind(ep.max_blind)
    return ep, ob

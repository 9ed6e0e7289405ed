"""Activity catalogue: observability, emission episodes and binned activity.

Pure functions over one camera's dataset (the store schema, docs/catalogue.md) or
over plain pandas objects. Nothing here reads or writes files.

The rule throughout: a frame we could not see is *unobservable* (NaN, or a
separate flag), never "no activity" (0).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from plumenet.classes import EMISSION_CLASSES, MODEL_CLASSES

log = logging.getLogger(__name__)

#: Pseudo-class: the sum of the emission class fractions.
ANY_EMISSION = "any_emission"
#: Classes the catalogue reports on, in output order.
ACTIVITY_CLASSES: tuple[str, ...] = (*EMISSION_CLASSES, ANY_EMISSION)

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
)

# Observability reason codes (uint8), see REASONS.
OBSERVABLE = 0
NO_FRAME = 1
UNREADABLE = 2
UNUSABLE = 3
DARK = 4
OBSTRUCTED = 5
#: Code -> meaning of the values returned by :func:`observability_reasons`.
REASONS: dict[int, str] = {
    OBSERVABLE: "observable",
    NO_FRAME: "no frame",
    UNREADABLE: "unreadable frame",
    UNUSABLE: "unusable frame",
    DARK: "dark (night)",
    OBSTRUCTED: "view obstructed (land hidden, no emission)",
}


#: Default episode start threshold (fraction of valid pixels); ``off`` defaults to half.
DEFAULT_ON = 0.02

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
    max_blind: str | None = None


@dataclass(frozen=True)
class ObservabilityParams:
    """Observability thresholds; ``baseline=None`` learns the clear-view land share."""

    dark_threshold: float = 0.12
    land_drop: float = 0.5
    baseline: float | None = None
    baseline_quantile: float = 0.9
    emission_present: float = 0.01
    min_baseline: float = 0.02


def _class_index(ds: xr.Dataset, name: str) -> int:
    names = [str(c) for c in ds["class"].values]
    if name not in names:
        raise ValueError(f"dataset has no class {name!r}; it has {', '.join(names)}")
    return names.index(name)


def _fractions(ds: xr.Dataset) -> np.ndarray:
    """(time, 6) float64 fractions in MODEL_CLASSES order."""
    frac = ds["fraction"].transpose("time", "class").values.astype(np.float64, copy=False)
    order = [_class_index(ds, c) for c in MODEL_CLASSES]
    return frac[:, order]


def _ns(times: object) -> np.ndarray:
    """Any datetime-like array (naive = UTC, or tz-aware) -> int64 ns since epoch (UTC)."""
    idx = pd.DatetimeIndex(np.asarray(times) if not isinstance(times, pd.Index) else times)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ns").asi8


def land_baseline(land: np.ndarray, candidate: np.ndarray, *, quantile: float = 0.9) -> float:
    """The camera's clear-view land share: a high quantile over candidate (ok, lit) frames.

    A high quantile, not the mean, because clouds only ever hide land; the clearest
    views define what the camera sees on a good day.
    """
    values = land[candidate & np.isfinite(land)]
    if values.size == 0:
        return float("nan")
    return float(np.quantile(values, quantile))


def observability_reasons(
    ds: xr.Dataset,
    *,
    dark_threshold: float = ObservabilityParams.dark_threshold,
    land_drop: float = ObservabilityParams.land_drop,
    baseline: float | None = None,
    baseline_quantile: float = ObservabilityParams.baseline_quantile,
    emission_present: float = ObservabilityParams.emission_present,
    min_baseline: float = ObservabilityParams.min_baseline,
) -> xr.DataArray:
    """Per-frame reason code (uint8, :data:`REASONS`); 0 means the frame is observable.

    A frame is observable when it decoded (status 1), is not dark
    (``brightness >= dark_threshold``), and the view is open: land covers at least
    ``land_drop`` x the clear-view baseline, or an emission covers at least
    ``emission_present`` (an emission in front of the land is a view, not an
    obstruction). When the baseline is below ``min_baseline`` (a camera that sees
    no land) the land test is skipped. The learned baseline is in ``attrs``.
    """
    status = ds["status"].values.astype(np.uint8)
    n = status.shape[0]
    reasons = np.full(n, OBSERVABLE, dtype=np.uint8)
    reasons[status == 0] = NO_FRAME
    reasons[status == 2] = UNREADABLE
    reasons[(status != 0) & (status != 1) & (status != 2)] = UNUSABLE
    ok = status == 1
    if "brightness" in ds:
        bright = ds["brightness"].values.astype(np.float64)
        dark = ok & ~(bright >= dark_threshold)
    else:
        dark = np.zeros(n, dtype=bool)
    reasons[dark] = DARK
    lit = ok & ~dark
    frac = _fractions(ds)
    land = frac[:, MODEL_CLASSES.index("land")]
    emission = frac[:, [MODEL_CLASSES.index(c) for c in EMISSION_CLASSES]].sum(axis=1)
    if baseline is None:
        baseline = land_baseline(land, lit, quantile=baseline_quantile)
    if np.isfinite(baseline) and baseline >= min_baseline:
        hidden = ~(land >= land_drop * baseline) & ~(emission >= emission_present)
        reasons[lit & hidden] = OBSTRUCTED
    # An ok frame with NaN fractions cannot be read either.
    reasons[lit & ~np.isfinite(frac).all(axis=1)] = UNUSABLE
    return xr.DataArray(
        reasons,
        dims=("time",),
        coords={"time": ds["time"].values},
        name="observability_reason",
        attrs={
            "land_baseline": float(baseline),
            "codes": "; ".join(f"{k}: {v}" for k, v in REASONS.items()),
        },
    )


def observability(ds: xr.Dataset, **params: float | None) -> xr.DataArray:
    """Per-frame bool: could the camera see the volcano? (see :func:`observability_reasons`)."""
    reasons = observability_reasons(ds, **params)
    out = reasons == OBSERVABLE
    out.name = "observable"
    out.attrs = dict(reasons.attrs)
    return out


def activity_fractions(ds: xr.Dataset, observable: np.ndarray | xr.DataArray) -> pd.DataFrame:
    """Emission fractions + any_emission per frame; NaN on unobservable frames."""
    frac = _fractions(ds)
    cols = {c: frac[:, MODEL_CLASSES.index(c)] for c in EMISSION_CLASSES}
    cols[ANY_EMISSION] = np.sum([cols[c] for c in EMISSION_CLASSES], axis=0)
    df = pd.DataFrame(cols, index=pd.DatetimeIndex(ds["time"].values, name="time"))
    mask = np.asarray(observable, dtype=bool)
    df[~mask] = np.nan
    return df


def _hysteresis(values: np.ndarray, on: float, off: float) -> np.ndarray:
    """Active state per value: on at >= on, off below off, unchanged in between."""
    mark = np.full(values.shape, -1, dtype=np.int8)
    mark[values >= on] = 1
    mark[values < off] = 0
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
    active = _hysteresis(vo, on, off)
    if not active.any():
        return []
    prev_active = np.concatenate(([False], active[:-1]))
    next_active = np.concatenate((active[1:], [False]))
    if max_blind_ns is not None:  # a long blind stretch also breaks a run of active frames
        blind = np.diff(to) > max_blind_ns + step_ns
        prev_active[1:] &= ~blind
        next_active[:-1] &= ~blind
    starts = np.flatnonzero(active & ~prev_active)  # observable-index of first active frame
    ends = np.flatnonzero(active & ~next_active)  # last active frame
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
) -> pd.DataFrame:
    """Episodes from a plain table of fractions (index or column ``time``; NaN = unobservable).

    Columns are class names; ``any_emission`` is derived from the emission classes
    present when not given. Rows should be the regular grid (unobservable slots as
    NaN rows) so that ``observable_share`` counts the slots not seen.
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
    t = _ns(df.index)
    step = pd.Timedelta(cadence).value if cadence else _infer_step(t)
    params = {
        "step_ns": step,
        "min_duration_ns": pd.Timedelta(min_duration).value,
        "max_gap_ns": pd.Timedelta(max_gap).value,
        "max_blind_ns": pd.Timedelta(max_blind).value if max_blind else None,
    }
    rows = []
    for cls in classes:
        if cls not in df.columns:
            raise ValueError(f"no column {cls!r} in fractions; columns: {', '.join(df.columns)}")
        v = df[cls].to_numpy(dtype=np.float64, na_value=np.nan)
        on_c, off_c = class_thresholds(on, off, cls)
        for ep in _detect(t, v, on=on_c, off=off_c, **params):
            rows.append({"camera": camera, "class": cls, **ep})
    return _episode_frame(rows)


def _episode_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=[c for c in EPISODE_COLUMNS if c != "episode"])
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
    return df[list(EPISODE_COLUMNS)]


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
    observable frame (NaN at the edge of the record).
    """
    if observable is None:
        observable = observability(ds, **observability_params)
    if camera is None:
        meta = ds.attrs.get("camera")
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
    )


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
    ``present``), ``mean_fraction`` and ``max_fraction`` over observable frames.
    Per-class values are NaN in a bin with no observable frame: not seen is not 0.
    """
    if observable is None:
        observable = observability(ds, **observability_params)
    obs = np.asarray(observable, dtype=bool)
    df = activity_fractions(ds, obs)
    status = ds["status"].values
    return bin_fractions(df, freq, frames=status != 0, present=present)


def bin_fractions(
    fractions: pd.DataFrame,
    freq: str = "1h",
    *,
    frames: np.ndarray | None = None,
    present: Threshold = EpisodeParams.on,
) -> xr.Dataset:
    """:func:`bin_activity` on a plain table of per-frame fractions (NaN = unobservable)."""
    df = fractions
    if "time" in df.columns:
        df = df.set_index("time")
    classes = [c for c in ACTIVITY_CLASSES if c in df.columns]
    values = df[classes].to_numpy(dtype=np.float64, na_value=np.nan)
    idx = pd.DatetimeIndex(df.index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    bins = idx.floor(freq)
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
    coords = {"time": full.values, "class": np.array(classes, dtype=object)}
    out = xr.Dataset(
        {
            "slots": ("time", counts["slots"].to_numpy()),
            "frames": ("time", counts["frames"].to_numpy()),
            "observable_frames": ("time", counts["observable_frames"].to_numpy()),
            "present_share": (("time", "class"), share.astype(np.float32)),
            "mean_fraction": (("time", "class"), mean_f.astype(np.float32)),
            "max_fraction": (("time", "class"), max_f.astype(np.float32)),
            "present_threshold": ("class", thresholds),
        },
        coords=coords,
        attrs={"freq": freq},
    )
    return out


def activity_table(activity: xr.Dataset) -> pd.DataFrame:
    """Binned activity as one wide table (``time`` UTC, counts, ``<var>_<class>``) for files."""
    df = pd.DataFrame(
        {"time": pd.to_datetime(activity["time"].values, utc=True)}
        | {v: activity[v].values for v in ("slots", "frames", "observable_frames")}
    )
    for var in ("present_share", "mean_fraction", "max_fraction"):
        for j, c in enumerate(activity["class"].values):
            df[f"{var}_{c}"] = activity[var].values[:, j].astype(np.float64)
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
    ``episodes`` (DataFrame) and ``activity_<freq>`` (Dataset) per frequency
    (keys ``activity_1h``, ``activity_1d``).
    """
    ep = episode_params or EpisodeParams()
    op = observability_params or ObservabilityParams()
    reasons = observability_reasons(ds, **asdict(op))
    observable = reasons == OBSERVABLE
    episodes = find_episodes(ds, **asdict(ep), observable=observable.values, camera=camera)
    out: dict[str, object] = {"reasons": reasons, "observable": observable, "episodes": episodes}
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


# --- edge: store in, files out (the plain function behind `plumenet catalogue`) -------------


def split_params(params: dict[str, object]) -> tuple[EpisodeParams, ObservabilityParams]:
    """Keyword parameters -> (EpisodeParams, ObservabilityParams); unknown names are an error."""
    from dataclasses import fields

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
    return ep, ob


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
    from plumenet.errors import StoreError
    from storage.store import open_camera

    ds = open_camera(url, camera_id, storage_options=storage_options)
    keep = [v for v in ("fraction", "status", "brightness") if v in ds]
    if "fraction" not in keep or "status" not in keep:
        raise StoreError(
            f"camera {camera_id!r} in {url} lacks 'fraction'/'status' — not a plumenet store group"
        )
    ds = ds[keep]
    if start is not None or end is not None:
        from plumenet.timeutil import parse_end, parse_start

        t0 = parse_start(start).tz_localize(None) if start is not None else None
        t1 = parse_end(end).tz_localize(None) if end is not None else None
        ds = ds.sel(time=slice(t0, t1 - pd.Timedelta(1) if t1 is not None else None))
    status = ds["status"].values
    have = np.flatnonzero(status != 0)
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
    ``params`` are :class:`EpisodeParams` / :class:`ObservabilityParams` fields.
    Returns, per camera, output name -> path (or store group).
    """
    from plumenet.config import Config, load_config
    from storage import catalogue as files

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
            from plumenet.science.figures import plot_timeline

            fr = activity_fractions(ds, res["observable"].values)
            written["timeline_png"] = str(
                plot_timeline(fr, episodes, Path(out) / cam / "timeline.png", title=cam)
            )
        if write_store:
            group = files.write_activity_store(
                cfg.store, cam, episodes, act, storage_options=cfg.storage_options
            )
            written["store_group"] = group
        results[cam] = written
        log.info("camera %s: catalogue written to %s", cam, Path(out) / cam)
    return results

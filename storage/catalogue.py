"""Activity products: the store's activity subgroups, episode and activity tables (Parquet +
CSV), and the comparison outputs (JSON + CSV).

Layout in the store (DataTree-safe names, see docs/catalogue.md)::

    <camera>/activity               episode-dimensioned variables (episode_class, onset, ...)
    <camera>/activity/activity_1h   dims time_1h, activity_class
    <camera>/activity/activity_1d   dims time_1d, activity_class

Tables under an output folder, one folder per camera::

    <out>/<camera>/episodes.parquet|csv, activity_1h.parquet|csv, activity_1d.parquet|csv
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from plumenet.errors import StoreError
from plumenet.timeutil import CSV_TIME_FORMAT, naive_utc_index
from storage.schema import CONVENTIONS
from storage.zarr_store import (
    camera_group,
    is_local,
    refresh_consolidated,
    zarr_store_for,
)

log = logging.getLogger(__name__)

_TIME_COLUMNS = ("onset", "end", "peak_time")
#: Variable-length UTF-8 strings (zarr v3 "string"), as the camera group's own ``class``.
_STR = np.dtypes.StringDType()

#: CF attributes of the episode variables (``units`` "1": dimensionless).
EPISODE_ATTRS: dict[str, dict[str, str]] = {
    "episode": {"long_name": "episode number within the camera", "units": "1"},
    "episode_class": {"long_name": "activity class of the episode"},
    "onset": {"standard_name": "time", "long_name": "episode onset: first active frame (UTC)"},
    "end": {"standard_name": "time", "long_name": "episode end: last active frame (UTC)"},
    "peak_time": {"standard_name": "time", "long_name": "time of the peak fraction (UTC)"},
    "peak_fraction": {"long_name": "largest class fraction within the episode", "units": "1"},
    "mean_fraction": {"long_name": "mean class fraction over observable frames", "units": "1"},
    "duration_s": {"long_name": "last minus first active frame", "units": "s"},
    "n_frames": {"long_name": "observable frames within the episode", "units": "1"},
    "onset_uncertainty_s": {
        "long_name": "half the interval to the observable frame before the onset",
        "units": "s",
    },
    "end_uncertainty_s": {
        "long_name": "half the interval to the observable frame after the end",
        "units": "s",
    },
    "observable_share": {"long_name": "share of the episode's slots observable", "units": "1"},
    "height_max_m": {
        "long_name": "highest plume top above the vent over the episode's observable frames",
        "units": "m",
        "comment": "NaN without camera geometry, for lava, or without a measured plume",
    },
    "height_median_m": {
        "long_name": "median plume top above the vent over the episode's frames with a plume",
        "units": "m",
    },
    "top_row_min_px": {
        "long_name": "highest plume top in the frame: smallest pixel row (y down)",
        "units": "1",
        "comment": "original-frame pixel row; set with or without camera geometry",
    },
    "top_row_median_px": {
        "long_name": "median plume top row over the episode's frames with a plume (pixels)",
        "units": "1",
    },
}
#: CF attributes of the binned activity variables (``{label}``: the bin, e.g. ``1h``).
ACTIVITY_ATTRS: dict[str, dict[str, str]] = {
    "slots": {"long_name": "grid slots in the bin", "units": "1"},
    "frames": {"long_name": "slots with a frame in the bin", "units": "1"},
    "observable_frames": {"long_name": "observable frames in the bin", "units": "1"},
    "present_share": {
        "long_name": "share of observable frames with the class present",
        "units": "1",
    },
    "mean_fraction": {"long_name": "mean class fraction over observable frames", "units": "1"},
    "max_fraction": {"long_name": "largest class fraction in the bin", "units": "1"},
    "present_threshold": {"long_name": "class fraction counted as present", "units": "1"},
    "height_max_m": {
        "long_name": "highest plume top above the vent in the bin",
        "units": "m",
        "comment": "0: seen without a plume; NaN: nothing observable, no camera geometry, "
        "or a class without a height (only any_emission and eruption_column have one)",
    },
    "top_row_min_px": {
        "long_name": "highest plume top in the bin: smallest pixel row (y down)",
        "units": "1",
        "comment": "original-frame pixel row; NaN without a plume or nothing observable",
    },
    "activity_class": {"long_name": "activity class"},
}


def _cf_dataset(ds: xr.Dataset, attrs: dict[str, dict[str, str]], title: str) -> xr.Dataset:
    """``ds`` with CF attributes on every variable it has and on the dataset itself."""
    for name, extra in attrs.items():
        if name in ds.variables:
            ds[name].attrs.update(extra)
    ds.attrs.update({"Conventions": CONVENTIONS, "title": title})
    return ds


def episodes_to_dataset(episodes: pd.DataFrame) -> xr.Dataset:
    """Episode table -> Dataset along ``episode``; ``class`` is stored as ``episode_class``
    (``class`` is the camera group's own coordinate) and times as naive UTC."""
    data: dict[str, Any] = {}
    for col in episodes.columns:
        if col in ("episode", "camera"):
            continue
        values = episodes[col]
        if col in _TIME_COLUMNS:
            arr = naive_utc_index(values).values
        elif col == "class":
            arr = np.asarray(values.astype(str).tolist(), dtype=_STR)
        else:
            arr = values.to_numpy()
        name = "episode_class" if col == "class" else col
        data[name] = ("episode", arr)
    ds = xr.Dataset(data, coords={"episode": episodes["episode"].to_numpy(dtype=np.int64)})
    if len(episodes) == 0 and "episode_class" in ds:
        ds["episode_class"] = ("episode", np.array([], dtype=_STR))
    for col in _TIME_COLUMNS:
        if col in ds:
            ds[col].encoding = {"units": "nanoseconds since 1970-01-01", "dtype": "int64"}
    if "camera" in episodes.columns and len(episodes):
        ds.attrs["camera"] = str(episodes["camera"].iloc[0])
    return _cf_dataset(ds, EPISODE_ATTRS, "plumenet emission episodes")


def dataset_to_episodes(ds: xr.Dataset, camera: str = "") -> pd.DataFrame:
    """Inverse of :func:`episodes_to_dataset` (times back to tz-aware UTC)."""
    df = ds.to_dataframe().reset_index().rename(columns={"episode_class": "class"})
    for col in _TIME_COLUMNS:
        df[col] = pd.to_datetime(df[col], utc=True)
    df.insert(0, "camera", camera or ds.attrs.get("camera", ""))
    return df


def read_episodes(
    url: str, camera_id: str, *, storage_options: dict[str, Any] | None = None
) -> pd.DataFrame | None:
    """The episode table last written to ``<camera>/activity`` (None when there is none)."""
    group = f"{camera_id}/activity"
    local = is_local(url)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            ds = xr.open_zarr(
                url.removeprefix("file://") if local else url,
                group=group,
                zarr_format=3,
                consolidated=False,
                storage_options=None if local else storage_options,
            )
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return None
    if "episode" not in ds.dims:
        return None
    return dataset_to_episodes(ds.load(), camera_id)


def activity_for_store(activity: xr.Dataset, label: str) -> xr.Dataset:
    """Binned activity with DataTree-safe dims: ``time`` -> ``time_<label>``,
    ``class`` -> ``activity_class`` (the camera's ``time``/``class`` differ)."""
    out = activity.rename({"time": f"time_{label}", "class": "activity_class"})
    out["activity_class"] = np.asarray([str(c) for c in out["activity_class"].values], dtype=_STR)
    time_attrs = {"standard_name": "time", "axis": "T", "long_name": f"start of the {label} bin"}
    out[f"time_{label}"].attrs.update(time_attrs)
    out = _cf_dataset(out, ACTIVITY_ATTRS, f"plumenet binned activity ({label})")
    out.attrs["class_names"] = " ".join(str(c) for c in out["activity_class"].values)
    return out


def write_activity(
    url: str,
    camera_id: str,
    name: str,
    ds: xr.Dataset,
    *,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Replace the subgroup ``<camera>/activity/<name>`` with ``ds`` (e.g. ``episodes``,
    ``activity_1h``, ``activity_1d``).

    ``ds`` must not reuse the camera's dimension names ``time``/``class`` with other
    coordinates (DataTree requires children to align with parents): name binned axes e.g.
    ``time_1h``.
    """
    g = camera_group(url, camera_id, storage_options, "r+")
    if not name or "/" in name:
        raise StoreError(f"activity name {name!r} must be one path segment, e.g. 'activity_1h'")
    clash = []
    for dim in ("time", "class"):
        if dim in ds.dims:
            stored = np.asarray(g[dim][:])
            if dim == "class":
                ok = list(map(str, stored)) == list(map(str, ds[dim].values))
            else:
                ok = False
            if not ok:
                clash.append(dim)
    if clash:
        raise StoreError(
            f"camera {camera_id!r}: activity dataset {name!r} uses dimension(s) {clash} with "
            "coordinates that differ from the camera's — rename them (e.g. 'time' -> 'time_1h')"
        )
    g.require_group("activity")
    ds.to_zarr(
        zarr_store_for(url, storage_options, read_only=False),
        group=f"{camera_id}/activity/{name}",
        mode="w",
        zarr_format=3,
        consolidated=False,
    )
    refresh_consolidated(url, storage_options)


def write_activity_store(
    url: str,
    camera_id: str,
    episodes: pd.DataFrame,
    activities: dict[str, xr.Dataset],
    *,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Replace ``<camera>/activity`` (episodes) and its children ``activity_<label>``.

    ``activities`` maps labels (``"1h"``, ``"1d"``) to
    :func:`plumenet.science.activity.bin_activity`
    results. Returns the group path written.
    """
    ep = episodes_to_dataset(episodes)
    local = is_local(url)
    group = f"{camera_id}/activity"
    camera_group(url, camera_id, storage_options, "r")  # clear error if absent
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        try:
            ep.to_zarr(
                url.removeprefix("file://") if local else url,
                group=group,
                mode="w",
                zarr_format=3,
                consolidated=False,
                storage_options=None if local else storage_options,
            )
        except (OSError, ValueError) as err:
            raise StoreError(
                f"cannot write {group} to store {url} ({err}) — check the store is writable"
            ) from err
        for label, act in activities.items():
            write_activity(
                url,
                camera_id,
                f"activity_{label}",
                activity_for_store(act, label),
                storage_options=storage_options,
            )
    refresh_consolidated(url, storage_options)
    log.info("wrote %s (%d episodes, %s) to %s", group, len(episodes), list(activities), url)
    return group


def utc_times(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every zoned datetime column in UTC (the CSV format writes wall time
    followed by ``Z``, so it must be UTC wall time)."""
    zoned = [c for c in df.columns if isinstance(df[c].dtype, pd.DatetimeTZDtype)]
    return df.assign(**{c: df[c].dt.tz_convert("UTC") for c in zoned}) if zoned else df


def write_tables(
    out_dir: str | Path, tables: dict[str, pd.DataFrame], *, csv: bool = True
) -> dict[str, Path]:
    """Each table as ``<name>.parquet`` (and ``<name>.csv``) under ``out_dir``.

    Times are written as UTC (ISO 8601 with offset in CSV).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, df in tables.items():
        pq = out / f"{name}.parquet"
        df.to_parquet(pq, index=False)
        paths[f"{name}_parquet"] = pq
        if csv:
            path = out / f"{name}.csv"
            utc_times(df).to_csv(path, index=False, date_format=CSV_TIME_FORMAT)
            paths[f"{name}_csv"] = path
    return paths


def _json_ready(value: object) -> object:
    """NaN/inf -> null, numpy scalars -> Python, timestamps -> ISO 8601."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_json_ready(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def write_json(path: str | Path, payload: dict[str, object]) -> Path:
    """``payload`` as pretty JSON (NaN written as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_ready(payload), indent=2, allow_nan=False) + "\n")
    return path

"""Catalogue files: episode and activity tables (Parquet + CSV), the store's activity
subgroup, and the comparison outputs (JSON + CSV).

Layout in the store (design section 6; DataTree-safe names, see docs/catalogue.md)::

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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from plumenet.errors import StoreError

if TYPE_CHECKING:
    import xarray as xr

log = logging.getLogger(__name__)

_TIME_COLUMNS = ("onset", "end", "peak_time")
#: Variable-length UTF-8 strings (zarr v3 "string"), as the camera group's own ``class``.
_STR = np.dtypes.StringDType()


def _naive_utc(values: pd.Series | pd.Index) -> np.ndarray:
    idx = pd.DatetimeIndex(values)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("ns").values


def episodes_to_dataset(episodes: pd.DataFrame) -> xr.Dataset:
    """Episode table -> Dataset along ``episode``; ``class`` is stored as ``episode_class``
    (``class`` is the camera group's own coordinate) and times as naive UTC."""
    import xarray as xr

    data: dict[str, Any] = {}
    for col in episodes.columns:
        if col in ("episode", "camera"):
            continue
        values = episodes[col]
        if col in _TIME_COLUMNS:
            arr = _naive_utc(values)
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
            ds[col].attrs["long_name"] = f"episode {col.replace('_', ' ')} (UTC)"
    if "camera" in episodes.columns and len(episodes):
        ds.attrs["camera"] = str(episodes["camera"].iloc[0])
    return ds


def dataset_to_episodes(ds: xr.Dataset, camera: str = "") -> pd.DataFrame:
    """Inverse of :func:`episodes_to_dataset` (times back to tz-aware UTC)."""
    df = ds.to_dataframe().reset_index().rename(columns={"episode_class": "class"})
    for col in _TIME_COLUMNS:
        df[col] = pd.to_datetime(df[col], utc=True)
    df.insert(0, "camera", camera or ds.attrs.get("camera", ""))
    return df


def activity_for_store(activity: xr.Dataset, label: str) -> xr.Dataset:
    """Binned activity with DataTree-safe dims: ``time`` -> ``time_<label>``,
    ``class`` -> ``activity_class`` (the camera's ``time``/``class`` differ)."""
    out = activity.rename({"time": f"time_{label}", "class": "activity_class"})
    out["activity_class"] = np.asarray([str(c) for c in out["activity_class"].values], dtype=_STR)
    return out


def _has_consolidated(url: str, storage_options: dict[str, Any] | None) -> bool:
    """Whether the root carries consolidated metadata (then it must be refreshed)."""
    import zarr

    from storage import store

    root = zarr.open_group(
        store._zstore(url, storage_options, read_only=True), mode="r", zarr_format=3
    )
    return root.metadata.consolidated_metadata is not None


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
    from storage import store

    ep = episodes_to_dataset(episodes)
    local = "://" not in url or url.startswith("file://")
    group = f"{camera_id}/activity"
    store.open_camera(url, camera_id, storage_options=storage_options)  # clear error if absent
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
            store.write_activity(
                url,
                camera_id,
                f"activity_{label}",
                activity_for_store(act, label),
                storage_options=storage_options,
            )
    if _has_consolidated(url, storage_options):
        store.consolidate(url, storage_options=storage_options)
    log.info("wrote %s (%d episodes, %s) to %s", group, len(episodes), list(activities), url)
    return group


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
            df.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
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

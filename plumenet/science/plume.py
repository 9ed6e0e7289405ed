"""Plume height for the catalogue: per-frame heights masked by observability, and their
reductions per episode and per time bin.

The store (schema 2) holds ``plume_height_m`` (metres above the vent, cameras with
``geometry``) and ``plume_top_row`` (original-frame pixel row, y down) per frame and per
emission kind (:data:`HEIGHT_KINDS`). Heights count only on observable frames, as the
fractions do. Stores without these variables (schema 1) give all-NaN heights, never an
error. docs/catalogue.md, section 3; docs/geometry.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from plumenet.classes import PLUME_KINDS
from plumenet.science.observability import ANY_EMISSION
from plumenet.timeutil import naive_utc_index

#: Emission kinds with a plume height, in the store's ``emission`` order (the default when
#: a dataset lacks the ``emission_names`` attribute).
HEIGHT_KINDS: tuple[str, ...] = PLUME_KINDS

#: Which kind's height an episode of a class reports: the column its own top; ash and
#: non-ash the top of the whole plume they belong to; lava (not a plume) none.
EPISODE_HEIGHT_KIND: dict[str, str] = {
    "eruption_column": "eruption_column",
    "ash_emissions": ANY_EMISSION,
    "non_ash_emissions": ANY_EMISSION,
    ANY_EMISSION: ANY_EMISSION,
}

#: Episode-table columns of the plume height, in order (metres NaN without geometry).
EPISODE_HEIGHT_COLUMNS: tuple[str, ...] = (
    "height_max_m",
    "height_median_m",
    "top_row_min_px",
    "top_row_median_px",
)


def height_column(kind: str) -> str:
    """Per-frame table column of the height in metres of ``kind``."""
    return f"height_m_{kind}"


def top_row_column(kind: str) -> str:
    """Per-frame table column of the top row (pixels) of ``kind``."""
    return f"top_row_{kind}"


def _emission_order(ds: xr.Dataset) -> list[str]:
    names = ds.attrs.get("emission_names")
    if isinstance(names, str) and names.split():
        return names.split()
    return list(HEIGHT_KINDS)


def _per_kind(ds: xr.Dataset, name: str, kind: str, n: int) -> np.ndarray:
    """One (time,) series of a ``(time, emission)`` variable; NaN when absent."""
    if name not in ds or "emission" not in ds[name].dims:
        return np.full(n, np.nan)
    order = _emission_order(ds)
    if kind not in order or order.index(kind) >= ds.sizes["emission"]:
        return np.full(n, np.nan)
    values = ds[name].transpose("time", "emission").values[:, order.index(kind)]
    return values.astype(np.float64)


def plume_heights(ds: xr.Dataset, observable: np.ndarray | xr.DataArray) -> pd.DataFrame:
    """Per-frame heights (m) and top rows (px) per kind; NaN where unobservable or no plume.

    Columns :func:`height_column` and :func:`top_row_column` of every :data:`HEIGHT_KINDS`;
    index ``time`` as the dataset's. All NaN for stores without the plume variables.
    """
    n = ds.sizes["time"]
    mask = np.asarray(observable, dtype=bool)
    cols: dict[str, np.ndarray] = {}
    for kind in HEIGHT_KINDS:
        pairs = ((height_column(kind), "plume_height_m"), (top_row_column(kind), "plume_top_row"))
        for col, var in pairs:
            values = _per_kind(ds, var, kind, n)
            values[~mask] = np.nan
            cols[col] = values
    return pd.DataFrame(cols, index=pd.DatetimeIndex(ds["time"].values, name="time"))


def _nan_stat(values: np.ndarray, how: str) -> float:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan")
    return float({"max": np.max, "min": np.min, "median": np.median}[how](finite))


def episode_heights(episodes: pd.DataFrame, heights: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """:data:`EPISODE_HEIGHT_COLUMNS` per episode row, over its observable frames
    (onset to end inclusive) with a plume of the class's kind (:data:`EPISODE_HEIGHT_KIND`).

    ``heights``: :func:`plume_heights` (NaN on unobservable frames). NaN for lava, for
    episodes without a measured height, and everywhere when ``heights`` is None.
    """
    out = {c: np.full(len(episodes), np.nan) for c in EPISODE_HEIGHT_COLUMNS}
    if heights is None or episodes.empty:
        return out
    heights = heights.sort_index()
    t = naive_utc_index(heights.index).asi8
    on = naive_utc_index(episodes["onset"]).asi8
    end = naive_utc_index(episodes["end"]).asi8
    first = np.searchsorted(t, on, side="left")
    last = np.searchsorted(t, end, side="right")
    series = {
        k: (
            heights[height_column(k)].to_numpy(np.float64),
            heights[top_row_column(k)].to_numpy(np.float64),
        )
        for k in HEIGHT_KINDS
    }
    for i, cls in enumerate(episodes["class"].astype(str)):
        kind = EPISODE_HEIGHT_KIND.get(cls)
        if kind is None:
            continue
        metres = series[kind][0][first[i] : last[i]]
        rows = series[kind][1][first[i] : last[i]]
        out["height_max_m"][i] = _nan_stat(metres, "max")
        out["height_median_m"][i] = _nan_stat(metres, "median")
        out["top_row_min_px"][i] = _nan_stat(rows, "min")
        out["top_row_median_px"][i] = _nan_stat(rows, "median")
    return out


def has_metres(heights: pd.DataFrame | None) -> bool:
    """Whether any frame has a height in metres (the camera has geometry)."""
    if heights is None:
        return False
    cols = [height_column(k) for k in HEIGHT_KINDS if height_column(k) in heights]
    return bool(cols) and bool(np.isfinite(heights[cols].to_numpy()).any())

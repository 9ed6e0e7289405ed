"""Reading the store back as xarray: one camera as a decoded Dataset, or the whole store as
a DataTree.

Readers never write and never need the driver: they open the store by URL (plus
``storage_options`` for a remote one) and decode the CF encoding of :mod:`storage.schema`
(``probability`` as float32 in [0, 1], NaN for no frame; times as datetime64).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from plumenet.encoding import PROBABILITY_SCALE
from plumenet.errors import StoreError
from storage.zarr_store import is_local


def open_camera(
    url: str,
    camera_id: str,
    *,
    storage_options: dict[str, Any] | None = None,
    chunks: Any = None,
) -> xr.Dataset:
    """A camera's group as a decoded, lazy dataset: ``probability`` as float32 in [0, 1]
    (NaN: no frame), times as datetime64.

    ``chunks=None`` (default) gives lazily indexed arrays without dask, the fastest for
    selections (one frame's map, a year of fractions). ``chunks={}`` gives dask arrays with
    one chunk per work unit along ``time`` for every variable, ``probability`` included
    (its shard, not its one-frame inner chunk), so ``ds.chunks`` and ``ds.chunksizes`` work;
    a dict without ``time`` gets the same default, anything else goes to ``xr.open_zarr``
    as given. (``xr.open_zarr`` directly decodes ``probability`` as float64,
    because JSON attributes cannot say the scale factor is float32; for the same reason
    ``flag_values`` are given the variable's dtype here, so ``to_netcdf`` writes them typed.)
    """
    so = None if is_local(url) else storage_options
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            raw = xr.open_zarr(
                url,
                group=camera_id,
                storage_options=so,
                zarr_format=3,
                chunks=None if isinstance(chunks, dict) else chunks,
                decode_cf=False,
            )
    except (FileNotFoundError, KeyError) as err:
        raise StoreError(
            f"camera {camera_id!r} has no group in store {url} — run a backfill for it first"
        ) from err
    if isinstance(chunks, dict):
        raw = raw.chunk({"time": _unit_length(raw), **chunks})
    if "probability" in raw:
        raw["probability"].attrs["scale_factor"] = np.float32(1.0 / PROBABILITY_SCALE)
    for var in raw.data_vars.values():
        # JSON has one number type; CF wants flag_values in the variable's own (netCDF keeps it).
        if "flag_values" in var.attrs:
            var.attrs["flag_values"] = np.asarray(var.attrs["flag_values"], dtype=var.dtype)
    return xr.decode_cf(raw)


def _unit_length(ds: xr.Dataset) -> int:
    """Slots per work unit: the ``time`` chunk of the data variables (``probability``'s
    shard), which is also what stores made before the ``chunk_len`` attribute have."""
    return int(ds["status"].encoding["chunks"][0])


def open_tree(url: str, *, storage_options: dict[str, Any] | None = None) -> xr.DataTree:
    """The whole store as a DataTree (one child per camera)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        return xr.open_datatree(
            url,
            engine="zarr",
            storage_options=None if is_local(url) else storage_options,
            zarr_format=3,
        )

"""The work unit's plume and daylight columns: frame sizes in, store arrays out.

Kept apart from :mod:`plumenet.jobs.workunit` so the unit only calls three functions: the
original frame sizes for the predictor (plume geometry in the frame's own pixels), the
predictor's geometry (and, with the camera's ``geometry``, metres) into the unit's arrays,
and the solar elevation of every slot with a frame (with the camera's ``site``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from plumenet.jobs.frames import LoadedFrame
from plumenet.science.daylight import solar_elevation
from plumenet.science.geometry import plume_metres

if TYPE_CHECKING:
    from plumenet.inference.predictor import FramePredictions


def frame_sizes(batch: Sequence[LoadedFrame], size: int) -> np.ndarray:
    """``(N, 2)`` original ``(height, width)`` of each loaded frame (``size`` x ``size``
    where the header could not say: then geometry is in model-input pixels)."""
    return np.array([b.original_size or (size, size) for b in batch], dtype=np.float32)


def store_plume(
    arrays: dict[str, np.ndarray],
    idx: np.ndarray,
    pred: FramePredictions,
    sizes: np.ndarray,
    geometry: Mapping[str, Any] | None,
) -> None:
    """Write the batch's plume geometry (rows ``idx`` of the unit) into ``arrays``."""
    if pred.plume_top_row is None or pred.plume_center_col is None:
        return
    arrays["plume_top_row"][idx] = pred.plume_top_row
    arrays["plume_center_col"][idx] = pred.plume_center_col
    if pred.plume_width is not None:
        arrays["plume_width"][idx] = pred.plume_width
    if geometry is not None:
        height, drift = plume_metres(
            pred.plume_top_row, pred.plume_center_col, sizes[:, 0], geometry
        )
        arrays["plume_height_m"][idx] = height
        arrays["plume_drift_m"][idx] = drift


def store_solar_elevation(arrays: dict[str, np.ndarray], site: tuple[float, float] | None) -> None:
    """Solar elevation of every slot with a frame time (NaN elsewhere, or without a site)."""
    if site is not None:
        arrays["solar_elevation"][:] = solar_elevation(arrays["frame_time"], *site)


def site_position(site: Mapping[str, Any]) -> tuple[float, float] | None:
    """``(lat, lon)`` of a camera's ``site`` block, ``None`` unless it has both."""
    lat, lon = site.get("lat"), site.get("lon")
    if lat is None or lon is None:
        return None
    return float(lat), float(lon)

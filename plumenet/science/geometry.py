"""Plume pixels -> metres with the pinhole camera model (docs/geometry.md).

Assumptions (stated in docs/geometry.md): the plume lies in the vertical plane through the
vent, perpendicular to the camera's horizontal viewing direction; the lens has no
distortion; the principal point is the frame centre; the camera is level (no roll).

Two ways to give a camera's geometry (``plumenet.config.CameraGeometry``):

- ``distance_m`` (horizontal distance camera -> vent), ``vertical_fov_deg`` and
  ``tilt_deg`` (elevation of the optical axis above the horizon): the exact pinhole relation.
  With focal length ``f = (H / 2) / tan(vfov / 2)`` pixels and ``c_y = (H - 1) / 2``, a row
  ``y`` is seen at elevation ``theta + atan((c_y - y) / f)``, so it meets the plane at the
  height ``Z(y) = D tan(theta + atan((c_y - y) / f))`` above the camera; the height above
  the vent is ``Z(y) - Z(y_vent)``. A column ``x`` on the vent's row meets the plane
  ``X = D (x - c_x) / (f cos(theta) - (c_y - y_vent) sin(theta))`` to the right of the
  camera's axis; the drift is ``X(x) - X(x_vent)``.
- ``metres_per_pixel`` at the vent: a flat scale, ``h = s (y_vent - y)``,
  ``drift = s (x - x_vent)`` (good for a distant camera and a small field of view).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["pinhole_drift_m", "pinhole_height_m", "plume_metres", "scale_drift_m", "scale_height_m"]


def _focal_px(frame_height: np.ndarray, vertical_fov_deg: float) -> np.ndarray:
    return (np.asarray(frame_height, dtype=np.float64) / 2.0) / np.tan(
        np.radians(vertical_fov_deg) / 2.0
    )


def pinhole_height_m(
    row: np.ndarray,
    frame_height: np.ndarray,
    *,
    vent_y: float,
    distance_m: float,
    vertical_fov_deg: float,
    tilt_deg: float = 0.0,
) -> np.ndarray:
    """Height above the vent (m) of the plume point seen at ``row`` (original-frame pixels)."""
    f = _focal_px(frame_height, vertical_fov_deg)
    cy = (np.asarray(frame_height, dtype=np.float64) - 1.0) / 2.0
    theta = np.radians(tilt_deg)
    top = np.tan(theta + np.arctan((cy - np.asarray(row, dtype=np.float64)) / f))
    vent = np.tan(theta + np.arctan((cy - vent_y) / f))
    return distance_m * (top - vent)


def pinhole_drift_m(
    col: np.ndarray,
    frame_height: np.ndarray,
    *,
    vent_x: float,
    vent_y: float,
    distance_m: float,
    vertical_fov_deg: float,
    tilt_deg: float = 0.0,
) -> np.ndarray:
    """Horizontal offset (m, positive = to the right in the frame) from the vent of the
    plume point at column ``col``, measured on the vent's row."""
    f = _focal_px(frame_height, vertical_fov_deg)
    cy = (np.asarray(frame_height, dtype=np.float64) - 1.0) / 2.0
    theta = np.radians(tilt_deg)
    depth = f * np.cos(theta) - (cy - vent_y) * np.sin(theta)
    return distance_m * (np.asarray(col, dtype=np.float64) - vent_x) / depth


def scale_height_m(row: np.ndarray, *, vent_y: float, metres_per_pixel: float) -> np.ndarray:
    """Height above the vent (m) with a flat scale at the vent."""
    return metres_per_pixel * (vent_y - np.asarray(row, dtype=np.float64))


def scale_drift_m(col: np.ndarray, *, vent_x: float, metres_per_pixel: float) -> np.ndarray:
    """Horizontal offset from the vent (m, positive = right) with a flat scale at the vent."""
    return metres_per_pixel * (np.asarray(col, dtype=np.float64) - vent_x)


def plume_metres(
    top_row: np.ndarray,
    center_col: np.ndarray,
    frame_height: np.ndarray,
    geometry: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """(height above the vent, drift) in metres, float32, same shape as ``top_row``.

    ``geometry`` is a camera's ``geometry`` block as a mapping (``vent_x``, ``vent_y`` and
    either ``distance_m`` + ``vertical_fov_deg`` (+ ``tilt_deg``) or ``metres_per_pixel``);
    ``frame_height`` broadcasts against ``top_row``'s leading axis. NaN stays NaN.
    """
    top = np.asarray(top_row, dtype=np.float64)
    col = np.asarray(center_col, dtype=np.float64)
    heights = np.asarray(frame_height, dtype=np.float64).reshape(
        (-1,) + (1,) * max(top.ndim - 1, 0)
    )
    vent_x, vent_y = float(geometry["vent_x"]), float(geometry["vent_y"])
    scale = geometry.get("metres_per_pixel")
    if scale is not None:
        height = scale_height_m(top, vent_y=vent_y, metres_per_pixel=float(scale))
        drift = scale_drift_m(col, vent_x=vent_x, metres_per_pixel=float(scale))
    else:
        view = {
            "distance_m": float(geometry["distance_m"]),
            "vertical_fov_deg": float(geometry["vertical_fov_deg"]),
            "tilt_deg": float(geometry.get("tilt_deg") or 0.0),
        }
        height = pinhole_height_m(top, heights, vent_y=vent_y, **view)
        drift = pinhole_drift_m(col, heights, vent_x=vent_x, vent_y=vent_y, **view)
    return height.astype(np.float32), drift.astype(np.float32)

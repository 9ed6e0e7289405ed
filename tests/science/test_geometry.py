"""Pixels -> metres: the pinhole relation for hand-set geometries (checked against a ray
traced independently with rotation matrices), the flat scale, and clear config errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plumenet.errors import ConfigError
from plumenet.science.geometry import pinhole_drift_m, pinhole_height_m, plume_metres


def _ray_hit(x: float, y: float, h: int, w: int, fov: float, tilt: float, d: float):
    """Where the ray through pixel (x, y) meets the vertical plane at distance ``d``:
    (right, up) in metres relative to the camera, by rotating the camera-frame ray."""
    f = (h / 2) / math.tan(math.radians(fov) / 2)
    ray_cam = np.array([x - (w - 1) / 2, (h - 1) / 2 - y, f])  # right, up, forward
    t = math.radians(tilt)
    rot = np.array([[1, 0, 0], [0, math.cos(t), math.sin(t)], [0, -math.sin(t), math.cos(t)]])
    right, up, forward = rot @ ray_cam  # world: right, up, horizontal forward
    return d * right / forward, d * up / forward


def test_level_camera_height_is_distance_times_pixel_ratio():
    # level camera, 60 degree vertical field, 1000 rows: f = 500 / tan(30 deg) = 866.03 px
    f = 500 / math.tan(math.radians(30))
    h = pinhole_height_m(np.array([299.5]), np.array([1000]), vent_y=499.5,
                         distance_m=10_000, vertical_fov_deg=60)  # fmt: skip
    assert h[0] == pytest.approx(10_000 * 200 / f)  # 2309.4 m
    assert h[0] == pytest.approx(2309.4, abs=0.1)


@pytest.mark.parametrize("tilt", [-20.0, 0.0, 12.5, 35.0])
def test_tilted_pinhole_matches_an_independent_ray_trace(tilt):
    h_px, w_px, fov, d = 1080, 1920, 40.0, 7_500.0
    vent_x, vent_y = 900.0, 800.0
    rows = np.array([100.0, 400.0, 799.0])
    cols = np.array([1500.0, 300.0, 900.0])
    height = pinhole_height_m(rows, np.full(3, h_px), vent_y=vent_y, distance_m=d,
                              vertical_fov_deg=fov, tilt_deg=tilt)  # fmt: skip
    drift = pinhole_drift_m(cols, np.full(3, h_px), vent_x=vent_x, vent_y=vent_y,
                            distance_m=d, vertical_fov_deg=fov, tilt_deg=tilt)  # fmt: skip
    _, vent_up = _ray_hit(vent_x, vent_y, h_px, w_px, fov, tilt, d)
    vent_right, _ = _ray_hit(vent_x, vent_y, h_px, w_px, fov, tilt, d)
    for i in range(3):
        _r, up = _ray_hit(vent_x, rows[i], h_px, w_px, fov, tilt, d)
        right, _u = _ray_hit(cols[i], vent_y, h_px, w_px, fov, tilt, d)
        assert height[i] == pytest.approx(up - vent_up, rel=1e-9)
        assert drift[i] == pytest.approx(right - vent_right, rel=1e-9)
    assert height[0] > height[1] > height[2] > 0  # higher in the frame = higher above the vent


def test_plume_metres_with_a_flat_scale_and_nan_passthrough():
    top = np.array([[100.0, 150.0], [np.nan, np.nan]], dtype=np.float32)
    col = np.array([[420.0, 400.0], [np.nan, np.nan]], dtype=np.float32)
    geometry = {"vent_x": 400.0, "vent_y": 500.0, "metres_per_pixel": 2.5}
    height, drift = plume_metres(top, col, np.array([720, 720]), geometry)
    np.testing.assert_allclose(height[0], [1000.0, 875.0])
    np.testing.assert_allclose(drift[0], [50.0, 0.0])
    assert np.isnan(height[1]).all() and np.isnan(drift[1]).all()
    assert height.dtype == np.float32


def test_plume_metres_uses_each_frames_own_height():
    geometry = {"vent_x": 0.0, "vent_y": 0.0, "distance_m": 1000.0, "vertical_fov_deg": 50.0}
    top = np.array([[-100.0], [-100.0]])
    height, _ = plume_metres(top, np.zeros((2, 1)), np.array([500, 1000]), geometry)
    expect = [
        pinhole_height_m(
            np.array([-100.0]), np.array([hh]), vent_y=0.0, distance_m=1000.0, vertical_fov_deg=50.0
        )[0]
        for hh in (500, 1000)
    ]
    np.testing.assert_allclose(height[:, 0], expect, rtol=1e-6)
    assert height[0, 0] != pytest.approx(height[1, 0])


def _camera(geometry: dict) -> dict:
    return {
        "cameras": [
            {
                "id": "CAM.01", "archive": "/a", "template": "flat", "fields": {"CAM": "c"},
                "cadence": "10min", "grid_start": "2000-01-01", "geometry": geometry,
            }
        ]
    }  # fmt: skip


def test_config_accepts_both_ways_of_giving_geometry():
    from plumenet.config import parse_config

    cam = parse_config(_camera({"vent_x": 10, "vent_y": 20, "metres_per_pixel": 3})).cameras[0]
    assert cam.geometry is not None and cam.geometry.metres_per_pixel == 3
    view = {"vent_x": 10, "vent_y": 20, "distance_m": 5000, "vertical_fov_deg": 30, "tilt_deg": 5}
    cam = parse_config(_camera(view)).cameras[0]
    assert cam.public_dict()["geometry"]["tilt_deg"] == 5


@pytest.mark.parametrize(
    ("geometry", "message"),
    [
        ({"vent_x": 1, "vent_y": 1}, "give either distance_m with vertical_fov_deg"),
        (
            {
                "vent_x": 1,
                "vent_y": 1,
                "metres_per_pixel": 2,
                "distance_m": 9,
                "vertical_fov_deg": 9,
            },
            "not both",
        ),
        (
            {"vent_x": 1, "vent_y": 1, "distance_m": 900},
            "distance_m and vertical_fov_deg go together",
        ),
        (
            {"vent_x": 1, "vent_y": 1, "distance_m": 900, "vertical_fov_deg": 60, "tilt_deg": 70},
            r"field 'geometry': tilt_deg 70.0 with vertical_fov_deg 60.0 puts the top",
        ),
        (
            {"vent_x": 1, "vent_y": 1, "distance_m": -5, "vertical_fov_deg": 9},
            r"geometry\.distance_m': Input should be greater than 0",
        ),
        (
            {"vent_x": 1, "vent_y": 1, "distance_m": 5, "vertical_fov_deg": 180},
            r"geometry\.vertical_fov_deg': Input should be less than 180",
        ),
        (
            {"vent_x": -3, "vent_y": 1, "metres_per_pixel": 1},
            r"geometry\.vent_x': Input should be greater than or equal to 0",
        ),
        ({"vent_x": 1, "vent_y": 1, "metres_per_pixel": 1, "tilt": 3}, "did you mean 'tilt_deg'"),
    ],
)
def test_impossible_geometry_is_one_clear_config_error(geometry, message):
    from plumenet.config import parse_config

    with pytest.raises(ConfigError, match=message) as info:
        parse_config(_camera(geometry))
    assert "camera 'CAM.01'" in str(info.value)


def test_site_latitude_out_of_range_is_a_config_error():
    from plumenet.config import parse_config

    raw = _camera({"vent_x": 1, "vent_y": 1, "metres_per_pixel": 1})
    raw["cameras"][0]["site"] = {"lat": 123.0, "lon": 0.0}
    with pytest.raises(ConfigError, match=r"site lat 123.0 is outside \[-90, 90\] degrees"):
        parse_config(raw)

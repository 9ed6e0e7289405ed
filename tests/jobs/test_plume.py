"""The work unit stores plume geometry in the frame's own pixels, metres from the camera's
geometry, and the sun's elevation from its site; original sizes come from the headers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from plumenet.classes import MODEL_CLASSES, merge_labels
from plumenet.inference.decode import original_size
from plumenet.jobs.frames import load_one
from plumenet.science.daylight import solar_elevation
from plumenet.science.geometry import plume_metres

COLUMN = MODEL_CLASSES.index("eruption_column")
SITE = (-37.52, 177.18)
GEOMETRY = {"vent_x": 240.0, "vent_y": 300.0, "metres_per_pixel": 4.0}


def _jpeg(shape_hw: tuple[int, int], orientation: int | None = None) -> bytes:
    img = Image.fromarray(np.zeros((*shape_hw, 3), dtype=np.uint8))
    buf = io.BytesIO()
    if orientation is None:
        img.save(buf, "JPEG")
    else:
        exif = img.getexif()
        exif[0x0112] = orientation
        img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def test_original_size_follows_exif_rotation_and_reaches_the_loaded_frame(tmp_path):
    import fsspec

    assert original_size(_jpeg((90, 120))) == (90, 120)
    assert original_size(_jpeg((90, 120), orientation=6)) == (120, 90)  # rotated 90 degrees
    assert original_size(b"not an image") is None
    path = tmp_path / "f.jpg"
    path.write_bytes(_jpeg((90, 120), orientation=8))
    fs = fsspec.filesystem("file")
    resized = load_one(fs, 0, str(path), 64, attempts=1, full=False)
    full = load_one(fs, 0, str(path), 64, attempts=1, full=True)
    assert resized.frame.shape == (64, 64, 3) and resized.original_size == (120, 90)
    assert full.original_size == full.frame.shape[:2] == (120, 90)


def _column_unit(tmp_path, n: int):
    """A store and a unit of ``n`` synthetic column frames (PNG, 480 x 360) + one broken."""
    from plumenet.config import CameraConfig
    from plumenet.synthetic.render import render_scene
    from plumenet.synthetic.spec import random_scene_spec
    from storage.grid import WorkUnit
    from storage.zarr_store import ensure_camera

    camera = CameraConfig(
        id="PL", archive=str(tmp_path), template="flat", fields={"CAM": "pl"},
        cadence="1h", grid_start=pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime(),
    )  # fmt: skip
    store = str(tmp_path / "s.zarr")
    t0, t1 = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC")
    grid = ensure_camera(store, camera, t0, t1, grid_shape=(16, 16))
    frames, truth_maps = [], []
    for k in range(n + 1):
        path = tmp_path / f"f{k}.png"
        if k == n:
            path.write_bytes(b"")  # unreadable: no geometry, but its slot has a time
        else:
            spec = random_scene_spec(
                np.random.default_rng([5, k]), size=(480, 360), activity={"eruption_column"}
            )
            rgb, label8 = render_scene(spec)
            Image.fromarray(rgb).save(path)
            truth_maps.append(merge_labels(label8))
        frames.append((k, str(path), grid.slot_time(k)))
    slot0, slot1 = grid.unit_range(0)
    return WorkUnit("PL", 0, slot0, slot1, tuple(frames)), store, truth_maps


def test_unit_stores_geometry_metres_and_sun(tmp_path):
    import zarr

    from plumenet.inference.decode import load_frame
    from plumenet.jobs.workunit import UnitJob, get_predictor, run_unit

    n = 6
    unit, store, truth_maps = _column_unit(tmp_path, n)
    job = UnitJob(
        store=store, camera="PL", model="demo", model_index=0, batch_size=4, site=SITE,
        geometry=GEOMETRY,
    )  # fmt: skip
    run_unit(unit, job)
    g = zarr.open_group(store, mode="r")["PL"]
    top, col = g["plume_top_row"][: n + 1], g["plume_center_col"][: n + 1]
    height, drift = g["plume_height_m"][: n + 1], g["plume_drift_m"][: n + 1]

    # the same numbers the predictor gives for these frames at their original size
    predictor = get_predictor("demo", device=None, batch_size=4)
    size = predictor.input_size
    stack = np.stack([load_frame(Path(p).read_bytes(), size) for _, p, _ in unit.frames[:n]])
    direct = predictor.predict(stack, frame_sizes=np.full((n, 2), (360, 480)))
    np.testing.assert_allclose(top[:n], direct.plume_top_row, rtol=1e-6, equal_nan=True)
    # in the frame's own pixels: the column's top is near the truth at 480 x 360
    truth = np.array([np.flatnonzero((m == COLUMN).any(axis=1))[0] for m in truth_maps])
    assert (np.abs(top[:n, 1] - truth) <= 3 * 14 * 360 / 518).mean() >= 5 / 6
    # metres from the camera's geometry, exactly the science function's
    expect_h, expect_d = plume_metres(top, col, np.full(n + 1, 360), GEOMETRY)
    np.testing.assert_array_equal(height, expect_h)
    np.testing.assert_array_equal(drift, expect_d)
    assert np.isfinite(height[:n, 1]).all() and (height[:n, 1] > 0).all()
    # the unreadable frame has no geometry, but its slot time has a sun elevation
    assert np.isnan(top[n]).all() and np.isnan(height[n]).all()
    times = np.array([t.tz_convert(None).to_datetime64() for _, _, t in unit.frames])
    np.testing.assert_array_equal(g["solar_elevation"][: n + 1], solar_elevation(times, *SITE))
    assert np.isnan(g["solar_elevation"][n + 1 : 24]).all()  # slots without a frame


def test_unit_without_site_or_geometry_leaves_nan(tmp_path):
    import zarr

    from plumenet.jobs.workunit import UnitJob, run_unit

    unit, store, _ = _column_unit(tmp_path, 2)
    run_unit(unit, UnitJob(store=store, camera="PL", model="demo", model_index=0))
    g = zarr.open_group(store, mode="r")["PL"]
    assert np.isfinite(g["plume_top_row"][:2, 1]).all()
    assert np.isnan(g["plume_height_m"][:]).all() and np.isnan(g["solar_elevation"][:]).all()

"""Helpers for the store tests: a camera config, a frame manifest, and a driver+workers run
that fills every planned unit with random outputs (what workers would write).

The fixtures built on them (``cam``, ``url``) are in ``tests/storage/conftest.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from plumenet.config import CameraConfig
from plumenet.encoding import STATUS_OK, quantize_probability
from storage.grid import CameraGrid, WorkUnit, assign_slots, plan_units
from storage.regions import read_ledger, unit_arrays, write_unit
from storage.zarr_store import camera_grid

#: The probability grid of the test stores (small, not square).
GRID = (4, 5)


def make_camera(**kw: object) -> CameraConfig:
    args = {
        "id": "WIZ.01",
        "archive": "s3://bucket/images",
        "template": "flat",
        "fields": {"CAM": "wiz"},
        "cadence": "1h",
        "unit": "1D",
        "grid_start": "2024-01-01",
        "site": {"volcano": "Whakaari"},
    }
    args.update(kw)
    return CameraConfig(**args)


def manifest(times: list[str], prefix: str = "/arch/f") -> pd.DataFrame:
    t = pd.to_datetime(times, utc=True, format="ISO8601").as_unit("ns")
    return pd.DataFrame(
        {"time": t, "path": [f"{prefix}{i}_{x}.jpg" for i, x in enumerate(times)], "size": 10}
    )


def fill_unit(grid: CameraGrid, unit: WorkUnit, model: int, rng) -> dict[str, np.ndarray]:
    """What a worker would produce: random outputs for every frame of the unit."""
    arrays = unit_arrays(unit.slot1 - unit.slot0, GRID)
    for slot, path, frame_time in unit.frames:
        i = slot - unit.slot0
        p = rng.random((6, *GRID)).astype(np.float32)
        p /= p.sum(axis=0)
        arrays["probability"][i] = quantize_probability(p)
        arrays["fraction"][i] = rng.random(6).astype(np.float32)
        arrays["frame_time"][i] = frame_time.tz_convert(None).to_datetime64()
        arrays["source"][i] = path
        arrays["brightness"][i] = np.float32(0.5)
        arrays["status"][i] = STATUS_OK
        arrays["model"][i] = model
    return arrays


def run_all(url, cam, frames: pd.DataFrame, model: int, rng, *, overwrite=False, **so):
    grid = camera_grid(url, cam.id, **so)
    assigned, rejected = assign_slots(frames, grid)
    units = sorted(set((assigned["slot"] // grid.chunk_len).tolist()))
    ledger = read_ledger(url, cam.id, 0, grid.n_slots, **so)
    plan = plan_units(grid, assigned, ledger, model, overwrite=overwrite, units=units)
    written = {}
    for unit in plan:
        arrays = fill_unit(grid, unit, model, rng)
        write_unit(url, cam.id, unit.slot0, unit.slot1, arrays, **so)
        written[unit.unit] = arrays
    return plan, written, rejected

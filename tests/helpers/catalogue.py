"""Helpers for the catalogue tests: a synthetic camera with known episodes, a real store.

- :func:`synthetic_camera`: one camera's dataset in the store schema with known
  episodes, nights, clouds, missing frames and noise (and the truth table).
- :func:`with_plume`: its plume variables (schema 2), heights known exactly from the
  fractions (:func:`true_heights`).
- :func:`make_store`: a ``cameras.yaml`` and a store written with the storage writers
  holding such a camera, for the job and CLI tests (schema 2, or as schema 1 left it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import yaml
import zarr

from plumenet.classes import EMISSION_CLASSES, MODEL_CLASSES, PLUME_KINDS
from plumenet.config import load_config
from storage import schema
from storage.regions import unit_arrays, write_unit
from storage.zarr_store import consolidate, ensure_camera

STEP = pd.Timedelta("10min")
#: The camera id :func:`make_store` writes.
CAMERA = "TST.01"


#: Metres of plume top per unit of emission fraction, and pixel rows per metre, of
#: :func:`true_heights`; a kind's plume is there when its fraction is >= PLUME_MIN.
METRES_PER_FRACTION = 10_000.0
ROWS_PER_METRE = 0.1
VENT_ROW = 500.0
PLUME_MIN = 0.01


def true_heights(fraction: np.ndarray) -> dict[str, np.ndarray]:
    """The synthetic camera's plume top (m) per kind, from its (time, class) fractions:
    ``METRES_PER_FRACTION`` x the kind's fraction (any emission: column + ash + non-ash),
    NaN where it is below ``PLUME_MIN`` (no plume)."""
    idx = {c: MODEL_CLASSES.index(c) for c in EMISSION_CLASSES}
    kinds = {
        "any_emission": fraction[:, [idx["eruption_column"], idx["ash_emissions"],
                                     idx["non_ash_emissions"]]].sum(axis=1),
        "eruption_column": fraction[:, idx["eruption_column"]],
    }  # fmt: skip
    return {k: np.where(v >= PLUME_MIN, METRES_PER_FRACTION * v, np.nan) for k, v in kinds.items()}


def with_plume(ds: xr.Dataset, *, metres: bool = True) -> xr.Dataset:
    """``ds`` with schema 2's plume variables: heights from :func:`true_heights`
    (``metres=False``: a camera without geometry, heights NaN) and top rows
    ``VENT_ROW - ROWS_PER_METRE x height``."""
    truth = true_heights(ds["fraction"].transpose("time", "class").values.astype(np.float64))
    height = np.stack([truth[k] for k in PLUME_KINDS], axis=1)
    top_row = VENT_ROW - ROWS_PER_METRE * height
    if not metres:
        height = np.full_like(height, np.nan)
    out = ds.assign(
        plume_height_m=(("time", "emission"), height.astype(np.float32)),
        plume_top_row=(("time", "emission"), top_row.astype(np.float32)),
    )
    out.attrs["emission_names"] = " ".join(PLUME_KINDS)
    return out


def synthetic_camera(
    rng: np.random.Generator,
    days: int = 20,
    n_episodes: int = 40,
    camera: str = "TST.01",
    *,
    plume: bool = False,
) -> tuple[xr.Dataset, pd.DataFrame]:
    """A camera dataset in the store schema with known episodes, nights, clouds and noise.

    Episodes start and end in daylight (07:00-17:00); clouds hide the view (land drops,
    emissions hidden) for 30-120 min stretches; single-frame noise spikes must not count.
    ``plume``: with the plume variables of :func:`with_plume` (else as schema 1: none).
    """
    time = pd.date_range("2024-03-01", periods=days * 144, freq=STEP)
    n = time.size
    hour = time.hour + time.minute / 60
    night = (hour < 6) | (hour >= 18)
    frac = np.zeros((n, len(MODEL_CLASSES)))
    land = 0.30 + rng.normal(0, 0.01, n)
    emis = rng.uniform(0, 0.004, (n, len(EMISSION_CLASSES)))
    truth = []
    day_starts = rng.choice(days, size=n_episodes, replace=True)
    busy = np.zeros((days, len(EMISSION_CLASSES)), dtype=int)
    for d in day_starts:
        c = int(rng.integers(len(EMISSION_CLASSES)))
        if busy[d, c] >= 2:
            continue
        slot = busy[d, c]
        busy[d, c] += 1
        start_h = 7 + 5 * slot + rng.uniform(0, 1.5)
        dur_h = rng.uniform(1.0, 3.0)
        onset = time[0] + pd.Timedelta(days=int(d)) + pd.Timedelta(hours=start_h)
        onset = onset.ceil(STEP)
        end = (onset + pd.Timedelta(hours=dur_h)).floor(STEP)
        sel = (time >= onset) & (time <= end)
        emis[sel, c] = rng.uniform(0.05, 0.2) * (1 + 0.3 * rng.standard_normal(sel.sum())).clip(
            0.5, 2
        )
        truth.append({"class": EMISSION_CLASSES[c], "onset": onset, "end": end})
    # Single-frame spikes above the on threshold (segmentation noise).
    spikes = rng.choice(n, size=30, replace=False)
    emis[spikes, rng.integers(len(EMISSION_CLASSES), size=30)] = 0.03
    # Clouds: hide land and emissions.
    cloud = np.zeros(n, dtype=bool)
    for s in rng.choice(n, size=days, replace=False):
        cloud[s : s + int(rng.integers(3, 12))] = True
    land[cloud] = 0.02
    emis[cloud] = 0.0
    frac[:, 1] = land
    frac[:, 2:] = emis
    frac[:, 0] = 1 - frac[:, 1:].sum(axis=1)
    status = np.ones(n, dtype=np.uint8)
    missing = rng.choice(n, size=20, replace=False)
    status[missing] = 0
    status[missing[:5]] = 2
    frac[status != 1] = np.nan
    brightness = np.where(night, 0.03, 0.6).astype(np.float32)
    brightness[status != 1] = np.nan
    ds = xr.Dataset(
        {
            "fraction": (("time", "class"), frac.astype(np.float32)),
            "status": ("time", status),
            "brightness": ("time", brightness),
        },
        coords={"time": time.values, "class": list(MODEL_CLASSES)},
        attrs={"cadence": "10min", "camera_id": camera},
    )
    truth_df = pd.DataFrame(truth).sort_values("onset", ignore_index=True)
    truth_df["onset"] = truth_df["onset"].dt.tz_localize("UTC")
    truth_df["end"] = truth_df["end"].dt.tz_localize("UTC")
    return (with_plume(ds) if plume else ds), truth_df


def make_store(
    tmp_path: Path,
    rng: np.random.Generator,
    days: int = 6,
    *,
    metres: bool = True,
    schema_1: bool = False,
) -> tuple[Path, xr.Dataset]:
    """A store written with the storage writers (the real schema) holding a synthetic camera
    with plume heights (:func:`with_plume`; ``metres=False``: top rows only). ``schema_1``:
    as a schema-1 store left it (no plume or sun arrays, version 1)."""
    cfg_path = tmp_path / "cameras.yaml"
    camera = {
        "id": CAMERA,
        "archive": str(tmp_path / "archive"),
        "template": "{year}/{year}.{doy}.{HH}{MM}.jpg",
        "cadence": "10min",
        "grid_start": "2024-02-28",
    }
    cfg_path.write_text(yaml.safe_dump({"store": str(tmp_path / "p.zarr"), "cameras": [camera]}))
    cfg = load_config(cfg_path)
    ds, _ = synthetic_camera(rng, days=days, n_episodes=8, camera=CAMERA)
    ds = with_plume(ds, metres=metres)
    grid = ensure_camera(
        cfg.store, cfg.camera(CAMERA), "2024-02-28", "2024-03-10", grid_shape=(2, 2)
    )
    slots = grid.slot_of(pd.DatetimeIndex(ds["time"].values).tz_localize("UTC"))
    for unit in sorted({grid.unit_of_slot(int(k)) for k in slots}):
        s0, s1 = grid.unit_range(unit)
        arrays = unit_arrays(s1 - s0, (2, 2))
        sel = (slots >= s0) & (slots < s1)
        rows = slots[sel] - s0
        for name in ("fraction", "status", "brightness", "plume_height_m", "plume_top_row"):
            arrays[name][rows] = ds[name].values[sel]
        arrays["model"][rows] = 0
        write_unit(cfg.store, CAMERA, s0, s1, arrays)
    if schema_1:
        g = zarr.open_group(cfg.store, path=CAMERA, mode="r+")
        for name in schema.PLUME_VARIABLES:
            shutil.rmtree(Path(cfg.store) / CAMERA / name)
        g.attrs["schema_version"] = 1
        del g.attrs["emission_names"]
        ds = ds.drop_vars(["plume_height_m", "plume_top_row"])
    consolidate(cfg.store)
    return cfg_path, ds

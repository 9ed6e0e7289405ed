"""A real backfill driver without Prefect, Dask or torch, for the store-safety tests.

``python -m tests.helpers.driver CONFIG START END`` takes the store lease
(:func:`plumenet.jobs.lease.driver_lease`), plans with the driver's own
:func:`plumenet.jobs.backfill.plan_backfill` (cover, register the model, list, read the
ledger), writes every planned unit with outputs that depend only on the slot (what a
worker would write, so any two runs agree byte for byte), consolidates, and prints a JSON
summary. A :class:`PlumenetError` ends as one ``error:`` line and exit code 2, as in the CLI.

Test knobs (environment): ``DRIVER_HOLD_S`` sleeps that long once the lease is held (and
prints ``holding`` first), ``DRIVER_MODEL_ID`` names the model registered;
``PLUMENET_TEST_CRASH_AT`` (storage.axis) exits at a metadata step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
import zarr

from plumenet.config import load_config
from plumenet.encoding import STATUS_OK, quantize_probability
from plumenet.errors import PlumenetError
from plumenet.jobs.backfill import ModelIdentity, finish_backfill, plan_backfill
from plumenet.jobs.lease import driver_lease
from plumenet.timeutil import parse_end, parse_start
from storage.axis import TIME_ARRAYS
from storage.grid import WorkUnit
from storage.regions import unit_arrays, write_unit

#: The probability grid of the fake model.
GRID = (4, 5)
#: The test camera: hourly frames, one-day units (24 slots).
CAMERA = "SAFE"
START = "2024-03-01"


def write_setup(
    root: Path,
    *,
    days: int = 3,
    store: str | None = None,
    storage_options: dict | None = None,
    archive: Path | None = None,
) -> Path:
    """An archive of (empty) hourly frames over ``days`` (or the given one: runs over one
    archive write the same ``source`` paths) and a config; returns the config."""
    archive = archive or root / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    t0 = pd.Timestamp(START)
    for h in range(days * 24):
        if h % 7 == 3:  # a few slots without a frame
            continue
        t = t0 + pd.Timedelta(hours=h, seconds=(h * 37) % 300)
        (archive / f"{CAMERA}_{t:%Y%m%d_%H%M%S}.jpg").write_bytes(b"")
    cfg = {
        "store": store or str(root / "plumenet.zarr"),
        "model": "demo",
        "storage_options": storage_options or {},
        "cameras": [{
            "id": CAMERA, "archive": str(archive), "template": "flat",
            "fields": {"CAM": CAMERA}, "timezone": "UTC", "cadence": "1h",
            "grid_start": START, "unit": "1D",
        }],
    }  # fmt: skip
    path = root / "cameras.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def day(n: int) -> str:
    """The ISO date ``n`` days after :data:`START`."""
    return (pd.Timestamp(START) + pd.Timedelta(days=n)).strftime("%Y-%m-%d")


def driver_command(config: Path, start: str, end: str) -> list[str]:
    return [sys.executable, "-m", "tests.helpers.driver", str(config), start, end]


def run_driver(
    config: Path, start: str, end: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run one driver process to the end."""
    return subprocess.run(
        driver_command(config, start, end), env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).parents[2],
    )  # fmt: skip


def start_driver(
    config: Path, start: str, end: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start one driver process (stdout/stderr piped)."""
    return subprocess.Popen(
        driver_command(config, start, end), env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip


def store_arrays(store: str, storage_options: dict | None = None) -> dict[str, Any]:
    """Every time array of the camera (compared byte for byte with a clean run), raw, plus
    the group's ``models`` and ``n_slots``."""
    group = zarr.open_group(store, mode="r", storage_options=storage_options,
                            use_consolidated=False)[CAMERA]  # fmt: skip
    out: dict[str, Any] = {name: group[name][:] for name in TIME_ARRAYS}
    out["models"] = group.attrs["models"]
    out["n_slots"] = group.attrs.get("n_slots")
    return out


def assert_same_store(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Arrays equal byte for byte (NaN equal to NaN), same models table and length."""
    assert got.keys() == want.keys()
    for name in got:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def model_identity(model_id: str = "fake-model") -> ModelIdentity:
    return ModelIdentity(
        spec="demo", model_id=model_id, digest=f"sha256:{model_id}", backbone="none",
        grid=GRID, is_demo=False,
    )  # fmt: skip


def fake_outputs(unit: WorkUnit, model_index: int) -> dict[str, np.ndarray]:
    """The unit's arrays with outputs seeded by each frame's slot."""
    arrays = unit_arrays(unit.slot1 - unit.slot0, GRID)
    for slot, path, frame_time in unit.frames:
        rng = np.random.default_rng(slot)
        i = slot - unit.slot0
        p = rng.random((6, *GRID)).astype(np.float32)
        p /= p.sum(axis=0)
        arrays["probability"][i] = quantize_probability(p)
        arrays["fraction"][i] = rng.random(6).astype(np.float32)
        arrays["frame_time"][i] = frame_time.tz_convert(None).to_datetime64()
        arrays["source"][i] = path
        arrays["brightness"][i] = np.float32(rng.random())
        arrays["status"][i] = STATUS_OK
        arrays["model"][i] = model_index
    return arrays


def drive(config_path: str, start: str, end: str) -> dict[str, object]:
    cfg = load_config(config_path)
    with driver_lease(cfg, "test driver"):
        hold = float(os.environ.get("DRIVER_HOLD_S", "0"))
        if hold:
            print("holding", flush=True)
            time.sleep(hold)
        model = model_identity(os.environ.get("DRIVER_MODEL_ID", "fake-model"))
        plan = plan_backfill(cfg, parse_start(start), parse_end(end), model=model)
        pairs = plan.units
        for unit, job in pairs:
            arrays = fake_outputs(unit, job.model_index)
            write_unit(cfg.store, unit.camera, unit.slot0, unit.slot1, arrays,
                       storage_options=cfg.storage_options)  # fmt: skip
        finish_backfill(cfg)
    return {
        "units_run": len(pairs),
        "model_index": pairs[0][1].model_index if pairs else None,
        "model_indices": sorted({c.model_index for c in plan.cameras}),
    }


def main(argv: list[str]) -> int:
    try:
        summary = drive(*argv[1:4])
    except PlumenetError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

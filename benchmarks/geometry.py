"""What the plume geometry and the solar elevation cost inside a work unit, on this machine.

    python -m benchmarks.geometry [--frames 32] [--model vits14-reg] [--size 1280x720]

In one run: ``run_unit`` end to end on synthetic JPEGs (fetch, decode, inference with the
geometry, region write), then the geometry alone on the same shapes, as the unit does it per
batch: :func:`plumenet.inference.geometry.plume_geometry` on the batch's ``518 x 518`` class
maps, :func:`plumenet.jobs.plume.store_plume` (pixels -> metres) and
:func:`plumenet.jobs.plume.store_solar_elevation` for the unit. Prints the share of the
unit's time; ``--null`` repeats it with a network that costs almost nothing (the share the
geometry would have next to the predictor's own work alone).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.unit_fixture import make_units, save_model, save_null_model

GEOMETRY = {"vent_x": 640.0, "vent_y": 500.0, "distance_m": 8000.0, "vertical_fov_deg": 40.0}
SITE = (-37.52, 177.18)


def _geometry_seconds(n: int, batch: int, size: int, frame_hw: tuple[int, int]) -> float:
    """Median of 5: the geometry work of one unit of ``n`` frames, batch by batch."""
    import torch

    from plumenet.inference.geometry import plume_geometry
    from plumenet.inference.predictor import FramePredictions
    from plumenet.jobs.plume import store_plume, store_solar_elevation
    from storage.regions import unit_arrays

    rng = np.random.default_rng(0)
    labels = torch.from_numpy(rng.integers(0, 6, (batch, size, size)))
    sizes = np.tile(np.array(frame_hw, dtype=np.float32), (batch, 1))
    times = []
    for _ in range(5):
        arrays = unit_arrays(n, (37, 37))
        arrays["frame_time"][:] = np.datetime64("2024-01-01") + np.arange(n).astype(
            "timedelta64[m]"
        )
        t0 = time.perf_counter()
        for start in range(0, n, batch):
            rows = np.arange(start, min(start + batch, n))
            g = plume_geometry(labels[: len(rows)], torch.from_numpy(sizes[: len(rows)]))
            pred = FramePredictions(
                probability=np.empty(0), fraction=np.empty((len(rows), 6)),
                brightness=np.empty(0), usable=np.empty(0),
                plume_top_row=g.top_row.numpy(), plume_center_col=g.center_col.numpy(),
                plume_width=g.width.numpy(),
            )  # fmt: skip
            store_plume(arrays, rows, pred, sizes[: len(rows)], GEOMETRY)
        store_solar_elevation(arrays, SITE)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _unit_seconds(model: str, store: str, unit, batch: int) -> tuple[float, float]:
    """(first run incl. model load, second run) seconds of ``run_unit``."""
    from plumenet.jobs.workunit import UnitJob, run_unit

    job = UnitJob(store=store, camera="GPU", model=model, model_index=0, batch_size=batch,
                  site=SITE, geometry=GEOMETRY)  # fmt: skip
    t0 = time.perf_counter()
    run_unit(unit, job)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_unit(unit, job)
    return first, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default="vits14-reg")
    parser.add_argument("--size", default="1280x720", help="frame WxH")
    parser.add_argument("--null", action="store_true", help="also with a near-free network")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; frames {w}x{h}")
    print("| network | unit s (steady) | geometry s | share |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store, units = make_units(root, args.frames, (w, h), unit_frames=args.frames)
        models = [(args.model, save_model(root, args.model))]
        if args.null:
            models.append(("null (predictor work only)", save_null_model(root)))
        for label, path in models:
            _, unit_s = _unit_seconds(path, store, units[0], args.batch_size)
            geo_s = _geometry_seconds(args.frames, args.batch_size, 518, (h, w))
            print(f"| {label} | {unit_s:.2f} | {geo_s:.4f} | {geo_s / unit_s:.2%} |")


if __name__ == "__main__":
    main()

"""The work unit against the model alone in one process, no Prefect or Dask (not a test).

    python -m benchmarks.unit_vs_model [--frames 64] [--rounds 3]

Synthetic 640x480 JPEGs on local disk, the ViT-S/14-reg architecture with random weights,
batch 16, this machine's CPU. Each round alternates the same predictor on pre-decoded
frames and ``run_unit`` (fetch, decode, inference, geometry, one region write), both in one
worker thread as Dask runs units: what the unit's own code costs, apart from the
orchestration around it (``benchmarks.pipeline`` measures the whole flow).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.unit_fixture import make_units, save_model


def main() -> None:
    from plumenet.jobs.workunit import UnitJob, get_predictor, run_unit

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.frames
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store, units = make_units(root, n, (640, 480), unit_frames=n)
        model = save_model(root, "vits14-reg")
        job = UnitJob(
            store=store, camera="GPU", model=model, model_index=0, device="cpu", batch_size=16
        )
        with ThreadPoolExecutor(1) as pool:
            pool.submit(run_unit, units[0], job).result()  # model load, first-call costs
            # the unit's own predictor (same cache key as the unit's)
            predictor = get_predictor(model, device="cpu", batch_size=16, cuda_batch_size=128)
            s = predictor.input_size
            frames = np.random.default_rng(0).integers(0, 255, (n, s, s, 3), dtype=np.uint8)

            def alone() -> float:
                t0 = time.perf_counter()
                predictor.predict(frames)
                return n / (time.perf_counter() - t0)

            for _ in range(args.rounds):
                model_fps = pool.submit(alone).result()
                summary = pool.submit(run_unit, units[0], job).result()
                unit_fps, infer_fps = n / summary.total_s, n / summary.infer_s
                print(
                    f"model alone {model_fps:.3f} frames/s | unit {unit_fps:.3f} "
                    f"({unit_fps / model_fps:.3f} x) | unit's inference {infer_fps:.3f} "
                    f"({infer_fps / model_fps:.3f} x)",
                    flush=True,
                )


if __name__ == "__main__":
    main()

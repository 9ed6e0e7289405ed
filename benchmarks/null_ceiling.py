"""The CPU "null model" ceiling: how fast fetch + decode + the work unit could feed any model.

    python -m benchmarks.null_ceiling [--frames 192] [--threads N] [--json out.json]

For 640x480 and 1920x1080 synthetic JPEGs on local disk, in one run:

1. decode only: ``load_frame`` (Pillow, draft mode) on ``threads`` threads, frames/s;
2. null predictor: ``Predictor.predict`` of a model that costs almost nothing (1 layer,
   4 wide) on pre-decoded 518 x 518 frames: the predictor's own work (normalisation,
   518 x 518 upsampling + argmax for fractions, quality);
3. work unit: ``run_unit`` end to end with that model (fetch, decode, predictor, one region
   write), frames/s and frames/s per core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.unit_fixture import jpeg_bytes, make_units, save_null_model

SIZES = ((640, 480), (1920, 1080))


def _decode_rate(w: int, h: int, n: int, threads: int) -> float:
    from plumenet.inference.decode import load_frame

    datas = [jpeg_bytes(w, h, s) for s in range(8)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda d: load_frame(d, 518), datas))
        t0 = time.perf_counter()
        list(pool.map(lambda k: load_frame(datas[k % 8], 518), range(n)))
    return n / (time.perf_counter() - t0)


def _predictor_rate(model: str, n: int, batch: int) -> float:
    from plumenet.inference.predictor import Predictor
    from plumenet.model.weights import load_model

    predictor = Predictor(load_model(model, device="cpu"), device="cpu", batch_size=batch)
    frames = np.random.default_rng(0).integers(0, 256, (n, 518, 518, 3), dtype=np.uint8)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(predictor.predict, frames[:batch]).result()
        t0 = time.perf_counter()
        pool.submit(predictor.predict, frames).result()
        return n / (time.perf_counter() - t0)


def _unit_rate(root: Path, model: str, size: tuple[int, int], n: int, threads: int) -> dict:
    from plumenet.jobs.workunit import UnitJob, run_unit

    store, units = make_units(root, n, size, unit_frames=n)
    job = UnitJob(store=store, camera="GPU", model=model, model_index=0, device="cpu",
                  batch_size=16, io_threads=threads)  # fmt: skip
    # In a worker thread, as a Dask worker runs a task (main-thread calls were sometimes
    # several times slower on the loaded 2-core VM; docs/BENCHMARKS.md).
    with ThreadPoolExecutor(1) as pool:
        pool.submit(run_unit, units[0], job).result()  # model load + first-touch costs
        t0 = time.perf_counter()
        summary = pool.submit(run_unit, units[0], job).result()
        wall = time.perf_counter() - t0
    return {
        "frames": summary.frames,
        "frames_per_s": summary.frames / wall,
        "decode_s": summary.decode_s,
        "infer_s": summary.infer_s,
        "write_s": summary.write_s,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=192)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import torch

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    results: dict = {
        "machine": f"{platform.machine()}, {cores} cores, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "threads": args.threads,
        "sizes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = save_null_model(root)
        results["null_predictor_fps"] = _predictor_rate(model, 64, 16)
        for w, h in SIZES:
            unit = _unit_rate(root, model, (w, h), args.frames, args.threads)
            results["sizes"][f"{w}x{h}"] = {
                "decode_fps": _decode_rate(w, h, args.frames, args.threads),
                "unit": unit,
                "unit_fps_per_core": unit["frames_per_s"] / cores,
            }
    print(f"null-model ceiling, {results['machine']}, {results['date']}")
    print(f"null predictor on decoded frames: {results['null_predictor_fps']:.1f} frames/s")
    print("| frames | decode only (frames/s) | work unit (frames/s) | per core |")
    print("|---|---:|---:|---:|")
    for key, r in results["sizes"].items():
        u = r["unit"]["frames_per_s"]
        print(f"| {key} | {r['decode_fps']:.1f} | {u:.1f} | {r['unit_fps_per_core']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()

"""End-to-end backfill throughput vs the model alone, measured in one run on one machine.

    python -m benchmarks.pipeline [--model vits14-reg] [--days 2] [--cadence 30min] [--device cpu]
    python -m benchmarks.pipeline --plan-only     # list + plan one camera-year (52,560 frames)
    python -m benchmarks.pipeline --days 10 --cadence 1h --worker-processes   # A/B: the one
        # local worker in its own process (--no-worker-processes: in the driver's, the default)

1. model alone: ``Predictor.predict`` on pre-decoded uint8 tensors (no I/O), frames/s, in a
   worker thread, measured before and after the flow (the faster is the baseline);
2. end to end: a synthetic archive on local disk -> the ``backfill`` flow (listing, planning,
   fetch, decode, inference, region writes, Prefect + Dask orchestration), frames/s, from the
   flow call to its return (cluster start and per-worker model load included) and for the
   dispatch phase alone;
3. steady state: frames / the seconds workers spent inside units (fetch, decode, inference,
   write), i.e. what a long backfill converges to once workers are up; and the time outside
   units (cluster start, per-worker model load, Prefect task overhead) per unit;
4. list + plan one camera-year at 10-min cadence (52,560 frames, 365 units).

The exact ViT-S/14-reg architecture with random weights is used for speed (weights do not
change the cost). Prints a markdown table; ``--json`` writes the numbers.
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
import pandas as pd
import yaml


def _save_random_model(name: str, root: Path) -> str:
    from plumenet.model.registry import build_model
    from plumenet.model.weights import save_model

    out = root / f"model-{name}"
    save_model(build_model(name, seed=0), out, model_id=f"{name}-random")
    return str(out)


def _write_config(
    root: Path, archive: Path, model: str, cadence: str, start: str, processes: bool | None = None
) -> Path:
    from storage.layouts import BUILTIN_TEMPLATES

    cfg: dict = {
        "store": str(root / "bench.zarr"),
        "model": model,
        "cameras": [
            {
                "id": "BENCH",
                "archive": str(archive),
                "template": BUILTIN_TEMPLATES["flat"],
                "fields": {"CAM": "bench"},
                "timezone": "UTC",
                "cadence": cadence,
                "grid_start": start,
            }
        ],
    }
    if processes is not None:
        cfg["cluster"] = {"address": "local", "processes": processes}
    path = root / "cameras.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def model_alone(model: str, device: str | None, n: int, batch_size: int) -> float:
    """``Predictor.predict`` on pre-decoded frames, frames/s, called from a worker thread as
    Dask calls a unit (main-thread calls were seen to be slower under load)."""
    from plumenet.inference.predictor import Predictor
    from plumenet.model.weights import load_model

    predictor = Predictor(load_model(model, device=device), device=device, batch_size=batch_size)
    s = predictor.input_size
    frames = np.random.default_rng(0).integers(0, 255, (n, s, s, 3), dtype=np.uint8)

    def timed() -> float:
        predictor.predict(frames[: min(n, batch_size)])  # warm-up
        t0 = time.perf_counter()
        predictor.predict(frames)
        return n / (time.perf_counter() - t0)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(timed).result()


class CpuSampler:
    """CPU seconds per process kind during the flow: this driver, the Prefect server, the Dask
    workers (and nannies), sampled every second (a process's last sample counts, so the
    workers' are read before the cluster closes them)."""

    def __init__(self) -> None:
        import threading

        import psutil

        self._me = psutil.Process()
        self._seen: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _kind(cmdline: list[str]) -> str:
        text = " ".join(cmdline)
        if "prefect" in text and ("server" in text or "uvicorn" in text):
            return "prefect_server"
        if "multiprocessing" in text or "distributed" in text or "dask" in text:
            return "dask_workers"
        return "other"

    def _sample(self) -> None:
        import psutil

        for proc in self._me.children(recursive=True):
            try:
                times = proc.cpu_times()
                kind = self._seen.get(proc.pid, (self._kind(proc.cmdline()), 0.0))[0]
                self._seen[proc.pid] = (kind, times.user + times.system)
            except psutil.Error:
                continue

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._sample()

    def __enter__(self) -> CpuSampler:
        own = self._me.cpu_times()
        self._own0 = own.user + own.system
        self._sample()
        self._base = {pid: cpu for pid, (_, cpu) in self._seen.items()}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        own = self._me.cpu_times()
        self.seconds = {"driver": own.user + own.system - self._own0}
        for pid, (kind, cpu) in self._seen.items():
            self.seconds[kind] = self.seconds.get(kind, 0.0) + cpu - self._base.get(pid, 0.0)


def end_to_end(config: Path, start: str, end: str, device: str | None, batch_size: int) -> dict:
    from flows.pipeline import backfill
    from flows.runtime import prefect_api

    with prefect_api(), CpuSampler() as cpu:
        t0 = time.perf_counter()
        report = backfill(
            config=str(config), start=start, end=end, batch_size=batch_size, device=device
        )
        wall = time.perf_counter() - t0
    return {
        "frames": report["frames"],
        "units": report["units_run"],
        "flow_wall_s": wall,
        "dispatch_wall_s": report["wall_s"],
        "unit_seconds": report["unit_seconds"],
        # the driver's seconds include the unit's threads only in a threaded cluster (not here)
        "cpu_seconds_during_flow": {k: round(v, 2) for k, v in cpu.seconds.items()},
    }


def plan_year() -> dict:
    """List + plan one camera-year at 10-min cadence (empty files are enough to list)."""
    from plumenet.config import load_config
    from plumenet.jobs.backfill import ModelIdentity, plan_backfill
    from plumenet.timeutil import parse_end, parse_start

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = root / "archive"
        archive.mkdir()
        times = pd.date_range("2023-01-01", "2023-12-31 23:50", freq="10min")
        for t in times:
            (archive / f"bench_{t:%Y%m%d_%H%M%S}.jpg").touch()
        cfg = load_config(_write_config(root, archive, "demo", "10min", "2023-01-01"))
        model = ModelIdentity("demo", "demo", "0" * 64, "demo", (20, 20), True)
        t0 = time.perf_counter()
        plan = plan_backfill(cfg, parse_start("2023-01-01"), parse_end("2023-12-31"), model=model)
        return {
            "frames": sum(c.frames_listed for c in plan.cameras),
            "units": len(plan.units),
            "seconds": time.perf_counter() - t0,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vits14-reg", help="model config name (random weights)")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--cadence", default="30min")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--alone-frames", type=int, default=96, help="frames for each model-alone measurement"
    )
    parser.add_argument(
        "--worker-processes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the local cluster's `processes` (default: the cluster's own choice)",
    )
    parser.add_argument("--plan-only", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    results: dict = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores",
        "date": pd.Timestamp.now(tz="UTC").isoformat(timespec="minutes"),
    }
    results["plan_year"] = plan_year()
    if not args.plan_only:
        from plumenet.jobs.synth_archive import write_archive

        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            model = _save_random_model(args.model, root)
            start = pd.Timestamp("2024-01-01", tz="UTC")
            end = start + pd.Timedelta(days=args.days)
            write_archive(
                str(root / "archive"),
                layout="flat",
                start=start,
                end=end,
                cadence=args.cadence,
                seed=1,
                fields={"CAM": "bench"},
                camera="BENCH",
            )
            config = _write_config(
                root, root / "archive", model, args.cadence, "2024-01-01", args.worker_processes
            )
            n_alone = min(args.alone_frames, len(list((root / "archive").iterdir())))
            before = model_alone(model, args.device, n_alone, args.batch_size)
            e2e = end_to_end(
                config,
                "2024-01-01",
                (end - pd.Timedelta(days=1)).date().isoformat(),
                args.device,
                args.batch_size,
            )
            after = model_alone(model, args.device, n_alone, args.batch_size)
        # the model alone before and after the flow brackets the machine's drift; the
        # ratios use the faster of the two (the conservative choice)
        alone = max(before, after)
        results.update(
            model=args.model,
            worker_processes=args.worker_processes,
            model_alone_fps=alone,
            model_alone_before_after_fps=[before, after],
            end_to_end=e2e,
            flow_fps=e2e["frames"] / e2e["flow_wall_s"],
            dispatch_fps=e2e["frames"] / e2e["dispatch_wall_s"],
        )
        results["ratio_flow"] = results["flow_fps"] / alone
        results["ratio_dispatch"] = results["dispatch_fps"] / alone
        # steady state: what a long backfill converges to once workers are up and warm
        busy = e2e["unit_seconds"]["total"]
        results["steady_state_fps"] = e2e["frames"] / busy
        results["ratio_steady_state"] = results["steady_state_fps"] / alone
        results["startup_and_orchestration_s"] = e2e["flow_wall_s"] - busy
        results["orchestration_per_unit_s"] = (e2e["dispatch_wall_s"] - busy) / e2e["units"]

    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

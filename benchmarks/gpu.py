"""GPU throughput in one run: model, predictor, decode, work unit, several units, agreement.

    python -m benchmarks.gpu [--device cuda] [--quick] [--out DIR] [--frames 3072]
    python -m benchmarks.gpu --device cpu --quick --model tiny     # a dry run of every step

What it measures, each in frames/s (median of timed repeats, after warm-up):

1. model alone (ViT-S/14-reg at 518, random weights, SDPA attention, channels-last) in
   fp32 and bf16 autocast at batch 32-256, and bf16 + ``torch.compile`` at the unit batch
   (the last section, ``model_compile``: its compile takes minutes and no ratio needs it);
   peak GPU memory per mode;
2. the predictor (``Predictor.predict`` from host uint8 frames: pinned upload, post-
   processing, one download per batch) at the CUDA batch size;
3. decode + resize of 1920x1080 JPEGs to 518: nvJPEG (``decode_resize``) vs Pillow on
   a thread pool of every core;
4. the work unit end to end (``run_unit``: fetch from local disk, decode, predictor, one
   region write) on synthetic 1920x1080 JPEGs, with GPU decode and with CPU decode; one
   unit at a time, then 3 units at once in threads sharing one predictor (what a Dask GPU
   worker with ``resources={"GPU": 3}`` does), then through plain Dask (``client.map``
   on a ``LocalCUDACluster``, or a one-worker ``LocalCluster`` where dask-cuda is absent;
   Prefect does not travel to the GPU machine);
5. agreement: CUDA vs CPU outputs of the demo model on the same frames (class fractions,
   quantized probabilities), GPU vs Pillow decode (mean absolute pixel difference and
   demo-model fractions).

Writes ``gpu_bench.json`` and ``gpu_bench.md`` into ``--out`` (default ``$OUT`` or
``./gpu_bench``) after every section and prints the table. Sections past ``--budget-s`` are
skipped (and say so); a failing section, or a failing mode inside one, records its error
and the run goes on. Order: agreement, model alone, predictor, decode, work unit, Dask,
compile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.gpu_report import markdown, ratios
from benchmarks.model_throughput import median_seconds, sync_device
from benchmarks.unit_fixture import jpeg_bytes, make_units, save_model

#: Agreement tolerances the run is judged against (also in docs/BENCHMARKS.md).
FRACTION_TOL = 0.02
#: Quantized probabilities (of 254 levels): the mean difference is the sensitive test, the
#: maximum only catches gross errors. bf16 autocast against fp32 on this CPU, demo model,
#: these 16 frames: max 4 levels, mean 0.015, fractions 0.00016 (docs/BENCHMARKS.md).
PROB_LEVELS = 8
PROB_MEAN_LEVELS = 0.1
DECODE_MAD = 2.0


class Run:
    """Results, the deadline, and a section runner that records failures instead of dying
    and saves what it has after every section (an outer timeout then loses one section,
    not the run)."""

    def __init__(self, budget_s: float, out: Path | None = None, unit_batch: int = 128) -> None:
        self.started = time.perf_counter()
        self.budget_s = budget_s
        self.out = out
        self.unit_batch = unit_batch
        self.results: dict[str, Any] = {}

    def save(self) -> None:
        """JSON, ratios and table as they stand: an outer timeout loses only the section
        that was running."""
        self.results["ratios"] = ratios(self.results, self.unit_batch)
        self.results["total_s"] = round(time.perf_counter() - self.started, 1)
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            text = json.dumps(self.results, indent=2, default=str)
            (self.out / "gpu_bench.json").write_text(text)
            (self.out / "gpu_bench.md").write_text(markdown(self.results))

    def section(self, name: str, fn: Callable[[], Any]) -> None:
        if time.perf_counter() - self.started > self.budget_s:
            self.results[name] = {"skipped": f"over the {self.budget_s:.0f} s budget"}
            print(f"[{name}] skipped: over budget", flush=True)
            return
        t0 = time.perf_counter()
        try:
            self.results[name] = fn()
        except Exception as err:  # noqa: BLE001 - one broken section must not lose the others
            self.results[name] = {"error": f"{type(err).__name__}: {err}"}
        print(f"[{name}] {time.perf_counter() - t0:.1f} s: {self.results[name]}", flush=True)
        self.save()


def _peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def model_alone(args: argparse.Namespace, device: torch.device, modes: list[str]) -> dict:
    """Frames/s of the bare model per mode and batch; a mode that fails records its error."""
    out: dict[str, Any] = {}
    for mode in modes:
        try:
            out[mode] = _model_mode(args, device, mode)
        except Exception as err:  # noqa: BLE001 - keep the modes already measured
            out[mode] = {"error": f"{type(err).__name__}: {err}"}
        print(f"  model {mode}: {out[mode]}", flush=True)
    return out


def _model_mode(args: argparse.Namespace, device: torch.device, mode: str) -> dict:
    from plumenet.model.network import attention_of, set_attention
    from plumenet.model.registry import build_model

    _reset_peak(device)
    model = build_model(args.model, seed=0).to(device).eval()
    set_attention(model, "sdpa")
    model = model.to(memory_format=torch.channels_last)
    size = model.config.input_size
    fn = model.forward_outputs
    batches = args.batches
    compiled = mode.endswith("compile")
    if compiled:
        fn = torch.compile(fn, dynamic=False)
        batches = [args.unit_batch]
    dtype = torch.bfloat16 if mode.startswith("bf16") else None
    rates = {}
    t0 = time.perf_counter()
    for bs in batches:
        gen = torch.Generator(device=device).manual_seed(bs)
        x = torch.randn((bs, 3, size, size), generator=gen, device=device)
        x = x.contiguous(memory_format=torch.channels_last)

        def step(x: torch.Tensor = x, fn: Callable = fn, dtype: Any = dtype) -> None:
            amp = torch.autocast(
                device.type, dtype=dtype or torch.float32, enabled=dtype is not None
            )
            with torch.inference_mode(), amp:
                fn(x)

        sec = median_seconds(step, device, args.warmup + (1 if compiled else 0), args.iters)
        rates[str(bs)] = round(bs / sec, 1)
    return {
        "fps": rates,
        "peak_gib": _peak_gib(device),
        "attention": attention_of(model),
        "seconds_incl_warmup": round(time.perf_counter() - t0, 1),
    }


def predictor_rate(args: argparse.Namespace, device: torch.device) -> dict:
    from plumenet.inference.predictor import Predictor
    from plumenet.model.loaded import LoadedModel, weights_digest
    from plumenet.model.registry import build_model

    _reset_peak(device)
    model = build_model(args.model, seed=0)
    loaded = LoadedModel(model, args.model, weights_digest(model.state_dict()), args.model)
    predictor = Predictor(loaded, device=device, batch_size=args.unit_batch)
    size = predictor.input_size
    n = args.unit_batch * (4 if not args.quick else 1)
    frames = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    sec = median_seconds(lambda: predictor.predict(frames), device, 1, max(1, args.iters // 2))
    on_device = torch.from_numpy(frames).to(device)
    sec_dev = median_seconds(
        lambda: predictor.predict(on_device), device, 1, max(1, args.iters // 2)
    )
    return {
        "batch": args.unit_batch,
        "amp": str(predictor.amp_dtype),
        "fps_from_host": round(n / sec, 1),
        "fps_from_device": round(n / sec_dev, 1),
        "peak_gib": _peak_gib(device),
    }


def decode_rates(args: argparse.Namespace, device: torch.device) -> dict:
    from plumenet.inference.decode import load_frame
    from plumenet.inference.gpu_decode import decode_resize, gpu_decode_available

    w, h = args.frame_size
    datas = [jpeg_bytes(w, h, s) for s in range(16)]
    n = args.unit_batch * (4 if not args.quick else 1)
    batch = [datas[k % len(datas)] for k in range(args.unit_batch)]
    threads = os.cpu_count() or 1
    with ThreadPoolExecutor(threads) as pool:
        sec = median_seconds(
            lambda: list(pool.map(lambda d: load_frame(d, 518), batch)), device, 1, 3
        )
    out: dict[str, Any] = {
        "frame": f"{w}x{h}",
        "pillow_threads": threads,
        "pillow_fps": round(len(batch) / sec, 1),
    }
    if device.type == "cuda" and gpu_decode_available():
        decoded = decode_resize(batch, 518, device)
        if decoded.failed:  # a rate of calls that fail at once would look like a fast decode
            raise RuntimeError(
                f"nvJPEG decoded {len(decoded.ok)} of {len(batch)} valid frames "
                "(the first failure is in the log)"
            )
        sec = median_seconds(
            lambda: decode_resize(batch, 518, device), device, 2, max(3, n // len(batch))
        )
        out["nvjpeg_fps"] = round(len(batch) / sec, 1)
        out["nvjpeg_over_pillow"] = round(out["nvjpeg_fps"] / out["pillow_fps"], 2)
    else:
        out["nvjpeg_fps"] = "not available (needs CUDA and torchvision)"
    return out


def _job(store: str, model: str, device: torch.device, args: argparse.Namespace, gpu: bool):
    from plumenet.jobs.workunit import UnitJob

    return UnitJob(
        store=store,
        camera="GPU",
        model=model,
        model_index=0,
        device=str(device),
        batch_size=args.unit_batch,
        cuda_batch_size=args.unit_batch,
        io_threads=args.io_threads,
        gpu_decode=gpu,
    )


def unit_rates(args: argparse.Namespace, device: torch.device, root: Path) -> dict:
    model = save_model(root, args.model)
    store, units = make_units(root, args.frames, tuple(args.frame_size), args.unit_frames)
    frames = sum(len(u.frames) for u in units)
    out: dict[str, Any] = {
        "frames": frames,
        "units": len(units),
        "frame": "x".join(map(str, args.frame_size)),
    }
    for label, gpu in (("gpu_decode", True), ("cpu_decode", False)):
        try:
            out[label] = _unit_mode(args, device, _job(store, model, device, args, gpu), units)
        except Exception as err:  # noqa: BLE001 - a failing mode keeps the other's numbers
            out[label] = {"error": f"{type(err).__name__}: {err}"}
        print(f"  work unit {label}: {out[label]}", flush=True)
    return out


def _unit_mode(args: argparse.Namespace, device: torch.device, job: Any, units: list) -> dict:
    from plumenet.jobs.workunit import run_unit

    frames = sum(len(u.frames) for u in units)
    with ThreadPoolExecutor(1) as pool:  # warm-up: model load, allocator, cuBLAS handles
        pool.submit(run_unit, units[0], job).result()
    _reset_peak(device)
    serial, concurrent = [], []
    for _ in range(args.repeats):  # alternate the two, keep each one's best
        t0 = time.perf_counter()
        with ThreadPoolExecutor(1) as pool:  # a worker thread, as Dask runs a task
            summaries = list(pool.map(lambda u, job=job: run_unit(u, job), units))
        sync_device(device)
        serial.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.units_per_gpu) as pool:
            list(pool.map(lambda u, job=job: run_unit(u, job), units))
        sync_device(device)
        concurrent.append(time.perf_counter() - t0)
    serial_s, concurrent_s = min(serial), min(concurrent)
    return {
        "fps_one_unit_at_a_time": round(frames / serial_s, 1),
        f"fps_{args.units_per_gpu}_units_at_once": round(frames / concurrent_s, 1),
        "unreadable": sum(s.unreadable for s in summaries),
        "decode_s": round(sum(s.decode_s for s in summaries), 2),
        "infer_s": round(sum(s.infer_s for s in summaries), 2),
        "peak_gib": _peak_gib(device),
    }


def dask_rate(args: argparse.Namespace, device: torch.device, root: Path) -> dict:
    from distributed import Client, LocalCluster

    from plumenet.jobs.workunit import run_unit

    model = save_model(root, args.model)
    store, units = make_units(root, args.frames, tuple(args.frame_size), args.unit_frames)
    job = _job(store, model, device, args, True)
    k = args.units_per_gpu
    kind = "distributed.LocalCluster (1 worker)"
    kwargs = {"threads_per_worker": k, "resources": {"GPU": k}, "dashboard_address": None}
    fallback = None
    try:
        if device.type != "cuda":
            raise ImportError("not a CUDA run")
        from dask_cuda import LocalCUDACluster

        from plumenet.config import ClusterConfig
        from plumenet.jobs.gpu_cluster import local_cuda_kwargs

        # the arguments `--cluster local-cuda` starts it with (worker settings, warm-up)
        spec = ClusterConfig(address="local-cuda", threads_per_worker=k)
        cluster = LocalCUDACluster(**local_cuda_kwargs(spec))
        kind = "dask_cuda.LocalCUDACluster (plumenet's local-cuda arguments)"
    except Exception as err:  # noqa: BLE001 - e.g. cuda.core too old for dask-cuda: say so
        fallback = f"{type(err).__name__}: {err}"
        print(f"  dask-cuda not used ({fallback}); a one-worker LocalCluster instead", flush=True)
        cluster = LocalCluster(n_workers=1, processes=True, **kwargs)
    with cluster, Client(cluster) as client:
        t0 = time.perf_counter()
        client.submit(run_unit, units[0], job, resources={"GPU": 1}, pure=False).result()
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        futures = client.map(run_unit, units, [job] * len(units), resources={"GPU": 1}, pure=False)
        summaries = client.gather(futures)
        sec = time.perf_counter() - t0
    frames = sum(s.frames for s in summaries)
    return {
        "cluster": kind,
        "dask_cuda_not_used_because": fallback,
        "units_per_gpu": k,
        "first_unit_s_incl_model_load": round(warm, 1),
        "fps": round(frames / sec, 1),
        "frames": frames,
    }


def agreement(args: argparse.Namespace, device: torch.device) -> dict:
    from plumenet.inference.decode import load_frame
    from plumenet.inference.gpu_decode import decode_resize, gpu_decode_available
    from plumenet.inference.predictor import Predictor
    from plumenet.model.weights import load_model

    size = load_model("demo", device="cpu").input_size
    w, h = args.frame_size
    datas = [jpeg_bytes(w, h, 100 + s) for s in range(16 if not args.quick else 4)]
    frames = np.stack([load_frame(d, size) for d in datas])
    cpu = Predictor(load_model("demo", device="cpu"), device="cpu").predict(frames)
    dev = Predictor(load_model("demo", device=device), device=device).predict(frames)
    out: dict[str, Any] = {
        "model": "demo",
        "fraction_max_abs_diff": float(np.abs(dev.fraction - cpu.fraction).max()),
        "probability_max_level_diff": int(
            np.abs(dev.probability.astype(int) - cpu.probability).max()
        ),
        # bf16 autocast moves a few probabilities by up to 4 of 254 levels even on CPU: the
        # mean says whether the maximum is a few pixels or the whole map
        "probability_mean_level_diff": float(
            np.abs(dev.probability.astype(int) - cpu.probability).mean()
        ),
    }
    out["pass"] = bool(
        out["fraction_max_abs_diff"] <= FRACTION_TOL
        and out["probability_max_level_diff"] <= PROB_LEVELS
        and out["probability_mean_level_diff"] <= PROB_MEAN_LEVELS
    )
    if device.type == "cuda" and gpu_decode_available():
        decoded = decode_resize(datas, size, device)
        pixels = decoded.frames.cpu().numpy().astype(int)
        out["decode_mean_abs_diff"] = float(np.abs(pixels - frames.astype(int)).mean())
        gpu_pred = Predictor(load_model("demo", device=device), device=device).predict(
            decoded.frames
        )
        out["decode_fraction_max_abs_diff"] = float(np.abs(gpu_pred.fraction - dev.fraction).max())
        out["decode_pass"] = bool(
            out["decode_mean_abs_diff"] <= DECODE_MAD
            and out["decode_fraction_max_abs_diff"] <= FRACTION_TOL
        )
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a dry run of every step")
    p.add_argument("--model", default="vits14-reg")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_bench"))
    p.add_argument("--frames", type=int, default=3072, help="frames per work-unit run")
    p.add_argument("--unit-frames", type=int, default=512, help="frames per work unit")
    p.add_argument("--unit-batch", type=int, default=128, help="CUDA batch size of the units")
    p.add_argument("--units-per-gpu", type=int, default=3)
    p.add_argument("--io-threads", type=int, default=16)
    p.add_argument("--frame-size", type=int, nargs=2, default=(1920, 1080), metavar=("W", "H"))
    p.add_argument("--repeats", type=int, default=2, help="work-unit runs per mode (best kept)")
    p.add_argument("--budget-s", type=float, default=420.0)
    p.add_argument("--skip", default="", help="comma-separated sections to skip")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    args.modes = ["fp32", "bf16"]
    # compile last: its first compile takes minutes and it measures no ratio
    args.compile_modes = ["bf16+compile"]
    args.batches, args.warmup, args.iters = [32, 64, 128, 256], 3, 10
    if args.quick:
        args.compile_modes = [] if device.type == "cpu" else args.compile_modes
        args.batches, args.warmup, args.iters = [2], 1, 1
        args.frames, args.unit_frames, args.unit_batch = 12, 4, 2
        args.io_threads, args.repeats = min(args.io_threads, 4), 1
    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    run = Run(args.budget_s, args.out, args.unit_batch)
    run.results.update(
        machine=f"{gpu_name}, {os.cpu_count()} cores, {platform.machine()}, torch "
        f"{torch.__version__}",
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        command="python -m benchmarks.gpu " + " ".join(argv if argv is not None else sys.argv[1:]),
        settings={k: v for k, v in vars(args).items() if k != "out"},
    )
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sections: list[tuple[str, Callable[[], Any]]] = [
            ("agreement", lambda: agreement(args, device)),
            ("model_alone", lambda: model_alone(args, device, args.modes)),
            ("predictor", lambda: predictor_rate(args, device)),
            ("decode", lambda: decode_rates(args, device)),
            ("work_unit", lambda: unit_rates(args, device, root)),
            ("dask", lambda: dask_rate(args, device, root / "dask")),
            ("model_compile", lambda: model_alone(args, device, args.compile_modes)),
        ]
        for name, fn in sections:
            if name not in skip:
                run.section(name, fn)
    run.save()
    print(markdown(run.results))
    return run.results


if __name__ == "__main__":
    main()

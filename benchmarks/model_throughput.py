"""Model and decode throughput (a measurement, not a test).

- Model: the exact ``vits14-reg`` architecture (ViT-S/14 + 4 registers, 518 x 518, head
  < 250k parameters) with random weights, so no download is needed; throughput does
  not depend on the weight values. Two paths are timed:
  ``model`` = normalised float batch already on the device -> grid logits;
  ``predictor`` = :class:`plumenet.inference.predictor.Predictor` end to end (uint8 host frames ->
  device -> normalise -> forward -> softmax/quantize + full-resolution argmax fractions
  -> numpy), the path the pipeline uses.
  On CPU: fp32. On CUDA also bf16 autocast and ``torch.compile``.
- Decode: a synthetic 1920 x 1080 JPEG (gradient + Gaussian noise sigma 10, quality 90) decoded and
  resized to 518 x 518 on one thread, with ``Image.draft`` (JPEG DCT scaling, what
  ``load_frame`` does) and without it.

Usage::

    python benchmarks/model_throughput.py [--device cpu|cuda] [--batch-sizes 1,4,16]
        [--iters 3] [--warmup 1] [--decode-iters 20] [--no-compile] [--json OUT]

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from plumenet.inference.decode import decode_rgb, load_frame, resize_frame
from plumenet.inference.predictor import Predictor
from plumenet.model.loaded import LoadedModel, weights_digest
from plumenet.model.network import count_parameters
from plumenet.model.registry import build_model

SIZE = 518


def sync_device(device: torch.device) -> None:
    """Wait for queued device work (CUDA), so a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], Any], device: torch.device, warmup: int, iters: int) -> float:
    """Median seconds per call of ``fn`` (device work included), after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync_device(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync_device(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_model(
    device: torch.device, batch_sizes: list[int], iters: int, warmup: int, compile_: bool
) -> list[dict[str, Any]]:
    model = build_model("vits14-reg", seed=0).to(device).eval()
    loaded = LoadedModel(
        model=model,
        model_id="vits14-reg-random",
        digest=weights_digest(model.state_dict()),
        backbone="vits14-reg",
    )
    variants: list[tuple[str, torch.dtype | None, bool]] = [("fp32", None, False)]
    if device.type == "cuda":
        bf16 = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        name = "bf16" if bf16 == torch.bfloat16 else "fp16"
        variants.append((name, bf16, False))
        if compile_:
            variants.append((name, bf16, True))
    rows = []
    rng = np.random.default_rng(0)
    for precision, dtype, compiled in variants:
        fwd = torch.compile(model.forward_grid) if compiled else model.forward_grid
        amp = {None: None, torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
        predictor = Predictor(loaded, device=str(device), amp=amp, compile=compiled)
        for bs in batch_sizes:
            x = torch.randn(bs, 3, SIZE, SIZE, device=device)
            frames = rng.integers(0, 256, (bs, SIZE, SIZE, 3), dtype=np.uint8)
            predictor.batch_size = bs

            def run_model(x: torch.Tensor = x, fwd: Callable = fwd, dtype=dtype) -> None:
                with (
                    torch.inference_mode(),
                    torch.autocast(device.type, dtype=dtype or torch.float32, enabled=bool(dtype)),
                ):
                    fwd(x)

            def run_predictor(frames: np.ndarray = frames, p: Predictor = predictor) -> None:
                p.predict(frames)

            for path, fn in (("model", run_model), ("predictor", run_predictor)):
                try:
                    sec = median_seconds(fn, device, warmup + (1 if compiled else 0), iters)
                except torch.cuda.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    rows.append(
                        dict(path=path, precision=precision, compiled=compiled, batch=bs, oom=True)
                    )
                    continue
                rows.append(
                    dict(
                        path=path,
                        precision=precision,
                        compiled=compiled,
                        batch=bs,
                        seconds_per_batch=sec,
                        frames_per_s=bs / sec,
                        ms_per_frame=1000 * sec / bs,
                    )
                )
                print(
                    f"  {path:9s} {precision} compile={compiled} bs={bs}: {bs / sec:.2f} frames/s"
                )
            del x
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def synthetic_jpeg(width: int = 1920, height: int = 1080, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    grad = np.stack([xx / width * 255, yy / height * 255, (xx + yy) / (width + height) * 255], -1)
    noise = rng.normal(0, 10, (height, width, 3))  # sensor-like noise
    arr = np.clip(grad + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def bench_decode(iters: int) -> list[dict[str, Any]]:
    data = synthetic_jpeg()
    cpu = torch.device("cpu")

    def with_draft() -> None:
        load_frame(data, SIZE)

    def without_draft() -> None:
        resize_frame(decode_rgb(data), SIZE)

    rows = []
    for name, fn in (("draft (load_frame)", with_draft), ("full decode + resize", without_draft)):
        sec = median_seconds(fn, cpu, 2, iters)
        rows.append(
            dict(
                path=f"decode 1920x1080 JPEG -> 518: {name}",
                frames_per_s=1 / sec,
                ms_per_frame=1000 * sec,
            )
        )
        print(f"  decode {name}: {1 / sec:.1f} frames/s")
    return rows


def markdown(rows: list[dict[str, Any]], decode: list[dict[str, Any]], env: dict[str, Any]) -> str:
    lines = [
        f"Device: {env['device_name']} ({env['device']}), torch {env['torch']}, "
        f"{env['threads']} CPU threads; vits14-reg ({env['params']:,} parameters, "
        f"head {env['head_params']:,}) at {SIZE}x{SIZE}, random weights.",
        "",
        "| path | precision | compiled | batch | frames/s | ms/frame |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        if r.get("oom"):
            lines.append(
                f"| {r['path']} | {r['precision']} | {r['compiled']} | {r['batch']} | OOM | |"
            )
            continue
        lines.append(
            f"| {r['path']} | {r['precision']} | {r['compiled']} | {r['batch']} | "
            f"{r['frames_per_s']:.2f} | {r['ms_per_frame']:.1f} |"
        )
    lines += ["", "| decode (1 thread) | frames/s | ms/frame |", "|---|---:|---:|"]
    for r in decode:
        lines.append(f"| {r['path']} | {r['frames_per_s']:.1f} | {r['ms_per_frame']:.1f} |")
    if len(decode) == 2:
        gain = decode[0]["frames_per_s"] / decode[1]["frames_per_s"]
        lines.append(f"\nDraft-mode decode speed-up: {gain:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--batch-sizes", default=None, help="comma list (default 1,4,16 on CPU)")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--decode-iters", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile on CUDA")
    parser.add_argument("--skip-model", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    args = parser.parse_args(argv)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    default_bs = "1,4,16" if device.type == "cpu" else "1,4,16,32,64"
    batch_sizes = [int(b) for b in (args.batch_sizes or default_bs).split(",") if b.strip()]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    probe = build_model("vits14-reg", seed=0)
    env = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "params": count_parameters(probe),
        "head_params": count_parameters(probe.head),
    }
    del probe
    print(f"benchmarking on {env['device_name']} ({device}), batch sizes {batch_sizes}")
    rows = (
        []
        if args.skip_model
        else bench_model(device, batch_sizes, args.iters, args.warmup, not args.no_compile)
    )
    decode = bench_decode(args.decode_iters)
    print()
    print(markdown(rows, decode, env))
    if args.json:
        args.json.write_text(json.dumps({"env": env, "model": rows, "decode": decode}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

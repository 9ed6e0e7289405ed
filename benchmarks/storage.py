"""Storage benchmarks: listing rate (local, moto S3), store reads, bytes per frame.

    python -m benchmarks.storage [--days 365] [--list-files 8640] [--s3-files 1440] [--out DIR]

Targets (design): open + one camera-year of ``fraction`` (52,560 slots at 10 min) < 0.5 s
locally, one frame's probability map < 20 ms, <= 10 KB on disk per processed frame.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import socket
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np


def _jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 100, 110)).save(buf, "JPEG")
    return buf.getvalue()


def _camera(archive: str, cadence: str = "10min"):
    from plumenet.config import CameraConfig

    return CameraConfig(
        id="BENCH.01",
        archive=archive,
        template="geonet",
        fields={"SITE": "WIZ", "VC": "01"},
        cadence=cadence,
        unit="1D",  # one unit per day, as in the recorded numbers (the 10-min default is 7D)
        grid_start="2023-01-01",
    )


def _frame_paths(n: int, cadence_s: float) -> list[str]:
    from storage.layouts import format_path

    t0 = datetime(2023, 6, 10)
    return [
        format_path("geonet", t0 + timedelta(seconds=cadence_s * i), {"SITE": "WIZ", "VC": "01"})
        for i in range(n)
    ]


def bench_listing_local(tmp: Path, n: int) -> dict:
    from storage.archive import list_frames

    root = tmp / "archive"
    data = _jpeg()
    for rel in _frame_paths(n, 86400 / n):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    cam = _camera(str(root))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        df = list_frames(cam, "2023-06-10", "2023-06-11")
        best = min(best, time.perf_counter() - t)
    assert len(df) == n, len(df)
    return {"files": n, "seconds": round(best, 4), "files_per_s": round(n / best)}


def bench_listing_s3(n: int) -> dict:
    import fsspec
    from moto.server import ThreadedMotoServer

    from storage.archive import list_frames

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        so = {
            "key": "bench",
            "secret": "bench",
            "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
        }
        fs, _ = fsspec.core.url_to_fs("s3://bench", **so)
        fs.mkdir("bench")
        data = _jpeg()
        fs.pipe({f"bench/archive/{rel}": data for rel in _frame_paths(n, 86400 / n)})
        cam = _camera("s3://bench/archive")
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            df = list_frames(cam, "2023-06-10", "2023-06-11", storage_options=so)
            best = min(best, time.perf_counter() - t)
        assert len(df) == n, len(df)
        return {"files": n, "seconds": round(best, 4), "files_per_s": round(n / best)}
    finally:
        server.stop()


def _smooth_probabilities(rng: np.random.Generator, n: int, grid: int) -> np.ndarray:
    """Softmax of smooth random logits: compresses like real model output (not like noise)."""
    coarse = rng.normal(0, 4, size=(n, 6, 4, 4)).astype(np.float32)
    idx = np.linspace(0, 3, grid)
    i0 = np.floor(idx).astype(int).clip(0, 2)
    w = (idx - i0)[None, None, :, None]
    rows = coarse[:, :, i0, :] * (1 - w) + coarse[:, :, i0 + 1, :] * w
    w2 = (idx - i0)[None, None, None, :]
    logits = rows[:, :, :, i0] * (1 - w2) + rows[:, :, :, i0 + 1] * w2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def bench_store(tmp: Path, days: int, grid: int = 37) -> dict:
    from plumenet.encoding import quantize_probability
    from storage.reads import open_camera
    from storage.regions import unit_arrays, write_unit
    from storage.zarr_store import consolidate, ensure_camera, register_model

    url = str(tmp / "bench.zarr")
    cam = _camera("s3://unused/archive")
    start = np.datetime64("2023-01-01")
    end = start + np.timedelta64(days, "D")
    t = time.perf_counter()
    g = ensure_camera(url, cam, str(start), str(end), grid_shape=(grid, grid))
    create_s = time.perf_counter() - t
    model = register_model(url, cam.id, model_id="demo", digest="0" * 16, backbone="bench")
    rng = np.random.default_rng(0)
    n = g.chunk_len
    write_times = []
    frames = 0
    for u in range(days):
        s0, s1 = g.unit_range(u)
        arrays = unit_arrays(n, (grid, grid))
        p = _smooth_probabilities(rng, n, grid)
        arrays["probability"] = quantize_probability(p)
        arrays["fraction"] = p.mean(axis=(2, 3)).astype(np.float32)
        arrays["frame_time"] = np.array(g.slot_times(s0, s1).tz_convert(None)) + np.timedelta64(
            7, "s"
        )
        arrays["source"] = np.array(
            [f"s3://geonet-open-data/camera/volcano/images/x/{s}.jpg" for s in range(s0, s1)],
            dtype=object,
        )
        arrays["brightness"] = rng.random(n).astype(np.float32)
        arrays["status"][:] = 1
        arrays["model"][:] = model
        t = time.perf_counter()
        write_unit(url, cam.id, s0, s1, arrays)
        write_times.append(time.perf_counter() - t)
        frames += n
    consolidate(url)
    size = sum(f.stat().st_size for f in Path(url).rglob("*") if f.is_file())

    opens, reads, maps = [], [], []
    first = None
    for _ in range(6):
        t = time.perf_counter()
        ds = open_camera(url, cam.id)
        t_open = time.perf_counter() - t
        frac = ds["fraction"].sel(time=slice("2023-01-01", "2023-12-31")).values
        t_read = time.perf_counter() - t
        opens.append(t_open)
        reads.append(t_read)
        k = int(rng.integers(0, frames))
        t = time.perf_counter()
        one = ds["probability"].isel(time=k).values
        maps.append(time.perf_counter() - t)
        assert one.shape == (6, grid, grid)
        if first is None:  # first call in the process pays lazy imports; reported apart
            first = (t_read, maps.pop(), opens.pop(), reads.pop())
    assert frac.shape[0] == min(g.n_slots, 52560), frac.shape
    return {
        "slots": frames,
        "create_s": round(create_s, 3),
        "write_unit_median_s": round(float(np.median(write_times)), 4),
        "write_frames_per_s": round(n / float(np.median(write_times))),
        "open_s_median": round(float(np.median(opens)), 4),
        "open_plus_year_fraction_s_median": round(float(np.median(reads)), 4),
        "first_call_open_plus_year_fraction_s": round(first[0], 4),
        "first_call_probability_map_ms": round(1000 * first[1], 2),
        "one_probability_map_ms_median": round(1000 * float(np.median(maps)), 2),
        "store_bytes": size,
        "bytes_per_frame": round(size / frames),
    }


def main() -> None:
    # Run as a script, this file's folder comes first on sys.path and its name shadows
    # the `storage` package.
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).parent.resolve():
        sys.path.pop(0)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--list-files", type=int, default=8640)
    parser.add_argument("--s3-files", type=int, default=1440)
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            "listing_local": bench_listing_local(Path(tmp), args.list_files),
            "listing_s3_moto": bench_listing_s3(args.s3_files),
            "store": bench_store(Path(tmp), args.days),
        }
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

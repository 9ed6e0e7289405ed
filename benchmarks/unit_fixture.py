"""Synthetic work units for the GPU and null-model benchmarks: JPEGs on local disk + a store.

No Prefect and no archive listing: a camera group is created in a fresh Zarr store and the
frames are assigned to work units directly, so the benchmarks measure ``run_unit`` (and
plain Dask around it) only. Needs zarr, numcodecs, pydantic and PIL, nothing heavier.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

#: Distinct JPEGs encoded per run; the files on disk cycle through them (decode cost is
#: per file, so repeating content changes nothing but the set-up time).
DISTINCT = 32


def scene(w: int, h: int, seed: int) -> np.ndarray:
    """A webcam-like frame: sky gradient, a textured ground, a bright plume-ish blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sky = np.stack([90 + 60 * yy / h, 130 + 60 * yy / h, 200 - 30 * yy / h], -1)
    ground = yy > h * (0.55 + 0.1 * np.sin(xx / w * 6 + seed))
    img = np.where(ground[..., None], [70, 65, 55], sky)
    cx, cy, r = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.2, 0.45), h * rng.uniform(0.1, 0.2)
    blob = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))[..., None]
    img = img * (1 - blob) + 235 * blob
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg_bytes(w: int, h: int, seed: int, quality: int = 88) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(scene(w, h, seed)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_units(
    root: Path, n_frames: int, size: tuple[int, int], unit_frames: int = 256, threads: int = 8
) -> tuple[str, list]:
    """``n_frames`` JPEGs of ``size`` (w, h) under ``root`` and a store; -> (store, units).

    One frame per minute; a unit holds ``unit_frames`` slots (one Zarr chunk).
    """
    from plumenet.config import CameraConfig
    from storage.grid import WorkUnit
    from storage.zarr_store import ensure_camera

    w, h = size
    with ThreadPoolExecutor(threads) as pool:
        encoded = list(pool.map(lambda s: jpeg_bytes(w, h, s), range(DISTINCT)))
    frames_dir = root / f"frames-{w}x{h}"
    frames_dir.mkdir(parents=True, exist_ok=True)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    camera = CameraConfig(
        id="GPU",
        archive=str(frames_dir),
        template="flat",
        fields={"CAM": "gpu"},
        cadence="1min",
        unit=f"{unit_frames}min",
        grid_start=start.to_pydatetime(),
    )
    store = str(root / f"bench-{w}x{h}.zarr")
    end = start + pd.Timedelta(minutes=n_frames)
    grid = ensure_camera(store, camera, start, end, grid_shape=(37, 37))
    paths = []
    for k in range(n_frames):
        path = frames_dir / f"f{k:06d}.jpg"
        path.write_bytes(encoded[k % DISTINCT])
        paths.append((k, str(path), grid.slot_time(k)))
    units = []
    for u in range(-(-n_frames // grid.chunk_len)):
        slot0, slot1 = grid.unit_range(u)
        frames = tuple(f for f in paths if slot0 <= f[0] < slot1)
        units.append(WorkUnit("GPU", u, slot0, slot1, frames))
    return store, units


def save_model(root: Path, name: str) -> str:
    """A registered architecture with random weights, saved where ``run_unit`` loads it."""
    from plumenet.model.registry import build_model
    from plumenet.model.weights import save_model as save

    out = root / f"model-{name}"
    if not out.exists():
        save(build_model(name, seed=0), out, model_id=f"{name}-random")
    return str(out)


def save_null_model(root: Path) -> str:
    """A model that costs (almost) nothing: 1 layer, 4 wide, no registers, at 518 x 518.

    What remains is the predictor's own work (normalisation, the 518 x 518 upsampling and
    argmax for fractions, quality), i.e. the pipeline's cost besides the network.
    """
    from plumenet.model.network import ModelConfig
    from plumenet.model.registry import MODEL_CONFIGS, build_model
    from plumenet.model.weights import save_model as save

    cfg = ModelConfig.from_dict(
        {
            **MODEL_CONFIGS["tiny"].to_dict(),
            "name": "null",
            "backbone": {
                "hidden_size": 4,
                "num_hidden_layers": 1,
                "num_attention_heads": 1,
                "mlp_ratio": 1,
                "patch_size": 14,
                "image_size": 518,
                "num_register_tokens": 0,
            },
            "head_hidden": 4,
        }
    )
    out = root / "model-null"
    if not out.exists():
        save(build_model(cfg, seed=0), out, model_id="null-model")
    return str(out)

"""One work unit: fetch -> decode -> infer -> one region write, for one camera x one time chunk.

This is the function a Dask worker runs (through a thin Prefect task). It is plain Python so
tests and benchmarks call it directly. The model is loaded once per worker process and kept
(``get_predictor``), never shipped from the driver; frames are fetched and decoded on a
thread pool while the previous batch runs on the model, so I/O overlaps compute.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from plumenet.errors import UnreadableImageError
from storage.schema import STATUS_OK, STATUS_UNREADABLE, STATUS_UNUSABLE

if TYPE_CHECKING:
    from plumenet.inference.predictor import Predictor
    from storage.store import WorkUnit

logger = logging.getLogger(__name__)


#: Errors of a storage backend that are worth retrying (connection resets, throttling).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)


@dataclass(frozen=True)
class UnitJob:
    """Everything a worker needs besides the unit itself; small and picklable."""

    store: str
    camera: str
    model: str
    model_index: int
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)
    roi: str | None = None
    tile: int | None = None
    tile_stride: int | None = None
    anomaly_model: str | None = None
    device: str | None = None
    batch_size: int = 16
    io_threads: int = 8
    fetch_attempts: int = 4


@dataclass
class UnitSummary:
    """What a unit did; returned to the driver (no image data)."""

    camera: str
    unit: int
    frames: int = 0
    ok: int = 0
    unreadable: int = 0
    unusable: int = 0
    unreadable_files: list[tuple[str, str]] = field(default_factory=list)
    fetch_s: float = 0.0
    decode_s: float = 0.0
    infer_s: float = 0.0
    write_s: float = 0.0
    total_s: float = 0.0


_PREDICTORS: dict[tuple[Any, ...], Predictor] = {}
_SCORERS: dict[tuple[Any, ...], Any] = {}
_CACHE_LOCK = threading.Lock()


def get_predictor(
    spec: str, *, device: str | None, batch_size: int, roi: str | None = None
) -> Predictor:
    """The process-wide predictor for ``spec``: loaded on first use, then reused by every unit."""
    key = (spec, device, batch_size, roi)
    with _CACHE_LOCK:
        predictor = _PREDICTORS.get(key)
        if predictor is None:
            from plumenet.inference.predictor import Predictor
            from plumenet.model.weights import load_model

            _apply_thread_budget()
            loaded = load_model(spec, device=device)
            mask = _load_roi(roi, loaded.input_size) if roi else None
            predictor = Predictor(loaded, device=device, batch_size=batch_size, roi=mask)
            _PREDICTORS[key] = predictor
            logger.info("loaded model %s (%s) in this worker", loaded.model_id, spec)
        return predictor


#: Set by the local cluster: CPU threads torch may use in this worker process.
THREADS_ENV = "PLUMENET_TORCH_THREADS"


def _apply_thread_budget() -> None:
    """Give torch the worker's share of the cores.

    Dask's nanny starts workers with OMP_NUM_THREADS=1 (against oversubscription), which
    would leave a single-worker CPU cluster on one core; the cluster sets this budget.
    """
    import os

    import torch

    threads = os.environ.get(THREADS_ENV)
    if threads and int(threads) != torch.get_num_threads():
        torch.set_num_threads(int(threads))


def _get_scorer(path: str, predictor: Predictor) -> Any:
    key = (path, id(predictor))
    with _CACHE_LOCK:
        scorer = _SCORERS.get(key)
        if scorer is None:
            from plumenet.anomaly.padim import AnomalyScorer, load_padim

            scorer = AnomalyScorer(load_padim(path), predictor.loaded)
            _SCORERS[key] = scorer
        return scorer


def _load_roi(path: str, size: int) -> np.ndarray:
    """ROI mask image -> boolean size x size mask (non-zero pixels count)."""
    import fsspec
    from PIL import Image

    with fsspec.open(path, "rb") as f:
        image = Image.open(f).convert("L").resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(image) > 0


def _filesystem(url: str, storage_options: dict[str, Any]) -> Any:
    import fsspec.core

    fs, _ = fsspec.core.url_to_fs(url, **storage_options)
    return fs


def _fetch(fs: Any, path: str, attempts: int) -> bytes:
    """Read one file, retrying transient backend errors with exponential backoff and jitter."""
    for attempt in range(attempts):
        try:
            return fs.cat_file(path)
        except FileNotFoundError:
            raise
        except TRANSIENT_ERRORS as err:
            if attempt == attempts - 1:
                raise
            delay = min(0.2 * 2**attempt, 5.0) * (1 + random.random())
            logger.warning("retrying %s in %.1f s after %s", path, delay, err)
            time.sleep(delay)
    raise AssertionError("unreachable")


@dataclass
class _Loaded:
    slot: int
    path: str
    frame: np.ndarray | None
    error: str | None
    fetch_s: float
    decode_s: float


def _load_one(fs: Any, slot: int, path: str, size: int, attempts: int, tiled: bool) -> _Loaded:
    from plumenet.inference.decode import decode_rgb, load_frame

    t0 = time.perf_counter()
    try:
        data = _fetch(fs, path, attempts)
    except FileNotFoundError:
        return _Loaded(slot, path, None, "file vanished", time.perf_counter() - t0, 0.0)
    t1 = time.perf_counter()
    try:
        if tiled:
            frame = np.asarray(decode_rgb(data, source=path))
        else:
            frame = load_frame(data, size, source=path)
    except UnreadableImageError as err:
        return _Loaded(slot, path, None, err.reason, t1 - t0, time.perf_counter() - t1)
    return _Loaded(slot, path, frame, None, t1 - t0, time.perf_counter() - t1)


def _prefetched(
    pool: ThreadPoolExecutor,
    fs: Any,
    frames: Sequence[tuple[int, str]],
    size: int,
    attempts: int,
    window: int,
    tiled: bool,
) -> Iterator[_Loaded]:
    """Yield loaded frames in order, keeping up to ``window`` loads in flight ahead."""
    pending: deque[Future[_Loaded]] = deque()
    it = iter(frames)
    for slot, path in it:
        pending.append(pool.submit(_load_one, fs, slot, path, size, attempts, tiled))
        if len(pending) >= window:
            break
    while pending:
        yield pending.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.submit(_load_one, fs, nxt[0], nxt[1], size, attempts, tiled))


def _predict_tiled(
    predictor: Predictor, frame: np.ndarray, job: UnitJob, grid: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """Tiled inference of one large frame, reduced to what the store keeps.

    Probabilities are area-averaged onto the store's grid and quantized; brightness and
    usability follow the predictor's rule on the full frame.
    """
    import torch
    import torch.nn.functional as F

    from plumenet.inference.predictor import _LUMA, USABLE_MIN_STD
    from plumenet.inference.tiling import predict_tiled
    from storage.schema import quantize_probability

    prob, fraction = predict_tiled(
        predictor, frame, tile=job.tile, stride=job.tile_stride or job.tile
    )
    pooled = F.adaptive_avg_pool2d(torch.from_numpy(prob)[None], grid)[0].numpy()
    luma = frame.astype(np.float32) @ np.asarray(_LUMA, dtype=np.float32) / 255.0
    return (
        quantize_probability(pooled),
        fraction,
        float(luma.mean()),
        bool(luma.std() >= USABLE_MIN_STD),
    )


def _naive_utc(ts: Any) -> np.datetime64:
    import pandas as pd

    ts = pd.Timestamp(ts)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.as_unit("ns").to_datetime64()


def run_unit(unit: WorkUnit, job: UnitJob) -> UnitSummary:
    """Process one unit end to end and write it with one region write (data first, status last)."""
    from storage.store import unit_arrays, write_unit

    started = time.perf_counter()
    predictor = get_predictor(job.model, device=job.device, batch_size=job.batch_size, roi=job.roi)
    scorer = _get_scorer(job.anomaly_model, predictor) if job.anomaly_model else None
    size = predictor.input_size
    grid = (predictor.grid_size, predictor.grid_size)
    n_slots = unit.slot1 - unit.slot0
    arrays = unit_arrays(n_slots, grid)
    summary = UnitSummary(camera=unit.camera, unit=unit.unit, frames=len(unit.frames))

    for slot, path, frame_time in unit.frames:
        i = slot - unit.slot0
        arrays["source"][i] = path
        arrays["frame_time"][i] = _naive_utc(frame_time)
        arrays["model"][i] = job.model_index

    fs = _filesystem(unit.frames[0][1] if unit.frames else job.store, job.storage_options)
    tiled = job.tile is not None
    batch: list[_Loaded] = []

    def flush() -> None:
        if not batch:
            return
        t0 = time.perf_counter()
        idx = np.array([b.slot - unit.slot0 for b in batch])
        if tiled:
            for j, b in zip(idx, batch, strict=True):
                tiled_result = _predict_tiled(predictor, b.frame, job, grid)
                arrays["probability"][j], arrays["fraction"][j] = tiled_result[:2]
                arrays["brightness"][j] = tiled_result[2]
                arrays["status"][j] = STATUS_OK if tiled_result[3] else STATUS_UNUSABLE
        else:
            stack = np.stack([b.frame for b in batch])
            pred = predictor.predict(stack, scorer=scorer)
            arrays["fraction"][idx] = pred.fraction
            arrays["probability"][idx] = pred.probability
            arrays["brightness"][idx] = pred.brightness
            arrays["status"][idx] = np.where(pred.usable, STATUS_OK, STATUS_UNUSABLE)
            if pred.anomaly is not None:
                arrays["anomaly"][idx] = pred.anomaly
        summary.infer_s += time.perf_counter() - t0
        batch.clear()

    frames = [(slot, path) for slot, path, _ in sorted(unit.frames)]
    window = max(2 * job.batch_size, job.io_threads)
    with ThreadPoolExecutor(max_workers=job.io_threads, thread_name_prefix="fetch") as pool:
        for loaded in _prefetched(pool, fs, frames, size, job.fetch_attempts, window, tiled):
            summary.fetch_s += loaded.fetch_s
            summary.decode_s += loaded.decode_s
            if loaded.frame is None:
                arrays["status"][loaded.slot - unit.slot0] = STATUS_UNREADABLE
                summary.unreadable_files.append((loaded.path, loaded.error or "unreadable"))
                logger.warning("unreadable frame %s: %s", loaded.path, loaded.error)
                continue
            batch.append(loaded)
            if len(batch) >= job.batch_size:
                flush()
        flush()

    status = arrays["status"]
    summary.ok = int((status == STATUS_OK).sum())
    summary.unreadable = int((status == STATUS_UNREADABLE).sum())
    summary.unusable = int((status == STATUS_UNUSABLE).sum())

    t0 = time.perf_counter()
    write_unit(
        job.store,
        job.camera,
        unit.slot0,
        unit.slot1,
        arrays,
        storage_options=job.storage_options,
    )
    summary.write_s = time.perf_counter() - t0
    summary.total_s = time.perf_counter() - started
    return summary

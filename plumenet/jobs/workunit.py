"""One work unit: fetch -> decode -> infer -> one region write, for one camera x one time chunk.

This is the function a Dask worker runs (through a thin Prefect task). It is plain Python so
tests and benchmarks call it directly. The model is loaded once per worker process and kept
(``get_predictor``), never shipped from the driver; frames are fetched and decoded on a
thread pool while the previous batch runs on the model, so I/O overlaps compute.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
from distributed import get_worker
from distributed.core import Status
from PIL import Image

from plumenet.encoding import STATUS_OK, STATUS_UNREADABLE, STATUS_UNUSABLE, quantize_probability
from plumenet.errors import WeightsError
from plumenet.inference.gpu_decode import gpu_decodable, gpu_decode_available
from plumenet.jobs.frames import LoadedFrame, filesystem, prefetched
from plumenet.jobs.gpu_frames import gather_batch
from plumenet.jobs.plume import frame_sizes, store_plume, store_solar_elevation
from plumenet.timeutil import naive_utc
from storage.regions import unit_arrays, write_unit

if TYPE_CHECKING:
    from plumenet.inference.predictor import Predictor
    from storage.grid import WorkUnit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnitJob:
    """Everything a worker needs besides the unit itself; small and picklable."""

    store: str
    camera: str
    model: str
    model_index: int
    #: The digest of the weights the driver identified and the store records for this run;
    #: a worker whose copy differs (the files were replaced since) reloads them.
    model_digest: str | None = None
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)
    roi: str | None = None
    tile: int | None = None
    tile_stride: int | None = None
    anomaly_model: str | None = None
    device: str | None = None
    batch_size: int = 16
    io_threads: int = 8
    fetch_attempts: int = 4
    #: Batch size when the worker's device is CUDA (``batch_size`` is the CPU one).
    cuda_batch_size: int = 128
    #: On CUDA, decode plain JPEGs on the GPU (nvJPEG; needs the ``gpu`` extra's torchvision).
    gpu_decode: bool = True
    #: ``torch.compile`` the model (compiled once per worker, when the predictor is loaded).
    compile: bool = False
    #: The camera's ``(lat, lon)``: solar elevation per frame (None: NaN).
    site: tuple[float, float] | None = None
    #: The camera's ``geometry`` block as a dict: plume height/drift in metres (None: NaN).
    geometry: dict[str, Any] | None = None


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
    #: Transient fetch errors retried per file (then read fine), and the files retried.
    fetch_retries: int = 0
    retried_files: list[tuple[str, int]] = field(default_factory=list)
    fetch_s: float = 0.0
    decode_s: float = 0.0
    infer_s: float = 0.0
    write_s: float = 0.0
    total_s: float = 0.0
    #: wall-clock (epoch seconds) when the worker began and finished the unit
    started_at: float = 0.0
    finished_at: float = 0.0
    #: where it ran: the Dask worker's name, else ``host:pid``
    worker: str = ""


class UnitStopped(BaseException):
    """Raised in a unit, before its next batch, once the Dask worker running it closes:
    nothing of the unit is written, and a rerun redoes it. A ``BaseException``, like a
    cancellation, so no retry catches it."""


#: Worker states in which a unit stops before its next batch.
_CLOSING = frozenset({Status.closing, Status.closed, Status.failed})


def worker_closing() -> bool:
    """Whether the Dask worker this thread runs for is closing (False outside a worker).

    A worker process takes its units with it when it goes; a worker that is a thread pool of
    the driver's process (``plumenet.jobs.inprocess``) cannot kill its threads, so its units
    stop themselves: else the close waits 30 s for them, and they outlive their run.
    """
    try:
        return get_worker().status in _CLOSING
    except ValueError:  # not in a worker
        return False


_PREDICTORS: dict[tuple[Any, ...], Predictor] = {}
_SCORERS: dict[tuple[Any, ...], Any] = {}
_CACHE_LOCK = threading.Lock()


def get_predictor(
    spec: str,
    *,
    device: str | None,
    batch_size: int,
    roi: str | None = None,
    cuda_batch_size: int | None = None,
    compile: bool = False,
    digest: str | None = None,
) -> Predictor:
    """The process-wide predictor for ``spec``: loaded on first use, then reused by every unit
    (and by the units that run concurrently in one GPU worker's threads).

    With ``digest`` (the weights the run was planned with), a cached predictor of other
    weights is replaced: a long-lived worker, or a driver that runs its units itself, may
    have loaded ``spec`` before its files were replaced. Weights that still differ once
    reloaded are a :class:`WeightsError`, never outputs recorded under the wrong digest.
    """
    key = (spec, device, batch_size, roi, cuda_batch_size, compile)
    with _CACHE_LOCK:
        predictor = _PREDICTORS.get(key)
        if predictor is not None and digest and predictor.loaded.digest != digest:
            for stale in [k for k in _SCORERS if k[1] == id(predictor)]:  # ids get reused
                del _SCORERS[stale]
            predictor = None
        if predictor is None:
            # torch-heavy: imported in the worker on first use, never in the driver.
            from plumenet.inference.predictor import Predictor  # noqa: PLC0415
            from plumenet.model.device import resolve_device  # noqa: PLC0415
            from plumenet.model.weights import load_model  # noqa: PLC0415

            _apply_thread_budget()
            loaded = load_model(spec, device=device)
            if digest and loaded.digest != digest:
                raise WeightsError(
                    f"model {spec!r}: its weights changed after this run was planned (digest "
                    f"{loaded.digest[:12]}... here, {digest[:12]}... recorded) — run again"
                )
            mask = _load_roi(roi, loaded.input_size) if roi else None
            if cuda_batch_size and resolve_device(device).type == "cuda":
                batch_size = cuda_batch_size
            predictor = Predictor(
                loaded, device=device, batch_size=batch_size, roi=mask, compile=compile
            )
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
    import torch  # noqa: PLC0415 - the driver imports this module; torch loads in workers only

    threads = os.environ.get(THREADS_ENV)
    if threads and int(threads) != torch.get_num_threads():
        torch.set_num_threads(int(threads))


def _get_scorer(path: str, predictor: Predictor) -> Any:
    key = (path, id(predictor))
    with _CACHE_LOCK:
        scorer = _SCORERS.get(key)
        if scorer is None:
            # torch-heavy: imported in the worker on first use, never in the driver.
            from plumenet.anomaly.files import load_padim  # noqa: PLC0415
            from plumenet.anomaly.scorer import AnomalyScorer  # noqa: PLC0415

            scorer = AnomalyScorer(load_padim(path), predictor.loaded)
            _SCORERS[key] = scorer
        return scorer


def _load_roi(path: str, size: int) -> np.ndarray:
    """ROI mask image -> boolean size x size mask (non-zero pixels count)."""
    with fsspec.open(path, "rb") as f:
        image = Image.open(f).convert("L").resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(image) > 0


def _predict_tiled(
    predictor: Predictor, frame: np.ndarray, job: UnitJob, grid: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """Tiled inference of one large frame, reduced to what the store keeps.

    Probabilities are area-averaged onto the store's grid and quantized; brightness and
    usability follow the predictor's rule on the full frame, inside the predictor's ROI.
    """
    # torch-heavy: imported in the worker on first use, never in the driver.
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415

    from plumenet.inference.tiling import predict_tiled  # noqa: PLC0415

    tiled = predict_tiled(
        predictor, frame, tile=job.tile, stride=job.tile_stride or job.tile, roi=predictor.roi
    )
    pooled = F.adaptive_avg_pool2d(torch.from_numpy(tiled.probability)[None], grid)[0].numpy()
    return quantize_probability(pooled), tiled.fraction, tiled.brightness, tiled.usable


def _where() -> str:
    """The Dask worker running this unit, or ``host:pid`` outside a worker."""
    try:
        return str(get_worker().name)
    except ValueError:
        return f"{socket.gethostname()}:{os.getpid()}"


def run_unit(unit: WorkUnit, job: UnitJob) -> UnitSummary:
    """Process one unit end to end and write it with one region write (data first, status last)."""
    started = time.perf_counter()
    started_at = time.time()
    predictor = get_predictor(
        job.model,
        device=job.device,
        batch_size=job.batch_size,
        roi=job.roi,
        cuda_batch_size=job.cuda_batch_size,
        compile=job.compile,
        digest=job.model_digest,
    )
    scorer = _get_scorer(job.anomaly_model, predictor) if job.anomaly_model else None
    size = predictor.input_size
    grid = (predictor.grid_size, predictor.grid_size)
    n_slots = unit.slot1 - unit.slot0
    arrays = unit_arrays(n_slots, grid)
    summary = UnitSummary(
        camera=unit.camera,
        unit=unit.unit,
        frames=len(unit.frames),
        started_at=started_at,
        worker=_where(),
    )

    for slot, path, frame_time in unit.frames:
        i = slot - unit.slot0
        arrays["source"][i] = path
        arrays["frame_time"][i] = naive_utc(frame_time).to_datetime64()
        arrays["model"][i] = job.model_index
    store_solar_elevation(arrays, job.site)

    fs = filesystem(unit.frames[0][1] if unit.frames else job.store, job.storage_options)
    tiled = job.tile is not None
    batch: list[LoadedFrame] = []
    on_gpu = (
        not tiled and job.gpu_decode and predictor.device.type == "cuda" and gpu_decode_available()
    )

    def unreadable(loaded: LoadedFrame, reason: str | None) -> None:
        arrays["status"][loaded.key - unit.slot0] = STATUS_UNREADABLE
        summary.unreadable_files.append((loaded.path, reason or "unreadable"))
        logger.warning("unreadable frame %s: %s", loaded.path, reason)

    def flush() -> None:
        if not batch:
            return
        if worker_closing():
            raise UnitStopped(f"unit {unit.camera}/{unit.unit} stopped: its worker closed")
        t0 = time.perf_counter()
        idx = np.array([b.key - unit.slot0 for b in batch])
        if tiled:
            for j, b in zip(idx, batch, strict=True):
                tiled_result = _predict_tiled(predictor, b.frame, job, grid)
                arrays["probability"][j], arrays["fraction"][j] = tiled_result[:2]
                arrays["brightness"][j] = tiled_result[2]
                arrays["status"][j] = STATUS_OK if tiled_result[3] else STATUS_UNUSABLE
        else:
            if on_gpu:  # JPEG bytes decoded on the GPU; Pillow gives broken ones their reason
                gathered = gather_batch(batch, size, predictor.device)
                summary.decode_s += gathered.decode_s
                t0 = time.perf_counter()  # infer_s: the model's part, not the decode's
                for i, reason in gathered.unreadable:
                    unreadable(batch[i], reason)
                batch[:] = [batch[i] for i in gathered.kept]
                if not batch:
                    return
                idx = np.array([b.key - unit.slot0 for b in batch], dtype=np.int64)
                stack = gathered.frames
            else:
                stack = np.stack([b.frame for b in batch])
            sizes = frame_sizes(batch, size)
            pred = predictor.predict(stack, scorer=scorer, frame_sizes=sizes)
            store_plume(arrays, idx, pred, sizes, job.geometry)
            arrays["fraction"][idx] = pred.fraction
            arrays["probability"][idx] = pred.probability
            arrays["brightness"][idx] = pred.brightness
            arrays["status"][idx] = np.where(pred.usable, STATUS_OK, STATUS_UNUSABLE)
            if pred.anomaly is not None:
                arrays["anomaly"][idx] = pred.anomaly
        summary.infer_s += time.perf_counter() - t0
        batch.clear()

    frames = [(slot, path) for slot, path, _ in sorted(unit.frames)]
    window = max(2 * predictor.batch_size, job.io_threads)
    with ThreadPoolExecutor(max_workers=job.io_threads, thread_name_prefix="fetch") as pool:
        loads = prefetched(
            pool,
            fs,
            frames,
            size,
            attempts=job.fetch_attempts,
            window=window,
            full=tiled,
            keep_bytes=gpu_decodable if on_gpu else None,
        )
        for loaded in loads:
            summary.fetch_s += loaded.fetch_s
            summary.decode_s += loaded.decode_s
            if loaded.retries:
                summary.fetch_retries += loaded.retries
                summary.retried_files.append((loaded.path, loaded.retries))
            if loaded.frame is None and loaded.data is None:
                unreadable(loaded, loaded.error)
                continue
            batch.append(loaded)
            if len(batch) >= predictor.batch_size:
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
    summary.finished_at = time.time()
    return summary

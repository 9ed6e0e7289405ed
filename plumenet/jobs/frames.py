"""Fetch and decode archive frames on a thread pool, in order, ahead of the model.

The one reader of frame bytes: the work unit uses it to overlap I/O with inference, and
``plumenet anomaly`` uses it to feed the PaDiM fit and scores. Errors are sorted three ways:

- a **transient** fault of the backend (5xx, throttling, a reset or dropped connection, a
  timeout: :func:`is_transient`) is retried for that file with backoff and jitter; if it
  outlasts the attempts it is raised, so the unit fails and is retried whole (an outage
  must never be recorded as bad frames);
- an error of **one file** (missing, permission denied or an S3 4xx, a symlink loop or an
  I/O error, bytes that do not decode: :func:`file_error_reason`) makes the frame
  unreadable: a result with its reason (``error``), never an exception, so one bad file
  never fails a batch;
- anything else (credentials missing, a bug) is raised: it concerns the unit, not the file.

Decodes share the worker's :data:`DECODE_BUDGET`, so a day of huge images cannot all be
decoded at once.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import aiohttp
import botocore.exceptions
import fsspec.core
import fsspec.exceptions
import numpy as np

from plumenet.errors import UnreadableImageError
from plumenet.inference.decode import (
    DecodeBudget,
    decode_cost,
    decode_rgb,
    load_frame,
    original_size,
)

logger = logging.getLogger(__name__)

#: Exception types that are transient whatever their message (transport-level faults).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    asyncio.TimeoutError,
    fsspec.exceptions.FSTimeoutError,
    botocore.exceptions.ConnectionError,  # EndpointConnectionError, ConnectTimeoutError, ...
    botocore.exceptions.HTTPClientError,  # ConnectionClosedError, ReadTimeoutError
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ResponseStreamingError,
    aiohttp.ClientConnectionError,  # ServerDisconnectedError, ClientConnectorError, ...
    aiohttp.ClientPayloadError,
)

#: S3 error codes that mean "try again", whatever the HTTP status.
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
    }
)

#: Per-worker decode memory budget: ``PLUMENET_DECODE_BUDGET_MB`` MiB (default 1024).
DECODE_BUDGET_ENV = "PLUMENET_DECODE_BUDGET_MB"
DECODE_BUDGET = DecodeBudget(int(float(os.environ.get(DECODE_BUDGET_ENV) or 1024) * 2**20))


#: glibc's M_MMAP_THRESHOLD: buffers above it are mmapped and go back to the OS when freed.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 * 1024
_allocator_pinned = False


def pin_mmap_threshold() -> bool:
    """Keep decode buffers out of glibc's per-thread heaps (once per process; glibc only).

    glibc raises its mmap threshold after the first large free, so later decode buffers land
    in each fetch thread's heap and stay resident after the decode: measured, peak RSS of
    one-at-a-time decodes on 4 threads was 1.7x the budget. Pinning the threshold keeps the
    peak at the budget (docs/pipeline.md, "Memory per worker").
    """
    global _allocator_pinned
    if _allocator_pinned:
        return True
    try:
        libc = ctypes.CDLL("libc.so.6")
        _allocator_pinned = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        _allocator_pinned = False
    return _allocator_pinned


def _client_error(err: BaseException) -> botocore.exceptions.ClientError | None:
    """The S3 ``ClientError`` behind ``err`` (s3fs translates them to ``OSError`` subclasses)."""
    cur: BaseException | None = err
    for _ in range(5):
        if cur is None:
            return None
        if isinstance(cur, botocore.exceptions.ClientError):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def http_status(err: BaseException) -> int | None:
    """The HTTP status an S3 or HTTP backend answered with, if ``err`` carries one."""
    client = _client_error(err)
    if client is not None:
        status = client.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status else None
    if isinstance(err, aiohttp.ClientResponseError):
        return err.status
    return None


def is_transient(err: BaseException) -> bool:
    """Is ``err`` a fault worth retrying (5xx, throttling, resets, timeouts)?"""
    if isinstance(err, FileNotFoundError | PermissionError):
        return False
    if isinstance(err, TRANSIENT_ERRORS):
        return True
    client = _client_error(err)
    if client is not None and client.response.get("Error", {}).get("Code") in TRANSIENT_CODES:
        return True
    status = http_status(err)
    if status is not None:
        return status >= 500 or status == 429
    return isinstance(err, OSError) and err.errno in (errno.ECONNRESET, errno.ETIMEDOUT)


def file_error_reason(err: BaseException) -> str | None:
    """Why one file cannot be read (``status=2``), or None when ``err`` concerns the unit."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    status = http_status(err)
    if isinstance(err, FileNotFoundError):
        return "file vanished"
    if isinstance(err, PermissionError) or status == 403:
        return f"permission denied ({f'HTTP {status}' if status else 'EACCES'}): {text}"
    if status is not None and 400 <= status < 500:
        return f"refused by the server (HTTP {status}): {text}"
    if isinstance(err, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(err, OSError):
        name = errno.errorcode.get(err.errno or 0, "OSError")
        return f"I/O error ({name}): {text}"
    return None


def filesystem(url: str, storage_options: dict[str, Any]) -> Any:
    """The fsspec filesystem that serves ``url``."""
    fs, _ = fsspec.core.url_to_fs(url, **storage_options)
    return fs


def fetch(
    fs: Any, path: str, attempts: int, *, sleep: Callable[[float], None] = time.sleep
) -> tuple[bytes, int]:
    """Read one file; return its bytes and how many transient errors were retried.

    Exponential backoff with jitter (0.2 s doubling, at most 5 s, times 1-2); after
    ``attempts`` the last transient error is raised with a note naming the file.
    """
    for attempt in range(attempts):
        try:
            return fs.cat_file(path), attempt
        except Exception as err:
            if not is_transient(err):
                raise
            if attempt == attempts - 1:
                err.add_note(f"reading {path}: still failing after {attempts} attempts")
                raise
            delay = min(0.2 * 2**attempt, 5.0) * (1 + random.random())
            logger.warning(
                "retrying %s in %.1f s after %s: %s", path, delay, type(err).__name__, err
            )
            sleep(delay)
    raise AssertionError("unreachable")


@dataclass
class LoadedFrame:
    """One frame after fetch + decode: ``frame`` (uint8 H x W x 3) or the ``error`` why not."""

    key: int
    path: str
    frame: np.ndarray | None
    error: str | None
    fetch_s: float
    decode_s: float
    #: The frame's original ``(height, width)`` (plume geometry is reported in its pixels).
    original_size: tuple[int, int] | None = None
    #: The undecoded bytes, when ``keep_bytes`` accepted them (``frame`` and ``error`` None):
    #: a batched decoder (the GPU path, plumenet.inference.gpu_decode) decodes them later.
    data: bytes | None = None
    #: How many transient errors reading this file were retried before it succeeded.
    retries: int = 0


def load_one(
    fs: Any,
    key: int,
    path: str,
    size: int,
    attempts: int,
    full: bool,
    keep_bytes: Callable[[bytes], bool] | None = None,
    budget: DecodeBudget | None = None,
) -> LoadedFrame:
    """Fetch and decode one frame: resized to ``size`` x ``size``, or at full resolution;
    bytes that ``keep_bytes`` accepts come back undecoded (``data``).

    Decodes wait for their share of ``budget`` (the worker's :data:`DECODE_BUDGET`)."""
    t0 = time.perf_counter()
    try:
        data, retries = fetch(fs, path, attempts)
    except Exception as err:
        reason = None if is_transient(err) else file_error_reason(err)
        if reason is None:
            raise
        return LoadedFrame(key, path, None, reason, time.perf_counter() - t0, 0.0)
    t1 = time.perf_counter()
    if keep_bytes is not None and not full and keep_bytes(data):
        return LoadedFrame(
            key, path, None, None, t1 - t0, time.perf_counter() - t1, original_size(data),
            data=data, retries=retries,
        )
    try:
        with (budget or DECODE_BUDGET).hold(decode_cost(data, None if full else size)):
            frame = np.asarray(decode_rgb(data, source=path)) if full else load_frame(
                data, size, source=path
            )
    except UnreadableImageError as err:
        return LoadedFrame(
            key, path, None, err.reason, t1 - t0, time.perf_counter() - t1, retries=retries
        )
    size_hw = frame.shape[:2] if full else original_size(data)
    return LoadedFrame(
        key, path, frame, None, t1 - t0, time.perf_counter() - t1, size_hw, retries=retries
    )


def prefetched(
    pool: ThreadPoolExecutor,
    fs: Any,
    frames: Sequence[tuple[int, str]],
    size: int,
    *,
    attempts: int,
    window: int,
    full: bool = False,
    keep_bytes: Callable[[bytes], bool] | None = None,
    budget: DecodeBudget | None = None,
) -> Iterator[LoadedFrame]:
    """Yield ``(key, path)`` frames loaded, in order, keeping up to ``window`` loads in flight."""
    pin_mmap_threshold()
    pending: deque[Future[LoadedFrame]] = deque()
    it = iter(frames)
    for key, path in it:
        pending.append(
            pool.submit(load_one, fs, key, path, size, attempts, full, keep_bytes, budget)
        )
        if len(pending) >= window:
            break
    while pending:
        yield pending.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(
                pool.submit(
                    load_one, fs, nxt[0], nxt[1], size, attempts, full, keep_bytes, budget
                )
            )


def decoded_batches(
    paths: Sequence[str],
    size: int,
    storage_options: dict[str, Any],
    batch_size: int,
    skipped: list[str],
    *,
    threads: int = 4,
    attempts: int = 4,
) -> Iterator[tuple[list[int], np.ndarray]]:
    """``(positions in paths, uint8 N x size x size x 3)`` per batch of up to ``batch_size``.

    Frames that cannot be read are left out and appended to ``skipped`` as ``"PATH: reason"``.
    """
    if not paths:
        return
    fs = filesystem(paths[0], storage_options)
    rows: list[int] = []
    frames: list[np.ndarray] = []
    window = max(2 * batch_size, threads)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fetch") as pool:
        for loaded in prefetched(
            pool, fs, list(enumerate(paths)), size, attempts=attempts, window=window
        ):
            if loaded.frame is None:
                skipped.append(f"{loaded.path}: {loaded.error}")
                continue
            rows.append(loaded.key)
            frames.append(loaded.frame)
            if len(frames) >= batch_size:
                yield rows, np.stack(frames)
                rows, frames = [], []
    if frames:
        yield rows, np.stack(frames)
